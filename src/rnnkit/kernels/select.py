"""Which kernel runs a recurrent layer's sequence.

`select` is the one seam between the layers and the kernels: the layer names its cell, its
inputs and its `use_fused` choice, and gets back a function with `run_loop`'s signature. On a
CUDA device the Triton kernels (`rnnkit.kernels.gpu`) run when `gpu.supports` finds nothing that
blocks them; elsewhere the fused CPU kernel runs when `fused.supports(cell)` finds nothing.
Otherwise `"auto"` falls back to the generic loop quietly and `True` raises an error that names
what blocks the fused path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rnnkit.kernels import fused
from rnnkit.kernels.loop import run_loop


def check_use_fused(owner: str, use_fused: object) -> None:
    """Raises a ValueError unless `use_fused` is "auto", True or False."""
    if not (isinstance(use_fused, bool) or use_fused == "auto"):
        raise ValueError(
            f"{owner}: argument `use_fused` must be 'auto', True or False, received {use_fused!r}."
        )


def select(cell: nn.Module, inputs: torch.Tensor, *, use_fused: str | bool) -> Callable:
    """The kernel for `cell` over `inputs`: the fused one for their device where it can run and
    is wanted, else the loop.

    Raises:
        ValueError: with `use_fused=True`, when the fused kernel cannot run `cell`.
    """
    if use_fused is False:
        return run_loop
    if inputs.device.type == "cuda":
        from rnnkit.kernels import gpu  # imports Triton: only where it can be used

        blocker = gpu.supports(cell, inputs)
        if blocker is None:
            return gpu.run_gpu
        path = "the Triton GPU kernels cannot run"
    else:
        blocker = fused.supports(cell)
        if blocker is None:
            return fused.run_fused
        path = "the fused CPU kernel cannot run"
    if use_fused is True:
        raise ValueError(f"use_fused=True, but {path}: {blocker}.")
    return run_loop
