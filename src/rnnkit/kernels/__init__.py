"""Kernels: ways to run a known cell over a whole sequence (see `select`)."""

from rnnkit.kernels.loop import run_loop
from rnnkit.kernels.select import select

__all__ = ["run_loop", "select"]
