"""Tests for `rnnkit explain vanishing`: the command, its report, the reading written from the
numbers, and `rnnkit.plot.gradient_flow`."""

import io
import json
import re

import numpy as np
import pytest

from rnnkit import cli, plot
from rnnkit.diagnostics import GradientFlow
from rnnkit.explain import VanishingResults, reading

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
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnkit explain: error:") and error.count("\n") == 1


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["explain", "vanishing", "--lengths", "4", "--steps", "1", "--out", str(blocker)]
    assert cli.main(argv, stream=io.StringIO()) == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnkit: error:") and error.count("\n") == 1


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
    return VanishingResults(lengths, mse=mse, flows=flows, initial_flows=initial)


def test_reading_is_written_from_the_numbers():
    results = _results(
        {"SimpleRNN": [0.02, 0.09, 0.160, 0.168], "LSTM": [0.001, 0.002, 0.004, 0.0123]}
    )
    text = reading.reading(results)
    assert text[0] == (
        "SimpleRNN learns the task up to T=25 (MSE 0.02) but stays at the baseline from "
        "T=100 (MSE 0.16)."
    )
    assert text[1] == "LSTM learns the task at every length, reaching MSE 0.0123 at T=200."
    assert "the best is LSTM (MSE 0.0123) and the worst is SimpleRNN (MSE 0.168)" in text[2]
    assert "SimpleRNN's gradient loses a factor of 10 every 17 steps" in text[3]
    assert "1.0e-12" in text[3] and "training closed it" in text[3]
    assert text[4] == (
        "After training, LSTM's gradient fades by less than a factor of 10 over all T=200 "
        "steps: at the first step it is still 0.5 of its size at the last. At initialization "
        "it was 1.0e-06: training opened the path."
    )
    other = reading.reading(_results({"SimpleRNN": [0.2, 0.17, 0.16, 0.18], "LSTM": [0.1] * 4}))
    assert other[0] == (
        "SimpleRNN stays at the baseline at every length (T=25 to T=200; worst MSE 0.2)."
    )
    assert other[1] == "LSTM never gets below MSE 0.05; its best is MSE 0.1 at T=25."


def test_reading_of_a_diverged_model():
    nan = float("nan")
    results = _results({"SimpleRNN": [0.01, 0.1, 0.01, 0.1], "LSTM": [0.2, 0.2, nan, nan]})
    results.flows["LSTM"] = _flow([nan, nan])
    text = reading.reading(results)
    assert text[0] == ("SimpleRNN learns the task only at T=25 (MSE 0.01), T=100 (MSE 0.01).")
    assert text[1] == (
        "LSTM stays at the baseline at every length (T=25 to T=200; worst diverged (MSE not "
        "finite))."
    )
    assert "the best is SimpleRNN (MSE 0.1) and the worst is LSTM (diverged" in text[2]
    assert text[-1] == (
        "After training, LSTM's gradient at T=200 could not be measured: its weights or loss "
        "are no longer finite numbers."
    )


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
