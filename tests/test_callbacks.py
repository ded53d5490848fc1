"""Callbacks: Keras's decisions (EarlyStopping parity with Keras 3), effects inside `fit`."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.training import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    loop,
)

os.environ.setdefault("KERAS_BACKEND", "jax")


class TinyModel(nn.Module):
    """A dense layer with the interface the loop relies on; `save`/`save_weights` record
    their calls instead of writing files."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(2, 1)
        self.compiled = None
        self.stop_training = False
        self.saved: list[tuple[str, str]] = []

    def forward(self, x):
        return torch.sigmoid(self.dense(x))

    def get_weights(self):
        return [p.detach().clone().numpy() for p in self.parameters()]

    def set_weights(self, weights):
        with torch.no_grad():
            for parameter, weight in zip(self.parameters(), weights):
                parameter.copy_(torch.as_tensor(weight))

    def save(self, path):
        self.saved.append(("save", path))

    def save_weights(self, path):
        self.saved.append(("save_weights", path))


def compiled_model(**compile_kwargs) -> TinyModel:
    torch.manual_seed(0)
    model = TinyModel()
    compile_kwargs.setdefault("loss", "binary_crossentropy")
    compile_kwargs.setdefault("metrics", ["acc"])
    model.compiled = loop.compile(model, **compile_kwargs)
    return model


X = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
Y = (X[:, 0] > 0).astype("float32")


class ScriptedLogs(Callback):
    """Overwrites logged values with scripted ones (listed before the callback under test)."""

    def __init__(self, **values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        for name, sequence in self.values.items():
            logs[name] = sequence[epoch]


class WeightsPerEpoch(Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def fit(model, callbacks, epochs, **kwargs):
    return loop.fit(model, X, Y, epochs=epochs, batch_size=8, callbacks=callbacks, verbose=0,
                    **kwargs)  # fmt: skip


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best_weights():
    model = compiled_model()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    recorder = WeightsPerEpoch()
    script = ScriptedLogs(val_loss=[1.0, 0.5, 0.6, 0.55, 0.4, 0.3])
    history = fit(model, [script, stop, recorder], epochs=6, validation_split=0.25)
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert history.epoch == [0, 1, 2, 3]
    assert (stop.stopped_epoch, stop.best_epoch) == (3, 1)
    for restored, best in zip(model.get_weights(), recorder.weights[1]):
        np.testing.assert_array_equal(restored, best)
    assert not np.array_equal(recorder.weights[1][0], recorder.weights[3][0])


def test_early_stopping_restores_when_training_ends_without_stopping():
    model = compiled_model()
    stop = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    recorder = WeightsPerEpoch()
    fit(model, [ScriptedLogs(loss=[0.9, 0.2, 0.5]), stop, recorder], epochs=3)
    assert stop.stopped_epoch == 0
    np.testing.assert_array_equal(model.get_weights()[0], recorder.weights[1][0])


SEQUENCES = {
    "plateau": ([0.9, 0.8, 0.85, 0.82, 0.81, 0.7, 0.9, 0.95], {"patience": 2}),
    "min_delta": ([1.0, 0.95, 0.92, 0.91, 0.905, 0.9], {"patience": 1, "min_delta": 0.03}),
    "baseline": ([0.9, 0.8, 0.75, 0.7, 0.6], {"patience": 2, "baseline": 0.72}),
    "start_from_epoch": ([0.5, 0.6, 0.7, 0.8, 0.4, 0.9, 0.9], {"patience": 1,
                                                              "start_from_epoch": 3}),
    "max mode": ([0.5, 0.6, 0.55, 0.58, 0.7], {"patience": 2, "mode": "max"}),
    "patience 0": ([0.5, 0.4, 0.45, 0.3], {}),
}  # fmt: skip


class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.step = 0

    def get_weights(self):
        return [np.array([self.step])]

    def set_weights(self, weights):
        self.restored = int(weights[0][0])


def drive(callback, values):
    """Runs a callback through epochs of scripted `val_loss`; returns (epochs run, model)."""
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        model.step = epoch
        callback.on_epoch_end(epoch, {"val_loss": value})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs, model


@pytest.mark.parametrize("case", sorted(SEQUENCES))
def test_early_stopping_decisions_match_keras(case):
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for EarlyStopping")
    values, kwargs = SEQUENCES[case]
    kwargs = {"restore_best_weights": True, **kwargs}
    ours, theirs = EarlyStopping(**kwargs), keras.callbacks.EarlyStopping(**kwargs)
    our_epochs, our_model = drive(ours, values)
    their_epochs, their_model = drive(theirs, values)
    assert our_epochs == their_epochs
    assert (ours.stopped_epoch, ours.best_epoch) == (theirs.stopped_epoch, theirs.best_epoch)
    assert our_model.restored == their_model.restored


def test_early_stopping_auto_mode_follows_the_metric_direction():
    model = compiled_model(metrics=["acc"])
    stop = EarlyStopping(monitor="val_acc", patience=1)
    history = fit(model, [ScriptedLogs(val_acc=[0.5, 0.7, 0.6, 0.8]), stop], epochs=4,
                  validation_split=0.25)  # fmt: skip
    assert history.epoch == [0, 1, 2]  # 0.6 after 0.7 is worse for an accuracy
    unknown = EarlyStopping(monitor="val_custom")
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        fit(compiled_model(), [ScriptedLogs(val_custom=[1.0]), unknown], epochs=1,
            validation_split=0.25)  # fmt: skip


def test_missing_monitor_warns():
    with pytest.warns(UserWarning, match="`val_loss`, which is not in the logs"):
        fit(compiled_model(), [EarlyStopping()], epochs=1)


def test_model_checkpoint_saves_only_on_improvement():
    model = compiled_model()
    checkpoint = ModelCheckpoint("ckpt/{epoch:02d}-{val_loss:.2f}.rnnkit", save_best_only=True)
    script = ScriptedLogs(val_loss=[0.5, 0.6, 0.4, 0.45, 0.3])
    fit(model, [script, checkpoint], epochs=5, validation_split=0.25)
    assert model.saved == [
        ("save", "ckpt/01-0.50.rnnkit"),
        ("save", "ckpt/03-0.40.rnnkit"),
        ("save", "ckpt/05-0.30.rnnkit"),
    ]


def test_model_checkpoint_every_epoch_weights_only(tmp_path):
    model = compiled_model()
    path = tmp_path / "new_dir" / "weights-{epoch}.pt"
    fit(model, [ModelCheckpoint(path, save_weights_only=True)], epochs=2)
    assert model.saved == [("save_weights", str(path).format(epoch=e)) for e in (1, 2)]
    assert (tmp_path / "new_dir").is_dir()
    with pytest.raises(ValueError, match="cannot fill filepath"):
        fit(model, [ModelCheckpoint("{val_acc}.rnnkit")], epochs=1)


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    history = fit(compiled_model(), [CSVLogger(path)], epochs=3, validation_split=0.25)
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["epoch", "acc", "loss", "val_acc", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for column, name in enumerate(rows[0][1:], start=1):
        np.testing.assert_allclose([float(r[column]) for r in rows[1:]], history.history[name])
    fit(compiled_model(), [CSVLogger(path, separator=";", append=True)], epochs=1,
        validation_split=0.25)  # fmt: skip
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("0;")  # appended, no second header


def test_csv_logger_without_validation_keeps_val_columns(tmp_path):
    path = tmp_path / "log.csv"
    fit(compiled_model(), [CSVLogger(path)], epochs=1)
    header, row = list(csv.reader(path.read_text().splitlines()))
    assert header == ["epoch", "acc", "loss", "val_acc", "val_loss"]
    assert row[-2:] == ["NA", "NA"]


def test_learning_rate_scheduler_sets_the_torch_optimizer_rate():
    model = compiled_model(optimizer="sgd")
    seen = []
    spy = LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(
            model.compiled.optimizer.param_groups[0]["lr"]
        )
    )
    scheduler = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    history = fit(model, [scheduler, spy], epochs=3)
    assert seen == pytest.approx([0.01, 0.005, 0.0025])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.0025])
    one_argument = LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    fit(model, [one_argument], epochs=2)
    assert model.compiled.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="must return a number"):
        fit(model, [LearningRateScheduler(lambda epoch, lr: "fast")], epochs=1)


def test_reduce_lr_on_plateau():
    model = compiled_model(optimizer="sgd")
    reducer = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_lr=0.003)
    losses = [1.0, 0.9, 0.95, 0.93, 0.96, 0.97, 0.98, 0.99]
    history = fit(model, [ScriptedLogs(loss=losses), reducer], epochs=8)
    # no improvement in epochs 2, 3 -> halved after epoch 3; in 4, 5 -> 0.0025, raised to
    # min_lr, after epoch 5. The rate logged is the one the epoch ran with.
    assert history.history["learning_rate"] == pytest.approx(
        [0.01, 0.01, 0.01, 0.01, 0.005, 0.005, 0.003, 0.003]
    )
    with pytest.raises(ValueError, match="factor=1.5"):
        ReduceLROnPlateau(factor=1.5)


def test_terminate_on_nan(capsys):
    model = compiled_model()
    nan_after_two = LambdaCallback(
        on_train_batch_end=lambda batch, logs: logs.update(loss=float("nan")) if batch == 1 else 0
    )
    history = fit(model, [nan_after_two, TerminateOnNaN()], epochs=3)
    assert history.epoch == [0]
    assert "Batch 1: Invalid loss" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss at batch 1"):
        fit(compiled_model(), [nan_after_two, TerminateOnNaN(raise_error=True)], epochs=1)


def test_hook_order_and_lambda_callback():
    calls = []
    names = ["on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_test_begin",
             "on_epoch_end", "on_train_end"]  # fmt: skip
    hooks = {name: (lambda *args, name=name: calls.append(name)) for name in names}
    fit(compiled_model(), [LambdaCallback(**hooks)], epochs=1, validation_split=0.25)
    assert calls == [
        "on_train_begin",
        "on_epoch_begin",
        *["on_train_batch_end"] * 3,
        "on_test_begin",
        "on_epoch_end",
        "on_train_end",
    ]
    with pytest.raises(ValueError, match="'on_epoch_finish' is not a callback hook"):
        LambdaCallback(on_epoch_finish=print)


def test_callback_list_checks_its_entries():
    with pytest.raises(TypeError, match="must be an rnnkit.callbacks.Callback"):
        CallbackList([print])


def test_stop_training_from_a_batch_hook_ends_the_epoch():
    model = compiled_model()
    batches = []

    def stop_at_second(batch, logs):
        batches.append(batch)
        model.stop_training = batch == 1

    history = fit(model, [LambdaCallback(on_train_batch_end=stop_at_second)], epochs=3)
    assert batches == [0, 1] and history.epoch == [0]
