"""Kernels take a `Recurrence` (a cell's spec and a call's flags); these build one from a cell,
as a recurrent layer does, for the tests that call kernels directly."""

from __future__ import annotations

from rnnkit.kernels.spec import CellSpec, Recurrence


def recurrence_of(cell, **flags):
    """The `Recurrence` of `cell` (its own spec, or only itself) with the call's `flags`."""
    describe = getattr(cell, "spec", None)
    return Recurrence(describe() if describe is not None else CellSpec(cell), **flags)


def run_on_cell(kernel, cell, inputs, initial_states, **flags):
    """`kernel` run over `inputs` for `cell` with the call's `flags` (`Recurrence`'s fields)."""
    return kernel(recurrence_of(cell, **flags), inputs, initial_states)
