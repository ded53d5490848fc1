"""`InferenceCall` (rnnkit.kernels.inference_call): a fused inference call packed once and rerun
computes, run after run, exactly what `fused.run_fused` computes on the same arrays, masked or
not; a bound run reads and writes its buffers at each run."""

from __future__ import annotations

import pytest
import torch

from rnnkit.kernels import fused
from rnnkit.kernels.inference_call import InferenceCall
from rnnkit.kernels.spec import Recurrence
from rnnkit.layers import GRU, LSTM, SimpleRNN

KINDS = {
    "simple_rnn": (SimpleRNN, {}),
    "lstm": (LSTM, {}),
    "gru_reset_after": (GRU, {"reset_after": True}),
    "gru_reset_before": (GRU, {"reset_after": False}),
}
BATCH, TIMESTEPS, FEATURES, UNITS = 3, 6, 4, 5


def built_layer(kind, dtype, **options):
    torch.manual_seed(0)
    layer_class, kind_options = KINDS[kind]
    layer = layer_class(UNITS, **kind_options, **options)
    layer(torch.zeros(2, 3, FEATURES))
    return layer.to(dtype)


def padding_masks(generator):
    """Masks of every padding pattern: right and left padding, gaps, a row without a real
    step."""
    yield torch.arange(TIMESTEPS)[None, :] < torch.tensor([[6], [3], [1]])
    yield torch.arange(TIMESTEPS)[None, :] >= torch.tensor([[0], [2], [5]])
    mask = torch.rand(BATCH, TIMESTEPS, generator=generator) > 0.4
    mask[1] = False
    yield mask


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("options", [{}, {"go_backwards": True, "zero_output_for_mask": True}])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_a_masked_call_reruns_on_new_masks_as_the_general_path_computes(
    kind, options, return_sequences
):
    layer = built_layer(kind, torch.float32)
    generator = torch.Generator().manual_seed(1)
    masks = list(padding_masks(generator))

    def recurrence(mask):
        return Recurrence(
            layer.cell_spec(), mask=mask, return_sequences=return_sequences, **options
        )

    inputs = torch.randn(BATCH, TIMESTEPS, FEATURES, generator=generator)
    states = [torch.zeros(BATCH, UNITS) for _ in range(2 if kind == "lstm" else 1)]
    with torch.no_grad():
        call = InferenceCall(recurrence(masks[0]), inputs, states)
        for mask in masks:  # new values in new arrays each time
            inputs = torch.randn(BATCH, TIMESTEPS, FEATURES, generator=generator)
            states = [torch.randn(BATCH, UNITS, generator=generator) for _ in states]
            got = call(inputs, states, mask)
            expected = fused.run_fused(recurrence(mask), inputs, states)
            for mine, theirs in zip(got[:2], expected[:2]):
                if theirs is not None:
                    torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
            for mine, theirs in zip(got[2], expected[2]):
                torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_bound_inference_call_reads_and_writes_its_buffers_at_each_run(kind, dtype):
    """`InferenceCall.bind`: each run reads what the input and state buffers hold then, and
    writes the output and final states, as `run_fused` computes them."""
    layer = built_layer(kind, dtype)
    recurrence = Recurrence(layer.cell_spec(), return_sequences=False)
    count = 2 if kind == "lstm" else 1
    inputs = torch.zeros(2, 3, FEATURES, dtype=dtype)
    states = [torch.zeros(2, UNITS, dtype=dtype) for _ in range(count)]
    output, final = (
        torch.zeros(2, UNITS, dtype=dtype),
        [torch.zeros(2, UNITS, dtype=dtype) for _ in range(count)],
    )
    with torch.no_grad():
        run = InferenceCall(recurrence, inputs, states).bind(inputs, states, output, final)
        for _ in range(2):  # new values in the same buffers each time
            inputs.copy_(torch.randn(2, 3, FEATURES, dtype=dtype))
            for state in states:
                state.copy_(torch.randn(2, UNITS, dtype=dtype))
            _, expected_output, expected_states = fused.run_fused(recurrence, inputs, states)
            run()
            torch.testing.assert_close(output, expected_output, rtol=0, atol=0)
            for got, expected in zip(final, expected_states):
                torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_masked_call_is_not_bound():
    layer = built_layer("lstm", torch.float32)
    mask = torch.ones(2, 3, dtype=torch.bool)
    recurrence = Recurrence(layer.cell_spec(), mask=mask, return_sequences=False)
    inputs, states = torch.zeros(2, 3, FEATURES), [torch.zeros(2, UNITS), torch.zeros(2, UNITS)]
    with torch.no_grad():
        call = InferenceCall(recurrence, inputs, states)
        with pytest.raises(ValueError, match="without return_sequences or mask"):
            call.bind(inputs, states, torch.zeros(2, UNITS), [torch.zeros(2, UNITS)] * 2)
