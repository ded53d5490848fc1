"""Temperature forecasting on the Jena climate series: the chapter after IMDB, as a program.

A common-sense baseline, then recurrent models that try to beat it: a GRU, a GRU with
recurrent dropout, two stacked GRUs, and a bidirectional LSTM. Each prints its test MAE in
degrees Celsius beside the baseline's.

Run: `python examples/forecasting.py` (downloads Jena's zip once, about 13 MB, into
~/.rnnkit/datasets). Environment variables: `RNNKIT_JENA_PATH` reads a local
`jena_climate_2009_2016.csv` (or its zip) instead; `RNNKIT_EXAMPLES_QUICK=1` trains each model
for a few steps on the first rows (used by the tests); `RNNKIT_OUT` is the folder for the
curves (default `out/`).
"""

import os

import numpy as np

import rnnkit as rk
from rnnkit import layers

quick = os.environ.get("RNNKIT_EXAMPLES_QUICK") == "1"
out_dir = os.environ.get("RNNKIT_OUT", "out")
rk.utils.set_random_seed(0)

columns, timestamps, raw_data, temperature = rk.datasets.jena_climate.load_data(
    os.environ.get("RNNKIT_JENA_PATH")
)
if quick:
    raw_data, temperature = raw_data[:10000], temperature[:10000]
print(f"{len(raw_data):,} rows of {len(columns)} measurements, every 10 minutes")

# Split by time: half to train, a quarter to validate, a quarter to test.
num_train_samples = int(0.5 * len(raw_data))
num_val_samples = int(0.25 * len(raw_data))
num_test_samples = len(raw_data) - num_train_samples - num_val_samples
print("num_train_samples:", num_train_samples)
print("num_val_samples:", num_val_samples)
print("num_test_samples:", num_test_samples)

# Normalise with the training split's statistics only.
mean = raw_data[:num_train_samples].mean(axis=0)
std = raw_data[:num_train_samples].std(axis=0)
raw_data = (raw_data - mean) / std

# Five days of hourly steps predict the temperature 24 hours after the last one.
sampling_rate = 6
sequence_length = 120
delay = sampling_rate * (sequence_length + 24 - 1)
batch_size = 256


def windows(start_index, end_index, shuffle):
    return rk.utils.timeseries_dataset_from_array(
        raw_data[:-delay],
        targets=temperature[delay:],
        sampling_rate=sampling_rate,
        sequence_length=sequence_length,
        shuffle=shuffle,
        batch_size=batch_size,
        start_index=start_index,
        end_index=end_index,
    )


train_dataset = windows(0, num_train_samples, shuffle=True)
val_dataset = windows(num_train_samples, num_train_samples + num_val_samples, shuffle=False)
test_dataset = windows(num_train_samples + num_val_samples, None, shuffle=False)
samples, targets = train_dataset[0]
print("samples shape:", samples.shape)
print("targets shape:", targets.shape)


def evaluate_naive_method(dataset):
    """The common-sense baseline: the temperature 24 hours on is the last one seen."""
    total_abs_err = 0.0
    samples_seen = 0
    for samples, targets in dataset:
        preds = samples[:, -1, 1] * std[1] + mean[1]
        total_abs_err += np.sum(np.abs(preds - targets))
        samples_seen += samples.shape[0]
    return total_abs_err / samples_seen


baseline = evaluate_naive_method(test_dataset)
print(f"Validation MAE: {evaluate_naive_method(val_dataset):.2f}")
print(f"Test MAE: {baseline:.2f} (common-sense baseline)")


def train_and_test(name, hidden, epochs):
    """Trains `Input → hidden layers → Dense(1)` with MSE and reports its test MAE."""
    inputs = rk.Input(shape=(sequence_length, raw_data.shape[-1]))
    x = inputs
    for layer in hidden:
        x = layer(x)
    outputs = layers.Dense(1)(x)
    model = rk.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    checkpoint = os.path.join(out_dir, f"jena_{name}.rnnkit")
    callbacks = [rk.callbacks.ModelCheckpoint(checkpoint, save_best_only=True)]
    limits = {"steps_per_epoch": 3, "validation_steps": 2} if quick else {}
    history = model.fit(
        train_dataset,
        epochs=1 if quick else epochs,
        validation_data=val_dataset,
        callbacks=callbacks,
        verbose=2,
        **limits,
    )
    rk.plot.history(history, os.path.join(out_dir, f"jena_{name}_curves.png"))
    model = rk.load_model(checkpoint)
    test_mae = model.evaluate(test_dataset, verbose=0)[1]
    print(f"{name}: test MAE {test_mae:.2f} (baseline {baseline:.2f})")
    return test_mae


train_and_test("gru", [layers.GRU(16)], epochs=10)
train_and_test("gru_dropout", [layers.GRU(32, recurrent_dropout=0.25), layers.Dropout(0.5)], 50)
train_and_test(
    "stacked_gru",
    [
        layers.GRU(32, recurrent_dropout=0.5, return_sequences=True),
        layers.GRU(32, recurrent_dropout=0.5),
        layers.Dropout(0.5),
    ],
    epochs=50,
)
train_and_test("bidirectional_lstm", [layers.Bidirectional(layers.LSTM(16))], epochs=10)
