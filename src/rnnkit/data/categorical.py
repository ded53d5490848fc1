"""`to_categorical`: class indices to one-hot rows, as `keras.utils.to_categorical` does.

NumPy only for NumPy input; a torch tensor is one-hot encoded by torch and stays a tensor (as
Keras on its torch backend returns a tensor).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_categorical(x: Any, num_classes: int | None = None) -> Any:
    """Converts class indices to a one-hot ("binary class") matrix, for `categorical_crossentropy`.

    As Keras: a trailing axis of size 1 is dropped first (`(n, 1)` labels give `(n, classes)`),
    and `num_classes=None` (or 0) means `max(x) + 1`.

    Args:
        x: integer class indices in `[0, num_classes)`, any shape `(*shape)` (list, NumPy
            array or torch tensor).
        num_classes: the number of classes (default None: `max(x) + 1`).

    Returns:
        `(*shape, num_classes)` — float64 NumPy array for array-like input (Keras's dtype), a
        float32 tensor on the same device for a torch tensor.

    Raises:
        ValueError: an index outside `[0, num_classes)` (Keras lets NumPy wrap negative
            indices silently; here they are refused), non-integer values, or a negative
            `num_classes`.
        TypeError: `num_classes` not an int or None.

    Example:
        >>> to_categorical([0, 2, 1], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]])
    """
    if num_classes is not None and (
        isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer))
    ):
        raise TypeError(f"`num_classes` must be an int or None; received {num_classes!r}.")
    if num_classes is not None and num_classes < 0:
        raise ValueError(f"`num_classes` must be 0 or greater; received {num_classes}.")
    if type(x).__module__.startswith("torch"):
        return _tensor_to_categorical(x, num_classes)
    values = np.asarray(x)
    if values.size and not np.all(np.mod(values, 1) == 0):
        raise ValueError(f"`x` must hold integer class indices; received values like {values}.")
    indices = values.astype("int64")
    input_shape = indices.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = input_shape[:-1]
    indices = indices.reshape(-1)
    if not num_classes:
        num_classes = int(indices.max()) + 1 if indices.size else 0
    _check_range(indices, num_classes)
    categorical = np.zeros((indices.shape[0], num_classes))
    categorical[np.arange(indices.shape[0]), indices] = 1
    return categorical.reshape(input_shape + (num_classes,))


def _tensor_to_categorical(x: Any, num_classes: int | None) -> Any:
    import torch

    if x.is_floating_point() or x.is_complex():
        raise ValueError(f"`x` must hold integer class indices; received a {x.dtype} tensor.")
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    indices = x.long()
    if not num_classes:
        num_classes = int(indices.max()) + 1 if indices.numel() else 0
    _check_range(indices.cpu().numpy(), num_classes)
    return torch.nn.functional.one_hot(indices, num_classes).to(torch.float32)


def _check_range(indices: np.ndarray, num_classes: int) -> None:
    if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
        raise ValueError(
            f"Class indices must lie in [0, num_classes={num_classes}); received values from "
            f"{int(indices.min())} to {int(indices.max())}."
        )
