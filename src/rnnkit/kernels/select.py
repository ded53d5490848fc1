"""Which kernel runs a recurrent layer's call.

`select` is the one seam between the layers and the kernels: the layer describes the call as a
`Recurrence` (its cell's spec and the call's flags) and gets back a `Kernel`, called as
`kernel(recurrence, inputs, initial_states)`.

- On a CUDA device, cuDNN (through torch's recurrent operators, `rnnkit.kernels.torch_ops`)
  runs every call whose recurrence it computes exactly (tanh/relu SimpleRNN, tanh/sigmoid LSTM
  and GRU with `reset_after=True`, no mask, no recurrent dropout); the Triton kernels
  (`rnnkit.kernels.gpu`) run the rest where `gpu.blocker` finds nothing that blocks them. Until
  the Triton kernels are measured against cuDNN on a GPU, this order keeps `"auto"` from ever
  picking a path slower than cuDNN for a call cuDNN can run.
- Elsewhere the fused CPU kernel runs when `fused.blocker` finds nothing.
- Otherwise `"auto"` falls back to the plain loop quietly and `True` raises an error that
  names what blocks the fused paths.

`select_folded` is the same choice for a call whose inputs are ids into a table of input
products (an Embedding folded into the layer, `rnnkit.kernels.folded`): the folded CPU kernel,
or None, and the caller runs the Embedding and the layer apart.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnkit.kernels import folded, fused, torch_ops
from rnnkit.kernels.inference_call import InferenceCall
from rnnkit.kernels.loop import run_loop
from rnnkit.kernels.spec import Kernel, KernelResult, Recurrence

# A call prepared once and run again on new inputs, initial states and masks (where the
# preparing call had one) of the same shapes: `run(inputs, initial_states, mask)`.
PreparedCall = Callable[[torch.Tensor, list[torch.Tensor], torch.Tensor | None], KernelResult]
# A kernel on folded inputs: `kernel(recurrence, ids, table, initial_states)`.
FoldedKernel = Callable[[Recurrence, torch.Tensor, torch.Tensor, list[torch.Tensor]], KernelResult]


def check_use_fused(owner: str, use_fused: object) -> None:
    """Raises a ValueError unless `use_fused` is "auto", True or False."""
    if not (isinstance(use_fused, bool) or use_fused == "auto"):
        raise ValueError(
            f"{owner}: argument `use_fused` must be 'auto', True or False, received {use_fused!r}."
        )


def select(recurrence: Recurrence, inputs: torch.Tensor, *, use_fused: str | bool) -> Kernel:
    """The kernel for `recurrence` over `inputs`: a fused one for their device where it can run
    and is wanted, else the loop.

    Raises:
        ValueError: with `use_fused=True`, when no fused kernel can run the call.
    """
    if use_fused is False:
        return run_loop
    if inputs.device.type == "cuda":
        cudnn_blocker = torch_ops.blocker(recurrence, inputs)
        if cudnn_blocker is None:
            return torch_ops.run_torch
        from rnnkit.kernels import gpu  # imports Triton: only where it can be used

        reason = gpu.blocker(recurrence, inputs)
        if reason is None:
            return gpu.run_gpu
        path = f"cuDNN cannot run it ({cudnn_blocker}) and the Triton GPU kernels cannot run"
    else:
        reason = fused.blocker(recurrence)
        if reason is None:
            return fused.run_fused
        path = "the fused CPU kernel cannot run"
    if use_fused is True:
        raise ValueError(f"use_fused=True, but {path}: {reason}.")
    return run_loop


def prepare_inference(
    kernel: Kernel, recurrence: Recurrence, inputs: torch.Tensor, states: list[torch.Tensor]
) -> PreparedCall | None:
    """`kernel`'s call of `recurrence` without autograd, packed once to be rerun on new inputs,
    initial states and masks of the same shapes and dtype (see `rnnkit.layers.small_call`),
    where the kernel has such a form (the fused CPU kernel); else None.

    Args:
        kernel: what `select` chose for the call.
        recurrence: the call; its weights contiguous and needing no gradient; its mask (if
            any) contiguous, a CPU bool tensor.
        inputs: `(batch, timesteps, features)`, contiguous, of the weights' dtype.
        states: the initial states, `(batch, units)` each.
    """
    if kernel is not fused.run_fused:
        return None
    return InferenceCall(recurrence, inputs, states)


def select_folded(
    recurrence: Recurrence, ids: torch.Tensor, *, use_fused: str | bool
) -> FoldedKernel | None:
    """The kernel for `recurrence` on `ids` into a table of input products where one can run
    it and the fused path is wanted (`use_fused` not False), else None.

    Args:
        recurrence: the call (its dropout masks as the call will draw them).
        ids: `(batch, timesteps)` integer ids.
        use_fused: the recurrent layer's `use_fused`.
    """
    if use_fused is False or folded.blocker(recurrence, ids) is not None:
        return None
    return folded.run_folded
