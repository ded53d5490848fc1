"""Which kernel runs a recurrent layer's sequence.

`select` is the one seam between the layers and the kernels: the layer describes the call, and
gets back a function with `run_loop`'s signature. Only the generic loop exists in this version,
so `use_fused="auto"` and `False` run the loop and `use_fused=True` raises an error that says why.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rnnkit.kernels.loop import run_loop


def check_use_fused(owner: str, use_fused: object) -> None:
    """Raises a ValueError unless `use_fused` is "auto", True or False."""
    if not (isinstance(use_fused, bool) or use_fused == "auto"):
        raise ValueError(
            f"{owner}: argument `use_fused` must be 'auto', True or False, received {use_fused!r}."
        )


def select(cell: nn.Module, *, use_fused: str | bool) -> Callable:
    """The kernel for `cell`.

    Raises:
        ValueError: with `use_fused=True`, when no fused kernel can run the configuration.
    """
    if use_fused is True:
        raise ValueError(
            f"use_fused=True: no fused kernel can run {type(cell).__name__} in this version of "
            "rnnkit (only the generic loop is available); use use_fused='auto' or False."
        )
    return run_loop
