"""`PyDataset`: Keras 3's base class for data that arrives as a sequence of whole batches.

Subclass it, define `__len__` (the number of batches) and `__getitem__(index)` returning one
batch — `x`, `(x, y)` or `(x, y, sample_weight)`, as NumPy arrays or torch tensors — and hand
an instance to `fit`, `evaluate` or `predict`, as with `keras.utils.PyDataset`. NumPy only: no
model or torch needed to define one.

Example:
    >>> import numpy as np
    >>> class Squares(PyDataset):
    ...     def __len__(self):
    ...         return 3
    ...     def __getitem__(self, index):
    ...         x = np.arange(4, dtype="float32")[:, None] + 4 * index  # (4, 1)
    ...         return x, x**2
    >>> len(Squares()), Squares()[1][0].shape
    (3, (4, 1))
"""

from __future__ import annotations

from typing import Any


class PyDataset:
    """A dataset of whole batches, indexed by batch number (Keras's `keras.utils.PyDataset`).

    Args:
        workers: how many threads may prepare batches ahead of the step (Keras's argument;
            default 1).
        use_multiprocessing: Keras's argument, accepted for compatibility (default False).
        max_queue_size: how many prepared batches may wait (default 10).
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index: int) -> Any:
        """Returns batch `index`: `x`, `(x, y)` or `(x, y, sample_weight)`."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self) -> int:
        """Returns the number of batches in one epoch."""
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")

    @property
    def num_batches(self) -> int | None:
        """The number of batches in one epoch (`len(self)`), or None when it is unknown."""
        try:
            return len(self)
        except NotImplementedError:
            return None

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch of `fit`."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch of `fit` (e.g. to reshuffle)."""
