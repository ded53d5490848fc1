"""The generic recurrence: run any cell over time with PyTorch autograd.

This is the plain loop every faster kernel must reproduce. It follows Keras 3's recurrence
(`keras/src/backend/jax/rnn.py`, the `lax.scan` form):

- timesteps are processed first to last, or last to first with `go_backwards`; outputs come back
  in processing order;
- at a masked step every state keeps its previous value and the output repeats the previous
  output (the state that equals the output, starting from the initial state), or is zero with
  `zero_output_for_mask`;
- the last output is the output of the last processed step, after masking;
- with `unroll`, masked steps before the first real one output zeros, as Keras's unrolled
  loop does;
- masked steps are selected away, never multiplied: their inputs are replaced by zeros before
  any product (`zero_masked_steps`), so a NaN or inf there reaches neither the outputs nor the
  gradients (`0 * nan` is nan, so a multiplied mask would let it into `inputs^T @ d_pre`).

Built-in cells (those with `project_inputs` and `step`) have the input projection of all
timesteps done as one matrix product before the loop; any other cell is called step by step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def zero_masked_steps(inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`inputs` (batch, timesteps, features) with the steps where `mask` (batch, timesteps) is
    False replaced by zeros, by selection: every kernel runs on these, so whatever a padded
    step held (NaN, inf) never enters a product. The gradient at those steps stays zero."""
    if mask is None:
        return inputs
    return torch.where(mask.unsqueeze(-1), inputs, inputs.new_zeros(()))


def _previous_output(cell: nn.Module, states: list[torch.Tensor], output_size: int):
    """The output a masked first step repeats: the state that equals the output, if any."""
    state = states[getattr(cell, "output_state_index", 0)]
    if state.shape[-1] == output_size:
        return state
    return state.new_zeros(state.shape[0], output_size)


def run_loop(
    cell: nn.Module,
    inputs: torch.Tensor,
    initial_states: list[torch.Tensor],
    *,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    dropout_masks: Any = None,
    return_sequences: bool = True,
    unroll: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor, list[torch.Tensor]]:
    """Runs `cell` over `inputs`.

    Args:
        cell: a built cell: `forward(x_t, states[, dropout_masks]) -> (output, new_states)`.
        inputs: `(batch, timesteps, features)`.
        initial_states: one `(batch, size)` tensor per state.
        mask: `(batch, timesteps)` bool, True for real steps, or None.
        go_backwards: process the timesteps last to first.
        zero_output_for_mask: masked steps output zeros instead of repeating.
        dropout_masks: what `cell.make_dropout_masks` returned, or None.
        return_sequences: whether to stack every output (else only the last is kept).
        unroll: Keras's unrolled loop: masked steps before the first real step output zeros
            (not the initial state), as Keras's JAX backend does with `unroll=True`.

    Returns:
        `(outputs (batch, timesteps, output_size) or None, last_output (batch, output_size),
        final_states)`, outputs in processing order.
    """
    inputs = zero_masked_steps(inputs, mask)
    timesteps = inputs.shape[1]
    order = range(timesteps - 1, -1, -1) if go_backwards else range(timesteps)
    # unbind (not indexing) so that backward stacks the step gradients once, instead of
    # writing each into a zero tensor of the whole sequence's size.
    projected = None
    if hasattr(cell, "project_inputs") and hasattr(cell, "step"):
        input_mask = dropout_masks.inputs if dropout_masks is not None else None
        projected = cell.project_inputs(inputs, input_mask).unbind(1)  # T x (batch, gates*units)
        recurrent_mask = dropout_masks.recurrent if dropout_masks is not None else None
    else:
        steps = inputs.unbind(1)  # T x (batch, features)
    step_masks = mask.unbind(1) if mask is not None else None

    states = list(initial_states)
    previous = None
    outputs: list[torch.Tensor] = []
    for t in order:
        if projected is not None:
            output, new_states = cell.step(projected[t], states, recurrent_mask)
        elif dropout_masks is not None:
            output, new_states = cell(steps[t], states, dropout_masks)
        else:
            output, new_states = cell(steps[t], states)
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        if step_masks is not None:
            keep = step_masks[t].unsqueeze(-1)  # (batch, 1)
            if zero_output_for_mask:
                output = torch.where(keep, output, torch.zeros_like(output))
            else:
                if previous is None:
                    previous = _previous_output(cell, states, output.shape[-1])
                    if unroll:
                        previous = torch.zeros_like(previous)
                output = torch.where(keep, output, previous)
                previous = output
            new_states = [torch.where(keep, new, old) for new, old in zip(new_states, states)]
        states = new_states
        if return_sequences or not outputs:
            outputs.append(output)
        else:
            outputs[0] = output
    last_output = outputs[-1]
    stacked = torch.stack(outputs, dim=1) if return_sequences else None
    return stacked, last_output, states
