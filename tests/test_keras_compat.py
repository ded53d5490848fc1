"""rnnkit against Keras 3 (JAX backend, CPU): the same weights and inputs give the same outputs.

Every case builds one layer in Keras and the same layer in rnnkit, checks that both list weights
of the same shapes in the same order, sets one list of random float32 weights into both, runs the
same float32 inputs, and compares every returned tensor at 1e-5.

On the JAX backend Keras runs under `jax.disable_jit()`: the same Keras code and JAX operations,
run one by one instead of compiling `lax.scan` anew for every new layer (many times faster for
these small cases; XLA fusion could only change float32 rounding, far below the tolerance).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import KINDS

import rnnkit.layers

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip(
    "keras", reason="Keras 3 (with the JAX backend) is not importable; install the test extras"
)

BATCH, TIMESTEPS, FEATURES, UNITS, VOCABULARY = 4, 6, 3, 4, 10
ATOL = 1e-5


@pytest.fixture(autouse=True)
def _keras_runs_op_by_op():
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    with jax.disable_jit():
        yield


def make_mask(name: str) -> np.ndarray:
    """A `(BATCH, TIMESTEPS)` bool mask, True for real steps."""
    mask = np.ones((BATCH, TIMESTEPS), dtype=bool)
    if name == "right_padded":
        mask[1, 4:] = False
        mask[2, 1:] = False
    elif name == "left_padded":
        mask[0, :2] = False
        mask[3, :5] = False
    elif name == "fully_masked_row":  # with a right-padded and a left-padded row
        mask[0, 3:] = False
        mask[1, :] = False
        mask[2, :1] = False
    return mask


MASKS = ("right_padded", "left_padded", "fully_masked_row")


def make_inputs(seed: int = 1, batch: int = BATCH, timesteps: int = TIMESTEPS) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, timesteps, FEATURES)).astype(np.float32)


def make_states(kind: str, seed: int = 2, batch: int = BATCH) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, UNITS)).astype(np.float32) for _ in range(KINDS[kind].states)]


def recurrent(kind: str, **kwargs):
    """A factory `namespace -> layer` for `keras.layers` and `rnnkit.layers` alike."""
    class_name, defaults = KINDS[kind].keras_name, KINDS[kind].options
    return lambda namespace: getattr(namespace, class_name)(UNITS, **defaults, **kwargs)


def keras_shapes(layer) -> list[tuple[int, ...]]:
    """The shapes `layer.get_weights()` would return, in its order.

    (Keras's `get_weights` converts with `np.array(variable)`, which NumPy 2 answers with a
    DeprecationWarning about `__array__`'s `copy` keyword; reading `weights` avoids it.)
    """
    return [tuple(variable.shape) for variable in layer.weights]


def build_pair(factory, input_shape=(None, None, FEATURES), seed: int = 0):
    """The Keras and the rnnkit layer made by `factory`, built, holding the same random weights.

    Checks first that both list weights of the same shapes in the same order.
    """
    keras_layer, rnnkit_layer = factory(keras.layers), factory(rnnkit.layers)
    keras_layer.build(input_shape)
    rnnkit_layer.build(input_shape)
    shapes = keras_shapes(keras_layer)
    assert [tuple(w.shape) for w in rnnkit_layer.get_weights()] == shapes
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, shape).astype(np.float32) for shape in shapes]
    keras_layer.set_weights(weights)
    rnnkit_layer.set_weights(weights)
    rnnkit_layer.eval()
    return keras_layer, rnnkit_layer


def call_both(keras_layer, rnnkit_layer, x, mask=None, initial_state=None):
    """Calls both layers in inference on the same inputs; returns `(keras, rnnkit)` results."""
    to_keras = keras.ops.convert_to_tensor
    keras_kwargs = {"training": False}
    if mask is not None:
        keras_kwargs["mask"] = to_keras(mask)
    if initial_state is not None:
        keras_kwargs["initial_state"] = [to_keras(state) for state in initial_state]
    keras_result = keras_layer(to_keras(x), **keras_kwargs)
    rnnkit_result = rnnkit_layer(x, mask=mask, initial_state=initial_state)
    return keras_result, rnnkit_result


def assert_same(keras_result, rnnkit_result) -> None:
    """Every returned tensor agrees in count, shape, dtype (float32) and value."""
    if not isinstance(keras_result, (list, tuple)):
        keras_result, rnnkit_result = [keras_result], [rnnkit_result]
    assert isinstance(rnnkit_result, (list, tuple))
    assert len(rnnkit_result) == len(keras_result)
    for index, (want, got) in enumerate(zip(keras_result, rnnkit_result)):
        assert got.dtype == torch.float32
        np.testing.assert_allclose(
            got.detach().numpy(),
            keras.ops.convert_to_numpy(want),
            atol=ATOL,
            rtol=0,
            err_msg=f"returned tensor {index}",
        )


def compare(factory, mask=None, initial_state=None) -> None:
    """Builds the pair made by `factory` and compares one inference call on `make_inputs()`."""
    keras_layer, rnnkit_layer = build_pair(factory)
    assert_same(*call_both(keras_layer, rnnkit_layer, make_inputs(), mask, initial_state))


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_outputs_and_states(kind, return_sequences):
    compare(recurrent(kind, return_sequences=return_sequences, return_state=True))


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mask(kind, mask, zero_output_for_mask, return_sequences):
    factory = recurrent(
        kind,
        return_sequences=return_sequences,
        return_state=True,
        zero_output_for_mask=zero_output_for_mask,
    )
    compare(factory, mask=make_mask(mask))


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask", [None, *MASKS])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_go_backwards(kind, mask, return_sequences):
    factory = recurrent(
        kind, go_backwards=True, return_sequences=return_sequences, return_state=True
    )
    compare(factory, mask=None if mask is None else make_mask(mask))


@pytest.mark.parametrize("mask", [None, "left_padded", "fully_masked_row"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_initial_state(kind, mask):
    factory = recurrent(kind, return_sequences=True, return_state=True)
    mask = None if mask is None else make_mask(mask)
    compare(factory, mask=mask, initial_state=make_states(kind))


@pytest.mark.parametrize("mask", [None, "left_padded"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unroll_with_initial_state(kind, mask):
    # Fails with a mask: Keras's unrolled loop (`unroll=True`) outputs zeros at masked leading
    # steps, its `lax.scan` loop repeats the initial state there; rnnkit ignores `unroll` and
    # always follows the scan loop.
    factory = recurrent(kind, unroll=True, return_sequences=True, return_state=True)
    mask = None if mask is None else make_mask(mask)
    compare(factory, mask=mask, initial_state=make_states(kind))


OPTIONS = {
    "no_bias": {"use_bias": False},
    "relu": {"activation": "relu"},
    "hard_sigmoid": {"recurrent_activation": "hard_sigmoid"},
    "no_bias_relu_hard_sigmoid": {
        "use_bias": False,
        "activation": "relu",
        "recurrent_activation": "hard_sigmoid",
    },
}


@pytest.mark.parametrize(
    ("kind", "option"),
    [
        (kind, option)
        for kind in sorted(KINDS)
        for option in sorted(OPTIONS)
        if kind != "simple_rnn" or "recurrent_activation" not in OPTIONS[option]
    ],
)
def test_options(kind, option):
    factory = recurrent(kind, return_sequences=True, return_state=True, **OPTIONS[option])
    compare(factory, mask=make_mask("right_padded"))


@pytest.mark.parametrize("bias_initializer", ["zeros", "ones"])
@pytest.mark.parametrize("unit_forget_bias", [False, True])
def test_lstm_default_bias_values(unit_forget_bias, bias_initializer):
    def factory(namespace):
        return namespace.LSTM(
            UNITS, unit_forget_bias=unit_forget_bias, bias_initializer=bias_initializer
        )

    keras_layer, rnnkit_layer = factory(keras.layers), factory(rnnkit.layers)
    keras_layer.build((None, None, FEATURES))
    rnnkit_layer.build((None, None, FEATURES))
    keras_bias = keras.ops.convert_to_numpy(keras_layer.weights[2].value)
    rnnkit_bias = rnnkit_layer.get_weights()[2]
    np.testing.assert_array_equal(rnnkit_bias, keras_bias)
    base = 1.0 if bias_initializer == "ones" else 0.0
    expected = np.full(4 * UNITS, base, dtype=np.float32)
    if unit_forget_bias:
        expected[UNITS : 2 * UNITS] = 1.0  # forget gate, order i, f, c, o
    np.testing.assert_array_equal(rnnkit_bias, expected)


@pytest.mark.parametrize("mask", [None, "right_padded"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stateful(kind, mask):
    factory = recurrent(kind, stateful=True, return_sequences=True, return_state=True)
    keras_layer, rnnkit_layer = build_pair(factory, input_shape=(BATCH, None, FEATURES))
    x = make_inputs(timesteps=2 * TIMESTEPS)
    halves = (x[:, :TIMESTEPS], x[:, TIMESTEPS:])
    mask = None if mask is None else make_mask(mask)
    for half in halves:
        assert_same(*call_both(keras_layer, rnnkit_layer, half, mask=mask))
    keras_layer.reset_state()
    rnnkit_layer.reset_state()
    assert_same(*call_both(keras_layer, rnnkit_layer, halves[1], mask=mask))


@pytest.mark.parametrize("mask", [None, "fully_masked_row"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after"])
def test_bidirectional(kind, merge_mode, return_sequences, mask):
    inner = recurrent(kind, return_sequences=return_sequences, return_state=True)

    def factory(namespace):
        return namespace.Bidirectional(inner(namespace), merge_mode=merge_mode)

    compare(factory, mask=None if mask is None else make_mask(mask))


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after"])
def test_bidirectional_initial_state(kind):
    inner = recurrent(kind, return_sequences=True, return_state=True)

    def factory(namespace):
        return namespace.Bidirectional(inner(namespace))

    states = make_states(kind) + make_states(kind, seed=3)  # forward states, then backward
    compare(factory, mask=make_mask("fully_masked_row"), initial_state=states)


@pytest.mark.parametrize("mask", [None, "fully_masked_row"])
def test_stacked_cells(mask):
    def factory(namespace):
        cells = [namespace.SimpleRNNCell(UNITS), namespace.LSTMCell(UNITS)]
        return namespace.RNN(cells, return_sequences=True, return_state=True)

    keras_layer, rnnkit_layer = build_pair(factory)
    x, mask = make_inputs(), None if mask is None else make_mask(mask)
    (h,), (h2, c2) = make_states("simple_rnn", seed=3), make_states("lstm", seed=4)
    to_keras = keras.ops.convert_to_tensor
    keras_result = keras_layer(
        to_keras(x),
        mask=None if mask is None else to_keras(mask),
        initial_state=[[to_keras(h)], [to_keras(h2), to_keras(c2)]],
        training=False,
    )
    # Keras nests the states per cell, `output, [h], [h2, c2]`; rnnkit's states are flat.
    rnnkit_result = rnnkit_layer(x, mask=mask, initial_state=[h, h2, c2])
    assert_same(keras.tree.flatten(keras_result), rnnkit_result)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_embedding_mask_zero_into_lstm(return_sequences):
    ids = np.array(
        [
            [3, 1, 4, 1, 5, 9],
            [2, 6, 5, 0, 0, 0],  # right-padded
            [0, 0, 7, 3, 8, 4],  # left-padded
            [0, 0, 0, 0, 0, 0],  # all padding
        ],
        dtype=np.int32,
    )
    model = keras.Sequential(
        [
            keras.Input(shape=(TIMESTEPS,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, FEATURES, mask_zero=True),
            keras.layers.LSTM(UNITS, return_sequences=return_sequences),
        ]
    )
    embedding = rnnkit.layers.Embedding(VOCABULARY, FEATURES, mask_zero=True)
    lstm = rnnkit.layers.LSTM(UNITS, return_sequences=return_sequences)
    embedding.build((None, TIMESTEPS))
    lstm.build((None, TIMESTEPS, FEATURES))
    shapes = keras_shapes(model)
    assert [w.shape for w in embedding.get_weights() + lstm.get_weights()] == shapes
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, shape).astype(np.float32) for shape in shapes]
    model.set_weights(weights)
    embedding.set_weights(weights[:1])
    lstm.set_weights(weights[1:])
    lstm.eval()
    mask = embedding.compute_mask(ids)
    np.testing.assert_array_equal(mask.numpy(), ids != 0)
    got = lstm(embedding(ids), mask=mask)
    assert_same(model(keras.ops.convert_to_tensor(ids), training=False), got)


@pytest.mark.parametrize("mask", [None, "left_padded"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_off_in_inference(kind, mask):
    factory = recurrent(
        kind, dropout=0.5, recurrent_dropout=0.5, seed=3, return_sequences=True, return_state=True
    )
    keras_layer, rnnkit_layer = build_pair(factory)
    x, mask = make_inputs(), None if mask is None else make_mask(mask)
    keras_result, rnnkit_result = call_both(keras_layer, rnnkit_layer, x, mask=mask)
    assert_same(keras_result, rnnkit_result)
    rnnkit_layer.train()  # an explicit training=False wins over the module's mode
    assert_same(keras_result, rnnkit_layer(x, mask=mask, training=False))


def keras_summary_rows(model) -> list[tuple[str, tuple, int]]:
    """(class name, output shape, parameter count) of each layer of a built Keras model."""
    return [
        (type(layer).__name__, tuple(layer.output.shape), layer.count_params())
        for layer in model.layers
    ]


def rnnkit_summary_rows(model) -> list[tuple[str, tuple, int]]:
    return [(kind, tuple(shape), count) for _, kind, shape, count in model.summary_rows()]


def test_embedding_input_length_listing_builds_like_keras():
    """The chapter's first embedding listing: rnnkit infers the shapes from `input_length`
    before any data. Keras 3 ignores `input_length` (the model stays unbuilt until fit), so the
    reference is the same model with the length given to an Input."""
    model = rnnkit.Sequential(
        [
            rnnkit.layers.Embedding(10000, 8, input_length=20),
            rnnkit.layers.Flatten(),
            rnnkit.layers.Dense(1, activation="sigmoid"),
        ]
    )
    reference = keras.Sequential(
        [
            keras.Input(shape=(20,), dtype="int32"),
            keras.layers.Embedding(10000, 8),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    assert rnnkit_summary_rows(model) == keras_summary_rows(reference)
    assert rnnkit_summary_rows(model)[0][1] == (None, 20, 8)
    assert model.count_params() == reference.count_params() == 80161


def test_return_state_in_sequential_is_refused_where_keras_refuses_it():
    """Keras refuses the states reaching the next layer of a Sequential (with a message about
    the next layer); rnnkit names the layer that returns them and the way out."""
    with pytest.raises(ValueError, match="expects 1 input"):
        keras.Sequential(
            [keras.Input((None, 3)), keras.layers.LSTM(4, return_state=True), keras.layers.Dense(1)]
        )
    with pytest.raises(ValueError, match=r"layer 'lstm_states' \(LSTM\).*functional API"):
        rnnkit.Sequential(
            [
                rnnkit.Input((None, 3)),
                rnnkit.layers.LSTM(4, return_state=True, name="lstm_states"),
                rnnkit.layers.Dense(1),
            ]
        )
