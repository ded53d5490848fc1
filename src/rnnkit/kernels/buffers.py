"""Buffers for the fused kernels: NumPy-backed tensors, and a pool that reuses them, so that
what one training step saves for its backward pass (tens of MB at the chapter's sizes) serves
the next step instead of being allocated afresh.

Fresh memory costs more than its size suggests: the kernel must fault in and zero every page on
first touch, which took longer than the recurrence's own writes to it. Buffers come from NumPy
(which asks Linux for transparent huge pages on large allocations, making first touch a few
times cheaper than `torch.empty`'s pages) and go back to the pool by themselves: a buffer is free
again once nothing but the pool refers to it — no tensor made from it is alive (autograd drops
what a backward pass saved when the pass is done, and keeps it with `retain_graph=True`).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
# The pool keeps at most this many bytes of buffers that are not in use.
IDLE_LIMIT_BYTES = 1 << 30


def numpy_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised float32 or float64 tensor on NumPy's memory (huge pages; see above)."""
    return torch.from_numpy(np.empty(shape, dtype=_NUMPY_DTYPES[dtype]))


class BufferPool:
    """Hands out NumPy-backed tensors, reusing those no longer referenced anywhere else."""

    def __init__(self, idle_limit_bytes: int = IDLE_LIMIT_BYTES) -> None:
        self._arrays: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.idle_limit_bytes = idle_limit_bytes

    @staticmethod
    def _is_idle(array: np.ndarray) -> bool:
        """Whether only the pool refers to `array`, called from a loop over the pool's list:
        the list, the loop variable, this parameter and getrefcount's argument."""
        return sys.getrefcount(array) <= 4

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor of `shape` and `dtype` (float32 or float64), reused if a
        buffer of that shape is idle."""
        with self._lock:
            array = self._find_idle(tuple(shape), np.dtype(_NUMPY_DTYPES[dtype]))
            if array is None:
                self._trim()
                array = np.empty(shape, dtype=_NUMPY_DTYPES[dtype])
                self._arrays.append(array)  # tensors made from it refer to it
            return torch.from_numpy(array)

    def _find_idle(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        for array in self._arrays:
            if array.shape == shape and array.dtype == dtype and self._is_idle(array):
                return array
        return None

    def _trim(self) -> None:
        """Drops idle buffers, oldest first, until those left fit the idle limit."""
        idle = [array for array in self._arrays if self._is_idle(array)]
        excess = sum(array.nbytes for array in idle) - self.idle_limit_bytes
        dropped = set()
        for array in idle:
            if excess <= 0:
                break
            excess -= array.nbytes
            dropped.add(id(array))
        self._arrays = [array for array in self._arrays if id(array) not in dropped]

    def idle_bytes(self) -> int:
        """The bytes held in buffers that nothing else refers to."""
        with self._lock:
            return sum(array.nbytes for array in self._arrays if self._is_idle(array))


POOL = BufferPool()
