"""`rnnkit train forecast` (tasks/forecast.py): Chollet's setup on a tiny Jena-format CSV and
on the built-in CO2 series; every output written, both MAEs printed."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import rnnkit as rk
from rnnkit.cli import main
from rnnkit.tasks import forecast

TINY = ["--epochs", "1", "--units", "4", "--batch-size", "16", "--verbose", "0"]
OUTPUTS = ("model.rnnkit", "history.csv", "curves.png", "predictions.png")


def maes(text: str) -> tuple[float, float]:
    found = re.search(r"test MAE: model ([\d.]+) (\S+), common-sense baseline .* ([\d.]+) \2", text)
    assert found, text
    return float(found.group(1)), float(found.group(3))


def test_train_forecast_on_a_jena_csv_writes_every_output(tmp_path, jena_csv):
    data = jena_csv(rows=240)
    out = tmp_path / "jena"
    stream = io.StringIO()
    argv = ["train", "forecast", "--data", str(data), "--layer", "gru", "--sequence-length", "8",
            "--sampling-rate", "2", "--delay", "20", "--recurrent-dropout", "0.25",
            "--out", str(out), *TINY]  # fmt: skip
    assert main(argv, stream=stream) == 0
    text = stream.getvalue()
    assert "Jena climate: 240 steps of 14 features" in text and "degC" in text
    model_mae, baseline = maes(text)
    assert model_mae > 0 and baseline > 0
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0 and str(out / name) in text
    assert (out / "history.csv").read_text().splitlines()[0] == "epoch,loss,mae,val_loss,val_mae"
    model = rk.load_model(out / "model.rnnkit")
    assert model.layers[0].__class__.__name__ == "GRU" and model.layers[0].recurrent_dropout == 0.25


def test_train_forecast_on_the_built_in_series_reports_both_maes(tmp_path):
    out = tmp_path / "co2"
    stream = io.StringIO()
    assert main(["train", "forecast", "--out", str(out), *TINY], stream=stream) == 0
    text = stream.getvalue()
    assert "Mauna Loa weekly CO2: 2,284 steps of 1 features" in text
    model_mae, baseline = maes(text)
    assert baseline == pytest.approx(1.1095, abs=1e-3)  # last value, 4 weeks on: the test split
    for name in OUTPUTS:
        assert (out / name).exists()


@pytest.mark.parametrize("predict_change", [False, True])
def test_the_levels_are_the_windows_targets_in_the_series_units(predict_change):
    steps = 200
    rng = np.random.default_rng(1)
    features = np.cumsum(rng.normal(size=(steps, 2)), axis=0).astype("float32")
    series = forecast.Series("walk", features, 1, "m", 6, 2, 3, predict_change)
    delay, window_end = 2 * (6 + 3 - 1), 2 * 5
    splits = forecast.make_splits(
        series, sequence_length=6, sampling_rate=2, delay=delay, batch_size=7, seed=0
    )
    targets = np.concatenate([splits.test[i][1] for i in range(len(splits.test))])
    truth, model, baseline = forecast.levels(series, splits, targets, window_end, delay)
    np.testing.assert_allclose(model, truth, rtol=1e-5, atol=1e-4)  # a perfect model
    np.testing.assert_allclose(truth, features[splits.test_starts + delay, 1])
    np.testing.assert_allclose(baseline, features[splits.test_starts + window_end, 1])
    windows = splits.test[0][0]
    assert windows.shape == (7, 6, 2)
    train_inputs = np.concatenate([splits.train[i][0] for i in range(len(splits.train))])
    assert abs(train_inputs.mean()) < 0.5  # normalised with the training split's statistics


def test_options_the_series_cannot_hold_are_one_line_errors(tmp_path, capsys, jena_csv):
    data = jena_csv(rows=40)
    argv = ["train", "forecast", "--data", str(data), "--out", str(tmp_path), *TINY]
    assert main(argv) == 2
    assert "too few for windows of --sequence-length 120" in capsys.readouterr().err
    assert main([*argv, "--sequence-length", "4", "--delay", "2"]) == 2
    assert "--delay 2 must reach past the window's last step" in capsys.readouterr().err
    assert main(["train", "forecast", "--recurrent-dropout", "1.5"]) == 2
    assert (
        "--recurrent-dropout: expected a number in [0, 1), received 1.5" in capsys.readouterr().err
    )
