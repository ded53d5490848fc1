"""Plots of training: loss and metric curves per epoch, written to PNG files.

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
    figure.tight_layout()
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        figure.savefig(path, dpi=100)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return figure
