"""Streaming metrics with Keras 3's names and semantics: update per batch, read the mean so far.

Every metric here is a mean over samples: `update(y_true, y_pred)` computes per-sample values
(e.g. 1.0 where a prediction is right), reduces each sample to one number, and adds them to a
running total; `result()` is total / samples seen; `reset()` starts over (fit does it each epoch).

`"acc"` / `"accuracy"` are resolved as Keras 3 does, from the shapes of the first batch: binary
accuracy (threshold 0.5) when `y_pred`'s last axis has size 1, sparse categorical accuracy when
`y_true` has one rank less than `y_pred` (or a last axis of 1 against several classes), and
categorical accuracy otherwise. A metric keeps the name the user gave, so `"acc"` stays `"acc"`.

Example:
    >>> m = get("acc")
    >>> m.update(torch.tensor([1, 0, 1]), torch.tensor([[0.9], [0.4], [0.2]]))
    >>> m.name, round(m.result(), 4)
    ('acc', 0.6667)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit.training import losses
from rnnkit.training.losses import same_rank


class Metric:
    """Base of the streaming metrics: a running total over samples and its mean.

    Args:
        name: display name, also the key in logs and History.

    Attributes:
        direction: "up" when larger is better (accuracies), "down" otherwise; callbacks with
            `mode="auto"` read it.
    """

    direction = "down"

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        """Forgets every value seen so far."""
        self.total = 0.0
        self.count = 0.0

    def result(self) -> float:
        """The mean of the values seen since the last `reset()` (0.0 before any)."""
        return self.total / self.count if self.count else 0.0

    def _add_samples(self, values: torch.Tensor, sample_weight: Any = None) -> None:
        """Adds a tensor whose first axis is the batch: each sample counts once, as its mean,
        or `sample_weight` times (Keras's weighted mean: sum(w * value) / sum(w))."""
        values = values.detach().double()
        if values.dim() == 0:
            values = values.reshape(1)
        if sample_weight is None:
            per_sample = values.reshape(values.shape[0], -1).mean(dim=1)  # (batch,)
            self.total += per_sample.sum().item()
            self.count += per_sample.shape[0]
            return
        weights = torch.as_tensor(sample_weight, device=values.device).detach().double()
        weights, values = same_rank(weights, values)
        if values.dim() > weights.dim():  # Keras: reduce the values to the weights' rank
            values = values.mean(dim=tuple(range(weights.dim(), values.dim())))
        weights = torch.broadcast_to(weights, values.shape)
        self.total += (values * weights).sum().item()
        self.count += weights.reshape(weights.shape[0], -1).mean(dim=1).sum().item()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """The (weighted) mean of the values it is given, as `keras.metrics.Mean`.

    Args:
        name: display name (default "mean").

    `update(values, weight=None)`: a scalar counts `weight` times (default once), so
    `update(batch_loss, weight=batch_size)` tracks the loss over an epoch; a tensor whose first
    axis is the batch adds one value per sample.
    """

    def __init__(self, name: str = "mean") -> None:
        super().__init__(name)

    def update(self, values: Any, weight: float | None = None) -> None:
        values = torch.as_tensor(values)
        if values.dim() == 0:
            count = 1.0 if weight is None else float(weight)
            self.total += values.item() * count
            self.count += count
        else:
            self._add_samples(values)


class MeanMetricWrapper(Metric):
    """The mean over samples of `fn(y_true, y_pred)`, a per-sample function.

    Args:
        fn: `(y_true, y_pred, **kwargs) -> tensor` with the batch as first axis.
        name: display name.
        direction: "up" when larger is better (accuracies), "down" otherwise (default).
        **kwargs: keyword arguments for `fn` (e.g. `threshold`), kept as its config.

    `update(y_true, y_pred, sample_weight=None)` adds one batch; with `sample_weight`
    `(batch,)` (a weighted metric) the mean is weighted as Keras weighs it.
    """

    def __init__(
        self, fn: Callable[..., Any], name: str, direction: str = "down", **kwargs: Any
    ) -> None:
        super().__init__(name)
        self.fn = fn
        self.direction = direction
        self.config = kwargs

    def update(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        with torch.no_grad():
            values = torch.as_tensor(self.fn(y_true, y_pred, **self.config))
            self._add_samples(values, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.config}


def _as_tensors(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = torch.as_tensor(y_pred)
    return torch.as_tensor(y_true, device=y_pred.device), y_pred


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where `(y_pred > threshold) == y_true`, else 0.0; shapes matched as in the losses."""
    y_true, y_pred = same_rank(*_as_tensors(y_true, y_pred))
    return ((y_pred > threshold).to(y_true.dtype) == y_true).float()


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where `argmax(y_pred) == argmax(y_true)` (one-hot labels); shape `y_pred.shape[:-1]`."""
    y_true, y_pred = _as_tensors(y_true, y_pred)
    return (y_pred.argmax(dim=-1) == y_true.argmax(dim=-1)).float()


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where `argmax(y_pred) == y_true`; labels `(batch, ...)` or `(batch, ..., 1)`."""
    y_true, y_pred = _as_tensors(y_true, y_pred)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return (y_pred.argmax(dim=-1) == y_true.long()).float()


class BinaryAccuracy(MeanMetricWrapper):
    """How often `y_pred > threshold` matches binary labels (threshold 0.5 by default)."""

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name, "up", threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of `y_pred` matches that of one-hot labels."""

    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name, "up")


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of `y_pred` matches integer labels."""

    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name, "up")


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean absolute error."""

    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(losses.mean_absolute_error, name)


class MeanSquaredError(MeanMetricWrapper):
    """Mean squared error."""

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(losses.mean_squared_error, name)


class Accuracy(MeanMetricWrapper):
    """`"acc"`/`"accuracy"`: binary, sparse or categorical accuracy, chosen from the first
    batch's shapes as Keras 3's `compile` does (see the module docstring)."""

    def __init__(self, name: str = "accuracy") -> None:
        super().__init__(self._resolve, name, "up")

    def _resolve(self, y_true: Any, y_pred: Any) -> torch.Tensor:
        y_true, y_pred = _as_tensors(y_true, y_pred)
        if y_pred.shape[-1] == 1:
            self.fn = binary_accuracy
            self.config = {"threshold": 0.5}
        elif y_true.dim() < y_pred.dim() or y_true.shape[-1] == 1:
            self.fn = sparse_categorical_accuracy
        else:
            self.fn = categorical_accuracy
        return self.fn(y_true, y_pred, **self.config)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


_METRICS: dict[str, Callable[..., Metric]] = {
    "acc": Accuracy,
    "accuracy": Accuracy,
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}
_LOSS_METRICS = (
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)
_CLASSES = {
    cls.__name__: cls
    for cls in (
        Accuracy,
        BinaryAccuracy,
        CategoricalAccuracy,
        SparseCategoricalAccuracy,
        MeanAbsoluteError,
        MeanSquaredError,
    )
}


def get(identifier: Any) -> Metric:
    """A fresh metric for a Keras name, a `{"class_name", "config"}` dict, a metric object or a
    per-sample function `fn(y_true, y_pred) -> tensor`.

    Args:
        identifier: e.g. `"acc"`, `"mae"`, `"binary_crossentropy"`, `BinaryAccuracy(threshold=0.7)`.

    Returns:
        The metric; a name stays its display name (`get("acc").name == "acc"`).

    Raises:
        ValueError: unknown name. TypeError: an unsupported kind of object.
    """
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _METRICS:
            return _METRICS[key](name=identifier)
        if key in _LOSS_METRICS:
            return MeanMetricWrapper(getattr(losses, key), identifier)
        raise ValueError(
            f"Unknown metric: metrics entry {identifier!r}. Expected one of "
            f"{sorted([*_METRICS, *_LOSS_METRICS])}, a metric object or a function "
            "(y_true, y_pred) -> per-sample tensor."
        )
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    if isinstance(identifier, Metric):
        return identifier
    if callable(identifier):
        return MeanMetricWrapper(identifier, getattr(identifier, "__name__", "metric"))
    raise TypeError(
        "Expected each metric to be a name, a metric object or a function; received "
        f"{identifier!r}."
    )


def serialize(metric: Any) -> str | dict[str, Any] | None:
    """A JSON-able form of a `metrics` entry that `get` accepts, or None for a custom one."""
    if isinstance(metric, str):
        return metric
    if type(metric) in _CLASSES.values():
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    return None
