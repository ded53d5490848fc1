"""A recurrent layer's small-call path: what an inference call costs beyond its arithmetic,
paid once.

A one-step call at batch 1 (streaming, text generation) does a few microseconds of arithmetic,
and the layer's general call path around it (checking the input, describing the cell as a
`CellSpec`, choosing the kernel, packing every option and array for the compiled kernel) cost
several times that on every call. A `SmallCall` keeps what depends only on the weights and the
configuration, prepared by one call that went the general way, and reruns it while nothing it
depends on has changed:

- the weights, which the kernel packed (copied) once: each one's address, version counter
  (bumped by in-place changes such as `set_weights`, `load_weights` and optimizer steps),
  dtype, device and `requires_grad`; a weight replaced, moved or cast (`.to()`) has a new
  address. A `SmallCall` keeps the weights it packed referenced, so their addresses cannot be
  reused by new weights while it lives. Writes through a weight's `.data`, which torch does
  not count in its version, are not seen (as autograd does not see them);
- the call: the input's shape, dtype and device (a new batch size goes the general way, which
  checks it), the training mode, no initial state or dropout, and no autograd graph; a mask
  exactly where the preparing call had one, given anew each call as a contiguous CPU tensor of
  bools of the prepared `(batch, timesteps)` (other forms go the general way, which checks and
  converts them): a model whose Embedding masks padding (`mask_zero=True`) predicts batch
  after batch this way;
- the states: the carried states of a stateful layer (or zeros) of the prepared shape and dtype.

Anything else goes the general way, which checks everything and prepares a new `SmallCall`
where the call qualifies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from rnnkit.kernels.select import PreparedCall
from rnnkit.kernels.spec import Recurrence


def _weights_key(weights: Iterable[torch.Tensor | None]) -> list[Any]:
    # A cell without a bias registers it as None (torch.nn's convention for `bias=False`).
    return [
        None
        if weight is None
        else (weight.data_ptr(), weight._version, weight.dtype, weight.device, weight.requires_grad)
        for weight in weights
    ]


def _packed_tensors(recurrence: Recurrence) -> list[torch.Tensor]:
    spec = recurrence.cell
    tensors = [spec.kernel, spec.recurrent_kernel, spec.input_bias, spec.recurrent_bias]
    return [tensor for tensor in tensors if tensor is not None]


def qualifies(
    recurrence: Recurrence, inputs: torch.Tensor, states: list[torch.Tensor], initial_state: Any
) -> bool:
    """Whether a call that went the general way may be prepared as a `SmallCall` (where its
    kernel has a prepared form: `rnnkit.kernels.select.prepare_inference`).

    Args:
        recurrence: the call's recurrence.
        inputs: its checked inputs `(batch, timesteps, features)`.
        states: its initial states, `(batch, units)` each.
        initial_state: the call's `initial_state` argument (prepared calls have none).
    """
    needs_graph = torch.is_grad_enabled() and (
        inputs.requires_grad or any(w.requires_grad for w in _packed_tensors(recurrence))
    )
    return (
        initial_state is None
        and (recurrence.mask is None or recurrence.mask.is_contiguous())
        and recurrence.dropout_masks is None
        and not needs_graph
        and inputs.dtype == recurrence.cell.dtype
        and inputs.is_contiguous()
        and all(state.dtype == inputs.dtype and state.is_contiguous() for state in states)
        # Weights are watched by address: a copy made for the kernel could change unseen.
        and all(tensor.is_contiguous() for tensor in _packed_tensors(recurrence))
    )


class SmallCall:
    """One inference call of a layer, prepared by a call that went the general way.

    Args:
        run: the prepared kernel call (`rnnkit.kernels.select.prepare_inference`).
        layer: the recurrent layer (its cell's weights are watched).
        recurrence: the preparing call's recurrence (see `qualifies`).
        inputs: the preparing call's inputs.
        states: the preparing call's initial states.
        training: the preparing call's training mode.
    """

    def __init__(
        self,
        run: PreparedCall,
        layer: torch.nn.Module,
        recurrence: Recurrence,
        inputs: torch.Tensor,
        states: list[torch.Tensor],
        training: bool,
    ) -> None:
        self._run = run
        self._weights = layer.cell._parameters
        self._weights_key = _weights_key(self._weights.values())
        self._shape = inputs.shape
        self.dtype = inputs.dtype
        self._state_shape = states[0].shape
        self._zero_states = [torch.zeros_like(state) for state in states]
        self._training = training
        self._weights_need_grad = any(w.requires_grad for w in _packed_tensors(recurrence))
        self._masked = recurrence.mask is not None
        self.return_sequences = recurrence.return_sequences

    def takes(self, inputs: Any) -> bool:
        """Whether `inputs` need no conversion: a CPU tensor of the weights' dtype."""
        return (
            isinstance(inputs, torch.Tensor)
            and inputs.dtype == self.dtype
            and inputs.device.type == "cpu"
        )

    def states(self, carried: list[torch.Tensor] | None, stateful: bool) -> list[torch.Tensor]:
        """The initial states of a call: the carried ones if stateful, else zeros."""
        return carried if stateful and carried is not None else self._zero_states

    def accepts(
        self, inputs: Any, states: list[torch.Tensor], training: bool, mask: Any = None
    ) -> bool:
        """Whether the prepared call computes this call: the same input shape and dtype,
        training mode and weights, states of the prepared shape, a mask where the preparing
        call had one (a contiguous CPU bool tensor of the prepared shape), and no autograd
        graph."""
        if not (
            self.takes(inputs)
            and inputs.shape == self._shape
            and inputs.is_contiguous()
            and training == self._training
            and not (torch.is_grad_enabled() and (inputs.requires_grad or self._weights_need_grad))
        ):
            return False
        if self._masked != (mask is not None) or (self._masked and not self._takes_mask(mask)):
            return False
        for state in states:
            if not (
                state.shape == self._state_shape
                and state.dtype == self.dtype
                and state.device.type == "cpu"
                and state.is_contiguous()
            ):
                return False
        return _weights_key(self._weights.values()) == self._weights_key

    def _takes_mask(self, mask: Any) -> bool:
        return (
            isinstance(mask, torch.Tensor)
            and mask.dtype == torch.bool
            and mask.shape == self._shape[:2]
            and mask.device.type == "cpu"
            and mask.is_contiguous()
        )

    def __call__(
        self, inputs: torch.Tensor, states: list[torch.Tensor], mask: torch.Tensor | None = None
    ) -> Any:
        """Runs the prepared call: `(outputs or None, last_output, final_states)`."""
        return self._run(inputs, states, mask)
