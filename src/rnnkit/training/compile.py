"""`compile`: what a model trains with, resolved from Keras-style names and objects.

`compile(model, optimizer, loss, metrics)` returns a `Compiled` that the model keeps as
`model.compiled`; `fit`, `evaluate` and the train/test steps read it.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from rnnkit._interrupts import uninterruptible
from rnnkit.training import losses as losses_module
from rnnkit.training import metrics as metrics_module
from rnnkit.training import optimizers


class Compiled:
    """What `compile` resolved for a model: optimizer, loss and metrics.

    Attributes:
        optimizer: the torch optimizer, built from the model's parameters on first access (a
            model whose layers build lazily has no parameters before its first call).
        loss: `loss(y_true, y_pred) -> scalar tensor`, or None when compiled without one.
        metrics: the metric objects, named as the user wrote them.
        weighted_metrics: the metrics that see the sample weights.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Any,
        loss: Any,
        metrics: Any,
        weighted_metrics: Any = None,
    ) -> None:
        self._model = weakref.ref(model)
        self._optimizer_spec = optimizers.resolve(optimizer)
        self._optimizer = (
            self._optimizer_spec
            if isinstance(self._optimizer_spec, torch.optim.Optimizer)
            else None
        )
        self._loss_identifier = loss
        self.loss = None if loss is None else losses_module.get(loss)
        self._metric_identifiers = _as_list(metrics)
        self.metrics = [metrics_module.get(metric) for metric in self._metric_identifiers]
        self._weighted_metric_identifiers = _as_list(weighted_metrics)
        self.weighted_metrics = [
            metrics_module.get(metric) for metric in self._weighted_metric_identifiers
        ]
        names = {metric.name for metric in self.metrics}
        for metric in self.weighted_metrics:  # Keras's rule for a name used by both lists
            if metric.name in names:
                metric.name = f"weighted_{metric.name}"
            names.add(metric.name)

    @property
    def all_metrics(self) -> list[metrics_module.Metric]:
        """The metrics, then the weighted metrics (those that see the sample weights)."""
        return [*self.metrics, *self.weighted_metrics]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            model = self._model()
            parameters = [] if model is None else list(model.parameters())
            if not parameters:
                raise ValueError(
                    "The model has no weights yet, so its optimizer cannot be built: layers "
                    "build on their first call. Call the model on data (fit does) or give it "
                    "an Input first."
                )
            # Building the first optimizer imports torch._dynamo (and sympy): a Ctrl-C in the
            # middle would leave those modules broken for the rest of the process.
            with uninterruptible():
                self._optimizer = optimizers.get(self._optimizer_spec, parameters)
        return self._optimizer

    def get_config(self) -> dict[str, Any]:
        """The `compile` arguments as JSON-able values (custom callables are left out)."""
        config: dict[str, Any] = {}
        optimizer = optimizers.serialize(self._optimizer or self._optimizer_spec)
        if optimizer is not None:
            config["optimizer"] = optimizer
        loss = losses_module.serialize(self._loss_identifier)
        if loss is not None:
            config["loss"] = loss
        serialized = [metrics_module.serialize(m) for m in self._metric_identifiers]
        config["metrics"] = [m for m in serialized if m is not None]
        if self._weighted_metric_identifiers:
            serialized = [metrics_module.serialize(m) for m in self._weighted_metric_identifiers]
            config["weighted_metrics"] = [m for m in serialized if m is not None]
        return config


def _as_list(metrics: Any) -> list[Any]:
    if metrics is None:
        return []
    if isinstance(metrics, (str, metrics_module.Metric)) or not isinstance(metrics, (list, tuple)):
        return [metrics]
    return list(metrics)


def compile(
    model: torch.nn.Module,
    optimizer: Any = "rmsprop",
    loss: Any = None,
    metrics: Any = None,
    weighted_metrics: Any = None,
) -> Compiled:
    """Resolves Keras-style `compile` arguments for `model`.

    Args:
        model: the model to train.
        optimizer: a name ("rmsprop", default), an rnnkit optimizer, a torch optimizer, ...
            (see `optimizers.resolve`).
        loss: a name ("binary_crossentropy", "mse", ...), a loss object or a callable
            `(y_true, y_pred) -> tensor` (per-sample values are averaged), or None.
        metrics: a list of metric names or objects, e.g. `["acc"]` (default none); they
            ignore sample weights, as in Keras.
        weighted_metrics: metrics weighted by `sample_weight`/`class_weight` (default none); a
            name also in `metrics` is logged as `"weighted_" + name`.

    Returns:
        A `Compiled`, for `model.compiled`.
    """
    return Compiled(model, optimizer, loss, metrics, weighted_metrics)


def compiled_with_loss(model: Any, method: str) -> Compiled:
    """`model.compiled`, checked to have a loss (`fit` and `evaluate` need one)."""
    compiled = getattr(model, "compiled", None)
    if compiled is None or compiled.loss is None:
        raise ValueError(
            f"`{method}` needs a loss: call model.compile(optimizer=..., loss=...) first."
        )
    return compiled
