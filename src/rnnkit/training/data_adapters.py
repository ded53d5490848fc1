"""Turning the data given to `fit`, `evaluate` and `predict` into batches of tensors.

`x` and `y` are NumPy arrays or torch tensors with samples on the first axis (a list of them
for several inputs); floating arrays become float32 (the model's float dtype once it has
weights), and each batch moves to the device of the model's weights. Ragged lists of sequences
are refused with a pointer to `pad_sequences`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

Data = Any  # an array/tensor, or a list of them (several inputs)


def float_dtype(model: torch.nn.Module) -> torch.dtype:
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.get_default_dtype()


def _ragged_error(argument: str, value: Any) -> ValueError:
    lengths = sorted({len(item) for item in value if hasattr(item, "__len__")})
    example = f" (lengths from {lengths[0]} to {lengths[-1]})" if len(lengths) > 1 else ""
    return ValueError(
        f"`{argument}` holds sequences of different lengths{example}; a batch needs one length. "
        f"Pad them first: {argument} = rnnkit.preprocessing.pad_sequences({argument}, maxlen=...)."
    )


def to_tensor(value: Any, argument: str, float_dtype: torch.dtype) -> torch.Tensor:
    """One array-like as a tensor: floats in `float_dtype`, integers kept (int64 if unusual)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        array = value
    else:
        try:
            array = np.asarray(value.tolist() if isinstance(value, np.ndarray) else value)
        except ValueError:
            raise _ragged_error(argument, value) from None
        if array.dtype == object:
            raise _ragged_error(argument, value)
    if array.dtype.kind in "fb":
        return torch.as_tensor(array, dtype=float_dtype)
    if array.dtype.kind in "iu":
        keep = array.dtype in (np.int32, np.int64)
        return torch.as_tensor(array if keep else array.astype(np.int64))
    raise TypeError(f"`{argument}` must hold numbers; received an array of dtype {array.dtype}.")


def is_several(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(item, (np.ndarray, torch.Tensor)) for item in value
    )


def to_data(value: Any, argument: str, float_dtype: torch.dtype) -> Data:
    if is_several(value) and value:
        return [to_tensor(item, f"{argument}[{i}]", float_dtype) for i, item in enumerate(value)]
    return to_tensor(value, argument, float_dtype)


def num_samples(data: Data, argument: str) -> int:
    tensors = data if isinstance(data, list) else [data]
    sizes = {len(t) if t.dim() else 0 for t in tensors}
    if len(sizes) > 1:
        raise ValueError(
            f"The inputs in `{argument}` must have the same number of samples; received "
            f"{[len(t) for t in tensors]}."
        )
    return sizes.pop()


def take(data: Data, index: slice | torch.Tensor, device: torch.device | None = None) -> Data:
    """The samples at `index`, on `device` (that of the model's weights) when given."""
    if isinstance(data, list):
        return [take(t, index, device) for t in data]
    batch = data[index]
    return batch if device is None else batch.to(device, non_blocking=True)


def model_device(model: torch.nn.Module) -> torch.device | None:
    return next((p.device for p in model.parameters()), None)


def prepare_arrays(model: torch.nn.Module, x: Any, y: Any, method: str) -> tuple[Data, Data, int]:
    """`x` and `y` as tensors, checked for matching sample counts."""
    if x is None or y is None:
        raise ValueError(f"`{method}` needs both inputs `x` and targets `y`; received None.")
    if is_several(y) and len(y) > 1:
        raise ValueError(
            f"`{method}` supports models with one output; received {len(y)} target arrays in `y`."
        )
    dtype = float_dtype(model)
    x = to_data(x, "x", dtype)
    y = to_data(y, "y", dtype)
    samples = num_samples(x, "x")
    targets = num_samples(y, "y")
    if samples != targets:
        raise ValueError(
            f"`x` and `y` must have the same number of samples; received x with {samples} and "
            f"y with {targets}."
        )
    if samples == 0:
        raise ValueError(f"`{method}` received no samples (x has length 0).")
    return x, y, samples


class IndexBatches:
    """Index batches over `num_samples` samples, in passes (a new shuffle for each pass).

    An epoch is one pass; with `steps_per_epoch` it is that many batches from the current pass
    (Keras: the pass continues across epochs and a new one starts when it is used up).
    """

    def __init__(
        self, num_samples: int, batch_size: int, shuffle: bool, generator: torch.Generator | None
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.per_pass = math.ceil(num_samples / batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self._order: torch.Tensor | None = None
        self._position = self.per_pass  # no pass started

    def _new_pass(self) -> None:
        if self.shuffle:
            self._order = torch.randperm(self.num_samples, generator=self.generator)
        self._position = 0

    def epoch(self, steps: int | None = None) -> Iterator[slice | torch.Tensor]:
        if steps is None or self._position >= self.per_pass:
            self._new_pass()
        for step in range(steps or self.per_pass):
            if self._position >= self.per_pass:
                warnings.warn(
                    f"The data ran out after {step} of steps_per_epoch={steps} batches in this "
                    f"epoch (a pass over the data is {self.per_pass} batches); the epoch ends "
                    "early and the next one starts a new pass.",
                    stacklevel=3,
                )
                return
            start = self._position * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
            self._position += 1
            yield slice(start, stop) if self._order is None else self._order[start:stop]
