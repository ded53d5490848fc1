"""`rnnkit.plot.history`: curves written to PNG without a display."""

import pytest

from rnnkit import plot


def test_history_plot_writes_a_png_with_a_panel_per_metric(tmp_path):
    logs = {
        "loss": [0.9, 0.5, 0.3],
        "acc": [0.5, 0.7, 0.9],
        "val_loss": [1.0, 0.6, 0.5],
        "val_acc": [0.4, 0.6, 0.8],
    }
    path = tmp_path / "out" / "curves.png"
    figure = plot.history(logs, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["Training and validation loss", "Training and validation acc"]
    lines = figure.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [logs["loss"], logs["val_loss"]]


def test_history_plot_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="non-empty dict"):
        plot.history({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"no values for \['acc'\]"):
        plot.history({"loss": [1.0]}, tmp_path / "x.png", metrics=["acc"])
