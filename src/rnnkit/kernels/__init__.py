"""Kernels: ways to run a known cell over a whole sequence, from a `Recurrence` (see `select`)."""

from rnnkit.kernels.loop import run_loop
from rnnkit.kernels.select import select
from rnnkit.kernels.spec import CellKind, CellSpec, DropoutMasks, Recurrence

__all__ = ["CellKind", "CellSpec", "DropoutMasks", "Recurrence", "run_loop", "select"]
