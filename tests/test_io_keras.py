"""Keras 3 files in and out: `.keras` archives and `.weights.h5` files written by real Keras 3
(JAX backend, CPU) load into rnnkit with the same predictions, and weights rnnkit writes load
into Keras. Bad files give clear errors and leave the model's weights unchanged."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import zipfile
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch
import zip_damage

import rnnkit
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
    keras = pytest.importorskip(
        "keras",
        reason="Keras 3 (with the JAX backend) writes the reference files; install the test extras",
    )
    return keras


@contextlib.contextmanager
def keras_op_by_op(keras):
    """Keras calls on JAX, op by op: no `lax.scan` compilation for every small model (building
    the models runs faster compiled)."""
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    with jax.disable_jit():
        yield


# ------------------------------------------------------------------------------- models
def simple_rnn_model(keras):
    kl = keras.layers
    return keras.Sequential([keras.Input((None, 3)), kl.SimpleRNN(4), kl.Dense(2)])


def masked_lstm_model(keras):
    kl = keras.layers
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            kl.Embedding(10, 3, mask_zero=True),
            kl.LSTM(4),
            kl.Dense(2, activation="softmax"),
        ]
    )


def stacked_gru_model(keras):
    kl = keras.layers
    return keras.Sequential(
        [
            keras.Input((None, 3)),
            kl.GRU(4, return_sequences=True),
            kl.Dropout(0.3),
            kl.GRU(3, return_sequences=True, reset_after=False),
            kl.TimeDistributed(kl.Dense(2)),
            kl.Flatten(),
        ]
    )


def bidirectional_model(keras):
    """Functional, two outputs. Keras lists layers by depth, so its first LSTM (`lstm` in the
    weights file) is the deeper one, called after `first`."""
    kl = keras.layers
    inputs = keras.Input((None, 3))
    first = kl.LSTM(3)(inputs)
    sequence = kl.Bidirectional(kl.LSTM(2, return_sequences=True))(kl.Masking()(inputs))
    sequence = kl.LSTM(4, return_sequences=True)(sequence)
    return keras.Model(inputs, [first, kl.TimeDistributed(kl.Dense(1))(sequence)])


MODELS = {
    "simple_rnn": simple_rnn_model,
    "masked_lstm": masked_lstm_model,
    "stacked_gru": stacked_gru_model,
    "bidirectional": bidirectional_model,
}


def make_input(name: str, seed: int = 0, batch: int = 3, timesteps: int = 5) -> np.ndarray:
    """One batch for model `name` (one shape throughout: JAX compiles its ops per shape)."""
    rng = np.random.default_rng(seed)
    if name == "masked_lstm":
        ids = rng.integers(1, 10, size=(batch, timesteps)).astype("int32")
        ids[0, :2] = 0  # pre-padded
        ids[1, -1] = 0  # post-padded
        return ids
    x = rng.normal(size=(batch, timesteps, 3)).astype("float32")
    if name == "bidirectional":
        x[0, :2] = 0.0  # masked by Masking
    return x


def randomize(keras_model, seed: int = 1) -> None:
    """Random weights (biases too). Shapes from `weights`: Keras's `get_weights` trips a NumPy 2
    deprecation warning."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(variable.shape) for variable in keras_model.weights]
    keras_model.set_weights([rng.normal(scale=0.5, size=s).astype("float32") for s in shapes])


def keras_outputs(keras_model, x) -> list[np.ndarray]:
    outputs = keras_model(x, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(output) for output in outputs]


def rnnkit_outputs(model, x) -> list[np.ndarray]:
    model.eval()
    with torch.no_grad():
        outputs = model(x)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [output.numpy() for output in outputs]


def assert_same(expected: list[np.ndarray], actual: list[np.ndarray]) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@dataclass
class Saved:
    name: str
    keras_model: object
    path: pathlib.Path
    outputs: list[np.ndarray]  # the Keras model's outputs on make_input(name), when saved


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request, keras, tmp_path_factory):
    """A Keras model with random weights, saved as `.keras` (built once per module: tests may
    change its weights, but never rely on them)."""
    name = request.param
    keras_model = MODELS[name](keras)
    randomize(keras_model)
    path = tmp_path_factory.mktemp(name) / "model.keras"
    keras_model.save(path)
    with keras_op_by_op(keras):
        outputs = keras_outputs(keras_model, make_input(name))
    return Saved(name, keras_model, path, outputs)


# --------------------------------------------------------------------------- Keras -> rnnkit
def test_load_keras_predicts_like_keras(saved):
    model = rnnkit.io.load_keras(saved.path)
    assert isinstance(model, rnnkit.Model)
    assert_same(saved.outputs, rnnkit_outputs(model, make_input(saved.name)))


def test_load_keras_keeps_the_layers(saved):
    model = rnnkit.io.load_keras(saved.path)
    keras_layers = [
        layer for layer in saved.keras_model.layers if type(layer).__name__ != "InputLayer"
    ]
    assert {layer.name for layer in model.layers} == {layer.name for layer in keras_layers}
    assert model.count_params() == saved.keras_model.count_params()


def test_load_weights_from_keras_weights_file(saved, keras, tmp_path):
    model = rnnkit.io.load_keras(saved.path)
    weights_path = tmp_path / "other.weights.h5"
    x = make_input(saved.name, seed=1)
    randomize(saved.keras_model, seed=2)
    saved.keras_model.save_weights(weights_path)
    with keras_op_by_op(keras):
        expected = keras_outputs(saved.keras_model, x)
    rnnkit.io.load_weights(model, weights_path)
    assert_same(expected, rnnkit_outputs(model, x))


# --------------------------------------------------------------------------- rnnkit -> Keras
def test_keras_loads_weights_saved_by_rnnkit(saved, keras, tmp_path):
    model = rnnkit.io.load_keras(saved.path)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    weights_path = tmp_path / "rnnkit.weights.h5"
    rnnkit.io.save_weights(model, weights_path)
    x = make_input(saved.name)
    saved.keras_model.load_weights(weights_path)
    with keras_op_by_op(keras):
        expected = keras_outputs(saved.keras_model, x)
    assert_same(rnnkit_outputs(model, x), expected)


def test_save_weights_replaces_the_file_atomically(tmp_path):
    model = rnnkit.Sequential([rnnkit.Input(shape=(None, 3)), layers.LSTM(2)])
    path = tmp_path / "m.weights.h5"
    path.write_bytes(b"old")
    rnnkit.io.save_weights(model, path)
    assert h5py.is_hdf5(path)
    assert sorted(os.listdir(tmp_path)) == ["m.weights.h5"]
    with h5py.File(path) as file:
        assert file["layers/lstm/cell/vars"].attrs["name"] == model.layers[0].cell.name
        assert file["layers/lstm/cell/vars/1"].shape == (2, 8)


# ---------------------------------------------------------------------------- bad files
def small_model() -> rnnkit.Sequential:
    model = rnnkit.Sequential(
        [rnnkit.Input(shape=(None, 3)), layers.GRU(4, name="gru"), layers.Dense(1, name="out")]
    )
    return model


def snapshot(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def assert_unchanged(model, before) -> None:
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "good.weights.h5"
    source = small_model()
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.fill_(0.25)
    rnnkit.io.save_weights(source, path)
    return path


def test_not_hdf5_is_a_clear_error(tmp_path):
    model = small_model()
    before = snapshot(model)
    path = tmp_path / "bad.weights.h5"
    path.write_text("not an HDF5 file")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        rnnkit.io.load_weights(model, path)
    assert_unchanged(model, before)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        rnnkit.io.load_weights(small_model(), tmp_path / "none.weights.h5")


def test_missing_weight_names_layer_and_weight(weights_file):
    with h5py.File(weights_file, "r+") as file:
        del file["layers/dense/vars/1"]
    model = small_model()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layer 'out' needs weight 1 \(`bias`"):
        rnnkit.io.load_weights(model, weights_file)
    assert_unchanged(model, before)


def test_shape_mismatch_names_layer_and_shapes(weights_file):
    with h5py.File(weights_file, "r+") as file:
        del file["layers/gru/cell/vars/1"]
        file["layers/gru/cell/vars/1"] = np.zeros((4, 9), dtype="float32")
    model = small_model()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"`recurrent_kernel`.*\(4, 12\), the file has \(4, 9\)"):
        rnnkit.io.load_weights(model, weights_file)
    assert_unchanged(model, before)


def test_weights_of_another_model_are_rejected(weights_file):
    model = rnnkit.Sequential([rnnkit.Input(shape=(None, 3)), layers.GRU(4)])
    before = snapshot(model)
    with pytest.raises(ValueError, match="no place for.*layers/dense/vars/0"):
        rnnkit.io.load_weights(model, weights_file)
    assert_unchanged(model, before)


def test_good_file_loads(weights_file):
    model = small_model()
    rnnkit.io.load_weights(model, weights_file)
    assert all(np.all(w == 0.25) for w in model.get_weights())


# ------------------------------------------------------------------------- bad archives
def write_archive(path, config: dict, version: str = "3.5.0") -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": version}))
        archive.writestr("config.json", json.dumps(config))


def sequential_config(*layer_configs) -> dict:
    return {"class_name": "Sequential", "config": {"name": "s", "layers": list(layer_configs)}}


def test_unknown_layer_is_named(tmp_path):
    path = tmp_path / "m.keras"
    conv = {"class_name": "Conv1D", "config": {"name": "conv1d", "filters": 2}}
    write_archive(path, sequential_config(conv))
    with pytest.raises(ValueError, match=r"'conv1d' \(Conv1D\): rnnkit has no layer 'Conv1D'"):
        rnnkit.io.load_keras(path)


def test_unsupported_option_is_named(tmp_path):
    path = tmp_path / "m.keras"
    dense = {"class_name": "Dense", "config": {"name": "d", "units": 2, "lora_rank": 4}}
    write_archive(path, sequential_config(dense))
    with pytest.raises(ValueError, match=r"option `lora_rank` = 4 is not supported"):
        rnnkit.io.load_keras(path)


def test_mixed_precision_is_named(tmp_path):
    path = tmp_path / "m.keras"
    policy = {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}
    dense = {"class_name": "Dense", "config": {"name": "d", "units": 2, "dtype": policy}}
    write_archive(path, sequential_config(dense))
    with pytest.raises(ValueError, match="mixed_float16"):
        rnnkit.io.load_keras(path)


def test_keras_only_keys_are_dropped(tmp_path):
    path = tmp_path / "m.keras"
    lstm = {
        "class_name": "LSTM",
        "config": {"name": "lstm", "units": 2, "implementation": 2, "use_cudnn": "auto"},
    }
    write_archive(path, sequential_config(lstm))  # never built: no weights to read
    model = rnnkit.io.load_keras(path)
    assert model.layers[0].units == 2


def test_not_a_keras_archive(tmp_path):
    path = tmp_path / "m.keras"
    path.write_text("nope")
    with pytest.raises(ValueError, match="not a Keras 3 `.keras` archive"):
        rnnkit.io.load_keras(path)
    with pytest.raises(FileNotFoundError):
        rnnkit.io.load_keras(tmp_path / "missing.keras")


def test_keras_2_archive_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    write_archive(path, sequential_config(), version="2.15.0")
    with pytest.raises(ValueError, match="Keras 2.15.0"):
        rnnkit.io.load_keras(path)


def test_keras_op_feeding_a_layer_is_named(tmp_path):
    def tensor(layer: str) -> dict:
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, 0, 0]}}

    layer_configs = [
        {
            "class_name": "InputLayer",
            "name": "x",
            "config": {"name": "x", "batch_shape": [None, None, 3]},
            "inbound_nodes": [],
        },
        {
            "module": "keras.src.ops.numpy",
            "class_name": "GetItem",
            "name": "get_item",
            "config": {"name": "get_item"},
            "inbound_nodes": [{"args": [tensor("x"), {"class_name": "__slice__"}], "kwargs": {}}],
        },
        {
            "class_name": "LSTM",
            "name": "lstm",
            "config": {"name": "lstm", "units": 2},
            "inbound_nodes": [{"args": [tensor("get_item")], "kwargs": {}}],
        },
    ]
    config = {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": layer_configs,
            "input_layers": [["x", 0, 0]],
            "output_layers": [["lstm", 0, 0]],
        },
    }
    path = tmp_path / "m.keras"
    write_archive(path, config)
    with pytest.raises(ValueError, match=r"'lstm' takes the output of the Keras op 'get_item'"):
        rnnkit.io.load_keras(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: zip_damage.replace_member(p, "metadata.json", None), "has no metadata.json"),
        (lambda p: zip_damage.replace_member(p, "config.json", b"{oops"), "config.json.*JSON"),
        (lambda p: zip_damage.replace_member(p, "config.json", b"[]"), "must hold a JSON object"),
        (
            lambda p: zip_damage.replace_member(
                p, "config.json", b'{"class_name": "Sequential", "config": {"name": "s"}}'
            ),
            "the field 'layers' is missing",
        ),
        (lambda p: zip_damage.break_deflate_stream(p, "config.json"), "zlib.error"),
        (zip_damage.mark_strongly_encrypted, "strong encryption"),
    ],
    ids=["no_metadata", "bad_json", "not_an_object", "no_layers", "zlib", "encrypted"],
)
def test_damaged_or_hand_edited_keras_files_give_one_clear_error(tmp_path, damage, message):
    path = tmp_path / "m.keras"
    lstm = {"class_name": "LSTM", "config": {"name": "lstm", "units": 2}}
    write_archive(path, sequential_config(lstm))
    zip_damage.replace_member(path, "config.json", json.dumps(sequential_config(lstm)).encode())
    damage(path)
    with pytest.raises(ValueError, match=message) as caught:
        rnnkit.io.load_keras(path)
    assert str(path) in str(caught.value)


def test_a_truncated_weights_member_names_the_keras_file(saved, tmp_path):
    path = tmp_path / "cut.keras"
    path.write_bytes(saved.path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("model.weights.h5")
    zip_damage.replace_member(path, "model.weights.h5", weights[: len(weights) // 2])
    with pytest.raises(ValueError, match=r"cut\.keras'.*model\.weights\.h5"):
        rnnkit.io.load_keras(path)


def test_a_damaged_weights_file_names_it(tmp_path):
    model = small_model()
    path = tmp_path / "m.weights.h5"
    rnnkit.io.save_weights(model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"m\.weights\.h5'.*truncated or corrupt"):
        rnnkit.io.load_weights(model, path)
