"""The NumPy textbook loop (`rnnkit.reference`): against Keras 3, against hand-computed values,
dropout masks, the 2-D textbook form, and the errors it raises."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from conftest import KINDS
from sequence_masks import left_padded_mask, right_padded_mask

from rnnkit import reference

os.environ.setdefault("KERAS_BACKEND", "jax")

BATCH, TIMESTEPS, FEATURES, UNITS = 4, 6, 3, 4


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip(
        "keras", reason="Keras 3 (JAX backend) is the reference here: pip install rnnkit[test]"
    )


def inputs(seed=1, batch=BATCH, timesteps=TIMESTEPS):
    return np.random.default_rng(seed).normal(size=(batch, timesteps, FEATURES)).astype(np.float32)


def random_weights(kind, seed=0, use_bias=True):
    """Keras-layout weights `[kernel, recurrent_kernel, bias]` (float32, like Keras's)."""
    gates = KINDS[kind].gates
    shapes = [(FEATURES, gates * UNITS), (UNITS, gates * UNITS)]
    if use_bias:
        shapes.append((2, 3 * UNITS) if kind == "gru_reset_after" else (gates * UNITS,))
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.6, 0.6, shape).astype(np.float32) for shape in shapes]


def random_states(kind, seed=2, batch=BATCH):
    count = 2 if kind == "lstm" else 1
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, UNITS)).astype(np.float32) for _ in range(count)]


def run_reference(kind, x, weights, **kwargs):
    kernel, recurrent_kernel, *bias = weights
    return KINDS[kind].reference(x, kernel, recurrent_kernel, bias[0] if bias else None, **kwargs)


def assert_all_close(got, expected, atol):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), e, atol=atol, rtol=0)


# Each case: Keras layer kwargs, Keras call kwargs. The reference gets both (but `use_bias`).
KERAS_CASES = {
    "plain": ({}, {}),
    "right_padded_mask": ({}, {"mask": right_padded_mask()}),
    "left_padded_mask": ({}, {"mask": left_padded_mask()}),
    "go_backwards": ({"go_backwards": True}, {}),
    "go_backwards_masked": ({"go_backwards": True}, {"mask": right_padded_mask()}),
    "zero_output_for_mask": ({"zero_output_for_mask": True}, {"mask": left_padded_mask()}),
    "no_bias": ({"use_bias": False}, {}),
    "relu": ({"activation": "relu"}, {}),
}


def keras_layer(keras, kind, weights, **layer_kwargs):
    name, defaults = KINDS[kind].keras_name, KINDS[kind].options
    layer = getattr(keras.layers, name)(
        UNITS, return_sequences=True, return_state=True, **defaults, **layer_kwargs
    )
    layer.build((None, None, FEATURES))
    layer.set_weights(weights)
    return layer


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_keras(keras, kind, case):
    layer_kwargs, call_kwargs = KERAS_CASES[case]
    weights = random_weights(kind, use_bias=layer_kwargs.get("use_bias", True))
    layer = keras_layer(keras, kind, weights, **layer_kwargs)
    x = inputs()
    ref_kwargs = {k: v for k, v in layer_kwargs.items() if k != "use_bias"} | call_kwargs
    assert_all_close(layer(x, **call_kwargs), run_reference(kind, x, weights, **ref_kwargs), 1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_initial_state_matches_keras(keras, kind):
    weights, states, mask = random_weights(kind), random_states(kind), left_padded_mask()
    layer = keras_layer(keras, kind, weights)
    x = inputs()
    got = layer(x, mask=mask, initial_state=states)
    expected = run_reference(kind, x, weights, mask=mask, initial_state=states)
    assert_all_close(got, expected, 1e-5)
    # Keras's scan: a masked first step outputs the initial h, so a fully masked row repeats it.
    np.testing.assert_allclose(expected[0][1], np.repeat(states[0][1:2], TIMESTEPS, axis=0))


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after", "gru_reset_before"])
def test_recurrent_activation_matches_keras(keras, kind):
    kwargs = {"activation": "softsign", "recurrent_activation": "hard_sigmoid"}
    weights = random_weights(kind)
    layer = keras_layer(keras, kind, weights, **kwargs)
    x = inputs() * 3  # reach the flat parts of hard_sigmoid
    assert_all_close(layer(x), run_reference(kind, x, weights, **kwargs), 1e-5)


def random_dropout_masks(gates, per_gate, seed=3, batch=BATCH):
    """Fixed 0/(1/(1-rate)) masks, shared `(batch, n)` or one per gate `(batch, gates, n)`."""
    rng = np.random.default_rng(seed)
    gate_axis = (gates,) if per_gate else ()

    def draw(size, rate):
        return (rng.random((batch, *gate_axis, size)) >= rate) / (1 - rate)

    return draw(FEATURES, 0.3), draw(UNITS, 0.4)


def as_keras_dropout_mask(mask):
    """Keras keeps one mask `(batch, n)`, or a list of one per gate."""
    if mask.ndim == 2:
        return mask.astype(np.float32)
    return [gate_mask.astype(np.float32) for gate_mask in mask.swapaxes(0, 1)]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_masks_match_keras(keras, kind):
    """Keras caches its dropout masks on the cell (private attributes): plant fixed ones there.

    Masked and backwards at once, with one mask per gate for the gated cells, which is what Keras
    uses whenever recurrent_dropout > 0 (its implementation 1)."""
    gates = KINDS[kind].gates
    weights = random_weights(kind)
    layer = keras_layer(keras, kind, weights, dropout=0.3, recurrent_dropout=0.4, go_backwards=True)
    input_mask, recurrent_mask = random_dropout_masks(gates, per_gate=kind != "simple_rnn")
    planted = as_keras_dropout_mask(input_mask)
    layer.cell._dropout_mask = planted
    layer.cell._recurrent_dropout_mask = as_keras_dropout_mask(recurrent_mask)
    x, mask = inputs(), right_padded_mask()
    if not np.array_equal(np.asarray(layer.cell.get_dropout_mask(x[:, 0])), np.asarray(planted)):
        pytest.skip("this Keras version keeps its dropout masks elsewhere")
    got = layer(x, mask=mask, training=True)
    expected = run_reference(
        kind,
        x,
        weights,
        mask=mask,
        go_backwards=True,
        dropout_mask=input_mask,
        recurrent_dropout_mask=recurrent_mask,
    )
    assert_all_close(got, expected, 1e-5)


def test_activations_match_keras(keras):
    x = np.linspace(-8, 8, 161)
    for name, fn in reference.ACTIVATIONS.items():
        expected = np.asarray(keras.activations.get(name)(x.astype(np.float32)))
        np.testing.assert_allclose(fn(x), expected, rtol=1e-5, atol=1e-6, err_msg=name)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def one_step_by_hand(kind, x, h, c, weights, dropout_mask, recurrent_dropout_mask):
    """One step written out gate by gate, with per-gate masks `(batch, gates, n)`."""
    gates = KINDS[kind].gates
    kernel, recurrent_kernel, bias = (np.asarray(w, dtype=np.float64) for w in weights)
    k = np.split(kernel, gates, axis=1)
    r = np.split(recurrent_kernel, gates, axis=1)
    xs = [x * dropout_mask[:, g] for g in range(gates)]
    hs = [h * recurrent_dropout_mask[:, g] for g in range(gates)]
    sig = np.vectorize(sigmoid)
    if kind == "simple_rnn":
        return np.tanh(xs[0] @ k[0] + bias + hs[0] @ r[0]), None
    if kind == "lstm":
        b = np.split(bias, 4)
        i, f, g, o = (xs[j] @ k[j] + hs[j] @ r[j] + b[j] for j in range(4))
        c_new = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c_new), c_new
    if kind == "gru_reset_after":
        b_in, b_rec = np.split(bias[0], 3), np.split(bias[1], 3)
        z = sig(xs[0] @ k[0] + b_in[0] + hs[0] @ r[0] + b_rec[0])
        reset = sig(xs[1] @ k[1] + b_in[1] + hs[1] @ r[1] + b_rec[1])
        hh = np.tanh(xs[2] @ k[2] + b_in[2] + reset * (hs[2] @ r[2] + b_rec[2]))
    else:
        b_in = np.split(bias, 3)
        z = sig(xs[0] @ k[0] + b_in[0] + hs[0] @ r[0])
        reset = sig(xs[1] @ k[1] + b_in[1] + hs[1] @ r[1])
        hh = np.tanh(xs[2] @ k[2] + b_in[2] + (reset * hs[2]) @ r[2])
    return z * h + (1 - z) * hh, None  # the final mix uses the unmasked h


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_masks_one_step_by_hand(kind):
    gates = KINDS[kind].gates
    weights = random_weights(kind)
    x = inputs(timesteps=1).astype(np.float64)
    states = [s.astype(np.float64) for s in random_states(kind)]
    dropout_mask, recurrent_dropout_mask = random_dropout_masks(gates, per_gate=True)
    got = run_reference(
        kind,
        x,
        weights,
        initial_state=states,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
    )
    c = states[1] if kind == "lstm" else None
    h, c_new = one_step_by_hand(
        kind, x[:, 0], states[0], c, weights, dropout_mask, recurrent_dropout_mask
    )
    np.testing.assert_allclose(got[0][:, 0], h, rtol=1e-12)
    np.testing.assert_allclose(got[1], h, rtol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(got[2], c_new, rtol=1e-12)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_equal_per_gate_masks_equal_a_shared_mask(kind):
    gates = KINDS[kind].gates
    weights, states, x = random_weights(kind), random_states(kind), inputs()
    shared_input, shared_recurrent = random_dropout_masks(gates, per_gate=False)
    shared = run_reference(
        kind,
        x,
        weights,
        initial_state=states,
        dropout_mask=shared_input,
        recurrent_dropout_mask=shared_recurrent,
    )
    per_gate = run_reference(
        kind,
        x,
        weights,
        initial_state=states,
        dropout_mask=np.repeat(shared_input[:, None], gates, axis=1),
        recurrent_dropout_mask=np.repeat(shared_recurrent[:, None], gates, axis=1),
    )
    assert_all_close(per_gate, shared, 1e-12)
    no_dropout = run_reference(kind, x, weights, initial_state=states)
    assert not np.allclose(shared[0], no_dropout[0])  # the masks did something


@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_masks_of_ones_change_nothing(kind, per_gate):
    gates = KINDS[kind].gates
    weights, states, x = random_weights(kind), random_states(kind), inputs()
    gate_axis = (gates,) if per_gate else ()
    expected = run_reference(kind, x, weights, initial_state=states)
    recurrent_only = run_reference(
        kind,
        x,
        weights,
        initial_state=states,
        recurrent_dropout_mask=np.ones((BATCH, *gate_axis, UNITS)),
    )
    assert_all_close(recurrent_only, expected, 0)
    both = run_reference(
        kind,
        x,
        weights,
        initial_state=states,
        dropout_mask=np.ones((BATCH, *gate_axis, FEATURES)),
        recurrent_dropout_mask=np.ones((BATCH, *gate_axis, UNITS)),
    )
    assert_all_close(both, expected, 0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_textbook_2d_form_is_a_batch_of_one(kind):
    gates = KINDS[kind].gates
    weights = random_weights(kind)
    x = inputs(batch=1)
    states = random_states(kind, batch=1)
    mask = right_padded_mask()[2:3]
    dropout_mask, recurrent_dropout_mask = random_dropout_masks(gates, per_gate=True, batch=1)
    batched = run_reference(
        kind,
        x,
        weights,
        mask=mask,
        initial_state=states,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
    )
    textbook = run_reference(
        kind,
        x[0],
        weights,
        mask=mask[0],
        initial_state=[s[0] for s in states] if kind == "lstm" else states[0][0],  # a bare h0
        dropout_mask=dropout_mask[0],
        recurrent_dropout_mask=recurrent_dropout_mask[0],
    )
    assert textbook[0].shape == (TIMESTEPS, UNITS)
    assert all(state.shape == (UNITS,) for state in textbook[1:])
    assert_all_close(textbook, [a[0] for a in batched], 0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_masked_steps_without_keras(kind):
    """Masked steps keep the state; outputs repeat h (or are zero); a full-mask row never moves."""
    weights, states, x, mask = (
        random_weights(kind),
        random_states(kind),
        inputs(),
        left_padded_mask(),
    )
    outputs, *final = run_reference(kind, x, weights, mask=mask, initial_state=states)
    np.testing.assert_array_equal(outputs[0, :2], np.repeat(states[0][:1], 2, axis=0))
    np.testing.assert_array_equal(outputs[3, :5], np.repeat(states[0][3:4], 5, axis=0))
    for state, initial in zip(final, states, strict=True):
        np.testing.assert_array_equal(state[1], initial[1])
    zeros, *_ = run_reference(
        kind, x, weights, mask=mask, initial_state=states, zero_output_for_mask=True
    )
    np.testing.assert_array_equal(zeros[~mask], 0.0)
    np.testing.assert_array_equal(zeros[mask], outputs[mask])
    # A masked step in the middle of a row changes nothing: drop it and the row agrees.
    middle = np.ones((BATCH, TIMESTEPS), dtype=bool)
    middle[:, 2] = False
    skipped, *skipped_final = run_reference(kind, x, weights, mask=middle, initial_state=states)
    dropped, *dropped_final = run_reference(
        kind, np.delete(x, 2, axis=1), weights, initial_state=states
    )
    np.testing.assert_allclose(np.delete(skipped, 2, axis=1), dropped, rtol=1e-12)
    assert_all_close(skipped_final, dropped_final, 1e-12)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_go_backwards_is_the_reversed_sequence(kind):
    weights, x, mask = random_weights(kind), inputs(), right_padded_mask()
    backwards = run_reference(kind, x, weights, mask=mask, go_backwards=True)
    reversed_input = run_reference(kind, x[:, ::-1], weights, mask=mask[:, ::-1])
    assert_all_close(backwards, reversed_input, 1e-12)
    forwards = run_reference(kind, x, weights, mask=mask)
    assert not np.allclose(backwards[1], forwards[1])


def constant_weights(kind):
    """kernel all 0.1, recurrent kernel all 0.2, bias all 0.05."""
    return [
        np.full(w.shape, value)
        for w, value in zip(random_weights(kind), (0.1, 0.2, 0.05), strict=True)
    ]


def test_golden_simple_rnn():
    x = np.ones((1, 2, FEATURES))
    outputs, h = reference.simple_rnn(x, *constant_weights("simple_rnn"))
    h1 = math.tanh(FEATURES * 0.1 + 0.05)
    h2 = math.tanh(FEATURES * 0.1 + 0.05 + UNITS * 0.2 * h1)
    np.testing.assert_allclose(outputs, [[[h1] * UNITS, [h2] * UNITS]], rtol=1e-12)
    np.testing.assert_allclose(h, [[h2] * UNITS], rtol=1e-12)


def test_golden_lstm():
    x = np.ones((1, 2, FEATURES))
    outputs, h, c = reference.lstm(x, *constant_weights("lstm"))
    z1 = FEATURES * 0.1 + 0.05  # every gate, step 1 (h0 = 0)
    c1 = sigmoid(z1) * math.tanh(z1)  # f * 0 + i * tanh(z_c)
    h1 = sigmoid(z1) * math.tanh(c1)
    z2 = z1 + UNITS * 0.2 * h1
    c2 = sigmoid(z2) * c1 + sigmoid(z2) * math.tanh(z2)
    h2 = sigmoid(z2) * math.tanh(c2)
    np.testing.assert_allclose(outputs[0, :, 0], [h1, h2], rtol=1e-12)
    np.testing.assert_allclose(h, np.full((1, UNITS), h2), rtol=1e-12)
    np.testing.assert_allclose(c, np.full((1, UNITS), c2), rtol=1e-12)


def test_golden_gru_reset_after():
    x = np.ones((1, 2, FEATURES))
    outputs, h = reference.gru(x, *constant_weights("gru_reset_after"), reset_after=True)
    x_g = FEATURES * 0.1 + 0.05  # input side of every gate
    expected, h_prev = [], 0.0
    for _ in range(2):
        inner = UNITS * 0.2 * h_prev + 0.05  # recurrent side of every gate
        z = r = sigmoid(x_g + inner)
        h_prev = z * h_prev + (1 - z) * math.tanh(x_g + r * inner)
        expected.append(h_prev)
    np.testing.assert_allclose(outputs[0, :, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(h, np.full((1, UNITS), expected[-1]), rtol=1e-12)


def test_golden_gru_reset_before():
    x = np.ones((1, 2, FEATURES))
    outputs, h = reference.gru(x, *constant_weights("gru_reset_before"), reset_after=False)
    x_g = FEATURES * 0.1 + 0.05
    expected, h_prev = [], 0.0
    for _ in range(2):
        z = r = sigmoid(x_g + UNITS * 0.2 * h_prev)
        h_prev = z * h_prev + (1 - z) * math.tanh(x_g + UNITS * 0.2 * r * h_prev)
        expected.append(h_prev)
    np.testing.assert_allclose(outputs[0, :, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(h, np.full((1, UNITS), expected[-1]), rtol=1e-12)


def test_activation_by_callable_and_name():
    weights, x = random_weights("simple_rnn"), inputs()
    by_name = run_reference("simple_rnn", x, weights, activation="relu")
    by_callable = run_reference("simple_rnn", x, weights, activation=lambda v: np.maximum(v, 0))
    assert_all_close(by_callable, by_name, 0)
    linear = run_reference("simple_rnn", x, weights, activation=None)
    assert linear[0].min() < 0 < linear[0].max() and by_name[0].min() == 0


def bad_call(kind, **overrides):
    """Call `kind`'s reference with good arguments, except those in `overrides`."""
    kernel, recurrent_kernel, bias = random_weights(kind)
    good = {"kernel": kernel, "recurrent_kernel": recurrent_kernel, "bias": bias}
    return KINDS[kind].reference(**({"inputs": inputs()} | good | overrides))


BAD_INPUTS = {
    "inputs rank 1": ("lstm", "inputs", {"inputs": np.ones(FEATURES)}),
    "inputs rank 4": ("gru_reset_after", "inputs", {"inputs": np.ones((1, 2, 3, FEATURES))}),
    "no timesteps": ("simple_rnn", "inputs", {"inputs": np.ones((BATCH, 0, FEATURES))}),
    "kernel rows": ("lstm", "kernel", {"kernel": np.ones((FEATURES + 1, 4 * UNITS))}),
    "kernel columns": ("lstm", "kernel", {"kernel": np.ones((FEATURES, 4 * UNITS + 1))}),
    "recurrent kernel": (
        "gru_reset_after",
        "recurrent_kernel",
        {"recurrent_kernel": np.ones((UNITS, UNITS))},
    ),
    "bias lstm": ("lstm", "bias", {"bias": np.ones(UNITS)}),
    "bias reset_after": ("gru_reset_after", "bias", {"bias": np.ones(3 * UNITS)}),
    "bias reset_before": ("gru_reset_before", "bias", {"bias": np.ones((2, 3 * UNITS))}),
    "mask timesteps": ("simple_rnn", "mask", {"mask": np.ones((BATCH, TIMESTEPS + 1), bool)}),
    "mask batch": ("lstm", "mask", {"mask": np.ones((BATCH + 1, TIMESTEPS), bool)}),
    "mask rank": ("gru_reset_after", "mask", {"mask": np.ones(TIMESTEPS, bool)}),
    "initial state shape": (
        "simple_rnn",
        "initial_state",
        {"initial_state": np.zeros((BATCH, UNITS + 1))},
    ),
    "lstm initial state count": ("lstm", "initial_state", {"initial_state": [np.zeros((4, 4))]}),
    "lstm initial state array": ("lstm", "initial_state", {"initial_state": np.zeros((2, 4, 4))}),
    "lstm c0 shape": (
        "lstm",
        "initial_state",
        {"initial_state": [np.zeros((BATCH, UNITS)), np.zeros((BATCH, 1))]},
    ),
    "gru two states": (
        "gru_reset_before",
        "initial_state",
        {"initial_state": [np.zeros((BATCH, UNITS))] * 2},
    ),
    "dropout mask": ("lstm", "dropout_mask", {"dropout_mask": np.ones((BATCH, UNITS))}),
    "dropout mask gates": (
        "gru_reset_after",
        "dropout_mask",
        {"dropout_mask": np.ones((BATCH, 4, FEATURES))},
    ),
    "recurrent dropout mask": (
        "simple_rnn",
        "recurrent_dropout_mask",
        {"recurrent_dropout_mask": np.ones((BATCH, FEATURES))},
    ),
    "recurrent dropout mask gates": (
        "lstm",
        "recurrent_dropout_mask",
        {"recurrent_dropout_mask": np.ones((BATCH, 3, UNITS))},
    ),
    "unknown activation": ("simple_rnn", "activation", {"activation": "tanhh"}),
    "unknown recurrent activation": (
        "gru_reset_after",
        "recurrent_activation",
        {"recurrent_activation": "hard_tanh"},
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_naming_the_argument(case):
    kind, argument, overrides = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=rf"`{argument}\b[^`]*`.* received") as error:
        bad_call(kind, **overrides)
    assert "must" in str(error.value)


def test_unknown_activation_lists_the_names():
    with pytest.raises(ValueError, match="'gelu'.*'tanh'"):
        bad_call("lstm", activation="nope")


def test_activation_of_the_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="`recurrent_activation`.*received 3"):
        bad_call("lstm", recurrent_activation=3)
