"""The finite-loss guard of `fit`: a batch whose loss or gradients hold NaN or inf is never
applied to the weights.

One NaN in `x` or `y` makes the loss NaN, its gradients NaN, and after one optimizer step every
weight NaN (Keras's `TerminateOnNaN` stops only after that step). `fit` checks each step before
the optimizer runs, with one fused pass: the 2-norm of every gradient (`torch._foreach_norm`)
stacked with the loss, then one `isfinite` and one read of the result. A norm that overflows
counts as not finite: such a step would wreck the weights as surely as a NaN.

When a batch fails the check, `fit` stops with `NonFiniteLossError` naming the epoch, the batch
and what held NaN or inf (inputs, targets, sample weights, or none: the model diverged), or,
with `fit(..., skip_nonfinite_batches=True)`, skips it and reports the count at the end. Either
way the weights and the optimizer's state are as they were before the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class NonFiniteLossError(ValueError):
    """A training batch gave a NaN or infinite loss or gradient; nothing was applied."""


def step_is_finite(loss: torch.Tensor, parameters: Iterable[torch.Tensor]) -> bool:
    """Whether `loss` and the gradients of `parameters` (those that have one) are all finite.

    Args:
        loss: the batch loss, a scalar tensor.
        parameters: the weights the optimizer will update.

    Returns:
        True when every value is finite (one synchronisation with the device).
    """
    gradients = [p.grad for p in parameters if p.grad is not None]
    values = [loss.detach().reshape(())]
    if gradients:
        values.extend(torch._foreach_norm(gradients))
    return bool(torch.stack([value.float() for value in values]).isfinite().all())


def _count_nonfinite(data: Any) -> int:
    """How many values of `data` (a tensor, or lists/tuples/dicts of them) are NaN or inf."""
    if isinstance(data, torch.Tensor):
        if not (data.is_floating_point() or data.is_complex()):
            return 0
        return int((~torch.isfinite(data)).sum())
    if isinstance(data, dict):
        data = list(data.values())
    if isinstance(data, (list, tuple)):
        return sum(_count_nonfinite(item) for item in data)
    return 0


def describe_nonfinite_batch(
    loss: torch.Tensor, x: Any, y: Any, sample_weight: torch.Tensor | None, epoch: int, batch: int
) -> str:
    """The message for a batch that failed `step_is_finite`: where (1-based epoch and batch),
    and what held NaN or inf."""
    sources = []
    for name, data in (("inputs (x)", x), ("targets (y)", y), ("sample weights", sample_weight)):
        count = _count_nonfinite(data)
        if count:
            sources.append(f"the {name} hold {count:,} NaN or inf value{'s' * (count != 1)}")
    if sources:
        cause = "; ".join(sources) + ". Clean the data (e.g. np.nan_to_num, or drop those rows)"
    else:
        cause = (
            "the inputs and targets are finite, so the model diverged. Try a lower learning "
            "rate, or clip the gradients (clipnorm=1.0 on the optimizer)"
        )
    finite_loss = bool(torch.isfinite(loss.detach()).all())
    what = "gradients hold" if finite_loss else "loss is"
    return (
        f"fit: the {what} NaN or inf at epoch {epoch + 1}, batch {batch + 1}, so this "
        f"batch was not applied (the weights and the optimizer's state are as before it): "
        f"{cause}; or pass skip_nonfinite_batches=True to skip such batches."
    )
