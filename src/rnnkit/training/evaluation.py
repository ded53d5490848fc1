"""`evaluate` and `predict`, and the evaluation pass that `fit` runs for validation.

Both take the data `fit` takes (see `data_adapters.py`), run in eval mode under
`torch.no_grad()` and put the model's mode back as they found it. They run whole on each
process of a distributed run, without communication; `fit`'s validation is split between the
processes instead.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit.training import distributed
from rnnkit.training import metrics as metrics_module
from rnnkit.training.array_data import float_dtype, model_device
from rnnkit.training.batches import Batch
from rnnkit.training.callbacks import Callback, CallbackList
from rnnkit.training.compile import Compiled, compiled_with_loss
from rnnkit.training.data_adapters import adapt
from rnnkit.training.epoch_iterator import EpochIterator
from rnnkit.training.progress import ProgbarLogger
from rnnkit.training.step import evaluate_step, reset_trackers, results


def check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; received verbose={verbose!r}.")
    return int(verbose)


def check_batch_size(batch_size: Any, argument: str = "batch_size") -> int:
    if batch_size is None:
        return 32
    integer = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    if not integer or batch_size < 1:
        raise ValueError(f"`{argument}` must be a positive integer; received {batch_size!r}.")
    return int(batch_size)  # NumPy's integers too, as Keras takes them


def make_callback_list(
    callbacks: Sequence[Callback] | None,
    extra: list[Callback],
    verbose: int,
    model: Any,
    **params: Any,
) -> CallbackList:
    user = list(callbacks or [])
    if verbose and not any(isinstance(c, ProgbarLogger) for c in user):
        extra = [*extra, ProgbarLogger()]
    return CallbackList([*user, *extra], model=model, params={"verbose": verbose, **params})


def on_device(batch: Batch, device: torch.device | None) -> Batch:
    def move(data: Any) -> Any:
        if data is None or device is None:
            return data
        if isinstance(data, list):
            return [move(item) for item in data]
        return data.to(device, non_blocking=True)

    return Batch(move(batch.x), move(batch.y), move(batch.sample_weight), batch.share)


def run_test(
    model: Any,
    compiled: Compiled,
    iterator: EpochIterator,
    callbacks: CallbackList,
    group: distributed.Group = distributed.SINGLE_PROCESS,
) -> dict[str, float]:
    """Loss and metrics over one epoch of `iterator` in eval mode, with the `on_test_*` hooks;
    split between the processes of `group` and summed over them."""
    loss_tracker = metrics_module.Mean("loss")
    reset_trackers(loss_tracker, compiled)
    callbacks.on_test_begin()
    was_training = model.training
    model.eval()
    iterator.restart()
    try:
        with torch.no_grad(), contextlib.closing(iterator.epoch()) as batches:
            for step, batch in batches:
                callbacks.on_test_batch_begin(step)
                if batch.share > 0.0:  # a share of 0 is a stand-in sample: not counted
                    x, y, sample_weight, _ = on_device(batch, model_device(model))
                    evaluate_step(model, compiled, loss_tracker, x, y, sample_weight)
                callbacks.on_test_batch_end(step, results(loss_tracker, compiled, group))
    finally:
        model.train(was_training)
    if iterator.exhausted:
        raise ValueError(
            f"`{iterator.argument}` yielded no batches. A generator can be iterated only once: "
            "pass a list of batches, a DataLoader or a PyDataset, or a generator that never ends "
            "together with the number of steps to take from it."
        )
    logs = results(loss_tracker, compiled, group)
    callbacks.on_test_end(logs)
    return logs


def evaluate(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    verbose: int | str = "auto",
    sample_weight: Any = None,
    steps: int | None = None,
    return_dict: bool = False,
    callbacks: Sequence[Callback] | None = None,
) -> float | list[float] | dict[str, float]:
    """The loss and metrics of `model` on `x`, in eval mode, as Keras's `Model.evaluate`.

    Args:
        model: a compiled model.
        x: inputs `(samples, ...)` (or a list for several inputs), or a dataset of `(x, y)` /
            `(x, y, sample_weight)` batches (any kind `fit` takes).
        y: targets `(samples, ...)` beside array `x`.
        batch_size: samples per batch for arrays and Datasets (default 32).
        verbose: "auto" or 1 (progress bar), 2 (one line), 0 (silent).
        sample_weight: `(samples,)` weights beside array `x`.
        steps: batches to evaluate, or None for one pass.
        return_dict: return `{name: value}` instead of a list.
        callbacks: `Callback`s; their `on_test_*` hooks run.

    Returns:
        `[loss, metric, ..., weighted metric, ...]` in compile order (just the loss when there
        are no metrics), or a dict with `return_dict=True`.
    """
    compiled = compiled_with_loss(model, "evaluate")
    verbose = check_verbose(verbose)
    adapter = adapt(
        model,
        x,
        y,
        method="evaluate",
        dtype=float_dtype(model),
        sample_weight=sample_weight,
        batch_size=check_batch_size(batch_size),
    )
    iterator = EpochIterator(adapter, steps, argument="x", training=False)
    callback_list = make_callback_list(
        callbacks, [], verbose, model, epochs=1, steps=iterator.num_batches
    )
    logs = run_test(model, compiled, iterator, callback_list)
    if return_dict:
        return logs
    values = [logs["loss"], *(logs[metric.name] for metric in compiled.all_metrics)]
    return values[0] if len(values) == 1 else values


def predict(
    model: Any,
    x: Any,
    *,
    batch_size: int | None = None,
    verbose: int | str = "auto",
    steps: int | None = None,
    callbacks: Sequence[Callback] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """The model's outputs on `x`, batch by batch in eval mode, as NumPy.

    Args:
        model: the model (it need not be compiled).
        x: inputs `(samples, ...)` (or a list of them for several inputs), or a dataset of any
            kind `fit` takes (targets in its batches are ignored).
        batch_size: samples per batch for arrays and Datasets (default 32).
        verbose: "auto" or 1 (progress bar), 2 (one line), 0 (silent).
        steps: batches to predict, or None for one pass.
        callbacks: `Callback`s; their `on_predict_*` hooks run.

    Returns:
        `(samples, ...)` array, or a list of arrays for a model with several outputs.
    """
    verbose = check_verbose(verbose)
    adapter = adapt(
        model,
        x,
        method="predict",
        dtype=float_dtype(model),
        batch_size=check_batch_size(batch_size),
        need_y=False,
    )
    iterator = EpochIterator(adapter, steps, argument="x", training=False)
    callback_list = make_callback_list(
        callbacks, [], verbose, model, epochs=1, steps=iterator.num_batches
    )
    callback_list.on_predict_begin()
    chunks: list[Any] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), contextlib.closing(iterator.epoch()) as batches:
            for step, batch in batches:
                callback_list.on_predict_batch_begin(step)
                outputs = model(on_device(batch, model_device(model)).x)
                chunks.append(outputs)
                callback_list.on_predict_batch_end(step, {"outputs": outputs})
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("`predict` received no batches: `x` yielded none.")
    callback_list.on_predict_end()
    if isinstance(chunks[0], (list, tuple)):
        return [torch.cat([c[i] for c in chunks]).cpu().numpy() for i in range(len(chunks[0]))]
    return torch.cat(chunks).cpu().numpy()
