"""`export_onnx`: onnxruntime runs the exported file with the model's outputs (1e-4) on two other
batch sizes and lengths; recurrent layers become ONNX RNN/LSTM/GRU ops where torch.nn can express
them without a mask, and an ONNX Loop otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.io
from rnnkit import layers

onnx = pytest.importorskip("onnx", reason="export_onnx needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported files")

ATOL = 1e-4
FEATURES, VOCABULARY = 3, 12
SIZES = [(3, 7), (1, 4)]  # (batch, timesteps) checked with onnxruntime; exported with (2, 5)


def features(batch: int, timesteps: int) -> torch.Tensor:
    x = torch.randn(batch, timesteps, FEATURES)
    x[0, :2] = 0.0  # masked wherever a Masking layer reads it
    return x


def ids(batch: int, timesteps: int) -> torch.Tensor:
    x = torch.randint(1, VOCABULARY, (batch, timesteps))
    x[0, :2] = 0  # pre-padding
    return x


def functional_two_outputs():
    inputs = rnnkit.Input(shape=(None, FEATURES))
    sequence = layers.LSTM(4, return_sequences=True)(inputs)
    return rnnkit.Model(inputs, [sequence, layers.GRU(2)(sequence)])


# name: (model factory, input factory, ONNX recurrent ops expected)
CASES = {
    "simple_rnn_relu_backwards": (
        lambda: layers.SimpleRNN(4, activation="relu", go_backwards=True, return_sequences=True),
        features,
        {"RNN"},
    ),
    "lstm_with_states": (
        lambda: layers.LSTM(4, return_sequences=True, return_state=True),
        features,
        {"LSTM"},
    ),
    "gru": (lambda: layers.GRU(4), features, {"GRU"}),
    "gru_reset_before": (lambda: layers.GRU(4, reset_after=False), features, {"Loop"}),
    "lstm_hard_sigmoid": (
        lambda: layers.LSTM(4, recurrent_activation="hard_sigmoid"),
        features,
        {"Loop"},
    ),
    "bidirectional_lstm_sum_states": (
        lambda: layers.Bidirectional(
            layers.LSTM(4, return_sequences=True, return_state=True), merge_mode="sum"
        ),
        features,
        {"LSTM"},
    ),
    "bidirectional_gru_reset_before": (
        lambda: layers.Bidirectional(layers.GRU(3, reset_after=False)),
        features,
        {"Loop"},
    ),
    "masked_embedding_stack": (
        lambda: rnnkit.Sequential(
            [
                layers.Embedding(VOCABULARY, 3, mask_zero=True),
                layers.LSTM(4, return_sequences=True),
                layers.TimeDistributed(layers.Dense(3, activation="relu")),
                layers.Dropout(0.5),
                layers.Bidirectional(layers.SimpleRNN(2)),
                layers.Dense(1, activation="sigmoid"),
            ]
        ),
        ids,
        {"Loop"},
    ),
    "masking_gru_flatten": (
        lambda: rnnkit.Sequential(
            [layers.Masking(), layers.GRU(4, return_sequences=True), layers.Flatten()]
        ),
        features,
        {"Loop"},
    ),
    "functional_two_outputs": (functional_two_outputs, features, {"LSTM", "GRU"}),
}


def outputs_of(model, x) -> list[np.ndarray]:
    with torch.no_grad():
        outputs = model(x)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [output.numpy() for output in outputs]


def recurrent_ops(path) -> set[str]:
    graph = onnx.load(str(path)).graph
    return {node.op_type for node in graph.node} & {"RNN", "LSTM", "GRU", "Loop"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnxruntime_matches_on_other_batch_sizes_and_lengths(name, tmp_path):
    make_model, make_input, ops = CASES[name]
    torch.manual_seed(0)
    model = make_model()
    path = tmp_path / "model.onnx"
    rnnkit.io.export_onnx(model, path, make_input(2, 5))
    assert recurrent_ops(path) == ops
    assert model.training  # the model's mode is restored
    model.eval()
    session = ort.InferenceSession(str(path))
    for batch, timesteps in SIZES:
        x = make_input(batch, timesteps)
        got = session.run(None, {"input": x.numpy()})
        expected = outputs_of(model, x)
        assert len(got) == len(expected)
        for want, have in zip(expected, got):
            assert want.shape == have.shape
            np.testing.assert_allclose(have, want, atol=ATOL, rtol=0)


def test_fixed_length_when_the_model_needs_it(tmp_path):
    model = rnnkit.Sequential(
        [
            rnnkit.Input(shape=(5, FEATURES)),
            layers.LSTM(2, return_sequences=True),
            layers.Flatten(),
            layers.Dense(1),  # built for 5 timesteps
        ]
    )
    path = tmp_path / "fixed.onnx"
    rnnkit.io.export_onnx(model, path, features(2, 5))
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [dims[0].dim_param, dims[1].dim_value, dims[2].dim_value] == ["batch", 5, FEATURES]
    model.eval()
    x = features(4, 5)
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, outputs_of(model, x)[0], atol=ATOL, rtol=0)


def test_stateful_layers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="stateful=True"):
        rnnkit.io.export_onnx(layers.GRU(2, stateful=True), tmp_path / "m.onnx", features(2, 5))
    assert not (tmp_path / "m.onnx").exists()


def test_unsupported_activation_is_named(tmp_path):
    layer = layers.SimpleRNN(2, activation="gelu")
    with pytest.raises(ValueError, match="activation .*gelu.* cannot be exported"):
        rnnkit.io.export_onnx(layer, tmp_path / "m.onnx", features(2, 5))


@pytest.mark.parametrize(
    ("make", "example", "options", "error", "message"),
    [
        (lambda: layers.GRU(2), None, {}, TypeError, "`example_input` must be one batch.*NoneType"),
        (
            lambda: layers.GRU(2),
            features(2, 5),
            {"opset_version": 100},
            ValueError,
            "from 13 to 20",
        ),
        (lambda: layers.GRU(2), features(2, 5), {"opset_version": 9}, ValueError, "received 9"),
        (lambda: layers.GRU(2), features(2, 0), {}, ValueError, r"one timestep.*\(2, 0, 3\)"),
        (
            lambda: layers.LSTM(2, dtype="float64"),
            features(2, 5).double(),
            {},
            ValueError,
            "float64, and onnxruntime cannot run",
        ),
    ],
    ids=["no_example", "opset_100", "opset_9", "no_timesteps", "float64"],
)
def test_what_cannot_export_or_run_is_refused_before_writing(
    tmp_path, make, example, options, error, message
):
    with pytest.raises(error, match=message):
        rnnkit.io.export_onnx(make(), tmp_path / "m.onnx", example, **options)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_created(tmp_path):
    path = tmp_path / "new" / "folder" / "m.onnx"
    rnnkit.io.export_onnx(layers.GRU(2), path, features(2, 5))
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["m.onnx"]
