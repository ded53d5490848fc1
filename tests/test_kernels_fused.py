"""Property tests of the fused CPU kernels (rnnkit.kernels.fused): for random shapes, options,
masks (any padding pattern, NaN at masked steps included) and dtypes, the outputs and states
equal the NumPy reference's, and every gradient equals the generic loop's.

Bounded so the module runs in seconds: few examples, derandomized (the same examples every run).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit import reference
from rnnkit.layers import GRU, LSTM, SimpleRNN

KINDS = {
    "simple_rnn": (SimpleRNN, {}, reference.simple_rnn),
    "lstm": (LSTM, {}, reference.lstm),
    "gru_reset_after": (GRU, {"reset_after": True}, partial(reference.gru, reset_after=True)),
    "gru_reset_before": (GRU, {"reset_after": False}, partial(reference.gru, reset_after=False)),
}
TOLERANCES = {torch.float64: (1e-10, 1e-9), torch.float32: (2e-5, 2e-4)}  # values, gradients

BOUNDED = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def problems(draw):
    """A layer configuration, its inputs, a mask of any pattern (or none) and initial states."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    batch = draw(st.integers(1, 5))
    timesteps = draw(st.integers(1, 6))
    features = draw(st.integers(1, 4))
    units = draw(st.integers(1, 6))
    options = {
        "go_backwards": draw(st.booleans()),
        "zero_output_for_mask": draw(st.booleans()),
        "use_bias": draw(st.booleans()),
    }
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    mask = None
    if draw(st.booleans()):
        bits = draw(st.lists(st.booleans(), min_size=batch * timesteps, max_size=batch * timesteps))
        mask = np.array(bits).reshape(batch, timesteps)
    states = None
    if draw(st.booleans()):
        states = [rng.normal(size=(batch, units)) for _ in range(2 if kind == "lstm" else 1)]
    inputs = rng.normal(size=(batch, timesteps, features))
    if mask is not None and draw(st.booleans()):
        inputs[~mask] = np.nan  # what masked steps hold must not matter
    return kind, units, options, dtype, inputs, mask, states, rng


def make_layer(kind, units, options, dtype, features, rng, use_fused):
    cls, defaults, _ = KINDS[kind]
    layer = cls(units, return_sequences=True, return_state=True, dtype=dtype, use_fused=use_fused,
                **defaults, **options)  # fmt: skip
    layer.build((None, None, features))
    return layer


def run(layer, inputs, mask, states, dtype):
    """The layer's outputs and states, and the gradients of a weighted sum of them with respect
    to the inputs, the initial states and every weight."""
    x = torch.tensor(inputs, dtype=dtype, requires_grad=True)
    initial = None
    if states is not None:
        initial = [torch.tensor(s, dtype=dtype, requires_grad=True) for s in states]
    results = layer(x, mask=mask, initial_state=initial)
    generator = torch.Generator().manual_seed(0)
    loss = sum((r * torch.randn(r.shape, generator=generator, dtype=dtype)).sum() for r in results)
    wrt = [x, *(initial or []), *layer.parameters()]
    gradients = torch.autograd.grad(loss, wrt, allow_unused=True)
    return [r.detach() for r in results], gradients


@BOUNDED
@given(problems())
def test_fused_kernels_match_the_reference_and_the_loops_gradients(problem):
    kind, units, options, dtype, inputs, mask, states, rng = problem
    features = inputs.shape[-1]
    fused = make_layer(kind, units, options, dtype, features, rng, use_fused=True)
    weights = [rng.normal(0, 0.5, w.shape) for w in fused.get_weights()]
    fused.set_weights(weights)
    loop = make_layer(kind, units, options, dtype, features, rng, use_fused=False)
    loop.set_weights(weights)
    value_tolerance, gradient_tolerance = TOLERANCES[dtype]

    values, gradients = run(fused, inputs, mask, states, dtype)
    ref_options = {k: v for k, v in options.items() if k != "use_bias"}
    clean = np.where(mask[..., None], inputs, 0.0) if mask is not None else inputs
    expected = KINDS[kind][2](
        clean, *weights[:2], weights[2] if options["use_bias"] else None,
        mask=mask, initial_state=states, **ref_options,
    )  # fmt: skip
    assert len(values) == len(expected)
    for got, want in zip(values, expected):
        np.testing.assert_allclose(got.double().numpy(), want, atol=value_tolerance, rtol=0)

    _, loop_gradients = run(loop, inputs, mask, states, dtype)
    for got, want in zip(gradients, loop_gradients):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=gradient_tolerance, rtol=0)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_without_autograd_what_masked_steps_hold_does_not_matter(
    kind, go_backwards, zero_output_for_mask, bad
):
    """Without a backward pass to come the inputs go to the kernel as they are (no zeroing
    pass): its forward pass alone must keep NaN and inf at padded steps out of every result."""
    rng = np.random.default_rng(0)
    options = {"go_backwards": go_backwards, "zero_output_for_mask": zero_output_for_mask,
               "use_bias": True}  # fmt: skip
    layer = make_layer(kind, 5, options, torch.float32, 3, rng, use_fused=True)
    layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    mask = rng.random((4, 7)) < 0.6
    mask[:, 0] = False  # padded steps first too (the first real step then starts from zeros)
    clean = np.where(mask[..., None], rng.normal(size=(4, 7, 3)), 0.0)
    dirty = np.where(mask[..., None], clean, bad)
    with torch.no_grad():
        expected = layer(torch.tensor(clean, dtype=torch.float32), mask=mask)
        got = layer(torch.tensor(dirty, dtype=torch.float32), mask=mask)
    for got_tensor, want in zip(got, expected):
        assert torch.isfinite(got_tensor).all()
        torch.testing.assert_close(got_tensor, want, atol=0, rtol=0)
