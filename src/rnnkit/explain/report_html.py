"""The report of a vanishing-gradient experiment: two PNG figures, a JSON file of the numbers,
and one self-contained HTML page (figures embedded as base64 data URIs) that reads them.

    paths = write_report(results, "out")   # {"mse": ..., "flow": ..., "json": ..., "html": ...}
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from typing import Any

import numpy as np

from rnnkit import plot
from rnnkit.explain import reading
from rnnkit.explain.vanishing import FLOW_SAMPLES, VanishingResults

FILE_NAMES = {
    "mse": "mse_vs_length.png",
    "flow": "gradient_flow.png",
    "json": "vanishing.json",
    "html": "vanishing.html",
}


def mse_figure(results: VanishingResults, path: str) -> Any:
    """Test MSE against T (log-log), one line per layer type, the 0.167 baseline dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    figure = Figure(figsize=(8.5, 4.5))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for name, values in results.mse.items():
        finite = [value if math.isfinite(value) else np.nan for value in values]
        axis.plot(results.lengths, finite, "o-", label=name)
    axis.axhline(
        results.baseline,
        color="gray",
        linestyle="--",
        label=f"baseline: always 1.0\n(MSE {results.baseline:.3f})",
    )
    finite = [v for values in results.mse.values() for v in values if math.isfinite(v) and v > 0]
    bottom, top = min([*finite, 0.01]) / 1.5, max([*finite, results.baseline]) * 1.5
    axis.axhspan(
        reading.NEAR_BASELINE * results.baseline,
        top,
        color="gray",
        alpha=0.15,
        label=f"at the baseline\n(≥ {reading.NEAR_BASELINE:.0%} of it)",
    )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_ylim(bottom, top)
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticks(results.lengths, [str(length) for length in results.lengths])
    axis.set_xlabel("Sequence length $T$")
    axis.set_ylabel("Test MSE (log scale)")
    axis.set_title("Adding problem: test error after training")
    axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


def results_json(results: VanishingResults) -> dict[str, Any]:
    """The measured numbers as JSON-able values (non-finite MSE as null)."""

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        "lengths": results.lengths,
        "baseline_mse": results.baseline,
        "test_mse": {name: [finite(v) for v in values] for name, values in results.mse.items()},
        "gradient_flow_timesteps": results.flow_timesteps,
        "gradient_flow": {
            name: [finite(float(v)) for v in next(iter(flow.values()))]
            for name, flow in results.flows.items()
        },
        "gradient_flow_at_initialization": {
            name: [finite(float(v)) for v in next(iter(flow.values()))]
            for name, flow in results.initial_flows.items()
        },
        "settings": results.settings,
        "seconds": results.seconds,
    }


# ‖∂L/∂h_t‖ and its relatives as HTML math (italic letters, real subscripts).
def _gradient_norm(step: str) -> str:
    return f"‖∂<i>L</i>/∂<i>h</i><sub><i>{step}</i></sub>‖"


_RATIO = f"{_gradient_norm('1')} / {_gradient_norm('T')}"


def _image(path: str, number: int, caption: str) -> str:
    """A figure with the PNG embedded; `caption` is HTML (the alt text is its plain text)."""
    with open(path, "rb") as file:
        data = base64.b64encode(file.read()).decode("ascii")
    name = os.path.basename(path)
    alt = html.escape(re.sub(r"<[^>]+>", "", caption), quote=True)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="Figure {number}: {alt}">'
        f"<figcaption><b>Figure {number}</b> ({html.escape(name)}): {caption}</figcaption>"
        "</figure>"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; `header` cells are HTML already (they may hold math), `rows` plain text."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _flow_rows(results: VanishingResults) -> list[list[str]]:
    rows = []
    for name, flow in results.flows.items():
        layer = next(iter(flow))
        trained = reading.end_to_end_ratio(flow[layer])
        initial = results.initial_flows.get(name)
        before = reading.end_to_end_ratio(next(iter(initial.values()))) if initial else math.nan
        radius = flow.spectral_radius.get(layer, {})
        radii = ", ".join(f"{gate} {value:.2f}" for gate, value in radius.items())
        rows.append([name, f"{before:.1e}", f"{trained:.1e}", radii])
    return rows


_STYLE = (
    "body{font-family:sans-serif;max-width:52em;margin:2em auto;line-height:1.45}"
    "img{max-width:100%}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}"
    "figure{margin:1.5em 0}figcaption{font-size:.95em;color:#333}"
)


def html_page(results: VanishingResults, mse_png: str, flow_png: str) -> str:
    """The report page: the reading, both figures (embedded), and the numbers as tables."""
    settings = results.settings
    timesteps = results.flow_timesteps
    rates = ", ".join(f"{name} {rate:g}" for name, rate in settings["learning_rates"].items())
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in reading.reading(results))
    mse_rows = [
        [name, *(f"{v:.3g}" if math.isfinite(v) else "diverged" for v in values)]
        for name, values in results.mse.items()
    ]
    steps_hint = (
        "Each model trains for the same number of steps; a run where no model learns anything "
        "is too short: train longer with <code>--steps</code>."
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Seeing vanishing gradients</title><style>{_STYLE}</style></head><body>",
        "<h1>Seeing vanishing gradients: the adding problem</h1>",
        "<p>Each model reads <i>T</i> pairs (value, marker) and must output the sum of the two "
        "marked values, so it has to carry information across the whole sequence. Four "
        "recurrent layers are compared: SimpleRNN, LSTM, GRU and IRNN (Le et al., 2015: a "
        "SimpleRNN with the ReLU activation whose recurrent kernel starts as the identity "
        "matrix, so that at first each step passes its state on unchanged).</p>",
        f"<p>{html.escape(reading.baseline_rule(results.baseline))} {steps_hint}</p>",
        f"<h2>What this run shows</h2><ul>{sentences}</ul>",
        _image(
            mse_png,
            1,
            "Test MSE against sequence length <i>T</i> for each layer type; the dashed line "
            "is the baseline of always answering 1.0, and the shaded band is where a model "
            "counts as at the baseline.",
        ),
        _table(["layer", *(f"<i>T</i>={t}" for t in results.lengths)], mse_rows),
        _image(
            flow_png,
            2,
            f"{_gradient_norm('t')}, the size of the loss's gradient with respect to the "
            f"hidden state at step <i>t</i>, against the distance from the loss "
            f"(<i>T</i> − <i>t</i>), measured after training at <i>T</i>={timesteps}, averaged "
            f"over {FLOW_SAMPLES} test sequences. A straight falling line on this log scale is "
            "a gradient that vanishes geometrically.",
        ),
        f"<p>In the table below, {_RATIO} is how much of the gradient at the last step "
        "reaches the first one (1: all of it; 1e-12: nothing usable), before and after "
        "training. The spectral radius of a recurrent block is the largest absolute "
        "eigenvalue of that square block of the recurrent kernel (SimpleRNN and IRNN: one "
        "block, h; LSTM: the gates i, f, c, o; GRU: z, r, h). Going back one step multiplies "
        "the gradient by the recurrent kernel (and the activation's slope, at most 1 for "
        "tanh), so a radius below 1 lets it shrink step after step, and above 1 lets it "
        "grow.</p>",
        _table(
            [
                "layer",
                f"{_RATIO} at initialization",
                "after training",
                "spectral radius of each recurrent block",
            ],
            _flow_rows(results),
        ),
        f"<p>Settings: {settings['steps']} Adam steps per model (learning rate {rates}; "
        f"gradients clipped to norm {settings['clipnorm']}), each on {settings['batch_size']} "
        f"fresh sequences; {settings['units']} units; seed {settings['seed']}; "
        f"{results.seconds:.0f} s in all. Gradient flow is measured with "
        "<code>rnnkit.diagnostics.gradient_flow</code>.</p></body></html>",
    ]
    return "\n".join(parts)


def write_report(results: VanishingResults, out_dir: str) -> dict[str, str]:
    """Writes both figures, the JSON numbers and the HTML page into `out_dir` (created).

    Returns:
        `{"mse": path, "flow": path, "json": path, "html": path}`.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {key: os.path.join(out_dir, name) for key, name in FILE_NAMES.items()}
    mse_figure(results, paths["mse"])
    plot.gradient_flow(
        results.flows,
        paths["flow"],
        title=f"Gradient flow after training (adding problem, T={results.flow_timesteps})",
    )
    with open(paths["json"], "w", encoding="utf-8") as file:
        json.dump(results_json(results), file, indent=1)
    with open(paths["html"], "w", encoding="utf-8") as file:
        file.write(html_page(results, paths["mse"], paths["flow"]))
    return paths
