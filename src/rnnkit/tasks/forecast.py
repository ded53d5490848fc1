"""Forecasting a series, the chapter after IMDB: Chollet's temperature-forecasting setup.

The series is Jena's weather (a local `jena_climate_2009_2016.csv` or its zip, `--data`), or,
without `--data`, the Mauna Loa weekly CO2 series shipped with rnnkit. As in the book:

- the first 50% of the steps train, the next 25% validate and the last 25% test (by time);
- every feature is normalised with the mean and standard deviation of the training split only;
- a window of `sequence_length` steps, one every `sampling_rate` raw steps, predicts the target
  (Jena's temperature, or the CO2) `delay` raw steps after the window's first step;
- the common-sense baseline predicts that the target will be what it was at the window's last
  step; its test MAE is printed beside the model's, both in the series' own units.

Windows are cut lazily by `timeseries_dataset_from_array`, so memory stays O(series).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch

import rnnkit as rk
from rnnkit import layers, plot
from rnnkit.data import jena_climate, mauna_loa_co2
from rnnkit.data.timeseries import TimeseriesDataset, timeseries_dataset_from_array
from rnnkit.tasks.common import fit_and_save, output_paths, recurrent_layer, report
from rnnkit.training import distributed


class Series(NamedTuple):
    """A series to forecast and the window settings that suit it.

    Attributes:
        name: what it is, for messages.
        features: `(steps, features)` float32, the measurements.
        target_column: which feature is forecast.
        unit: the target's unit, for messages.
        sequence_length, sampling_rate, horizon: default window (the target comes `horizon`
            sampled steps after the window's last step).
        predict_change: the model sees each step's change and predicts the target's change
            since the window's last step (for a series with a trend, whose later levels the
            training split never shows); otherwise it sees the values and predicts the value.
    """

    name: str
    features: np.ndarray
    target_column: int
    unit: str
    sequence_length: int
    sampling_rate: int
    horizon: int
    predict_change: bool


def load_series(path: str | None) -> Series:
    """Jena from `path`, or the built-in Mauna Loa CO2 series when `path` is None."""
    if path is None:
        co2 = mauna_loa_co2.load_data().co2
        # A year of weekly values predicts the CO2 four weeks after the window. The CO2 rises
        # every year, so the test quarter's levels lie above anything the training half holds:
        # the model works on changes, which stay in range.
        return Series("Mauna Loa weekly CO2", co2[:, None], 0, "ppmv", 52, 1, 4, True)
    jena = jena_climate.load_data(path)
    # Chollet: 5 days of hourly steps (every 6th 10-minute row) predict 24 hours ahead.
    return Series(
        "Jena climate", jena.raw_data, jena_climate.TEMPERATURE_COLUMN, "degC", 120, 6, 24, False
    )


class Splits(NamedTuple):
    """The windows of the three splits, and what turns a prediction back into the target's
    units: `value = prediction * target_std + target_mean` (a change, with `predict_change`)."""

    train: TimeseriesDataset
    val: TimeseriesDataset
    test: TimeseriesDataset
    target_mean: float
    target_std: float
    test_starts: np.ndarray  # (test windows,) each test window's first step


def make_splits(
    series: Series,
    *,
    sequence_length: int,
    sampling_rate: int,
    delay: int,
    batch_size: int,
    seed: int,
) -> Splits:
    """Chollet's 50/25/25 split by time, normalised with the training split's statistics.

    Raises:
        ValueError: a split holds no window (the series is too short for the options).
    """
    steps = len(series.features)
    num_train, num_val = int(0.5 * steps), int(0.25 * steps)
    window_end = sampling_rate * (sequence_length - 1)  # a window's last step, from its first
    if delay >= steps or window_end >= num_val:  # not one window in a quarter
        raise _too_short(series, steps, sequence_length, sampling_rate, delay, None)
    level = series.features[:, series.target_column]
    inputs = series.features
    targets = level[delay:]  # targets[i]: the target of the window that starts at step i
    if series.predict_change:
        inputs = np.diff(series.features, axis=0, prepend=series.features[:1])
        targets = targets - level[window_end : window_end + len(targets)]
    mean, std = inputs[:num_train].mean(axis=0), inputs[:num_train].std(axis=0)
    normalised = ((inputs - mean) / np.where(std > 0, std, 1.0)).astype("float32")
    target_mean = float(targets[:num_train].mean())
    target_std = float(targets[:num_train].std()) or 1.0
    normalised_targets = ((targets - target_mean) / target_std).astype("float32")

    def windows(start: int, end: int | None, shuffle: bool) -> TimeseriesDataset:
        return timeseries_dataset_from_array(
            normalised[:-delay],
            targets=normalised_targets,
            sequence_length=sequence_length,
            sampling_rate=sampling_rate,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            start_index=start,
            end_index=end,
        )

    try:
        splits = (
            windows(0, num_train, True),
            windows(num_train, num_train + num_val, False),
            windows(num_train + num_val, None, False),
        )
    except ValueError as error:
        raise _too_short(series, steps, sequence_length, sampling_rate, delay, error) from None
    if any(len(split) == 0 for split in splits):
        raise _too_short(series, steps, sequence_length, sampling_rate, delay, None)
    test_starts = num_train + num_val + np.arange(splits[2].num_windows)  # stride 1, in order
    return Splits(*splits, target_mean, target_std, test_starts)


def _too_short(
    series: Series, steps: int, length: int, rate: int, delay: int, error: Any
) -> ValueError:
    detail = f" ({error})" if error is not None else ""
    return ValueError(
        f"The {series.name} series has {steps} steps, too few for windows of "
        f"--sequence-length {length} every --sampling-rate {rate} with --delay {delay} in each "
        f"of its training, validation and test quarters{detail}."
    )


def levels(
    series: Series, splits: Splits, predictions: np.ndarray, window_end: int, delay: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test split's true target values, the model's and the common-sense baseline's, in
    the series' units: `(truth, model, baseline)`, each `(test windows,)`.

    Args:
        predictions: `(test windows,)` the model's normalised outputs, in order.
    """
    level = series.features[:, series.target_column].astype("float64")
    starts = splits.test_starts
    truth = level[starts + delay]
    baseline = level[starts + window_end]  # the value at the window's last step
    model = predictions.astype("float64") * splits.target_std + splits.target_mean
    if series.predict_change:
        model = baseline + model
    return truth, model, baseline


def run(options: Any, stream: Any) -> dict[str, Any]:
    """Trains a recurrent forecaster; prints the model's and the baseline's test MAE.

    Writes the model, `history.csv`, `curves.png` and `predictions.png` (the test split's
    targets against the model's predictions) to `options.out`.
    """
    torch.manual_seed(options.seed)
    series = load_series(options.data)
    sequence_length = options.sequence_length or series.sequence_length
    sampling_rate = options.sampling_rate or series.sampling_rate
    delay = options.delay or sampling_rate * (sequence_length + series.horizon - 1)
    window_end = sampling_rate * (sequence_length - 1)  # the last step, from the first
    if delay <= window_end:
        raise ValueError(
            f"--delay {delay} must reach past the window's last step: at least "
            f"sampling_rate * (sequence_length - 1) + 1 = {window_end + 1}."
        )
    splits = make_splits(
        series,
        sequence_length=sequence_length,
        sampling_rate=sampling_rate,
        delay=delay,
        batch_size=options.batch_size,
        seed=options.seed,
    )
    print(
        f"{series.name}: {len(series.features):,} steps of {series.features.shape[1]} features; "
        f"windows of {sequence_length} steps every {sampling_rate}, target {delay} steps after "
        f"the window's start; {splits.train.num_windows:,} training, "
        f"{splits.val.num_windows:,} validation and {splits.test.num_windows:,} test windows",
        file=stream,
    )
    model = rk.Sequential(
        [
            rk.Input(shape=(sequence_length, series.features.shape[1])),
            recurrent_layer(
                options.layer, options.units, recurrent_dropout=options.recurrent_dropout
            ),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    paths = {
        **output_paths(options.out),
        "predictions": os.path.join(options.out, "predictions.png"),
    }
    fit_and_save(
        model,
        paths,
        splits.train,
        epochs=options.epochs,
        validation_data=splits.val,
        verbose=options.verbose,
    )
    predictions = model.predict(splits.test, verbose=0)[:, 0]
    truth, predicted, baseline = levels(series, splits, predictions, window_end, delay)
    model_mae = float(np.abs(predicted - truth).mean())
    common_sense = float(np.abs(baseline - truth).mean())
    print(
        f"test MAE: model {model_mae:.4f} {series.unit}, common-sense baseline (the last value) "
        f"{common_sense:.4f} {series.unit}",
        file=stream,
    )
    if distributed.is_primary():
        plot.forecast(
            truth,
            predicted,
            paths["predictions"],
            unit=series.unit,
            title=f"{series.name}: the test split's targets and the model's predictions",
        )
    report(paths, stream)
    return {"model_mae": model_mae, "baseline_mae": common_sense, "paths": paths}
