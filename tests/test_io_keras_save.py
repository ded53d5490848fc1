"""`.keras` files both ways: models rnnkit saves as `.keras` load in Keras 3 (JAX backend, CPU)
with the same predictions, compile arguments and optimizer state; files Keras writes load
through `rnnkit.load_model`; rnnkit-only layers and options are refused with a clear error."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import torch

import rnnkit as rk
import rnnkit.io
from rnnkit import layers

os.environ.setdefault("KERAS_BACKEND", "jax")

ATOL = 1e-5

# Keras 3 converts its JAX variables with `np.array(variable)` when saving, which NumPy 2 answers
# with this DeprecationWarning (Keras's issue, not rnnkit's).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip(
        "keras", reason="Keras 3 (with the JAX backend) reads the files; install the test extras"
    )


@contextlib.contextmanager
def op_by_op(keras):
    """Keras calls on JAX op by op: no `lax.scan` compilation for each small model."""
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    with jax.disable_jit():
        yield


# ------------------------------------------------------------------------ rnnkit models
def ids(seed: int = 0, batch: int = 3, timesteps: int = 6) -> np.ndarray:
    x = np.random.default_rng(seed).integers(1, 20, size=(batch, timesteps))
    x[0, :2] = 0  # pre-padded
    x[1, -1] = 0  # post-padded
    return x


def floats(seed: int = 0, batch: int = 3, timesteps: int = 6) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(batch, timesteps, 3)).astype("float32")
    x[0, :2] = 0.0  # masked where a model starts with Masking
    return x


def simple_rnn():
    return rk.Sequential([rk.Input((None, 3)), layers.SimpleRNN(4), layers.Dense(2)]), floats


def embedding_mask_zero_lstm():
    """No Input: the Embedding first layer gives the shape."""
    model = rk.Sequential(
        [
            layers.Embedding(20, 3, mask_zero=True),
            layers.LSTM(4),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    return model, ids


def stacked_gru_both_reset_after():
    model = rk.Sequential(
        [
            rk.Input((None, 3)),
            layers.Masking(),
            layers.GRU(4, return_sequences=True),
            layers.Dropout(0.3),
            layers.GRU(3, return_sequences=True, reset_after=False),
            layers.TimeDistributed(layers.Dense(2)),
        ]
    )
    return model, floats


def embedding_input_length_listing():
    model = rk.Sequential(
        [
            layers.Embedding(20, 8, input_length=6),
            layers.Flatten(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    return model, ids


def bidirectional_functional():
    """Two outputs; Keras's layer order (by depth) differs from the call order here."""
    inputs = rk.Input((None, 3))
    first = layers.LSTM(3)(inputs)
    sequence = layers.Bidirectional(layers.LSTM(2, return_sequences=True))(layers.Masking()(inputs))
    sequence = layers.LSTM(4, return_sequences=True)(sequence)
    outputs = [first, layers.TimeDistributed(layers.Dense(1))(sequence)]
    return rk.Model(inputs, outputs), floats


def states_and_stacked_cells_functional():
    """Encoder states handed to a decoder as `initial_state`, and an RNN of stacked cells."""
    inputs = rk.Input((None, 3))
    _, h, c = layers.LSTM(4, return_state=True)(inputs)
    decoded = layers.LSTM(4, return_sequences=True)(inputs, initial_state=[h, c])
    cells = layers.StackedRNNCells([layers.SimpleRNNCell(3), layers.GRUCell(2)])
    outputs = layers.Dense(1)(layers.RNN(cells)(decoded))
    return rk.Model(inputs, outputs), floats


MODELS = {
    "simple_rnn": simple_rnn,
    "embedding_mask_zero_lstm": embedding_mask_zero_lstm,
    "stacked_gru_both_reset_after": stacked_gru_both_reset_after,
    "embedding_input_length_listing": embedding_input_length_listing,
    "bidirectional_functional": bidirectional_functional,
    "states_and_stacked_cells_functional": states_and_stacked_cells_functional,
}


def randomized(model, x):
    """`model` built by a call on `x`, with random weights (biases too)."""
    model(x)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return model


def as_list(outputs) -> list[np.ndarray]:
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(output) for output in outputs]


def assert_same(expected, actual) -> None:
    expected, actual = as_list(expected), as_list(actual)
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_loads_what_rnnkit_saves(keras, name, tmp_path):
    model, make_input = MODELS[name]()
    x = make_input()
    model = randomized(model, x)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with op_by_op(keras):
        keras_model = keras.saving.load_model(path)
        assert_same(expected, keras_model(x, training=False))
    assert keras_model.count_params() == model.count_params()
    assert rk.io.load_keras(path).count_params() == model.count_params()
    assert_same(expected, rk.load_model(path).predict(x, verbose=0))


def test_archive_holds_keras_members(tmp_path):
    model, make_input = embedding_mask_zero_lstm()
    model = randomized(model, make_input())
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        assert json.loads(archive.read("metadata.json"))["keras_version"].startswith("3.")
    assert config["module"] == "keras" and config["class_name"] == "Sequential"
    first, lstm = config["config"]["layers"][0], config["config"]["layers"][2]
    assert first["class_name"] == "InputLayer" and first["config"]["dtype"] == "int32"
    assert "use_fused" not in lstm["config"]  # rnnkit's own option at its default
    assert lstm["config"]["kernel_initializer"]["module"] == "keras.initializers"
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]  # no temporary file left


# --------------------------------------------------------------------------- Keras -> rnnkit
def keras_models(keras):
    kl = keras.layers
    inputs = keras.Input((None, 3))
    sequence = kl.Bidirectional(kl.GRU(2, return_sequences=True, reset_after=False))(
        kl.Masking()(inputs)
    )
    functional = keras.Model(inputs, [kl.SimpleRNN(3)(inputs), kl.LSTM(2)(sequence)])
    sequential = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            kl.Embedding(20, 3, mask_zero=True),
            kl.GRU(4, return_sequences=True),
            kl.LSTM(2),
            kl.Dense(1, activation="sigmoid"),
        ]
    )
    stacked = keras.Sequential(
        [
            keras.Input((6, 3)),
            kl.GRU(4, return_sequences=True, reset_after=False),
            kl.Dropout(0.3),
            kl.TimeDistributed(kl.Dense(2)),
            kl.Flatten(),
            kl.Dense(1),
        ]
    )
    return {
        "functional": (functional, floats),
        "sequential": (sequential, ids),
        "stacked": (stacked, floats),
    }


@pytest.mark.parametrize("name", ["functional", "sequential", "stacked"])
def test_rnnkit_load_model_reads_keras_files(keras, name, tmp_path):
    keras_model, make_input = keras_models(keras)[name]
    rng = np.random.default_rng(1)
    shapes = [tuple(variable.shape) for variable in keras_model.weights]
    keras_model.set_weights([rng.normal(scale=0.5, size=s).astype("float32") for s in shapes])
    path = tmp_path / "keras_written.keras"
    keras_model.save(path)
    x = make_input()
    with op_by_op(keras):
        expected = keras_model(x, training=False)
    assert_same(expected, rk.load_model(path).predict(x, verbose=0))


# ------------------------------------------------------------------- compile and optimizer
def train_batch(seed: int = 3):
    rng = np.random.default_rng(seed)
    return ids(seed, batch=8), rng.integers(0, 2, size=(8, 1)).astype("float32")


@pytest.mark.parametrize(
    "optimizer",
    [
        rk.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
        rk.optimizers.Adam(learning_rate=0.01, amsgrad=True),
        rk.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        rk.optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=1e-4),
    ],
    ids=lambda optimizer: type(optimizer).__name__,
)
def test_optimizer_state_carries_over_to_keras(keras, optimizer, tmp_path):
    """Trained in rnnkit, saved, loaded by Keras: one more step in each gives the same weights,
    which holds only if Keras received the optimizer's slots and step count."""
    model, _ = embedding_mask_zero_lstm()
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["acc"])
    x, y = train_batch()
    model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    path = tmp_path / "trained.keras"
    model.save(path)
    keras_model = keras.saving.load_model(path)
    assert type(keras_model.optimizer).__name__ == type(optimizer).__name__
    x2, y2 = train_batch(seed=4)
    model.fit(x2, y2, epochs=1, batch_size=8, verbose=0)
    with op_by_op(keras):
        keras_model.train_on_batch(x2, y2)
    for want, got in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=0)


def test_compiled_but_untrained_model_loads_in_keras_compiled(keras, tmp_path):
    """Keras builds its optimizer on load and expects all its variables (else it warns, an
    error here): the untouched optimizer's initial ones are written."""
    model, make_input = simple_rnn()
    model = randomized(model, make_input())
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.save(tmp_path / "m.keras")
    keras_model = keras.saving.load_model(tmp_path / "m.keras")
    assert type(keras_model.optimizer).__name__ == "Adam"
    assert len(keras_model.optimizer.variables) == 2 + 2 * len(model.get_weights())


def test_rnnkit_resumes_keras_training(keras, tmp_path):
    """The reverse: Keras trains and saves; `rk.load_model` compiles the model with Keras's
    optimizer and its state, and one more step matches Keras's."""
    keras_model = keras_models(keras)["sequential"][0]
    keras_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy"
    )
    x, y = train_batch()
    with op_by_op(keras):
        for _ in range(3):
            keras_model.train_on_batch(x, y)
    path = tmp_path / "keras_trained.keras"
    keras_model.save(path)
    model = rk.load_model(path)
    assert isinstance(model.compiled.optimizer.rule, rk.optimizers.Adam)
    x2, y2 = train_batch(seed=4)
    with op_by_op(keras):
        keras_model.train_on_batch(x2, y2)
    model.fit(x2, y2, epochs=1, batch_size=8, verbose=0)
    for want, got in zip(keras_model.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-4, rtol=0)


def compiled_keras_model(keras, loss):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(2), keras.layers.Dense(1)])
    model.compile(
        optimizer=keras.optimizers.RMSprop(0.01, rho=0.8),
        loss=loss,
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.3), "mae"],
    )
    return model


def test_compile_objects_move_both_ways(keras, tmp_path):
    """Keras's serialized optimizer, loss and metric objects become rnnkit's, and back."""
    keras_model = compiled_keras_model(keras, keras.losses.BinaryCrossentropy(from_logits=True))
    keras_model.save(tmp_path / "keras.keras")  # compiled, never trained: no optimizer slots
    model = rk.load_model(tmp_path / "keras.keras")
    assert model.compiled.get_config() == {
        "optimizer": {
            "class_name": "RMSprop",
            "config": {
                "learning_rate": pytest.approx(0.01),
                "weight_decay": None,
                "clipnorm": None,
                "clipvalue": None,
                "global_clipnorm": None,
                "rho": pytest.approx(0.8),
                "momentum": 0.0,
                "epsilon": 1e-07,
                "centered": False,
            },
        },
        "loss": {"class_name": "BinaryCrossentropy", "config": {"from_logits": True}},
        "metrics": [
            {
                "class_name": "BinaryAccuracy",
                "config": {"name": "binary_accuracy", "threshold": 0.3},
            },
            "mae",
        ],
    }
    model.save(tmp_path / "rnnkit.keras")
    again = keras.saving.load_model(tmp_path / "rnnkit.keras")
    assert again.optimizer.rho == pytest.approx(0.8)
    assert again.loss.from_logits is True


def test_keras_compile_option_rnnkit_lacks_is_named(keras, tmp_path):
    loss = keras.losses.BinaryCrossentropy(label_smoothing=0.1)
    compiled_keras_model(keras, loss).save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"option `label_smoothing` = 0.1.*rnnkit.io.load_keras"):
        rk.load_model(tmp_path / "m.keras")
    assert rk.io.load_keras(tmp_path / "m.keras").compiled is None  # the model itself loads


def test_torch_optimizer_is_saved_uncompiled(tmp_path):
    model, make_input = simple_rnn()
    model = randomized(model, make_input())
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert "compile_config" not in json.loads(archive.read("config.json"))
        with h5py.File(archive.open("model.weights.h5"), "r") as file:
            assert "optimizer" not in file
    assert rk.load_model(tmp_path / "m.keras").compiled is None


# ------------------------------------------------------------------------- what is refused
def test_rnnkit_only_option_is_refused(tmp_path):
    model = rk.Sequential([rk.Input((None, 3)), layers.LSTM(2, use_fused=False, name="fast")])
    path = tmp_path / "m.keras"
    with pytest.raises(ValueError, match=r"layer 'fast' \(LSTM\).*`use_fused=False`.*\.rnnkit"):
        model.save(path)
    assert not path.exists()
    model.save(tmp_path / "m.rnnkit")  # rnnkit's own format keeps it
    assert rk.load_model(tmp_path / "m.rnnkit").layers[0].use_fused is False


def test_rnnkit_only_layer_is_refused(tmp_path):
    class Scale(layers.Layer):
        def forward(self, inputs):
            return 2 * inputs

    model = rk.Sequential([rk.Input((None, 3)), Scale(name="scale"), layers.SimpleRNN(2)])
    with pytest.raises(
        ValueError,
        match=r"layer 'scale' \(Scale\) as a Keras .*rnnkit writes no 'Scale' layer.*\.rnnkit",
    ):
        model.save(tmp_path / "m.keras")


def test_other_names_keep_rnnkit_format(tmp_path):
    model, make_input = simple_rnn()
    model = randomized(model, make_input())
    model.save(tmp_path / "m.rnnkit")
    with zipfile.ZipFile(tmp_path / "m.rnnkit") as archive:
        assert "model.safetensors" in archive.namelist()
    assert_same(
        model.predict(floats(), verbose=0),
        rk.load_model(tmp_path / "m.rnnkit").predict(floats(), verbose=0),
    )


def test_model_checkpoint_writes_keras_files(keras, tmp_path):
    model, _ = embedding_mask_zero_lstm()
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    x, y = train_batch()
    path = tmp_path / "best.keras"
    checkpoint = rk.callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[checkpoint], verbose=0)
    keras_model = keras.saving.load_model(path)
    with op_by_op(keras):
        assert_same(model.predict(x, verbose=0), keras_model(x, training=False))


def test_rnnkit_format_under_a_keras_name(tmp_path):
    """Files an earlier rnnkit wrote in its own format as `*.keras` still load by content."""
    model, make_input = simple_rnn()
    model = randomized(model, make_input())
    model.save(tmp_path / "m.rnnkit")
    os.replace(tmp_path / "m.rnnkit", tmp_path / "old.keras")
    assert_same(
        model.predict(floats(), verbose=0),
        rk.load_model(tmp_path / "old.keras").predict(floats(), verbose=0),
    )
    with pytest.raises(ValueError, match=r"rnnkit's own format.*rnnkit.load_model"):
        rk.io.load_keras(tmp_path / "old.keras")
