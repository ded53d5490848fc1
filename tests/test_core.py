"""Core layers (Dense, Embedding, Dropout, Masking, TimeDistributed, Flatten): Keras 3 numerics,
golden values, lazy building, errors and gradients."""

import os

import numpy as np
import pytest
import torch

from rnnkit import initializers, regularizers
from rnnkit.layers import (
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    SimpleRNN,
    TimeDistributed,
)

os.environ.setdefault("KERAS_BACKEND", "jax")

RNG = np.random.default_rng(0)
X2 = RNG.normal(size=(4, 3)).astype(np.float32)  # (batch, features)
X3 = RNG.normal(size=(4, 5, 3)).astype(np.float32)  # (batch, timesteps, features)
IDS = np.array([[3, 1, 0, 0], [9, 0, 2, 7]])  # (batch, timesteps), 0 = padding


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="Keras 3 not importable")


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


def _assert_same(ours, theirs) -> None:
    np.testing.assert_allclose(_numpy(ours), _numpy(theirs), rtol=1e-6, atol=1e-6)


def _copy_weights(theirs, ours) -> None:
    """Gives `ours` (built) the weights of the Keras layer `theirs`, checking shapes and order."""
    keras_weights = [np.array(w.value) for w in theirs.weights]  # `get_weights()` warns
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in keras_weights]
    ours.set_weights(keras_weights)


# ------------------------------------------------------------------------------- Keras 3
@pytest.mark.parametrize("x", [X2, X3], ids=["2d", "3d"])
@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid", "softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_matches_keras(keras, x, activation, use_bias):
    theirs = keras.layers.Dense(6, activation=activation, use_bias=use_bias)
    expected = theirs(x)
    ours = Dense(6, activation=activation, use_bias=use_bias)
    ours.build(x.shape)
    _copy_weights(theirs, ours)
    _assert_same(ours(x), expected)
    assert ours.compute_output_shape(x.shape) == theirs.compute_output_shape(x.shape)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_matches_keras(keras, mask_zero):
    theirs = keras.layers.Embedding(10, 4, mask_zero=mask_zero)
    expected = theirs(IDS)
    ours = Embedding(10, 4, mask_zero=mask_zero)
    ours.build(IDS.shape)
    _copy_weights(theirs, ours)
    _assert_same(ours(IDS), expected)
    assert ours.compute_output_shape((None, 7)) == theirs.compute_output_shape((None, 7))
    keras_mask = theirs.compute_mask(IDS)
    if mask_zero:
        np.testing.assert_array_equal(_numpy(ours.compute_mask(IDS)), _numpy(keras_mask))
    else:
        assert ours.compute_mask(IDS) is None and keras_mask is None


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_matches_keras(keras, mask_value):
    x = X3.copy()
    x[0, 1] = mask_value
    x[2, 3:] = mask_value
    x[1, 2, 0] = mask_value  # one matching feature is not enough to mask a step
    theirs = keras.layers.Masking(mask_value=mask_value)
    ours = Masking(mask_value=mask_value)
    _assert_same(ours(x), theirs(x))
    ours_mask, keras_mask = _numpy(ours.compute_mask(x)), _numpy(theirs.compute_mask(x))
    np.testing.assert_array_equal(ours_mask, keras_mask)
    assert ours_mask.sum() == 4 * 5 - 3


def test_time_distributed_dense_matches_keras(keras):
    x = RNG.normal(size=(2, 5, 3, 4)).astype(np.float32)  # (batch, timesteps, rows, features)
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(6, activation="tanh"))
    expected = theirs(x)
    ours = TimeDistributed(Dense(6, activation="tanh"))
    ours.build(x.shape)
    _copy_weights(theirs, ours)
    _assert_same(ours(x), expected)
    assert ours.compute_output_shape((None, 5, 3, 4)) == theirs.compute_output_shape(
        (None, 5, 3, 4)
    )


@pytest.mark.parametrize("shape", [(3,), (3, 4), (3, 4, 5), (3, 2, 4, 5)])
def test_flatten_matches_keras(keras, shape):
    x = RNG.normal(size=shape).astype(np.float32)
    theirs, ours = keras.layers.Flatten(), Flatten()
    _assert_same(ours(x), theirs(x))
    for known in [(None, *shape[1:]), (None, None, *shape[2:])][: len(shape)]:
        assert ours.compute_output_shape(known) == theirs.compute_output_shape(known)


# --------------------------------------------------------------------------- golden values
def test_dense_golden_values():
    layer = Dense(
        2,
        kernel_initializer=initializers.Constant(0.5),
        bias_initializer=initializers.Constant(0.1),
    )
    np.testing.assert_allclose(_numpy(layer(torch.ones(2, 3))), np.full((2, 2), 1.6), rtol=1e-6)
    relu = Dense(2, activation="relu", kernel_initializer=initializers.Constant(-1.0))
    x = torch.tensor([[[1.0, -3.0]], [[1.0, 1.0]]])  # (2, 1, 2)
    np.testing.assert_allclose(_numpy(relu(x)), [[[2.0, 2.0]], [[0.0, 0.0]]])


def test_embedding_golden_values_and_id_inputs():
    layer = Embedding(4, 2, embeddings_initializer=initializers.Constant(0.25))
    np.testing.assert_array_equal(_numpy(layer([[1, 3]])), np.full((1, 2, 2), 0.25))
    layer.set_weights([np.arange(8.0).reshape(4, 2)])
    expected = [[[6.0, 7.0], [0.0, 1.0]], [[2.0, 3.0], [2.0, 3.0]]]
    for ids in (
        [[3, 0], [1, 1]],
        np.array([[3, 0], [1, 1]], np.int32),
        torch.tensor([[3, 0], [1, 1]]),
    ):
        np.testing.assert_array_equal(_numpy(layer(ids)), expected)
    assert layer(2).shape == (2,)


def test_embedding_default_initializer_is_keras_uniform():
    layer = Embedding(200, 50)
    layer.build((None, 3))
    weights = layer.embeddings.detach()
    assert weights.dtype == torch.float32
    assert weights.min() >= -0.05 and weights.max() < 0.05 and weights.std() > 0.025
    initializer = layer.get_config()["embeddings_initializer"]
    assert initializer["class_name"] == "RandomUniform"
    assert (initializer["config"]["minval"], initializer["config"]["maxval"]) == (-0.05, 0.05)


# ----------------------------------------------------------------------------------- dropout
def test_dropout_is_identity_in_inference():
    layer = Dropout(0.5)
    x = torch.randn(3, 4)
    assert torch.equal(layer(x, training=False), x)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(Dropout(0.0)(x, training=True), x)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.7])
def test_dropout_drops_rate_and_scales_survivors(rate):
    torch.manual_seed(0)
    layer = Dropout(rate)  # a new module is in training mode
    outputs = layer(torch.full((200, 500), 2.0))
    dropped = (outputs == 0).double().mean().item()
    assert abs(dropped - rate) < 0.01
    survivors = outputs[outputs != 0]
    torch.testing.assert_close(survivors, torch.full_like(survivors, 2.0 / (1 - rate)))


def test_dropout_seed_repeats_the_sequence_of_masks():
    x = torch.ones(8, 16)
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    draws = [first(x), first(x)]
    assert torch.equal(draws[0], second(x)) and torch.equal(draws[1], second(x))
    assert not torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], Dropout(0.5, seed=8)(x))


@pytest.mark.parametrize("noise_shape", [(None, 1, None), (6, 1, 8)])
def test_dropout_noise_shape_broadcasts(noise_shape):
    outputs = Dropout(0.5, noise_shape=noise_shape, seed=0)(torch.ones(6, 5, 8))
    assert torch.equal(outputs, outputs[:, :1].expand(6, 5, 8))  # the same at every timestep
    assert 0 < (outputs == 0).sum() < outputs.numel()


def test_dropout_passes_the_mask_on():
    mask = torch.tensor([[True, False]])
    assert Dropout(0.5).compute_mask(torch.ones(1, 2, 3), mask) is mask
    assert Dense(2).compute_mask(torch.ones(1, 2, 3), mask) is mask
    assert Flatten().compute_mask(torch.ones(1, 2, 3), mask) is None


# ------------------------------------------------------------------ building and shapes
def test_dense_builds_lazily_from_the_first_input():
    layer = Dense(3)
    assert not layer.built and layer.count_params() == 0
    assert layer.compute_output_shape((None, 7, 4)) == (None, 7, 3)
    assert not layer.built
    assert layer(torch.ones(2, 7, 4)).shape == (2, 7, 3)
    assert layer.built and [tuple(w.shape) for w in layer.weights] == [(4, 3), (3,)]
    assert layer.count_params() == 4 * 3 + 3
    assert Dense(3, use_bias=False)(torch.ones(1, 4)).shape == (1, 3)


def test_embedding_and_time_distributed_build_and_count():
    embedding = Embedding(100, 8)
    assert not embedding.built and embedding.compute_output_shape((None, 20)) == (None, 20, 8)
    embedding(IDS)
    assert embedding.count_params() == 800
    inner = Dense(2)
    wrapper = TimeDistributed(inner)
    assert wrapper.compute_output_shape((None, 5, 3)) == (None, 5, 2) and not inner.built
    wrapper(X3)
    assert inner.built and wrapper.count_params() == inner.count_params() == 3 * 2 + 2
    assert [w is v for w, v in zip(wrapper.weights, inner.weights, strict=True)] == [True, True]


def test_time_distributed_equals_the_layer_on_each_step():
    inner = Dense(4, activation="tanh")
    wrapper = TimeDistributed(inner)
    outputs = wrapper(X3)
    for step in range(X3.shape[1]):
        torch.testing.assert_close(outputs[:, step], inner(X3[:, step]))


def test_time_distributed_folds_and_passes_mask_and_training():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)  # (batch, timesteps, inner steps, features)
    mask = torch.rand(2, 3, 4) > 0.3
    mask[..., 0] = True
    rnn = SimpleRNN(6, dtype=torch.float64)
    outputs = TimeDistributed(rnn)(x, mask=mask)
    for step in range(3):
        torch.testing.assert_close(outputs[:, step], rnn(x[:, step], mask=mask[:, step]))
    wrapper = TimeDistributed(Dropout(0.5))
    ones = torch.ones(2, 3, 4)
    assert torch.equal(wrapper(ones, training=False), ones)
    assert (wrapper(ones, training=True) == 0).any()
    step_mask = mask[..., 0]
    assert wrapper.compute_mask(ones, step_mask) is step_mask


def test_time_distributed_keeps_the_inner_dtype():
    inner = Dense(1, use_bias=False, kernel_initializer="ones", dtype=torch.float64)
    x = torch.full((1, 1, 1), 1 + 1e-12, dtype=torch.float64)  # 1.0 in float32
    assert TimeDistributed(inner)(x).item() == 1 + 1e-12


def test_embedding_accepts_keras2_input_length():
    layer = Embedding(10, 4, input_length=4)  # no warning (warnings are errors here)
    assert layer(IDS).shape == (2, 4, 4) and layer.get_config()["input_length"] == 4


def test_weight_regularizers_add_losses():
    layer = Dense(2, kernel_regularizer=regularizers.L2(0.1), bias_regularizer=regularizers.L1(1))
    layer(torch.ones(1, 3))
    kernel, bias = layer.kernel.detach(), layer.bias.detach()
    expected = 0.1 * (kernel**2).sum() + bias.abs().sum()
    torch.testing.assert_close(sum(layer.losses), expected)


@pytest.mark.parametrize(
    "layer",
    [
        Dense(3, activation="relu", use_bias=False, kernel_regularizer="l2"),
        Embedding(10, 4, mask_zero=True, input_length=7, embeddings_constraint="non_neg"),
        Dropout(0.25, noise_shape=(None, 1, None), seed=3),
        Masking(mask_value=-1.0),
        TimeDistributed(SimpleRNN(3, return_sequences=True)),
        Flatten(name="flat"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("units", [0, -2, 2.5, True, "8"])
def test_dense_rejects_bad_units(units):
    with pytest.raises(ValueError, match=r"Dense: argument `units` must be a positive integer"):
        Dense(units)


def test_dense_rejects_bad_inputs():
    layer = Dense(2)
    with pytest.raises(ValueError, match=r"'dense\w*' expects inputs of rank >= 2 .* \(3,\)"):
        layer(torch.ones(3))
    with pytest.raises(ValueError, match=r"needs a known feature size .* \(None, None\)"):
        layer.build((None, None))
    layer(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"built for inputs with 4 features .* \(2, 5\)"):
        layer(torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"built for inputs with 4 features"):
        layer.compute_output_shape((None, 3))


@pytest.mark.parametrize("argument", ["input_dim", "output_dim"])
@pytest.mark.parametrize("value", [0, -1, 3.0])
def test_embedding_rejects_bad_sizes(argument, value):
    sizes = {"input_dim": 5, "output_dim": 2, argument: value}
    with pytest.raises(ValueError, match=rf"Embedding: argument `{argument}` must be a positive"):
        Embedding(**sizes)


@pytest.mark.parametrize(
    "ids, dtype",
    [
        (np.array([[1.0, 2.0]]), "torch.float64"),
        (torch.tensor([0.0]), "torch.float32"),
        ([1.5], "torch.float64"),
        (torch.tensor([True]), "torch.bool"),
    ],
)
def test_embedding_rejects_non_integer_ids(ids, dtype):
    layer = Embedding(5, 2, mask_zero=True)
    with pytest.raises(TypeError, match=rf"'embedding\w*' expects integer ids .* dtype {dtype}"):
        layer(ids)
    with pytest.raises(TypeError, match="expects integer ids"):
        layer.compute_mask(ids)


@pytest.mark.parametrize(
    "ids, received",
    [([[0, 5]], r"0 \(min\) to 5 \(max\)"), ([[-1, 2]], r"-1 \(min\) to 2 \(max\)")],
)
def test_embedding_rejects_ids_out_of_range(ids, received):
    layer = Embedding(5, 2)
    with pytest.raises(ValueError, match=rf"ids in \[0, input_dim\) = \[0, 5\), .*{received}"):
        layer(ids)
    assert layer(np.array([[0, 4]])).shape == (1, 2, 2)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_embedding_refuses_ids_out_of_range_after_calls_in_range(grad, dtype):
    """On the CPU the lookup itself finds such ids; the error is still rnnkit's, alone."""
    layer = Embedding(5, 2)
    with torch.set_grad_enabled(grad):
        inside = torch.tensor([[0, 4]], dtype=dtype)
        torch.testing.assert_close(layer(inside), layer.embeddings[inside.long()])
        outside = torch.tensor([[1, 5]], dtype=dtype)
        with pytest.raises(
            ValueError, match=r"\[0, 5\), received ids from 1 \(min\) to 5"
        ) as error:
            layer(outside)
    assert error.value.__suppress_context__  # torch's IndexError is not shown beside it


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None])
def test_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match=r"Dropout: argument `rate` must be a float in \[0, 1\)"):
        Dropout(rate)


@pytest.mark.parametrize("noise_shape", ["abc", (0, 2), (2, -1), (2.0, 1), 3])
def test_dropout_rejects_bad_noise_shape(noise_shape):
    with pytest.raises(ValueError, match=r"Dropout: argument `noise_shape` must be None or"):
        Dropout(0.5, noise_shape=noise_shape)


@pytest.mark.parametrize("noise_shape", [(None, 1), (None, 2, None), (1, 1, 1, 1)])
def test_dropout_rejects_noise_shape_that_does_not_broadcast(noise_shape):
    with pytest.raises(ValueError, match=r"`noise_shape` .* does not broadcast to .* \(6, 5, 8\)"):
        Dropout(0.5, noise_shape=noise_shape)(torch.ones(6, 5, 8), training=True)


def test_dropout_and_masking_reject_bad_types():
    with pytest.raises(TypeError, match=r"Dropout: argument `seed` must be an int or None"):
        Dropout(0.5, seed="1")
    with pytest.raises(TypeError, match=r"Masking: argument `mask_value` must be a number"):
        Masking(mask_value="0")


def test_time_distributed_rejects_bad_layers_and_inputs():
    with pytest.raises(TypeError, match=r"TimeDistributed: argument `layer` must be an rnnkit"):
        TimeDistributed(torch.nn.Linear(3, 2))
    wrapper = TimeDistributed(Dense(2))
    with pytest.raises(ValueError, match=r"expects inputs of rank >= 3 .* \(4, 3\)"):
        wrapper(X2)
    with pytest.raises(ValueError, match=r"expects inputs of rank >= 3 .* \(None, 3\)"):
        wrapper.compute_output_shape((None, 3))
    rnn = TimeDistributed(SimpleRNN(2))
    with pytest.raises(ValueError, match=r"`mask` of shape \(batch, timesteps, ...\) = \(2, 3"):
        rnn(torch.ones(2, 3, 4, 5), mask=torch.ones(3, 2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"wrapped layer to return one tensor, received tuple"):
        TimeDistributed(SimpleRNN(2, return_state=True))(torch.ones(2, 3, 4, 5))


def test_flatten_rejects_scalars():
    with pytest.raises(ValueError, match=r"expects inputs with a batch axis .* \(\)"):
        Flatten()(torch.tensor(1.0))


# ----------------------------------------------------------------------------- gradients
def test_dense_gradcheck():
    layer = Dense(3, activation="tanh", dtype=torch.float64)
    layer.build((None, 4))
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)

    def run(inputs, kernel, bias):
        return torch.func.functional_call(layer, {"kernel": kernel, "bias": bias}, (inputs,))

    weights = [w.detach().clone().requires_grad_() for w in layer.weights]
    assert torch.autograd.gradcheck(run, (x, *weights))


def test_embedding_then_dense_gradcheck():
    embedding = Embedding(6, 4, dtype=torch.float64)
    dense = Dense(2, activation="sigmoid", dtype=torch.float64)
    ids = torch.tensor([[1, 5, 1], [0, 3, 1]])  # repeated ids accumulate gradient

    def run(embeddings, kernel, bias):
        vectors = torch.func.functional_call(embedding, {"embeddings": embeddings}, (ids,))
        return torch.func.functional_call(dense, {"kernel": kernel, "bias": bias}, (vectors,))

    dense(embedding(ids))
    weights = [w.detach().clone().requires_grad_() for w in embedding.weights + dense.weights]
    assert torch.autograd.gradcheck(run, tuple(weights))
