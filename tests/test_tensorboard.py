"""`rnnkit.callbacks.TensorBoard`: event files read back with tensorboard's own reader equal
the History values, with Keras 3's directories, tags, steps and summary format."""

import importlib.util
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import layers
from rnnkit.training import distributed

pytest.importorskip("tensorboard", reason="the TensorBoard callback needs `tensorboard`")
# Read the events with tensorboard's TensorFlow-free stub even where TensorFlow is installed:
# TensorFlow and torch's Triton in one process abort on some installs (both bundle LLVM).
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from tensorboard.util import tensor_util  # noqa: E402

os.environ.setdefault("KERAS_BACKEND", "jax")

SAMPLES, BATCH, EPOCHS = 40, 8, 3  # 30 training samples: 4 batches per epoch
X = np.random.default_rng(0).random((SAMPLES, 5, 3), dtype=np.float32)
Y = np.random.default_rng(1).random((SAMPLES, 1), dtype=np.float32)


def _model():
    torch.manual_seed(0)
    model = rk.Sequential([rk.Input(shape=(5, 3)), layers.GRU(4), layers.Dense(1)])
    model.compile(optimizer=rk.optimizers.RMSprop(learning_rate=0.003), loss="mse", metrics=["mae"])
    return model


def _fit(model, log_dir, extra_callbacks=(), **options):
    callback = rk.callbacks.TensorBoard(log_dir=log_dir, **options)
    history = model.fit(
        X,
        Y,
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_split=0.25,
        verbose=0,
        callbacks=[*extra_callbacks, callback],
    )
    return history.history


def _read(directory):
    """{tag: [(step, value as an array)]} of one run directory."""
    accumulator = EventAccumulator(
        str(directory), size_guidance={"tensors": 0}, purge_orphaned_data=False
    )
    accumulator.Reload()
    return {
        tag: [(event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in events]
        for tag in accumulator.Tags()["tensors"]
        for events in [accumulator.Tensors(tag)]
    }


def _scalars(events, tag):
    return [step for step, _ in events[tag]], [float(value) for _, value in events[tag]]


def test_epoch_scalars_equal_the_history(tmp_path):
    history = _fit(_model(), tmp_path / "logs")
    assert sorted(os.listdir(tmp_path / "logs")) == ["train", "validation"]
    train, validation = _read(tmp_path / "logs" / "train"), _read(tmp_path / "logs" / "validation")
    assert set(train) == {"epoch_loss", "epoch_mae", "epoch_learning_rate"}
    for name in ("loss", "mae"):
        steps, values = _scalars(train, f"epoch_{name}")
        assert steps == [0, 1, 2]
        np.testing.assert_array_equal(values, np.float32(history[name]))
        steps, values = _scalars(validation, f"epoch_{name}")
        assert steps == [0, 1, 2]
        np.testing.assert_array_equal(values, np.float32(history[f"val_{name}"]))
    assert _scalars(train, "epoch_learning_rate") == ([0, 1, 2], [np.float32(0.003)] * 3)
    # Keras's on_test_end: every evaluation against the optimizer steps so far.
    steps, values = _scalars(validation, "evaluation_loss_vs_iterations")
    assert steps == [4, 8, 12]
    np.testing.assert_array_equal(values, np.float32(history["val_loss"]))
    assert train["epoch_loss"][0][1].dtype == np.float32  # tensorboard's "scalars" tensors


def test_learning_rate_follows_a_schedule(tmp_path):
    schedule = rk.callbacks.LearningRateScheduler(lambda epoch: 0.01 / (epoch + 1))
    _fit(_model(), tmp_path, extra_callbacks=[schedule])
    _, rates = _scalars(_read(tmp_path / "train"), "epoch_learning_rate")
    np.testing.assert_allclose(rates, [0.01, 0.005, 0.01 / 3], rtol=1e-6)


@pytest.mark.parametrize(
    ("update_freq", "steps"), [("batch", list(range(1, 13))), (3, [3, 6, 9, 12])]
)
def test_batch_scalars_every_update_freq_batches(tmp_path, update_freq, steps):
    batch_logs = []
    recorder = rk.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_logs.append(dict(logs))
    )
    _fit(_model(), tmp_path, extra_callbacks=[recorder], update_freq=update_freq)
    train = _read(tmp_path / "train")
    for name in ("loss", "mae"):
        logged_steps, values = _scalars(train, f"batch_{name}")
        assert logged_steps == steps  # counted from 1 over the whole run, as Keras
        expected = [batch_logs[step - 1][name] for step in steps]
        np.testing.assert_array_equal(values, np.float32(expected))


def test_weight_histograms_every_histogram_freq_epochs(tmp_path):
    weights_by_epoch = []
    model = _model()
    recorder = rk.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: weights_by_epoch.append(
            {name: p.detach().numpy().copy() for name, p in model.layers[0].named_parameters()}
        )
    )
    _fit(model, tmp_path, extra_callbacks=[recorder], histogram_freq=2)
    train = _read(tmp_path / "train")
    histogram_tags = sorted(tag for tag in train if tag.endswith("/histogram"))
    gru, dense = model.layers
    cell = f"{model.name}/{gru.name}/{gru.cell.name}"  # Keras: sequential/gru/gru_cell
    assert cell.split("/")[2].startswith("gru_cell")
    assert histogram_tags == [
        f"{model.name}/{dense.name}/bias/histogram",
        f"{model.name}/{dense.name}/kernel/histogram",
        f"{cell}/bias/histogram",
        f"{cell}/kernel/histogram",
        f"{cell}/recurrent_kernel/histogram",
    ]
    events = train[f"{cell}/kernel/histogram"]
    assert [step for step, _ in events] == [0, 2]  # epochs 0 and 2 of 0, 1, 2
    for step, buckets in events:  # (30, 3): left edge, right edge, count
        kernel = weights_by_epoch[step]["cell.kernel"]
        assert buckets.shape == (30, 3) and buckets[:, 2].sum() == kernel.size
        assert buckets[0, 0] == pytest.approx(kernel.min()) and buckets[-1, 1] == pytest.approx(
            kernel.max()
        )


def test_nothing_else_is_written_by_default(tmp_path):
    _fit(_model(), tmp_path)
    train = _read(tmp_path / "train")
    assert not any(tag.startswith("batch_") or tag.endswith("/histogram") for tag in train)


def test_steps_per_second(tmp_path):
    _fit(_model(), tmp_path, write_steps_per_second=True, update_freq=4)
    train = _read(tmp_path / "train")
    assert _scalars(train, "epoch_steps_per_second")[0] == [0, 1, 2]
    assert all(value > 0 for value in _scalars(train, "batch_steps_per_second")[1])


def test_evaluate_logs_against_the_steps_trained(tmp_path):
    model = _model()
    callback = rk.callbacks.TensorBoard(log_dir=tmp_path)
    model.fit(X, Y, epochs=1, batch_size=10, verbose=0, callbacks=[callback])
    result = model.evaluate(X, Y, verbose=0, callbacks=[callback], return_dict=True)
    steps, values = _scalars(_read(tmp_path / "validation"), "evaluation_mae_vs_iterations")
    assert steps == [4]
    np.testing.assert_array_equal(values, [np.float32(result["mae"])])


def test_only_process_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "is_primary", lambda: False)
    _fit(_model(), tmp_path / "logs", update_freq="batch", histogram_freq=1)
    assert not (tmp_path / "logs").exists()


def test_missing_tensorboard_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.record_writer", None)
    with pytest.raises(ImportError, match=r"pip install rnnkit\[tensorboard\]"):
        rk.callbacks.TensorBoard()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"update_freq": "weekly"}, '`update_freq` must be "epoch", "batch" or an int >= 1'),
        ({"update_freq": 0}, "update_freq=0"),
        ({"histogram_freq": -1}, "`histogram_freq` must be >= 0"),
        ({"histogram_freq": 1.5}, "`histogram_freq` must be an int"),
        ({"write_images": True}, "does not support `write_images`"),
        ({"profile_batch": 2}, "does not support `profile_batch`"),
        ({"embeddings_freq": 1}, "does not support `embeddings_freq`"),
    ],
)
def test_bad_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        rk.callbacks.TensorBoard(**options)


KERAS_SCRIPT = """
import sys
import numpy as np
import keras
x, y, log_dir = np.load(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4), keras.layers.Dense(1)])
model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
callback = keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=2, update_freq=2)
model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0, callbacks=[callback])
"""


def test_same_tags_and_steps_as_keras_on_tensorflow(tmp_path):
    """Keras's own callback on the same model and data (in a child process: it needs
    TensorFlow, kept out of this one). `update_freq` divides the 4 batches of an epoch: with
    any other, Keras's batch `record_if` stays in force at the epoch's end and drops that
    epoch's scalars and histograms (rnnkit writes them all)."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("Keras's TensorBoard callback needs TensorFlow")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    arguments = [str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), str(tmp_path / "keras")]
    subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, *arguments], env=environment, check=True, timeout=300
    )
    _fit(_model(), tmp_path / "rnnkit", histogram_freq=2, update_freq=2)
    for run in ("train", "validation"):
        expected = _read(tmp_path / "keras" / run)
        expected.pop("keras", None)  # the model-config summary of write_graph (not written here)
        ours = {
            _without_counters(tag): events
            for tag, events in _read(tmp_path / "rnnkit" / run).items()
        }
        assert sorted(ours) == sorted(expected)
        for tag, events in expected.items():
            assert [step for step, _ in ours[tag]] == [step for step, _ in events], tag
            assert ours[tag][0][1].shape == events[0][1].shape
            assert ours[tag][0][1].dtype == events[0][1].dtype


def _without_counters(tag):
    """`sequential_3/gru_2/gru_cell_5/kernel` -> `sequential/gru/gru_cell/kernel`: names made
    unique within one process (a fresh Keras process names its first model `sequential`)."""
    return "/".join(re.sub(r"_\d+$", "", part) for part in tag.split("/"))
