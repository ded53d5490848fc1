"""Which kernel runs a recurrent layer's sequence.

`select` is the one seam between the layers and the kernels: the layer names its cell and its
`use_fused` choice, and gets back a function with `run_loop`'s signature. The fused CPU kernel
runs when `fused.supports(cell)` finds nothing that blocks it; otherwise `"auto"` falls back to
the generic loop quietly and `True` raises an error that names what blocks it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rnnkit.kernels import fused
from rnnkit.kernels.loop import run_loop


def check_use_fused(owner: str, use_fused: object) -> None:
    """Raises a ValueError unless `use_fused` is "auto", True or False."""
    if not (isinstance(use_fused, bool) or use_fused == "auto"):
        raise ValueError(
            f"{owner}: argument `use_fused` must be 'auto', True or False, received {use_fused!r}."
        )


def select(cell: nn.Module, *, use_fused: str | bool) -> Callable:
    """The kernel for `cell`: the fused one where it can run and is wanted, else the loop.

    Raises:
        ValueError: with `use_fused=True`, when the fused kernel cannot run `cell`.
    """
    if use_fused is False:
        return run_loop
    blocker = fused.supports(cell)
    if blocker is None:
        return fused.run_fused
    if use_fused is True:
        raise ValueError(f"use_fused=True, but the fused CPU kernel cannot run: {blocker}.")
    return run_loop
