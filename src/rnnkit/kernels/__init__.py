"""Kernels: ways to run a known cell over a whole sequence (see `select`)."""

# The kernels still read the cell classes (`rnnkit.layers.cells`), and the layers import
# `select`: loading the layers first keeps `import rnnkit.kernels...` working as a first import
# (the package no longer imports everything up front). Goes once the kernels take specs.
import rnnkit.layers  # noqa: F401  isort: skip
from rnnkit.kernels.loop import run_loop
from rnnkit.kernels.select import select

__all__ = ["run_loop", "select"]
