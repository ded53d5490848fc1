"""A fused inference call packed once and rerun: what a layer's small-call path
(`rnnkit.layers.small_call`) and a model's step plan (`rnnkit.models.step_plan`) run.

`InferenceCall` packs a call's options and weights for the compiled forward pass once
(`cpu.PreparedForward`); each run then sets only the arrays that change — the inputs, the
initial states, the mask and the outputs — so a one-step call of a stateful layer, or a masked
call of the same shape as the last one, skips the general path's checks, kernel choice and
packing. It runs the same compiled forward pass on the same arrays as `fused.run_fused`, so its
results are the same.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnkit.kernels import buffers, cpu
from rnnkit.kernels.fused import forward_arrays, operands
from rnnkit.kernels.spec import CellKind, KernelResult, Recurrence

# What each run gives anew.
_CHANGING = ("inputs", "h0", "c0", "mask", "out", "h_last", "c_last")


class InferenceCall:
    """A fused call without autograd, packed once for one recurrence and input shape and then
    run on new inputs, initial states and (for a masked recurrence) masks.

    The weights are packed once: the caller must prepare a new call when one changes, in place
    or not.

    Args:
        recurrence: the call; its weights contiguous and needing no gradient. With a mask,
            every run takes one; without, none.
        inputs: `(batch, timesteps, features)`, contiguous, of the weights' dtype.
        initial_states: `(batch, units)` each.
    """

    def __init__(
        self, recurrence: Recurrence, inputs: torch.Tensor, initial_states: list[torch.Tensor]
    ) -> None:
        differentiable, others, options = operands(recurrence, inputs, initial_states)
        self._options, arrays = forward_arrays(*differentiable, *others, dict(options, save=False))
        self._prepared = cpu.PreparedForward(self._options, arrays, _CHANGING)
        self._lstm = recurrence.cell.kind == CellKind.LSTM
        self._c0 = None if self._lstm else arrays["c0"]  # zeros: no second state
        # Without a mask every step is real: the kernel reads this one each run.
        self._every_step = None if recurrence.mask is not None else arrays["mask"]
        self._out_shape = tuple(arrays["out"].shape)
        self._return_sequences = recurrence.return_sequences
        self._dtype = inputs.dtype

    def __call__(
        self,
        inputs: torch.Tensor,
        initial_states: list[torch.Tensor],
        mask: torch.Tensor | None = None,
    ) -> KernelResult:
        """Runs the prepared call; `inputs`, `initial_states` and `mask` (`(batch, timesteps)`
        bools, given exactly where the preparing call had one) contiguous, of the prepared
        shapes and dtypes (the caller checks)."""
        h0 = initial_states[0]
        c0 = initial_states[1] if self._lstm else self._c0
        batch, units = h0.shape
        if self._return_sequences:
            out = buffers.numpy_empty(self._out_shape, self._dtype)
            h, c = buffers.numpy_empty((2, batch, units), self._dtype).unbind()
            last_output = out.select(1, -1)
        else:
            # The last output, (batch, 1, units) to the kernel, and the final states: one
            # allocation (a few microseconds less on every one-step call).
            last_output, h, c = buffers.numpy_empty((3, batch, units), self._dtype).unbind()
            out = last_output
        steps = self._every_step if mask is None else mask
        self._prepared.run(dict(zip(_CHANGING, (inputs, h0, c0, steps, out, h, c))))
        states = [h, c] if self._lstm else [h]
        return (out if self._return_sequences else None), last_output, states

    def bind(
        self,
        inputs: torch.Tensor,
        initial_states: list[torch.Tensor],
        last_output: torch.Tensor,
        final_states: list[torch.Tensor],
    ) -> Callable[[], None]:
        """The call with its arrays fixed: each run reads `inputs` and `initial_states` and
        writes `last_output` and `final_states`, whatever they hold then (one thread; see
        `cpu.PreparedForward.bind`). For a call prepared without `return_sequences` or a mask.

        Args:
            inputs: `(batch, timesteps, features)` of the prepared shape and dtype.
            initial_states: `(batch, units)` each, one per state of the cell.
            last_output: `(batch, units)`.
            final_states: as `initial_states`, other arrays (the kernel reads the one while
                writing the other).

        All contiguous, of the prepared dtype.
        """
        if self._return_sequences or self._every_step is None:
            raise ValueError("internal: only a call without return_sequences or mask is bound")
        h0, h = initial_states[0], final_states[0]
        c0 = initial_states[1] if self._lstm else self._c0
        c = final_states[1] if self._lstm else torch.empty_like(h)  # written, never read
        arrays = (inputs, h0, c0, self._every_step, last_output, h, c)
        return self._prepared.bind(dict(zip(_CHANGING, arrays)))
