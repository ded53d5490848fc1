"""Loss functions with Keras 3's names, formulas and shape rules, on torch tensors.

A loss is called as ``loss(y_true, y_pred)`` and returns a scalar tensor: the per-sample values
(the mean over the last axis, as Keras computes them) averaged over everything else
("sum over batch size"). Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before the log, as
Keras does; with ``from_logits=True`` the stable log-sigmoid / log-softmax is used instead.

Shapes follow Keras: when the ranks of ``y_true`` and ``y_pred`` differ by one and the extra
axis has size 1, it is squeezed or expanded, so binary labels ``(n,)`` go with predictions
``(n, 1)``. ``_LOSSES`` below is the one table of names.

Example:
    >>> import torch
    >>> from rnnkit.training import losses
    >>> losses.get("binary_crossentropy")(torch.tensor([1.0, 0.0]), torch.tensor([[0.9], [0.2]]))
    tensor(0.1643)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

EPSILON = 1e-7  # keras.backend.epsilon()

LossFunction = Callable[[Any, Any], torch.Tensor]


def _as_tensors(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = torch.as_tensor(y_pred)
    if not torch.is_floating_point(y_pred):
        y_pred = y_pred.to(torch.get_default_dtype())
    return torch.as_tensor(y_true, device=y_pred.device), y_pred


def same_rank(y_true: torch.Tensor, y_pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras's `squeeze_or_expand_to_same_rank`: when the ranks differ by one and the longer
    tensor's last axis has size 1, expand a rank-1 partner, otherwise squeeze that axis."""
    if y_pred.dim() == y_true.dim() + 1 and y_pred.shape[-1] == 1:
        if y_true.dim() == 1:
            y_true = y_true.unsqueeze(-1)
        else:
            y_pred = y_pred.squeeze(-1)
    elif y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        if y_pred.dim() == 1:
            y_pred = y_pred.unsqueeze(-1)
        else:
            y_true = y_true.squeeze(-1)
    return y_true, y_pred


def _check_same_shape(name: str, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: `y_true` and `y_pred` must have the same shape; received "
            f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Per-sample binary cross-entropy, ``-mean(y log p + (1 - y) log(1 - p), axis=-1)``.

    Args:
        y_true: labels in [0, 1], shape `(batch, ..., d)` (or `(batch,)` with `y_pred (batch, 1)`).
        y_pred: probabilities (or logits with `from_logits=True`), same shape.
        from_logits: whether `y_pred` holds logits (default False).

    Returns:
        Tensor of shape `y_pred.shape[:-1]`.
    """
    y_true, y_pred = same_rank(*_as_tensors(y_true, y_pred))
    y_true = y_true.to(y_pred.dtype)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if from_logits:
        values = -y_true * F.logsigmoid(y_pred) - (1.0 - y_true) * F.logsigmoid(-y_pred)
    else:
        y_pred = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        values = -(y_true * torch.log(y_pred) + (1.0 - y_true) * torch.log(1.0 - y_pred))
    return values.mean(dim=-1)


def _log_probabilities(y_pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return F.log_softmax(y_pred, dim=-1)
    y_pred = y_pred / y_pred.sum(dim=-1, keepdim=True)
    return torch.log(y_pred.clamp(EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> torch.Tensor:
    """Per-sample categorical cross-entropy, ``-sum(y * log p, axis=-1)``, for one-hot labels.

    Probabilities are first normalised to sum to 1 along the last axis, as Keras does.

    Args:
        y_true: one-hot (or soft) labels, shape `(batch, ..., classes)`.
        y_pred: probabilities (or logits with `from_logits=True`), same shape.
        from_logits: whether `y_pred` holds logits (default False).

    Returns:
        Tensor of shape `y_pred.shape[:-1]`.
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    y_true = y_true.to(y_pred.dtype)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    return -(y_true * _log_probabilities(y_pred, from_logits)).sum(dim=-1)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False
) -> torch.Tensor:
    """Per-sample cross-entropy for integer labels, ``-log p[y]``.

    Args:
        y_true: class indices, shape `(batch, ...)` or `(batch, ..., 1)`.
        y_pred: probabilities (or logits with `from_logits=True`), shape `(batch, ..., classes)`.
        from_logits: whether `y_pred` holds logits (default False).

    Returns:
        Tensor of shape `y_pred.shape[:-1]`.
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            "sparse_categorical_crossentropy: `y_true` must have the shape of `y_pred` without "
            f"its last (class) axis; received y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}."
        )
    _check_class_indices(y_true, y_pred.shape[-1])
    log_probabilities = _log_probabilities(y_pred, from_logits)
    return -log_probabilities.gather(-1, y_true.long().unsqueeze(-1)).squeeze(-1)


def _check_class_indices(y_true: torch.Tensor, classes: int) -> None:
    """Raises a ValueError unless `y_true` holds whole numbers in [0, classes) (one sync, so
    a label 1.5 is not truncated to 1 and a label 7 of 5 classes is not an indexing error)."""
    if y_true.numel() == 0:
        return
    if y_true.is_floating_point() or y_true.is_complex():
        if not bool((y_true == y_true.round()).all()):
            raise ValueError(
                "sparse_categorical_crossentropy: `y_true` must hold class indices (whole "
                f"numbers), received values such as {y_true[y_true != y_true.round()][0].item()}."
            )
    low, high = torch.aminmax(y_true.detach().reshape(-1).double())
    if low < 0 or high >= classes:
        raise ValueError(
            f"sparse_categorical_crossentropy: `y_true` must hold class indices in [0, {classes}) "
            f"(y_pred has {classes} classes), received values from {low.item():g} to "
            f"{high.item():g}."
        )


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean((y_true - y_pred) ** 2, axis=-1)``; returns shape `y_pred.shape[:-1]`."""
    y_true, y_pred = same_rank(*_as_tensors(y_true, y_pred))
    # Keras would broadcast (20, 5) against (20, 1) into a loss that trains nothing useful;
    # refused, as Keras's own binary_crossentropy refuses it.
    _check_same_shape("mean_squared_error", y_true, y_pred)
    return (y_true.to(y_pred.dtype) - y_pred).square().mean(dim=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(|y_true - y_pred|, axis=-1)``; returns shape `y_pred.shape[:-1]`."""
    y_true, y_pred = same_rank(*_as_tensors(y_true, y_pred))
    _check_same_shape("mean_absolute_error", y_true, y_pred)
    return (y_true.to(y_pred.dtype) - y_pred).abs().mean(dim=-1)


class Loss:
    """A loss object: per-sample values from `fn`, averaged to a scalar.

    Args:
        fn: per-sample function `fn(y_true, y_pred, **kwargs) -> tensor`.
        name: the loss's name.
        **kwargs: keyword arguments for `fn` (e.g. `from_logits`), kept as its config.

    Call: `loss(y_true, y_pred) -> scalar tensor`.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], name: str, **kwargs: Any) -> None:
        self.fn = fn
        self.name = name
        self.config = kwargs

    def __call__(self, y_true: Any, y_pred: Any) -> torch.Tensor:
        return self.fn(y_true, y_pred, **self.config).mean()

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def __repr__(self) -> str:
        arguments = "".join(f", {key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}(name={self.name!r}{arguments})"


class BinaryCrossentropy(Loss):
    """Binary cross-entropy; `from_logits=False` (default) expects sigmoid probabilities."""

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__(binary_crossentropy, "binary_crossentropy", from_logits=from_logits)


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot labels; `from_logits=False` (default) expects probabilities."""

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__(
            categorical_crossentropy, "categorical_crossentropy", from_logits=from_logits
        )


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy for integer labels; `from_logits=False` (default) expects probabilities."""

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__(
            sparse_categorical_crossentropy,
            "sparse_categorical_crossentropy",
            from_logits=from_logits,
        )


class MeanSquaredError(Loss):
    """Mean of squared errors."""

    def __init__(self) -> None:
        super().__init__(mean_squared_error, "mean_squared_error")


class MeanAbsoluteError(Loss):
    """Mean of absolute errors."""

    def __init__(self) -> None:
        super().__init__(mean_absolute_error, "mean_absolute_error")


_LOSSES: dict[str, type[Loss]] = {
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
_CLASSES = {cls.__name__: cls for cls in _LOSSES.values()}


def get(identifier: Any) -> LossFunction:
    """The loss for a Keras name, a `{"class_name", "config"}` dict, a loss object or a callable.

    Args:
        identifier: e.g. `"binary_crossentropy"`, `"mse"`, `BinaryCrossentropy(from_logits=True)`,
            or any callable `(y_true, y_pred) -> scalar tensor` (returned unchanged).

    Raises:
        ValueError: unknown name.
    """
    if isinstance(identifier, str):
        cls = _LOSSES.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Unknown loss: loss={identifier!r}. Expected one of {sorted(_LOSSES)}, a loss "
                "object or a callable (y_true, y_pred) -> scalar tensor."
            )
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Expected `loss` to be a name, a loss object or a callable; received {identifier!r}."
    )


def serialize(loss: Any) -> str | dict[str, Any] | None:
    """A JSON-able form of `loss` that `get` accepts, or None for an arbitrary callable."""
    if isinstance(loss, str):
        return loss
    if type(loss) in _CLASSES.values():
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    return None
