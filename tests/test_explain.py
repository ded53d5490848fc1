"""Tests for `rnnkit explain vanishing`: the command, its report, the reading written from the
numbers, and `rnnkit.plot.gradient_flow`."""

import io
import json
import re

import numpy as np
import pytest

from rnnkit import cli, plot
from rnnkit.diagnostics import GradientFlow
from rnnkit.explain import VanishingResults, reading, report_html

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _flow(norms, name="layer", backwards=False):
    norms = np.asarray(norms, dtype=float)
    return GradientFlow({name: norms}, {name: {"h": 0.9}}, {name: backwards}, loss=0.1)


def test_explain_vanishing_writes_figures_and_a_page_with_the_numbers(tmp_path):
    out = tmp_path / "report"
    stream = io.StringIO()
    argv = ["explain", "vanishing", "--lengths", "10", "20", "--steps", "30", "--out", str(out)]
    assert cli.main(argv, stream=stream) == 0
    printed = stream.getvalue()
    assert "[ 1/8] T=10" in printed and "[ 8/8] T=20" in printed  # progress as it goes
    for name in ("mse_vs_length.png", "gradient_flow.png", "vanishing.html", "vanishing.json"):
        assert (out / name).is_file() and str(out / name) in printed
    for name in ("mse_vs_length.png", "gradient_flow.png"):
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
    page = (out / "vanishing.html").read_text(encoding="utf-8")
    numbers = json.loads((out / "vanishing.json").read_text(encoding="utf-8"))
    # Self-contained: both figures embedded, each named in its caption.
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "Figure 1</b> (mse_vs_length.png)" in page
    assert "Figure 2</b> (gradient_flow.png)" in page
    # The measured numbers are on the page, and the reading is the one printed.
    assert numbers["lengths"] == [10, 20]
    for name, values in numbers["test_mse"].items():
        assert len(values) == 2
        for value in values:
            assert f"<td>{value:.3g}</td>" in page, (name, value)
    assert set(numbers["gradient_flow"]) == {"SimpleRNN", "LSTM", "GRU", "IRNN"}
    assert all(len(norms) == 20 for norms in numbers["gradient_flow"].values())
    for line in printed.splitlines():
        if line.startswith("- "):
            assert line[2:].replace("'", "&#x27;") in page


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "vanishing", "--lengths", "1"],
        ["explain", "vanishing", "--steps", "0"],
        ["explain", "nothing"],
    ],
)
def test_bad_options_exit_2_with_one_line(argv, capsys):
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnkit explain: error:") and error.count("\n") == 1


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["explain", "vanishing", "--lengths", "4", "--steps", "1", "--out", str(blocker)]
    assert cli.main(argv, stream=io.StringIO()) == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnkit explain: error: argument --out:") and error.count("\n") == 1


def _results(mse):
    lengths = [25, 50, 100, 200]
    flows = {
        "SimpleRNN": _flow(10.0 ** -np.linspace(12, 0, 200)),
        "LSTM": _flow(np.linspace(0.5, 1.0, 200)),
    }
    initial = {
        "SimpleRNN": _flow(np.linspace(0.5, 1.0, 200)),
        "LSTM": _flow(10.0 ** -np.linspace(6, 0, 200)),
    }
    settings = dict(
        steps=1000, batch_size=4, units=3, seed=0, learning_rates={"LSTM": 1e-2}, clipnorm=1.0
    )
    return VanishingResults(lengths, mse=mse, flows=flows, initial_flows=initial, settings=settings)


def test_reading_is_written_from_the_numbers():
    results = _results(
        {"SimpleRNN": [0.02, 0.09, 0.160, 0.168], "LSTM": [0.001, 0.002, 0.004, 0.0123]}
    )
    text = reading.reading(results)
    assert text[0] == (
        "SimpleRNN learns the task up to T=25 (MSE 0.02) but stays at the baseline from "
        "T=100 (MSE 0.16, 96% of the baseline)."
    )
    assert text[1] == "LSTM learns the task at every length, reaching MSE 0.0123 at T=200."
    assert "the best is LSTM (MSE 0.0123) and the worst is SimpleRNN (MSE 0.168)" in text[2]
    assert "SimpleRNN's gradient loses a factor of 10 every 17 steps back in time" in text[3]
    assert "1.0e-12" in text[3] and "training closed it" in text[3]
    assert text[4] == (
        "After training, LSTM's gradient fades by less than a factor of 10 over all T=200 "
        "steps: at the first step it is still 0.5 of its size at the last. At initialization "
        "it was 1.0e-06: training opened the path."
    )
    other = reading.reading(_results({"SimpleRNN": [0.2, 0.17, 0.16, 0.18], "LSTM": [0.1] * 4}))
    assert other[0].startswith("No model learned the task at any length")
    assert other[1] == (
        "SimpleRNN stays at the baseline at every length (T=25 to T=200; best MSE 0.16, 96% "
        "of the baseline)."
    )
    assert other[2] == (
        "LSTM never gets below MSE 0.05; its best is MSE 0.1 at T=25 (60% of the baseline)."
    )


def test_reading_of_a_diverged_model():
    nan = float("nan")
    results = _results({"SimpleRNN": [0.01, 0.1, 0.01, 0.1], "LSTM": [0.2, 0.2, nan, nan]})
    results.flows["LSTM"] = _flow([nan] * 200)
    text = reading.reading(results)
    assert text[0] == (
        "SimpleRNN learns the task only at T=25 (MSE 0.01), T=100 (MSE 0.01) but reaches only "
        "MSE 0.1 at T=200 (60% of the baseline)."
    )
    assert text[1] == (
        "LSTM stays at the baseline at every length (T=25 to T=200; best MSE 0.2, 120% of the "
        "baseline)."
    )
    assert "the best is SimpleRNN (MSE 0.1) and the worst is LSTM (diverged" in text[2]
    assert text[-1] == (
        "After training, LSTM's gradient at T=200 could not be measured: its weights or loss "
        "are no longer finite numbers."
    )


def _page_body(results, tmp_path):
    paths = report_html.write_report(results, str(tmp_path))
    page = (tmp_path / "vanishing.html").read_text(encoding="utf-8")
    return page[page.index("<body>") :], paths


def test_every_term_is_defined_where_it_first_appears(tmp_path):
    results = _results({"SimpleRNN": [0.02, 0.09, 0.16, 0.17], "IRNN": [0.01, 0.02, 0.03, 0.04]})
    results.flows["IRNN"] = results.flows.pop("LSTM")
    results.initial_flows["IRNN"] = results.initial_flows.pop("LSTM")
    body, _ = _page_body(results, tmp_path)
    assert body.index("IRNN") == body.index("IRNN (Le et al., 2015: a SimpleRNN with the ReLU")
    assert body.index("baseline") == body.index("baseline is the test MSE of always answering")
    radius = body.lower().index("spectral radius")
    definition = body.lower().index("the spectral radius of a recurrent block is the largest")
    assert radius == definition + len("the ")
    ratio = body.index("/∂<i>h</i><sub><i>1</i></sub>‖ / ")
    assert body[ratio - 40 : ratio + 200].count("is how much of the gradient") == 1
    # The terminal reading states the rule it uses before the sentences that use it.
    rule = reading.baseline_rule(results.baseline)
    assert "at least 80% of it (0.133)" in rule and "below MSE 0.05" in rule


def test_a_run_too_short_to_learn_says_so_and_how_to_lengthen_it():
    results = _results({"SimpleRNN": [0.17, 0.16, 0.17, 0.18], "LSTM": [0.15, 0.16, 0.17, 0.2]})
    results.settings["steps"] = 30
    first = reading.reading(results)[0]
    assert first.startswith("No model learned the task at any length")
    assert "--steps N`, N above 30" in first
    learned = _results({"SimpleRNN": [0.17] * 4, "LSTM": [0.01, 0.16, 0.17, 0.2]})
    assert not any("No model learned" in s for s in reading.reading(learned))


def test_the_decay_sentence_follows_the_plotted_curve():
    # 10x down in the two steps nearest the loss, then flat: not "a factor of 10 every 66".
    norms = np.full(200, 0.1)
    norms[-2:] = [0.3, 1.0]
    sentence = reading.decay_sentence("SimpleRNN", norms)
    assert "falls by a factor of 9.8 over the 2 steps nearest the loss" in sentence
    assert "then stays within a factor of 2 over the next 197" in sentence
    assert "every" not in sentence
    # A geometric decay is one straight line, read as one rate.
    assert "loses a factor of 10 every 20 steps back in time" in reading.decay_sentence(
        "LSTM", 10.0 ** -np.linspace(5, 0, 101)
    )


@pytest.mark.parametrize("seed", range(5))
def test_the_fitted_stretches_stay_within_the_tolerance_of_the_curve(seed):
    rng = np.random.default_rng(seed)
    # A random curve of three straight stretches on the log scale, with a little noise.
    size = 150
    breaks = sorted(rng.choice(np.arange(5, size - 5), size=2, replace=False))
    slopes = rng.normal(0, 0.1, size=3)
    steps = np.diff(np.concatenate([[0], breaks, [size - 1]]))
    log_norms = np.concatenate([[0.0], np.cumsum(np.repeat(slopes, steps))])
    log_norms += rng.normal(0, 0.05, size=size)
    norms = 10.0 ** log_norms[::-1]  # by input time: the last step is nearest the loss
    segments = reading.fit_segments(norms)
    position, fitted = 0, [0.0]
    for segment in segments:
        assert segment.start == position
        rate = segment.decades / segment.steps
        fitted += list(fitted[-1] + rate * np.arange(1, segment.steps + 1))
        position += segment.steps
    assert position == size - 1
    # Anchored at the first point, so allow one tolerance for the line's own offset.
    offset = log_norms[0] - fitted[0]
    deviation = np.abs(np.asarray(fitted) + offset - log_norms)
    assert deviation.max() <= 2 * reading.FIT_TOLERANCE_DECADES


@pytest.mark.parametrize("share", [0.79, 0.81])
def test_one_rule_decides_at_the_baseline(share, tmp_path):
    baseline = VanishingResults([1]).baseline
    results = _results({"SimpleRNN": [0.01, 0.02, 0.03, share * baseline], "LSTM": [0.01] * 4})
    sentence = reading.reading(results)[0]
    said_at = "stays at the baseline" in sentence
    assert said_at == (share >= reading.NEAR_BASELINE)
    assert f"{share:.0%} of the baseline" in sentence
    # The figure shades the same band.
    figure = report_html.mse_figure(results, str(tmp_path / "mse.png"))
    (band,) = [p for p in figure.axes[0].patches if "at the baseline" in p.get_label()]
    assert band.get_y() == pytest.approx(reading.NEAR_BASELINE * baseline)


def test_axis_labels_are_rendered_as_math(tmp_path):
    figure = plot.gradient_flow({"SimpleRNN": _flow([1e-3, 1.0])}, tmp_path / "flow.png")
    axis = figure.axes[0]
    assert axis.get_ylabel().startswith(r"$\Vert \partial L / \partial h_t \Vert$")
    assert "$T - t$" in axis.get_xlabel()
    body, _ = _page_body(_results({"SimpleRNN": [0.1] * 4, "LSTM": [0.01] * 4}), tmp_path)
    assert "h_t" not in body and "h_1" not in body and "<sub><i>t</i></sub>" in body


def test_plot_gradient_flow_draws_one_curve_per_entry(tmp_path):
    path = tmp_path / "figures" / "flow.png"
    flows = {"SimpleRNN": _flow([1e-6, 1e-3, 1.0]), "LSTM": np.array([0.5, 0.7, 1.0])}
    figure = plot.gradient_flow(flows, path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    (axis,) = figure.axes
    assert axis.get_yscale() == "log"
    lines = {line.get_label(): line.get_ydata() for line in axis.get_lines()}
    assert set(lines) == {"SimpleRNN", "LSTM"}
    np.testing.assert_array_equal(lines["SimpleRNN"], [1.0, 1e-3, 1e-6])  # distance 0 first
    backwards = plot.gradient_flow(_flow([1.0, 1e-3], name="backward", backwards=True))
    np.testing.assert_array_equal(backwards.axes[0].get_lines()[0].get_ydata(), [1.0, 1e-3])
    with pytest.raises(ValueError, match="`flows` must be"):
        plot.gradient_flow({})
