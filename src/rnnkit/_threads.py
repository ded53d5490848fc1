"""PyTorch's thread count changed for a block and restored after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Runs the block on one torch thread, then restores the thread count (after an error
    too). The count is the process's: other Python threads running torch meanwhile run on one
    thread as well."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
