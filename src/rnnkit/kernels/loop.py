"""The generic recurrence: run any cell over time with PyTorch autograd.

This is the plain loop every faster kernel must reproduce, and the readable definition of what
they compute. It follows Keras 3's recurrence (`keras/src/backend/jax/rnn.py`, the `lax.scan`
form). The rules, named so that each kernel's docstring can say which it reproduces and how:

- (projection) a built-in cell (one with `project_inputs` and `step`) has the input product of
  every timestep done at once, input dropout included; any other cell is called step by step;
- (order) timesteps are processed first to last, or last to first with `go_backwards`; outputs
  come back in processing order;
- (step) each step is the cell's own `step`, recurrent dropout on h_{t-1} inside it;
- (mask) at a masked step every state keeps its previous value and the output repeats the
  previous output (the state that equals the output, starting from the initial state), or is
  zero with `zero_output_for_mask`;
- (unroll) with `unroll`, masked steps before the first real one output zeros, as Keras's
  unrolled loop does;
- (select) masked steps are selected away, never multiplied: their inputs are replaced by zeros
  before any product (`zero_masked_steps`), so a NaN or inf there reaches neither the outputs
  nor the gradients (`0 * nan` is nan: a multiplied mask would let it into `inputs^T @ d_pre`);
- (last) the last output is the output of the last processed step, after masking; without
  `return_sequences` only it is kept.
"""

from __future__ import annotations

import torch

from rnnkit.kernels.spec import KernelResult, Recurrence, StepCell


def zero_masked_steps(inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`inputs` (batch, timesteps, features) with the steps where `mask` (batch, timesteps) is
    False replaced by zeros, by selection: every kernel runs on these, so whatever a padded
    step held (NaN, inf) never enters a product. The gradient at those steps stays zero."""
    if mask is None:
        return inputs
    return torch.where(mask.unsqueeze(-1), inputs, inputs.new_zeros(()))


def zero_nonfinite_masked_steps(inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`zero_masked_steps(inputs, mask)` where a masked step holds a NaN or inf, else `inputs`
    itself. For kernels whose outputs select masked steps away and whose backward pass gives a
    masked step zero gradients (the fused CPU kernels): there only a non-finite value at a
    masked step would reach a weight's gradient (`0 * nan`), and reading the masked steps alone
    costs a fraction of writing every step anew (a SimpleRNN training step at the chapter's
    shape spent a tenth of its time on that)."""
    if mask is None:
        return inputs
    with torch.no_grad():
        masked_rows = (~mask).reshape(-1).nonzero().squeeze(1)
        held = inputs.flatten(0, 1).index_select(0, masked_rows)
        if bool(torch.isfinite(held.sum())):  # a NaN or inf anywhere makes the sum one
            return inputs
    return zero_masked_steps(inputs, mask)


def _previous_output(cell: StepCell, states: list[torch.Tensor], output_size: int):
    """The output a masked first step repeats: the state that equals the output, if any."""
    state = states[getattr(cell, "output_state_index", 0)]
    if state.shape[-1] == output_size:
        return state
    return state.new_zeros(state.shape[0], output_size)


def run_loop(
    recurrence: Recurrence, inputs: torch.Tensor, initial_states: list[torch.Tensor]
) -> KernelResult:
    """Runs the recurrence's cell over `inputs`, one step at a time.

    Args:
        recurrence: the cell (any `StepCell`) and the call's flags.
        inputs: `(batch, timesteps, features)`.
        initial_states: one `(batch, size)` tensor per state.

    Returns:
        `(outputs (batch, timesteps, output_size) or None without return_sequences,
        last_output (batch, output_size), final_states)`, outputs in processing order.
    """
    cell = recurrence.cell.cell
    mask, dropout_masks = recurrence.mask, recurrence.dropout_masks
    inputs = zero_masked_steps(inputs, mask)
    return_sequences = recurrence.return_sequences
    timesteps = inputs.shape[1]
    order = range(timesteps - 1, -1, -1) if recurrence.go_backwards else range(timesteps)
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
            real = step_masks[t].unsqueeze(-1)  # (batch, 1)
            if recurrence.zero_output_for_mask:
                output = torch.where(real, output, torch.zeros_like(output))
            else:
                if previous is None:
                    previous = _previous_output(cell, states, output.shape[-1])
                    if recurrence.unroll:
                        previous = torch.zeros_like(previous)
                output = torch.where(real, output, previous)
                previous = output
            new_states = [torch.where(real, new, old) for new, old in zip(new_states, states)]
        states = new_states
        if return_sequences or not outputs:
            outputs.append(output)
        else:
            outputs[0] = output
    last_output = outputs[-1]
    stacked = torch.stack(outputs, dim=1) if return_sequences else None
    return stacked, last_output, states
