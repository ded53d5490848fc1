"""Plots: training curves per epoch (`history`), gradient norms through time
(`gradient_flow`) and a forecast against the truth (`forecast`), written to PNG files.

Figures are drawn with matplotlib's non-interactive Agg canvas, so nothing opens a window
(and nothing needs a display) unless you ask for it with `show=True`.
"""

from __future__ import annotations

import os
from typing import Any


def _figure(columns: int, size: tuple[float, float], show: bool) -> tuple[Any, Any]:
    """A figure with one row of `columns` panels: pyplot's when it will be shown, else a
    plain Agg figure that no GUI ever sees."""
    if show:
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, columns, figsize=size, squeeze=False)
        return figure, axes[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _finish(figure: Any, path: Any, show: bool) -> Any:
    """Lays the figure out, writes it to `path` (folders created) if given, shows it if asked;
    returns it."""
    figure.tight_layout()
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        figure.savefig(path, dpi=100)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return figure


def history(
    history: Any,
    path: str | os.PathLike | None = None,
    *,
    metrics: list[str] | None = None,
    show: bool = False,
) -> Any:
    """Draws training and validation curves per epoch, one panel per metric (loss first).

    Args:
        history: a `History` returned by `fit` (or its `.history` dict: name -> values).
        path: PNG file to write (folders are created); None to only return the figure.
        metrics: names to draw (default: every name without a `val_` prefix, loss first).
        show: also open a window with `matplotlib.pyplot.show()`.

    Returns:
        The matplotlib `Figure`.

    Example:
        >>> history = model.fit(x, y, validation_split=0.2, epochs=10)
        >>> rk.plot.history(history, "curves.png")
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(
            "plot.history: `history` must be a History from `fit` or a non-empty dict of "
            f"per-epoch values, received {history!r}."
        )
    names = metrics or sorted(
        (name for name in logs if not name.startswith("val_")), key=lambda n: n != "loss"
    )
    unknown = [name for name in names if name not in logs]
    if unknown:
        raise ValueError(f"plot.history: no values for {unknown}; recorded: {sorted(logs)}.")
    figure, axes = _figure(len(names), (5.0 * len(names), 4.0), show)
    for axis, name in zip(axes, names):
        epochs = range(1, len(logs[name]) + 1)
        axis.plot(epochs, logs[name], "o-", label=f"Training {name}")
        if f"val_{name}" in logs:
            axis.plot(epochs, logs[f"val_{name}"], "s--", label=f"Validation {name}")
        axis.set_title(f"Training and validation {name}")
        axis.set_xlabel("Epochs")
        axis.set_ylabel(name)
        axis.legend()
    return _finish(figure, path, show)


def forecast(
    truth: Any,
    predictions: Any,
    path: str | os.PathLike | None = None,
    *,
    unit: str = "",
    title: str = "Predictions against the truth",
    limit: int = 1000,
    show: bool = False,
) -> Any:
    """Draws a series' true values and a model's predictions of them, step by step.

    Args:
        truth: `(steps,)` true values.
        predictions: `(steps,)` predicted values.
        path: PNG file to write (folders are created); None to only return the figure.
        unit: the values' unit, for the axis label.
        title: the panel's title.
        limit: draw at most the first `limit` steps (default 1000), so that a long series
            stays readable.
        show: also open a window with `matplotlib.pyplot.show()`.

    Returns:
        The matplotlib `Figure`.
    """
    import numpy as np

    truth = np.asarray(truth, dtype="float64").reshape(-1)
    predictions = np.asarray(predictions, dtype="float64").reshape(-1)
    if truth.shape != predictions.shape or truth.size == 0:
        raise ValueError(
            "plot.forecast: `truth` and `predictions` must hold the same, non-zero number of "
            f"values; received {truth.size} and {predictions.size}."
        )
    figure, axes = _figure(1, (10.0, 4.0), show)
    steps = np.arange(min(limit, truth.size))
    axes[0].plot(steps, truth[: steps.size], label="Truth")
    axes[0].plot(steps, predictions[: steps.size], label="Predictions", alpha=0.8)
    axes[0].set_title(title)
    axes[0].set_xlabel("Test window")
    axes[0].set_ylabel(unit or "value")
    axes[0].legend()
    return _finish(figure, path, show)


def _flow_curves(flows: Any) -> list[tuple[str, Any]]:
    """`(label, norms by distance from the loss)` for each curve of `plot.gradient_flow`."""
    import numpy as np

    from rnnkit.diagnostics import GradientFlow

    def by_distance(norms: Any, backwards: bool) -> Any:
        norms = np.asarray(norms, dtype=float)
        if norms.ndim != 1 or norms.size == 0:
            raise ValueError(
                "plot.gradient_flow: each curve must be a non-empty 1-D array of norms (T,), "
                f"received shape {norms.shape}."
            )
        return norms if backwards else norms[::-1]

    def curves_of(flow: GradientFlow, prefix: str | None) -> list[tuple[str, Any]]:
        return [
            (
                name if prefix is None else prefix if len(flow) == 1 else f"{prefix}: {name}",
                by_distance(norms, flow.go_backwards.get(name, False)),
            )
            for name, norms in flow.items()
        ]

    if isinstance(flows, GradientFlow):
        return curves_of(flows, None)
    if not isinstance(flows, dict) or not flows:
        raise ValueError(
            "plot.gradient_flow: `flows` must be a GradientFlow or a non-empty dict of "
            f"{{label: GradientFlow or (T,) array}}, received {flows!r}."
        )
    curves = []
    for label, value in flows.items():
        if isinstance(value, GradientFlow):
            curves.extend(curves_of(value, label))
        else:
            curves.append((label, by_distance(value, False)))
    return curves


def gradient_flow(
    flows: Any,
    path: str | os.PathLike | None = None,
    *,
    title: str = "Gradient flow through time",
    show: bool = False,
) -> Any:
    """Draws ‖∂L/∂h_t‖ against the distance from the loss, log scale, one curve per entry.

    The x axis counts timesteps back from the loss: T − t for a layer that runs forwards (the
    last step is at 0), t − 1 for one that runs backwards. A straight falling line on the log
    scale is a gradient that vanishes geometrically.

    Args:
        flows: a `GradientFlow` from `rnnkit.diagnostics.gradient_flow` (one curve per layer),
            or a dict `{label: GradientFlow or (T,) array}`, e.g. one model per layer type:
            `{"SimpleRNN": flow_a, "LSTM": flow_b}` (a flow with several layers draws one
            curve per layer, labelled "label: layer").
        path: PNG file to write (folders are created); None to only return the figure.
        title: the figure's title.
        show: also open a window with `matplotlib.pyplot.show()`.

    Returns:
        The matplotlib `Figure`.

    Example:
        >>> flows = {name: rk.diagnostics.gradient_flow(m, x, y) for name, m in models.items()}
        >>> rk.plot.gradient_flow(flows, "gradient_flow.png")
    """
    curves = _flow_curves(flows)
    figure, (axis,) = _figure(1, (7.0, 4.5), show)
    for label, norms in curves:
        axis.plot(range(len(norms)), norms, label=label)
    axis.set_yscale("log")
    axis.set_title(title)
    axis.set_xlabel(r"Distance from the loss, $T - t$ (timesteps)")
    axis.set_ylabel(r"$\Vert \partial L / \partial h_t \Vert$ (log scale)")
    axis.grid(True, which="major", alpha=0.3)
    axis.legend()
    return _finish(figure, path, show)
