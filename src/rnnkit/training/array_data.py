"""In-memory data as tensors: the arrays given to `fit`, and every batch a dataset yields.

`x`, `y` and `sample_weight` are NumPy arrays or torch tensors with samples on the first axis
(`x` may be a list of them, for several inputs). Floating NumPy arrays become the model's float
dtype (float32 until it has weights); integer arrays stay integers. Ragged lists of sequences
are refused with a pointer to `pad_sequences`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

Data = Any  # a tensor, or a list of tensors (several inputs)


def float_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's floating weights (torch's default before it has any)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.get_default_dtype()


def model_device(model: torch.nn.Module) -> torch.device | None:
    """The device of the model's weights, or None before it has any."""
    return next((p.device for p in model.parameters()), None)


def _ragged_error(argument: str, value: Any) -> ValueError:
    lengths = sorted({len(item) for item in value if hasattr(item, "__len__")})
    example = f" (lengths from {lengths[0]} to {lengths[-1]})" if len(lengths) > 1 else ""
    return ValueError(
        f"`{argument}` holds sequences of different lengths{example}; a batch needs one length. "
        f"Pad them first: {argument} = rnnkit.preprocessing.pad_sequences({argument}, maxlen=...)."
    )


def _check_table_columns(value: Any, argument: str) -> None:
    """A table (a pandas DataFrame: `columns` and `dtypes`) with a column that is not numbers
    is refused naming the column, instead of becoming an object array reported as ragged."""
    columns, dtypes = getattr(value, "columns", None), getattr(value, "dtypes", None)
    if columns is None or dtypes is None:
        return
    for column, dtype in zip(columns, dtypes):
        if getattr(dtype, "kind", "O") not in "biuf":
            raise TypeError(
                f"`{argument}` column {column!r} holds {dtype} values; fit needs numbers: "
                "encode it first (e.g. pandas.get_dummies, or a category's codes)."
            )


def to_tensor(value: Any, argument: str, float_dtype: torch.dtype) -> torch.Tensor:
    """One array-like as a tensor: floats in `float_dtype`, integers kept (int64 if unusual).

    A tensor is returned as it is.
    """
    if isinstance(value, torch.Tensor):
        return value
    _check_table_columns(value, argument)
    if isinstance(value, np.ndarray) and value.dtype != object:
        array = value
    else:
        try:
            array = np.asarray(value.tolist() if isinstance(value, np.ndarray) else value)
        except ValueError:
            raise _ragged_error(argument, value) from None
        if array.dtype == object:
            raise _ragged_error(argument, value)
    if not array.flags.writeable:  # a read-only view (pandas' copy-on-write): torch warns
        array = array.copy()
    if array.dtype.kind in "fb":
        return torch.as_tensor(array, dtype=float_dtype)
    if array.dtype.kind in "iu":
        keep = array.dtype in (np.int32, np.int64)
        return torch.as_tensor(array if keep else array.astype(np.int64))
    raise TypeError(f"`{argument}` must hold numbers; received an array of dtype {array.dtype}.")


def is_several(value: Any) -> bool:
    """Whether `value` is a list or tuple of arrays/tensors (the inputs of a multi-input model)."""
    return isinstance(value, (list, tuple)) and all(
        isinstance(item, (np.ndarray, torch.Tensor)) for item in value
    )


def to_data(value: Any, argument: str, float_dtype: torch.dtype) -> Data:
    """An array-like, or a list of them, as a tensor or a list of tensors (see `to_tensor`)."""
    if is_several(value) and value:
        return [to_tensor(item, f"{argument}[{i}]", float_dtype) for i, item in enumerate(value)]
    return to_tensor(value, argument, float_dtype)


def num_samples(data: Data, argument: str) -> int:
    """The length of the first axis, the same for every tensor of `data`.

    Raises:
        ValueError: the tensors of a list differ in length.
    """
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
    if data is None:
        return None
    if isinstance(data, list):
        return [take(t, index, device) for t in data]
    batch = data[index]
    return batch if device is None else batch.to(device, non_blocking=True)


def class_weight_to_sample_weight(y: torch.Tensor, class_weight: dict[int, float]) -> torch.Tensor:
    """Keras's weights from `class_weight`: each sample gets the weight of its class.

    Args:
        y: targets `(samples,)` or `(samples, 1)` holding class indices (rounded), or one-hot
            `(samples, classes)` (the class is the arg-max).
        class_weight: `{class index: weight}`; a class that is missing weighs 1.0.

    Returns:
        Float32 weights `(samples,)`.
    """
    labels = y.detach().cpu()
    if labels.dim() > 1:
        labels = labels.argmax(dim=-1) if labels.shape[-1] != 1 else labels.squeeze(-1)
    labels = torch.round(labels.double()).long().reshape(len(labels), -1)[:, 0]
    weights = [float(class_weight.get(int(label), 1.0)) for label in labels.tolist()]
    return torch.tensor(weights, dtype=torch.float32)


def check_class_weight(class_weight: Any) -> dict[int, float] | None:
    """`class_weight` checked to be `{class index: weight}` (or None)."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict) or not all(
        isinstance(key, (int, np.integer)) and not isinstance(key, bool) for key in class_weight
    ):
        raise ValueError(
            "`class_weight` must be a dict {class index: weight}, e.g. {0: 1.0, 1: 5.0}; "
            f"received {class_weight!r}."
        )
    return {int(key): float(value) for key, value in class_weight.items()}


def prepare_arrays(
    model: torch.nn.Module,
    x: Any,
    y: Any,
    method: str,
    sample_weight: Any = None,
    class_weight: dict[int, float] | None = None,
) -> tuple[Data, Data, torch.Tensor | None, int]:
    """`x`, `y` and the sample weights as tensors, checked for matching sample counts.

    Returns:
        `(x, y, sample_weight, samples)`; `sample_weight` is None when neither `sample_weight`
        nor `class_weight` was given.
    """
    if x is None or y is None:
        raise ValueError(f"`{method}` needs both inputs `x` and targets `y`; received None.")
    if is_several(y) and len(y) > 1:
        raise ValueError(
            f"`{method}` supports models with one output; received {len(y)} target arrays in `y`."
        )
    if sample_weight is not None and class_weight is not None:
        raise ValueError(
            "`sample_weight` and `class_weight` cannot be given together; received both."
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
    if class_weight is not None:
        sample_weight = class_weight_to_sample_weight(y, class_weight)
    elif sample_weight is not None:
        sample_weight = to_tensor(sample_weight, "sample_weight", dtype).to(dtype)
        if sample_weight.dim() == 0 or len(sample_weight) != samples:
            raise ValueError(
                f"`sample_weight` must have one weight per sample, shape ({samples},); received "
                f"shape {tuple(sample_weight.shape)}."
            )
    return x, y, sample_weight, samples


def split_validation(
    arrays: tuple[Data, Data, torch.Tensor | None], samples: int, validation_split: float
) -> tuple[tuple[Data, Data, torch.Tensor | None], tuple[Data, Data, torch.Tensor | None] | None]:
    """Keras's `validation_split`: the last fraction of the samples, before any shuffling.

    Returns:
        The training `(x, y, sample_weight)` and the validation ones (None for a split of 0).
    """
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(
            f"`validation_split` must be in [0, 1); received validation_split={validation_split}."
        )
    if validation_split == 0.0:
        return arrays, None
    split_at = math.floor(samples * (1.0 - validation_split))
    if split_at in (0, samples):
        raise ValueError(
            f"The data has {samples} samples, too few to split with "
            f"validation_split={validation_split}."
        )
    head, tail = slice(0, split_at), slice(split_at, samples)
    return tuple(take(a, head) for a in arrays), tuple(take(a, tail) for a in arrays)
