"""One batch from a dataset, checked and converted: Keras's `unpack_x_y_sample_weight`
(`x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`) and its check that every part holds the same
number of samples, with floating parts in the model's float dtype."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from rnnkit.training.array_data import (
    Data,
    class_weight_to_sample_weight,
    num_samples,
    to_data,
)


class Batch(NamedTuple):
    """One batch, this process's part of it: tensors on the CPU (or where the data lives).

    `share` is this process's share of the global batch (1.0 in a single process; see
    `distributed.Group.shard`); 0.0 marks a stand-in sample that only joins the exchange.
    """

    x: Data
    y: Data | None
    sample_weight: torch.Tensor | None
    share: float = 1.0


def describe(value: Any) -> str:
    """A short description of `value` for messages: its type, and shape or length."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _cast_floats(data: Data, dtype: torch.dtype) -> Data:
    if isinstance(data, list):
        return [_cast_floats(item, dtype) for item in data]
    return data.to(dtype) if data.is_floating_point() and data.dtype != dtype else data


class Standardizer:
    """Turns a raw batch from a dataset into a checked `Batch` (Keras's
    `unpack_x_y_sample_weight` followed by its cardinality check)."""

    def __init__(
        self, source: str, dtype: torch.dtype, need_y: bool, class_weight: dict | None
    ) -> None:
        self.source = source
        self.dtype = dtype
        self.need_y = need_y
        self.class_weight = class_weight

    def __call__(self, raw: Any, index: int) -> Batch:
        where = f"{self.source}, batch {index},"
        if isinstance(raw, dict):
            raise TypeError(
                f"{where} is a dict; rnnkit's models take positional inputs: yield (x, y) or "
                "(x, y, sample_weight) tuples."
            )
        parts = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
        if not 1 <= len(parts) <= 3:
            raise ValueError(
                f"{where} must be x, (x, y) or (x, y, sample_weight); received {describe(raw)}."
            )
        x, y, sample_weight = (*parts, None, None)[:3]
        if self.need_y and y is None:
            raise ValueError(
                f"{where} holds inputs only ({describe(x)}); fit and evaluate need batches "
                "(x, y) or (x, y, sample_weight)."
            )
        x = _cast_floats(to_data(x, "x", self.dtype), self.dtype)
        size = num_samples(x, f"x of {self.source}")
        sizes = {"x": size}
        if y is not None:
            y = _cast_floats(to_data(y, "y", self.dtype), self.dtype)
            if isinstance(y, list):
                raise ValueError(f"{where} holds several targets; fit supports one output.")
            sizes["y"] = num_samples(y, "y")
        if sample_weight is not None:
            if self.class_weight is not None:
                raise ValueError(
                    f"`class_weight` cannot be combined with the sample weights that "
                    f"{self.source} yields; received both."
                )
            sample_weight = _cast_floats(
                to_data(sample_weight, "sample_weight", self.dtype), self.dtype
            )
            sizes["sample_weight"] = len(sample_weight) if sample_weight.dim() else 0
        elif self.class_weight is not None and y is not None:
            sample_weight = class_weight_to_sample_weight(y, self.class_weight)
        if len(set(sizes.values())) > 1:
            counts = ", ".join(f"{name} {count}" for name, count in sizes.items())
            raise ValueError(f"{where} has different numbers of samples: {counts}.")
        return Batch(x, y, sample_weight)
