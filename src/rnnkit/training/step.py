"""One step of training or testing: forward, loss (sample weights included), backward,
optimizer, metrics.

The loss is Keras 3's: per-sample values times the sample weights, summed and divided by the
number of values ("sum_over_batch_size"; with no weights, the plain mean), plus the model's
regularization terms. The logged loss is the mean of the batch losses weighted by batch size;
`metrics` ignore the sample weights and `weighted_metrics` use them, as in Keras.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit._interrupts import uninterruptible
from rnnkit.training import distributed
from rnnkit.training import losses as losses_module
from rnnkit.training import metrics as metrics_module
from rnnkit.training.array_data import Data
from rnnkit.training.compile import Compiled
from rnnkit.training.finite import step_is_finite


def single_output(outputs: Any, method: str) -> torch.Tensor:
    """`outputs`, checked to be one tensor (fit and evaluate support one output)."""
    if isinstance(outputs, (list, tuple)):
        raise ValueError(
            f"`{method}` supports models with one output; this model returned {len(outputs)}."
        )
    return outputs


def _weighted_mean(values: torch.Tensor, sample_weight: torch.Tensor) -> torch.Tensor:
    """Keras's `sum_over_batch_size` with weights: sum(values * w) / number of values, the
    weights `(batch,)` broadcast over the values' other axes."""
    sample_weight = sample_weight.to(values.device, values.dtype)
    sample_weight, values = losses_module.same_rank(sample_weight, values)
    if values.dim() > sample_weight.dim():
        extra = values.dim() - sample_weight.dim()
        sample_weight = sample_weight.reshape(*sample_weight.shape, *([1] * extra))
    weighted = values * sample_weight
    return weighted.sum() / max(weighted.numel(), 1)


def batch_loss(
    model: Any,
    compiled: Compiled,
    y: Data,
    outputs: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch loss: the compiled loss (per-sample values averaged, or weighted by
    `sample_weight` as Keras weighs them) plus the model's regularization terms; returned with
    the compiled loss alone, as `(loss, compiled_loss)`."""
    if sample_weight is None:
        compiled_loss = torch.as_tensor(compiled.loss(y, outputs))
        if compiled_loss.dim() > 0:
            compiled_loss = compiled_loss.mean()
    else:
        loss_function = compiled.loss
        if isinstance(loss_function, losses_module.Loss):  # its per-sample values
            values = loss_function.fn(y, outputs, **loss_function.config)
        else:
            values = loss_function(y, outputs)
        compiled_loss = _weighted_mean(torch.as_tensor(values), sample_weight)
    loss = compiled_loss
    for term in getattr(model, "losses", None) or []:
        loss = loss + term
    return loss, compiled_loss


def results(
    loss_tracker: metrics_module.Mean,
    compiled: Compiled,
    group: distributed.Group = distributed.SINGLE_PROCESS,
) -> dict[str, float]:
    """The logs: the loss and each metric, means over every process's samples, sorted by name."""
    trackers = [loss_tracker, *compiled.all_metrics]
    results = {tracker.name: value for tracker, value in zip(trackers, group.means(trackers))}
    return dict(sorted(results.items()))


def update_trackers(
    loss_tracker: metrics_module.Mean,
    compiled: Compiled,
    loss: torch.Tensor,
    y: Data,
    outputs: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
) -> None:
    """Adds one batch to the loss tracker (weighted by batch size) and to the metrics."""
    loss_tracker.update(loss.detach(), weight=len(outputs))
    for metric in compiled.metrics:
        metric.update(y, outputs.detach())
    for metric in compiled.weighted_metrics:
        metric.update(y, outputs.detach(), sample_weight)


def reset_trackers(loss_tracker: metrics_module.Mean, compiled: Compiled) -> None:
    """Starts the loss and every metric over (each epoch, each evaluation)."""
    loss_tracker.reset()
    for metric in compiled.all_metrics:
        metric.reset()


class NonFiniteStep(Exception):
    """A training step whose loss or gradients are not finite, stopped before the optimizer
    (`fit` reports it, with where and why, or skips the batch)."""

    def __init__(self, loss: torch.Tensor) -> None:
        super().__init__("the loss or the gradients hold NaN or inf")
        self.loss = loss.detach()


def train_step(
    model: Any,
    compiled: Compiled,
    loss_tracker: metrics_module.Mean,
    x: Data,
    y: Data,
    sample_weight: torch.Tensor | None = None,
    replica: torch.nn.Module | None = None,
    share: float = 1.0,
    group: distributed.Group = distributed.SINGLE_PROCESS,
) -> dict[str, float]:
    """One optimizer step on `(x, y)` (weighted by `sample_weight` when given); returns the
    logs so far.

    In a distributed run `replica` is the model's DistributedDataParallel wrapper and `share`
    this process's share of the global batch (see `Group.shard`); the compiled loss is weighted
    by it so that the gradients averaged over processes are those of the whole batch.

    Raises:
        NonFiniteStep: the loss or a gradient holds NaN or inf; nothing was applied (weights,
            optimizer state and metrics are as before the batch).
    """
    outputs = single_output((model if replica is None else replica)(x), "fit")
    loss, compiled_loss = batch_loss(model, compiled, y, outputs, sample_weight)
    objective = loss if share == 1.0 else loss + (share - 1.0) * compiled_loss
    optimizer = compiled.optimizer  # built here on the first step, once the model has weights
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    weights = [p for param_group in optimizer.param_groups for p in param_group["params"]]
    # Every process decides alike: a NaN loss on one process makes every process's averaged
    # gradients NaN, and all must skip (or stop at) the same step.
    if group.any(not step_is_finite(loss, weights)):
        raise NonFiniteStep(loss)
    with uninterruptible():
        optimizer.step()
        apply_constraints = getattr(model, "apply_constraints", None)
        if apply_constraints is not None:
            apply_constraints()
    if share > 0.0:  # a share of 0 is a stand-in sample (see `Group.shard`): not counted
        update_trackers(loss_tracker, compiled, loss, y, outputs, sample_weight)
    return results(loss_tracker, compiled, group)


def evaluate_step(
    model: Any,
    compiled: Compiled,
    loss_tracker: metrics_module.Mean,
    x: Data,
    y: Data,
    sample_weight: torch.Tensor | None = None,
) -> None:
    """Adds the loss and metrics of one batch, in whatever mode the model is in."""
    outputs = single_output(model(x), "evaluate")
    loss, _ = batch_loss(model, compiled, y, outputs, sample_weight)
    update_trackers(loss_tracker, compiled, loss, y, outputs, sample_weight)
