"""The small-call path (`rnnkit.layers.small_call`): a prepared inference call is rerun only
while it computes what the general path would, each time checked against the plain loop
(`use_fused=False`) holding the same weights."""

from __future__ import annotations

import pytest
import torch

import rnnkit as rk
from rnnkit.layers import GRU, LSTM, SimpleRNN, rnn

FEATURES, UNITS = 5, 6
LAYERS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def twins(kind="lstm", **kwargs):
    """The layer under test (fused, eval mode) and the loop with the same weights."""
    torch.manual_seed(0)
    fused = LAYERS[kind](UNITS, use_fused=True, **kwargs).eval()
    loop = LAYERS[kind](UNITS, use_fused=False, **kwargs).eval()
    with torch.no_grad():
        fused(torch.zeros(1, 1, FEATURES))
        loop(torch.zeros(1, 1, FEATURES))
    loop.set_weights(fused.get_weights())
    fused.reset_state()
    loop.reset_state()
    return fused, loop


def steps(fused, loop, count=3, batch=1, seed=1, dtype=torch.float32):
    """Runs `count` one-step calls on both layers and checks each output against the loop's."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(count):
            x = torch.randn(batch, 1, FEATURES, generator=generator, dtype=dtype)
            expected = loop(x)
            torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-6)


def change_weights(layer, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(w.shape, generator=generator).numpy() for w in layer.get_weights()]


def forbid_the_general_path(monkeypatch):
    """From now on, a call of the layer under test that goes the general way fails the test
    (the loop's twin, `use_fused=False`, chooses its kernel every call)."""
    general_select = rnn.select

    def no_general_path(recurrence, inputs, *, use_fused):
        if use_fused is True:
            raise AssertionError("a prepared call went the general way")
        return general_select(recurrence, inputs, use_fused=use_fused)

    monkeypatch.setattr(rnn, "select", no_general_path)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("stateful", [False, True])
def test_repeated_calls_rerun_the_prepared_call(kind, stateful, monkeypatch):
    fused, loop = twins(kind, stateful=stateful)
    steps(fused, loop, count=2)
    assert fused._small_call is not None
    forbid_the_general_path(monkeypatch)
    steps(fused, loop, count=2, seed=2)


@pytest.mark.parametrize("kind", LAYERS)
def test_a_layer_without_bias_is_prepared(kind):
    fused, loop = twins(kind, stateful=True, use_bias=False)
    steps(fused, loop, count=3)
    assert fused._small_call is not None


def test_set_weights_is_seen():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    weights = change_weights(fused, seed=5)
    fused.set_weights(weights)
    loop.set_weights(weights)
    steps(fused, loop, seed=2)


def test_an_optimizer_step_is_seen():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    for layer in (fused, loop):
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
        for weight in layer.parameters():
            weight.grad = torch.full_like(weight, 0.3)
        optimizer.step()
    steps(fused, loop, seed=2)


def test_a_replaced_weight_is_seen():
    fused, loop = twins()
    steps(fused, loop)
    new_kernel = torch.randn(FEATURES, 4 * UNITS)
    fused.cell.kernel = torch.nn.Parameter(new_kernel.clone())
    loop.cell.kernel = torch.nn.Parameter(new_kernel.clone())
    steps(fused, loop, seed=2)


@pytest.mark.parametrize("stateful", [False, True])
def test_to_dtype_is_seen(stateful):
    fused, loop = twins(stateful=stateful)
    steps(fused, loop)
    fused.double()
    loop.double()
    steps(fused, loop, seed=2, dtype=torch.float64)
    steps(fused, loop, seed=3)  # float32 inputs, cast to the weights' float64 as Keras does
    assert fused(torch.zeros(1, 1, FEATURES)).dtype == torch.float64


def test_load_weights_is_seen(tmp_path):
    models = {}
    for name, use_fused in (("fused", True), ("loop", False)):
        torch.manual_seed(0)
        models[name] = rk.Sequential(
            [
                rk.Input(batch_shape=(1, 1, FEATURES)),
                LSTM(UNITS, stateful=True, use_fused=use_fused),
            ]
        ).eval()
    fused, loop = (models[name].layers[0] for name in ("fused", "loop"))
    loop.set_weights(fused.get_weights())
    steps(fused, loop)
    source = rk.Sequential([rk.Input(batch_shape=(1, 1, FEATURES)), LSTM(UNITS)])
    source.layers[0].set_weights(change_weights(fused, seed=7))
    path = str(tmp_path / "new.weights.h5")
    source.save_weights(path)
    models["fused"].load_weights(path)
    models["loop"].load_weights(path)
    steps(fused, loop, seed=2)


def test_reset_state_is_seen():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    fused.reset_state()
    loop.reset_state()
    assert fused._small_call is None
    steps(fused, loop, seed=2)
    assert all(torch.count_nonzero(state) > 0 for state in fused.states)


def test_a_new_batch_size_goes_the_general_way():
    fused, loop = twins()
    steps(fused, loop, batch=1)
    steps(fused, loop, batch=3, seed=2)
    steps(fused, loop, batch=1, seed=3)


def test_a_stateful_layer_still_refuses_a_new_batch_size():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    with torch.no_grad(), pytest.raises(ValueError, match="expected a batch of 1, received 2"):
        fused(torch.zeros(2, 1, FEATURES))


def test_bad_inputs_are_still_checked():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    with torch.no_grad():
        with pytest.raises(ValueError, match="built for inputs with 5 features"):
            fused(torch.zeros(1, 1, FEATURES + 1))
        with pytest.raises(ValueError, match="expects inputs of rank 3"):
            fused(torch.zeros(1, FEATURES))
        with pytest.raises(TypeError, match="torch.Tensor or NumPy array"):
            fused(None)


def test_calls_the_prepared_one_does_not_compute_go_the_general_way():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    x = torch.randn(1, 1, FEATURES)
    mask = torch.zeros(1, 1, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(fused(x, mask=mask), loop(x, mask=mask))
        states = [torch.randn(1, UNITS), torch.randn(1, UNITS)]
        torch.testing.assert_close(
            fused(x, initial_state=states), loop(x, initial_state=states), rtol=1e-5, atol=1e-6
        )
    steps(fused, loop, seed=2)
    with torch.enable_grad():
        assert fused(x).grad_fn is not None  # a graph for training: the autograd kernel


def test_training_mode_goes_the_general_way(monkeypatch):
    fused, _ = twins(stateful=True, dropout=0.5)
    x = torch.randn(1, 1, FEATURES)
    with torch.no_grad():
        fused(x)
        fused(x)
        general_select = rnn.select
        chosen = []

        def counting(recurrence, inputs, *, use_fused):
            chosen.append(recurrence.dropout_masks)
            return general_select(recurrence, inputs, use_fused=use_fused)

        monkeypatch.setattr(rnn, "select", counting)
        fused.train()
        fused(x)
    assert len(chosen) == 1 and chosen[0] is not None  # with this call's dropout masks


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("timesteps", [1, 16])
def test_prepared_calls_of_every_output_form(kind, return_sequences, timesteps):
    """The prepared call allocates its outputs one way with `return_sequences` and another
    without: both give the loop's outputs and carried states, call after call."""
    fused, loop = twins(kind, stateful=True, return_sequences=return_sequences)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(1, timesteps, FEATURES, generator=generator)
            torch.testing.assert_close(fused(x), loop(x), rtol=1e-5, atol=1e-6)
            for mine, expected in zip(fused.states, loop.states):
                torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-6)
    assert fused._small_call is not None


def test_returned_outputs_are_not_the_carried_states():
    """Changing what a call returned, in place, changes nothing the next call reads."""
    fused, loop = twins(stateful=True, return_state=True)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(1, 1, FEATURES, generator=generator)
            output, h, c = fused(x)
            expected_output, expected_h, expected_c = loop(x)
            for mine, expected in ((output, expected_output), (h, expected_h), (c, expected_c)):
                torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-6)
            output.add_(100.0)  # (the loop's output may be its state: left alone)
    assert fused._small_call is not None


def test_states_carried_from_a_call_with_a_graph_are_detached():
    fused, loop = twins(stateful=True)
    steps(fused, loop)
    with torch.enable_grad():
        fused(torch.randn(1, 1, FEATURES)).sum().backward()
    assert not any(state.requires_grad for state in fused.states)
    with torch.no_grad():
        loop(torch.zeros(1, 1, FEATURES))  # keeps the twins in step (the loop's input differs)
    loop._states = [state.clone() for state in fused.states]
    steps(fused, loop, seed=6)


def masked_calls(fused, loop, count=3, batch=3, timesteps=6, seed=6):
    """Masked calls of every padding pattern (left, right, gaps, a row without a real step) on
    both layers, each output checked against the loop's."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(count):
            x = torch.randn(batch, timesteps, FEATURES, generator=generator)
            mask = torch.rand(batch, timesteps, generator=generator) > 0.4
            mask[0] = torch.arange(timesteps) >= timesteps // 2
            mask[-1] = False
            expected = loop(x, mask=mask)
            torch.testing.assert_close(fused(x, mask=mask), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(
    "options", [{}, {"return_sequences": True, "go_backwards": True, "zero_output_for_mask": True}]
)
def test_masked_calls_rerun_the_prepared_call_with_each_calls_mask(kind, options, monkeypatch):
    """A model whose Embedding masks padding predicts batch after batch: each batch's mask goes
    to the prepared call."""
    fused, loop = twins(kind, **options)
    masked_calls(fused, loop, count=1)
    assert fused._small_call is not None
    forbid_the_general_path(monkeypatch)
    masked_calls(fused, loop, count=3, seed=7)


def test_a_mask_goes_to_a_call_prepared_with_one_alone():
    """A masked call after an unmasked one, and the reverse, go the general way (which prepares
    again); a mask the prepared call cannot take as it is (a NumPy array, 0/1 floats) goes the
    general way, which converts it; a mask of the wrong shape is still refused."""
    fused, loop = twins()
    x = torch.randn(3, 6, FEATURES)
    mask = torch.arange(6)[None, :] < torch.tensor([[6], [2], [4]])
    with torch.no_grad():
        for call_mask in (None, mask, None, mask.numpy(), mask.float(), mask):
            expected = loop(x, mask=call_mask)
            torch.testing.assert_close(fused(x, mask=call_mask), expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match=r"expects `mask` of shape \(batch, timesteps\)"):
            fused(x, mask=mask[:, :5])
        with pytest.raises(ValueError, match="other than 0 and 1"):
            fused(x, mask=mask.float() * 2)
