"""Recurrent layers against the NumPy textbook loop (`rnnkit.reference`), and their semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import KINDS
from sequence_masks import left_padded_mask, right_padded_mask

from rnnkit import initializers, regularizers
from rnnkit.kernels import DropoutMasks
from rnnkit.layers import GRU, LSTM, RNN, SimpleRNN, SimpleRNNCell

BATCH, TIMESTEPS, FEATURES, UNITS = 4, 6, 3, 5


@pytest.fixture(params=[False, True], ids=["loop", "fused"])
def use_fused(request):
    """Run a test on the generic loop and on the fused CPU kernel."""
    return request.param


def make_layer(kind, dtype=torch.float64, weight_seed=0, **kwargs):
    """A built layer of `kind` with random weights (biases too), returning all sequences and
    states, and its reference function."""
    cls, defaults, ref = KINDS[kind].layer, KINDS[kind].options, KINDS[kind].reference
    layer = cls(UNITS, return_sequences=True, return_state=True, dtype=dtype, **defaults, **kwargs)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(weight_seed)
    layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    return layer, ref


def reference_call(layer, ref, x, **kwargs):
    weights = layer.get_weights()
    bias = weights[2] if len(weights) == 3 else None
    return ref(x, weights[0], weights[1], bias, **kwargs)


def inputs(seed=1, batch=BATCH, timesteps=TIMESTEPS):
    return np.random.default_rng(seed).normal(size=(batch, timesteps, FEATURES))


def random_states(kind, seed=2):
    count = 2 if kind == "lstm" else 1
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(BATCH, UNITS)) for _ in range(count)]


# Each case: layer kwargs, call kwargs, reference kwargs (call/ref kwargs may depend on kind).
CASES = {
    "plain": ({}, {}, {}),
    "right_padded_mask": ({}, {"mask": right_padded_mask()}, {"mask": right_padded_mask()}),
    "left_padded_mask": ({}, {"mask": left_padded_mask()}, {"mask": left_padded_mask()}),
    "go_backwards": ({"go_backwards": True}, {}, {"go_backwards": True}),
    "zero_output_for_mask": (
        {"zero_output_for_mask": True},
        {"mask": left_padded_mask()},
        {"mask": left_padded_mask(), "zero_output_for_mask": True},
    ),
    "backwards_masked": (
        {"go_backwards": True},
        {"mask": right_padded_mask()},
        {"go_backwards": True, "mask": right_padded_mask()},
    ),
    "no_bias": ({"use_bias": False}, {}, {}),
}


def assert_matches(outputs, expected, atol):
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=atol, rtol=0)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_layer_matches_reference_float64(kind, case, use_fused):
    layer_kwargs, call_kwargs, ref_kwargs = CASES[case]
    layer, ref = make_layer(kind, use_fused=use_fused, **layer_kwargs)
    x = inputs()
    assert_matches(layer(x, **call_kwargs), reference_call(layer, ref, x, **ref_kwargs), 1e-10)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_initial_state_matches_reference_with_mask(kind, use_fused):
    layer, ref = make_layer(kind, use_fused=use_fused)
    x, states, mask = inputs(), random_states(kind), left_padded_mask()
    got = layer(x, mask=mask, initial_state=states)
    expected = reference_call(layer, ref, x, mask=mask, initial_state=states)
    assert_matches(got, expected, 1e-10)
    # A fully masked row keeps its initial state and repeats it as output.
    np.testing.assert_allclose(got[0][1].detach().numpy(), np.repeat(states[0][1:2], 6, 0))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_custom_activations_match_reference(kind, use_fused):
    gated = kind != "simple_rnn"
    layer_kwargs = {"activation": "relu"}
    if gated:
        layer_kwargs["recurrent_activation"] = "hard_sigmoid"
    layer, ref = make_layer(kind, use_fused=use_fused, **layer_kwargs)
    x = inputs()
    expected = reference_call(layer, ref, x, **layer_kwargs)
    assert_matches(layer(x), expected, 1e-10)


@pytest.mark.parametrize("case", ["plain", "left_padded_mask", "go_backwards"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_layer_matches_reference_float32(kind, case, use_fused):
    layer_kwargs, call_kwargs, ref_kwargs = CASES[case]
    layer, ref = make_layer(kind, dtype=torch.float32, use_fused=use_fused, **layer_kwargs)
    x = inputs()
    got = layer(x.astype(np.float32), **call_kwargs)
    assert got[0].dtype == torch.float32
    assert_matches(got, reference_call(layer, ref, x, **ref_kwargs), 1e-5)


def fixed_dropout_masks(layer, gates, per_gate, seed=3):
    rng = np.random.default_rng(seed)
    gate_axis = (gates,) if per_gate else ()

    def draw(size, rate):
        keep = rng.random((BATCH, *gate_axis, size)) >= rate
        return keep / (1 - rate)

    return draw(FEATURES, 0.3), draw(UNITS, 0.4)


@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_masks_match_reference(kind, per_gate, use_fused):
    gates = KINDS[kind].gates
    layer, ref = make_layer(kind, dropout=0.3, recurrent_dropout=0.4, use_fused=use_fused)
    input_mask, recurrent_mask = fixed_dropout_masks(layer, gates, per_gate)
    layer.cell.make_dropout_masks = lambda batch: DropoutMasks(
        torch.from_numpy(input_mask), torch.from_numpy(recurrent_mask)
    )
    x, mask = inputs(), right_padded_mask()
    layer.train()
    got = layer(x, mask=mask)
    expected = reference_call(
        layer, ref, x, mask=mask, dropout_mask=input_mask, recurrent_dropout_mask=recurrent_mask
    )
    assert_matches(got, expected, 1e-10)
    layer.eval()  # no dropout in inference
    assert_matches(layer(x, mask=mask), reference_call(layer, ref, x, mask=mask), 1e-10)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_masks_are_drawn_as_keras_does(kind):
    gates = KINDS[kind].gates
    layer, _ = make_layer(kind, dropout=0.25, recurrent_dropout=0.5)
    masks = layer.cell.make_dropout_masks(512)
    per_gate = (gates,) if gates > 1 else ()  # Keras 3: one mask per gate with rec. dropout
    assert masks.inputs.shape == (512, *per_gate, FEATURES)
    assert masks.recurrent.shape == (512, *per_gate, UNITS)
    for values, rate in ((masks.inputs, 0.25), (masks.recurrent, 0.5)):
        assert set(np.unique(values.numpy())) <= {0.0, 1 / (1 - rate)}
        assert abs((values == 0).double().mean().item() - rate) < 0.05
    only_inputs, _ = make_layer(kind, dropout=0.25)
    assert only_inputs.cell.make_dropout_masks(8).inputs.shape == (8, FEATURES)
    assert only_inputs.cell.make_dropout_masks(8).recurrent is None


def test_dropout_is_seeded_and_only_in_training():
    layer, _ = make_layer("lstm", dropout=0.5, recurrent_dropout=0.5, seed=7)
    twin, _ = make_layer("lstm", dropout=0.5, recurrent_dropout=0.5, seed=7)
    x = inputs()
    layer.train()
    twin.train()
    first = layer(x)[0]
    np.testing.assert_array_equal(first.detach().numpy(), twin(x)[0].detach().numpy())
    assert not torch.equal(first, layer(x)[0])  # a new mask each call
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])
    assert torch.equal(layer(x)[0], layer(x, training=False)[0])
    assert not torch.equal(layer(x)[0], layer(x, training=True)[0])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_return_sequences_and_state_shapes(kind):
    cls, defaults = KINDS[kind].layer, KINDS[kind].options
    x = torch.randn(BATCH, TIMESTEPS, FEATURES)
    assert cls(UNITS, **defaults)(x).shape == (BATCH, UNITS)
    assert cls(UNITS, return_sequences=True, **defaults)(x).shape == (BATCH, TIMESTEPS, UNITS)
    result = cls(UNITS, return_state=True, **defaults)(x)
    assert len(result) == (3 if kind == "lstm" else 2)
    assert torch.equal(result[0], result[1])  # output is the last h
    layer = cls(UNITS, return_sequences=True, return_state=True, **defaults)
    assert layer.compute_output_shape((None, 7, FEATURES)) == (
        (None, 7, UNITS),
        *[(None, UNITS)] * len(result[1:]),
    )


def test_last_output_is_that_of_the_last_unmasked_step():
    layer, ref = make_layer("gru_reset_after")
    last_only = GRU(UNITS, dtype=torch.float64)
    last_only.build((None, None, FEATURES))
    last_only.set_weights(layer.get_weights())
    x, mask = inputs(), right_padded_mask()
    outputs = reference_call(layer, ref, x, mask=mask)[0]
    got = last_only(x, mask=mask).detach().numpy()
    np.testing.assert_allclose(got[1], outputs[1, 3], atol=1e-12)  # row 1: real steps 0..3
    np.testing.assert_allclose(got[2], outputs[2, 0], atol=1e-12)  # row 2: only step 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stateful_layer_carries_states_across_calls(kind, use_fused):
    layer, ref = make_layer(kind, stateful=True, use_fused=use_fused)
    x = inputs(timesteps=8)
    first, second = layer(x[:, :5]), layer(x[:, 5:])
    expected = reference_call(layer, ref, x)
    np.testing.assert_allclose(
        torch.cat([first[0], second[0]], dim=1).detach().numpy(), expected[0], atol=1e-10
    )
    assert_matches(second[1:], expected[1:], 1e-10)
    assert_matches(layer.states, expected[1:], 1e-10)
    layer.reset_state()
    assert all(float(state.abs().sum()) == 0 for state in layer.states)
    assert_matches(layer(x[:, :5]), reference_call(layer, ref, x[:, :5]), 1e-10)
    with pytest.raises(ValueError, match="same batch size.*expected a batch of 4, received 3"):
        layer(x[:3])


def test_stateful_states_do_not_keep_the_graph():
    layer = LSTM(3, stateful=True)
    layer(torch.randn(2, 4, 2))
    assert all(not state.requires_grad for state in layer.states)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradcheck_through_layer_with_mask_and_fixed_dropout(kind, use_fused):
    gates = KINDS[kind].gates
    layer, _ = make_layer(kind, dropout=0.3, recurrent_dropout=0.4, use_fused=use_fused)
    input_mask, recurrent_mask = fixed_dropout_masks(layer, gates, per_gate=True)
    layer.cell.make_dropout_masks = lambda batch: DropoutMasks(
        torch.from_numpy(input_mask), torch.from_numpy(recurrent_mask)
    )
    layer.train()
    mask = torch.from_numpy(left_padded_mask())
    names = [name for name, _ in layer.named_parameters()]
    x = torch.from_numpy(inputs()).requires_grad_()
    states = [torch.from_numpy(s).requires_grad_() for s in random_states(kind)]
    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(x, *tensors):
        params = dict(zip(names, tensors[: len(names)]))
        initial = list(tensors[len(names) :])
        outputs = torch.func.functional_call(
            layer, params, (x,), {"mask": mask, "initial_state": initial}
        )
        return tuple(outputs)

    assert torch.autograd.gradcheck(run, (x, *weights, *states))


def test_golden_values_with_constant_initializers():
    # Keras-style golden test: constant weights on ones, values computed by hand.
    layer = SimpleRNN(
        2,
        return_sequences=True,
        kernel_initializer=initializers.Constant(0.1),
        recurrent_initializer=initializers.Constant(0.2),
        bias_initializer=initializers.Constant(0.05),
        dtype=torch.float64,
    )
    out = layer(np.ones((1, 3, 4))).detach().numpy()[0]
    h1 = np.tanh(4 * 0.1 + 0.05)
    h2 = np.tanh(4 * 0.1 + 0.05 + 2 * 0.2 * h1)
    h3 = np.tanh(4 * 0.1 + 0.05 + 2 * 0.2 * h2)
    np.testing.assert_allclose(out, [[h1, h1], [h2, h2], [h3, h3]], atol=1e-14)

    lstm = LSTM(1, kernel_initializer="ones", recurrent_initializer="ones", dtype=torch.float64)
    out = lstm(np.ones((1, 1, 2)))[0, 0].item()
    sigmoid = 1 / (1 + np.exp(-2.0))
    forget_bias_sigmoid = 1 / (1 + np.exp(-3.0))  # unit_forget_bias adds 1 to the forget gate
    assert forget_bias_sigmoid > sigmoid
    c = sigmoid * np.tanh(2.0)
    assert out == pytest.approx(sigmoid * np.tanh(c), abs=1e-14)
    np.testing.assert_array_equal(lstm.cell.bias.detach().numpy(), [0.0, 1.0, 0.0, 0.0])


def test_weights_have_keras_layout_and_round_trip():
    layer = GRU(UNITS)
    layer.build((None, None, FEATURES))
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes == [(FEATURES, 3 * UNITS), (UNITS, 3 * UNITS), (2, 3 * UNITS)]
    before = GRU(UNITS, reset_after=False)
    before.build((None, None, FEATURES))
    assert before.get_weights()[2].shape == (3 * UNITS,)
    new = [np.full(shape, i, dtype=np.float32) for i, shape in enumerate(shapes)]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"weight 1 .*shape \(5, 15\), received \(5, 5\)"):
        layer.set_weights([new[0], np.zeros((5, 5)), new[2]])
    with pytest.raises(ValueError, match="expects 3 weight arrays.*received 2"):
        layer.set_weights(new[:2])
    np.testing.assert_array_equal(layer.get_weights()[1], new[1])  # unchanged after errors


def test_lazy_build_creates_weights_on_first_call_and_from_shape():
    layer = LSTM(4)
    assert not layer.built and layer.get_weights() == []
    layer(np.zeros((2, 3, 7)))
    assert [w.shape for w in layer.get_weights()] == [(7, 16), (4, 16), (16,)]
    shaped = SimpleRNN(4)
    shaped.build((None, None, 5))
    assert shaped.count_params() == 5 * 4 + 4 * 4 + 4


def test_regularizers_and_constraints():
    layer = SimpleRNN(
        3,
        kernel_regularizer=regularizers.L2(0.1),
        recurrent_regularizer="l1",
        activity_regularizer=regularizers.L1(0.5),
        kernel_constraint="non_neg",
    )
    x = torch.randn(2, 4, 2)
    out = layer(x)
    kernel, recurrent, _ = layer.weights
    expected = [
        0.1 * (kernel**2).sum(),
        0.01 * recurrent.abs().sum(),
        0.5 * out.abs().sum() / 2,  # activity terms are divided by the batch size, as Keras
    ]
    assert len(layer.losses) == 3
    assert sum(layer.losses).item() == pytest.approx(sum(expected).item(), rel=1e-6)
    with torch.no_grad():
        layer.cell.kernel.fill_(-1.0)
    layer.apply_constraints()
    assert layer.cell.kernel.min().item() == 0.0


def test_stacked_cells_equal_two_layers():
    torch.manual_seed(0)
    cells = [SimpleRNNCell(4), SimpleRNNCell(3)]
    stacked = RNN(cells, return_sequences=True, return_state=True)
    x = torch.randn(2, 5, FEATURES)
    output, h1, h2 = stacked(x, mask=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    first = RNN(cells[0], return_sequences=True)
    second = RNN(cells[1], return_sequences=True, return_state=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    expected, expected_h2 = second(first(x, mask=mask), mask=mask)
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(h2, expected_h2)
    assert stacked.state_size == [4, 3]


def test_custom_cell_runs_in_rnn():
    class MinimalCell(torch.nn.Module):
        state_size = 2

        def forward(self, x_t, states):
            h = 0.5 * states[0] + x_t[:, :2]
            return h, [h]

    x = torch.arange(12.0).reshape(1, 6, 2)
    out = RNN(MinimalCell(), return_sequences=True)(x)
    expected = torch.zeros(2)
    for t in range(6):
        expected = 0.5 * expected + x[0, t]
        torch.testing.assert_close(out[0, t], expected)


def test_config_round_trip_recreates_the_layer():
    layer = LSTM(
        7,
        activation="relu",
        recurrent_dropout=0.1,
        kernel_regularizer=regularizers.L2(0.001),
        go_backwards=True,
        return_sequences=True,
    )
    clone = LSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    generic = RNN([SimpleRNNCell(2), SimpleRNNCell(3)], stateful=True)
    assert RNN.from_config(generic.get_config()).state_size == [2, 3]


@pytest.mark.parametrize(
    ("build", "call", "message"),
    [
        (lambda: SimpleRNN(3), lambda layer: layer(np.zeros((2, 3))), "rank 3"),
        (
            lambda: SimpleRNN(3),
            lambda layer: (layer(np.zeros((2, 3, 4))), layer(np.zeros((2, 3, 5)))),
            "built for inputs with 4 features",
        ),
        (
            lambda: LSTM(3),
            lambda layer: layer(np.zeros((2, 3, 4)), mask=np.ones((2, 4))),
            r"`mask` of shape .*\(2, 3\), received shape \(2, 4\)",
        ),
        (
            lambda: LSTM(3),
            lambda layer: layer(np.zeros((2, 3, 4)), initial_state=[np.zeros((2, 3))]),
            "list of 2 tensor.*received 1",
        ),
        (
            lambda: GRU(3),
            lambda layer: layer(np.zeros((2, 3, 4)), initial_state=[np.zeros((2, 4))]),
            r"initial_state\[0\]` of shape .*received \(2, 4\)",
        ),
        (lambda: SimpleRNN(3), lambda layer: layer(np.zeros((2, 0, 4))), "at least one timestep"),
        (lambda: SimpleRNN(3), lambda layer: layer([[1.0]]), "torch.Tensor or NumPy array"),
        (
            lambda: SimpleRNN(3),
            lambda layer: layer(np.full((2, 3, 4), "a")),
            "`inputs` of numbers, received an array of <U1",
        ),
        (
            lambda: SimpleRNN(3),
            lambda layer: layer(np.array([[[1.0]], [[1.0, 2.0]]], dtype=object)),
            "`inputs` of numbers, received an array of object",
        ),
        (
            lambda: SimpleRNN(3),
            lambda layer: layer(np.ones((2, 3, 4)) * (1 + 1j)),
            "expects real `inputs`, received torch.complex128",
        ),
        (lambda: LSTM(3), lambda layer: layer(np.zeros((2, 3, 4)), mask="abc"), "received <U3"),
        (
            lambda: LSTM(3),
            lambda layer: layer(np.zeros((2, 3, 4)), mask=[[1, 1, 1], [1]]),
            "received ragged rows",
        ),
        (
            lambda: LSTM(3),
            lambda layer: layer(np.zeros((2, 3, 4)), mask=np.full((2, 3), 0.5)),
            "values other than 0 and 1",
        ),
        (
            lambda: LSTM(3),
            lambda layer: layer(np.zeros((2, 3, 4)), initial_state=5),
            "`initial_state` as a tensor or a list of tensors .*received int",
        ),
        (
            lambda: LSTM(3),
            lambda layer: layer(np.zeros((2, 3, 4)), initial_state={"h": np.zeros((2, 3))}),
            "received dict",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(build, call, message):
    layer = build()
    with pytest.raises((ValueError, TypeError), match=message):
        call(layer)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SimpleRNN(0), "`units` must be a positive integer, received 0"),
        (lambda: LSTM(-2), "`units` must be a positive integer, received -2"),
        (lambda: GRU(2.5), "`units` must be a positive integer"),
        (lambda: SimpleRNN(3, dropout=1.0), r"`dropout` must be a float in \[0, 1\)"),
        (lambda: LSTM(3, recurrent_dropout=-0.1), "`recurrent_dropout`"),
        (lambda: GRU(3, use_fused="yes"), "`use_fused` must be 'auto', True or False"),
        (lambda: RNN(object()), "`cell` must be a torch.nn.Module"),
        (lambda: RNN(torch.nn.Linear(2, 2)), "`state_size`"),
        (lambda: SimpleRNN(3, activation="nope"), "nope"),
        (lambda: LSTM(3, return_sequences="no"), "`return_sequences` must be True or False"),
        (lambda: GRU(3, go_backwards=1), "`go_backwards` must be True or False, received 1"),
        (lambda: LSTM(True), "`units` must be a positive integer, received True"),
        # Caught before anything is allocated: the recurrent kernel would need 16 TB.
        (lambda: LSTM(10**6), r"`recurrent_kernel` of shape \(1000000, 4000000\)"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_use_fused_true_names_what_blocks_it_and_auto_falls_back():
    def custom_tanh(x):
        return torch.tanh(x)

    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="use_fused=True.*`activation=custom_tanh`"):
        SimpleRNN(3, activation=custom_tanh, use_fused=True)(x)
    with pytest.raises(ValueError, match="use_fused=True.*StackedRNNCells"):
        RNN([SimpleRNNCell(2)], use_fused=True)(x)
    auto = SimpleRNN(3, activation=custom_tanh, use_fused="auto")
    loop = SimpleRNN(3, activation=custom_tanh, use_fused=False)
    auto.build(x.shape)
    loop.build(x.shape)
    loop.set_weights(auto.get_weights())
    torch.testing.assert_close(auto(x), loop(x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_and_loop_gradients_agree(kind):
    fused, _ = make_layer(kind, use_fused=True, go_backwards=True, recurrent_dropout=0.2)
    loop, _ = make_layer(kind, use_fused=False, go_backwards=True, recurrent_dropout=0.2)
    masks = fused.cell.make_dropout_masks(BATCH)
    fused.cell.make_dropout_masks = loop.cell.make_dropout_masks = lambda batch: masks
    mask = torch.from_numpy(right_padded_mask())
    grads = []
    for layer in (fused, loop):
        x = torch.from_numpy(inputs()).requires_grad_()
        outputs = layer(x, mask=mask, training=True)
        weights = torch.linspace(-1, 1, outputs[0].numel(), dtype=torch.float64)
        (outputs[0].flatten() @ weights + outputs[1].sum()).backward()
        grads.append([x.grad, *[p.grad for p in layer.parameters()]])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dropout": 0.2, "recurrent_dropout": 0.2, "go_backwards": True},
        {"recurrent_dropout": 0.3},
    ],
    ids=["plain", "dropout_mask_backwards", "recurrent_dropout_mask"],
)
@pytest.mark.parametrize("kind", sorted(KINDS))
# Weight gradients: at 12 rows x 9 steps (one depth block) the threads split the columns; at 200
# rows they take the depth in parts. At 200 rows, several chunks of 96 rows at most. At 128 rows,
# SimpleRNN and LSTM without input dropout form them in the backward pass, in groups of 64 rows;
# at 16, in groups of 8 rows, each product over 8 steps (9 steps: the first product takes one).
@pytest.mark.parametrize("batch", [12, 16, 128, 200])
def test_fused_results_do_not_depend_on_the_thread_count(kind, options, batch):
    layer, _ = make_layer(kind, dtype=torch.float32, use_fused=True, **options)
    timesteps = 9
    x = torch.randn(batch, timesteps, FEATURES, requires_grad=True)
    call = {}
    if options:
        masks = layer.cell.make_dropout_masks(batch)
        layer.cell.make_dropout_masks = lambda rows: masks
        lengths = torch.randint(1, timesteps + 1, (batch,))
        call = {"mask": torch.arange(timesteps) < lengths[:, None], "training": True}
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            layer.zero_grad()
            x.grad = None
            output = layer(x, **call)[0]
            output.sum().backward()
            results.append([output.detach(), x.grad, *[p.grad for p in layer.parameters()]])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for one, two in zip(results[0], other):
            assert torch.equal(one, two)


MASKED_STEP_CASES = {
    "right_padded": ({}, right_padded_mask()),
    "left_padded_backwards": ({"go_backwards": True}, left_padded_mask()),
    "zero_output": ({"zero_output_for_mask": True}, left_padded_mask()),
    "unroll": ({"unroll": True}, left_padded_mask()),
    "dropout": ({"dropout": 0.3, "recurrent_dropout": 0.4}, right_padded_mask()),
}


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("case", sorted(MASKED_STEP_CASES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_what_masked_steps_hold_reaches_neither_outputs_nor_gradients(
    kind, case, poison, use_fused
):
    """Masked steps are selected away: NaN or inf there changes no output and no gradient
    (a mask that multiplies would give `0 * nan = nan` in every weight's gradient)."""
    layer_kwargs, mask = MASKED_STEP_CASES[case]
    layer, _ = make_layer(kind, use_fused=use_fused, **layer_kwargs)
    if "dropout" in layer_kwargs:
        gates = KINDS[kind].gates
        input_mask, recurrent_mask = fixed_dropout_masks(layer, gates, per_gate=True)
        layer.cell.make_dropout_masks = lambda batch: DropoutMasks(
            torch.from_numpy(input_mask), torch.from_numpy(recurrent_mask)
        )
    clean = inputs()
    poisoned = clean.copy()
    poisoned[~mask] = poison
    results = []
    for x in (clean, poisoned):
        layer.zero_grad()
        x = torch.from_numpy(x).requires_grad_()
        outputs = layer(x, mask=mask, training=True)
        weights = torch.linspace(-1, 1, outputs[0].numel(), dtype=torch.float64)
        (outputs[0].flatten() @ weights + sum(state.sum() for state in outputs[1:])).backward()
        results.append([*outputs, x.grad, *[p.grad for p in layer.parameters()]])
    for got, want in zip(results[1], results[0]):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_numpy_integers_and_bools_are_accepted_as_keras_accepts_them():
    layer = LSTM(np.int64(4), return_sequences=np.True_)
    assert layer.units == 4 and type(layer.units) is int and layer.return_sequences is True
    outputs = layer(np.zeros((2, 3, 5)), mask=np.array([[1, 1, 0], [1, 0, 0]]))
    assert outputs.shape == (2, 3, 4)
