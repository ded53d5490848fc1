"""What the kernels do with masked steps' inputs (`rnnkit.kernels.loop`): the fused CPU path's
selection runs only where a masked step holds a NaN or inf."""

from __future__ import annotations

import pytest
import torch

from rnnkit.kernels.loop import zero_masked_steps, zero_nonfinite_masked_steps


def padded_inputs():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 6, 3, generator=generator)
    mask = torch.arange(6) < torch.tensor([6, 4, 1, 3])[:, None]  # right-padded
    return inputs, mask


def test_finite_masked_steps_are_passed_as_they_are():
    inputs, mask = padded_inputs()
    assert zero_nonfinite_masked_steps(inputs, mask) is inputs
    assert zero_nonfinite_masked_steps(inputs, None) is inputs


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 3e38])
def test_a_masked_step_holding_a_nonfinite_value_is_zeroed_with_the_others(value):
    """3e38 is finite, but the masked steps' sum overflows: selecting then is merely unneeded."""
    inputs, mask = padded_inputs()
    inputs[1, 5, 2] = value
    inputs[2, 3, 0] = value
    got = zero_nonfinite_masked_steps(inputs, mask)
    assert got is not inputs
    assert torch.equal(got, zero_masked_steps(inputs, mask))
    assert torch.equal(got[mask], inputs[mask])


def test_a_nonfinite_value_at_a_real_step_is_left_to_the_kernels():
    inputs, mask = padded_inputs()
    inputs[0, 2, 1] = float("nan")  # the mask keeps step 2 of row 0
    assert zero_nonfinite_masked_steps(inputs, mask) is inputs


def test_inputs_with_any_strides_are_checked():
    inputs, mask = padded_inputs()
    inputs = inputs.transpose(0, 1).contiguous().transpose(0, 1)  # not contiguous
    inputs[3, 4, 1] = float("nan")
    assert torch.equal(zero_nonfinite_masked_steps(inputs, mask), zero_masked_steps(inputs, mask))
