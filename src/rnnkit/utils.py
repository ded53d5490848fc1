"""Utilities with `keras.utils`'s names: `rk.utils.timeseries_dataset_from_array(...)`.

- `timeseries_dataset_from_array`: sliding windows over a series, cut lazily per batch.
- `PyDataset`: the base class for data that arrives as whole batches.
- `set_random_seed`: seeds Python's, NumPy's and torch's generators at once.
- `to_categorical`: class indices to one-hot rows.
- `pad_sequences`: variable-length sequences to one rectangular array.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from rnnkit.data.categorical import to_categorical
from rnnkit.data.py_dataset import PyDataset
from rnnkit.data.sequences import pad_sequences
from rnnkit.data.timeseries import TimeseriesDataset, timeseries_dataset_from_array

__all__ = [
    "PyDataset",
    "TimeseriesDataset",
    "pad_sequences",
    "set_random_seed",
    "timeseries_dataset_from_array",
    "to_categorical",
]


def set_random_seed(seed: int) -> None:
    """Seeds Python's `random`, NumPy's global generator and torch's, as Keras's does.

    What `keras.utils.set_random_seed` does on its torch backend: `random.seed(seed)`,
    `np.random.seed(seed)`, `torch.manual_seed(seed)` (which also seeds every CUDA device).
    Initializers, dropout masks, `fit`'s shuffling and `timeseries_dataset_from_array`'s
    default seed all draw from these, so a program becomes repeatable.

    Args:
        seed: the seed, an int (NumPy needs it in `[0, 2**32)`).

    Raises:
        ValueError: `seed` not an int (Keras's error), or outside `[0, 2**32)`.

    Example:
        >>> set_random_seed(7)
        >>> first = np.random.rand()
        >>> set_random_seed(7)
        >>> bool(np.random.rand() == first)
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(
            "Expected `seed` argument to be an integer. "
            f"Received: seed={seed!r} (of type {type(seed)})"
        )
    if not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be in [0, 2**32) (NumPy's range); received seed={seed}.")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
