"""One step of training or testing: forward, loss, backward, optimizer, metrics."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch

from rnnkit.training import distributed
from rnnkit.training import metrics as metrics_module
from rnnkit.training.compile import Compiled
from rnnkit.training.data_adapters import Data


def single_output(outputs: Any, method: str) -> torch.Tensor:
    if isinstance(outputs, (list, tuple)):
        raise ValueError(
            f"`{method}` supports models with one output; this model returned {len(outputs)}."
        )
    return outputs


def batch_loss(
    model: Any, compiled: Compiled, y: Data, outputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch loss: the compiled loss (per-sample values averaged) plus the model's
    regularization terms; returned with the compiled loss alone, as `(loss, compiled_loss)`."""
    compiled_loss = torch.as_tensor(compiled.loss(y, outputs))
    if compiled_loss.dim() > 0:
        compiled_loss = compiled_loss.mean()
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
    trackers = [loss_tracker, *compiled.metrics]
    results = {tracker.name: value for tracker, value in zip(trackers, group.means(trackers))}
    return dict(sorted(results.items()))


def update_trackers(
    loss_tracker: metrics_module.Mean,
    compiled: Compiled,
    loss: torch.Tensor,
    y: Data,
    outputs: torch.Tensor,
) -> None:
    loss_tracker.update(loss.detach(), weight=len(outputs))
    for metric in compiled.metrics:
        metric.update(y, outputs.detach())


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Holds back Ctrl-C until the block ends, so an optimizer step is applied whole."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield  # no Python handler to defer to, or signals cannot be handled in this thread
        return
    received: list[Any] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, received[0])


def train_step(
    model: Any,
    compiled: Compiled,
    loss_tracker: metrics_module.Mean,
    x: Data,
    y: Data,
    replica: torch.nn.Module | None = None,
    share: float = 1.0,
    group: distributed.Group = distributed.SINGLE_PROCESS,
) -> dict[str, float]:
    """One optimizer step on `(x, y)`; returns the logs so far.

    In a distributed run `replica` is the model's DistributedDataParallel wrapper and `share`
    this process's share of the global batch (see `Group.shard`); the compiled loss is weighted
    by it so that the gradients averaged over processes are those of the whole batch.
    """
    outputs = single_output((model if replica is None else replica)(x), "fit")
    loss, compiled_loss = batch_loss(model, compiled, y, outputs)
    objective = loss if share == 1.0 else loss + (share - 1.0) * compiled_loss
    optimizer = compiled.optimizer  # built here on the first step, once the model has weights
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    with uninterruptible():
        optimizer.step()
        apply_constraints = getattr(model, "apply_constraints", None)
        if apply_constraints is not None:
            apply_constraints()
    if share > 0.0:  # a share of 0 is a stand-in sample (see `Group.shard`): not counted
        update_trackers(loss_tracker, compiled, loss, y, outputs)
    return results(loss_tracker, compiled, group)
