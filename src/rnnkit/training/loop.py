"""The training engine behind `model.compile / fit / evaluate / predict`, with Keras 3's semantics.

The model classes call these functions; any `torch.nn.Module` that follows this interface can
be trained by them:

- `model(x_batch)` returns the prediction tensor `(batch, ...)`; with several inputs `x_batch`
  is a list of tensors, passed as one list. `fit` and `evaluate` take one output (`predict`
  also returns several, as a list of arrays).
- `model.compiled` is what `compile(model, ...)` returned (a `Compiled`): `.optimizer` (a torch
  optimizer, built on first use from `model.parameters()`), `.loss` (`loss(y_true, y_pred)`
  -> scalar tensor) and `.metrics` (metric objects with `.name`, see `metrics.py`).
- `model.losses` (optional): scalar tensors from the last forward call (regularization),
  added to the loss.
- `model.apply_constraints()` (optional): called after each optimizer step.
- `model.stop_training`: a bool that callbacks set to end training; `fit` resets it.
- `model.get_weights()` / `model.set_weights(weights)`: used by
  `EarlyStopping(restore_best_weights=True)`; `model.save(path)` / `model.save_weights(path)`:
  used by `ModelCheckpoint`.
- `model.train()` / `model.eval()`: training steps run in training mode; validation,
  `evaluate` and `predict` in eval mode under `torch.no_grad()`. Each call puts the mode back
  as it found it.

The work is split by job: `compile.py` resolves the compile arguments, `py`
turns the data into batches, `step.py` runs one train or test step, and this module runs the
epochs and the callbacks around them.

Logs and History use Keras's names: `"loss"`, each metric under the name the user gave, and
`"val_"` + name for validation, keys in Keras's (JAX backend) order: sorted training keys, then
sorted validation keys. The training loss is the running mean over the epoch's batches.

Ctrl-C during `fit` ends training cleanly: an optimizer step is never cut in half, the model
keeps what it learned, `on_train_end` runs, and `fit` returns the History of the completed
epochs.

Launched by `torchrun` (several processes), `fit` trains data-parallel with no code change: see
`distributed.py`. `evaluate` and `predict` then run whole on each process, without communication.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit.training import distributed
from rnnkit.training import metrics as metrics_module
from rnnkit.training.callbacks import Callback, CallbackList
from rnnkit.training.compile import Compiled, compile, compiled_with_loss
from rnnkit.training.data_adapters import (
    Data,
    IndexBatches,
    float_dtype,
    model_device,
    num_samples,
    prepare_arrays,
    take,
    to_data,
)
from rnnkit.training.history import History
from rnnkit.training.progress import ProgbarLogger
from rnnkit.training.step import batch_loss, results, single_output, train_step, update_trackers

__all__ = ["Compiled", "compile", "evaluate", "fit", "predict"]


def _check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2; received verbose={verbose!r}.")
    return int(verbose)


def _check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; received {batch_size!r}.")
    return batch_size


def _callback_list(
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


# ------------------------------------------------------------------------------ test
def _run_test(
    model: Any,
    compiled: Compiled,
    x: Data,
    y: Data,
    num_samples: int,
    batch_size: int,
    callbacks: CallbackList,
    group: distributed.Group = distributed.SINGLE_PROCESS,
) -> dict[str, float]:
    """Loss and metrics over `(x, y)` in eval mode, with the `on_test_*` hooks; split between
    the processes of `group` (each takes its part of every batch) and summed over them."""
    loss_tracker = metrics_module.Mean("loss")
    for metric in compiled.metrics:
        metric.reset()
    callbacks.on_test_begin()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for step, index in enumerate(
                IndexBatches(num_samples, batch_size, False, None).epoch()
            ):
                callbacks.on_test_batch_begin(step)
                index, share = group.shard(index)
                if share > 0.0:
                    device = model_device(model)
                    y_batch = take(y, index, device)
                    outputs = single_output(model(take(x, index, device)), "evaluate")
                    loss, _ = batch_loss(model, compiled, y_batch, outputs)
                    update_trackers(loss_tracker, compiled, loss, y_batch, outputs)
                callbacks.on_test_batch_end(step, results(loss_tracker, compiled, group))
    finally:
        model.train(was_training)
    logs = results(loss_tracker, compiled, group)
    callbacks.on_test_end(logs)
    return logs


# ------------------------------------------------------------------------------- fit
def _validation_set(
    model: Any, x: Data, y: Data, samples: int, validation_split: float, validation_data: Any
) -> tuple[Data, Data, int, Any]:
    """Returns (x, y, samples) for training and the validation `(x, y, samples)` or None."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "`validation_data` must be a tuple (x_val, y_val); received "
                f"{type(validation_data).__name__} of length "
                f"{len(validation_data) if hasattr(validation_data, '__len__') else '?'}."
            )
        return x, y, samples, prepare_arrays(model, *validation_data, "fit")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(
            f"`validation_split` must be in [0, 1); received validation_split={validation_split}."
        )
    if validation_split == 0.0:
        return x, y, samples, None
    split_at = math.floor(samples * (1.0 - validation_split))
    if split_at in (0, samples):
        raise ValueError(
            f"The data has {samples} samples, too few to split with "
            f"validation_split={validation_split}."
        )
    head, tail = slice(0, split_at), slice(split_at, samples)
    validation = (take(x, tail), take(y, tail), samples - split_at)
    return take(x, head), take(y, head), split_at, validation


def fit(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = 32,
    epochs: int = 1,
    verbose: int | str = "auto",
    callbacks: Sequence[Callback] | None = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
) -> History:
    """Trains `model` for `epochs` epochs on `(x, y)`, as Keras's `Model.fit`.

    Args:
        model: a compiled model (see the module docstring for the interface).
        x: inputs, `(samples, ...)` array or tensor, or a list of them for several inputs.
        y: targets, `(samples, ...)`.
        batch_size: samples per gradient step (default 32).
        epochs: the epoch to stop at (training runs `initial_epoch .. epochs - 1`).
        verbose: "auto" or 1 (progress bar), 2 (a line per epoch), 0 (silent).
        callbacks: `Callback`s to call during training.
        validation_split: fraction of the data, taken from the END of `x`/`y` before any
            shuffling, held out to compute `val_` metrics after each epoch (default 0.0).
        validation_data: `(x_val, y_val)` to validate on instead.
        shuffle: reshuffle the training samples every epoch (default True); the order comes
            from a generator seeded from torch's global RNG, so `torch.manual_seed` fixes it
            (in a distributed run, from process 0's).
        initial_epoch: the epoch to start at (to resume a run).
        steps_per_epoch: batches per epoch, or None for one pass over the data.

    Under `torchrun` (`WORLD_SIZE` > 1) the processes train the model together, each on its
    part of every batch, and all log the same global results: see `distributed.py`.

    Returns:
        The `History` (also stored as `model.history`).

    Raises:
        ValueError: not compiled with a loss; `x`/`y` of different lengths; ragged sequences;
            bad arguments.
    """
    compiled = compiled_with_loss(model, "fit")
    verbose = _check_verbose(verbose)
    batch_size = _check_batch_size(batch_size)
    x, y, samples = prepare_arrays(model, x, y, "fit")
    x, y, samples, validation = _validation_set(
        model, x, y, samples, validation_split, validation_data
    )
    group = distributed.setup()
    with group.failing_together():
        return _fit(
            model,
            compiled,
            group,
            x,
            y,
            samples,
            validation,
            batch_size=batch_size,
            epochs=epochs,
            verbose=verbose,
            callbacks=callbacks,
            shuffle=shuffle,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
        )


def _fit(
    model: Any,
    compiled: Compiled,
    group: distributed.Group,
    x: Data,
    y: Data,
    samples: int,
    validation: Any,
    *,
    batch_size: int,
    epochs: int,
    verbose: int,
    callbacks: Sequence[Callback] | None,
    shuffle: bool,
    initial_epoch: int,
    steps_per_epoch: int | None,
) -> History:
    """`fit` once its arguments are checked, on the processes of `group`."""
    group.require_same(
        {
            "the number of training samples": samples,
            "the number of validation samples": 0 if validation is None else validation[2],
        }
    )
    generator = None
    if shuffle:
        seed = group.broadcast(int(torch.randint(0, 2**62, (1,)).item()))
        generator = torch.Generator().manual_seed(seed)
    batches = IndexBatches(samples, batch_size, shuffle, generator)
    history = History()
    callback_list = _callback_list(
        callbacks,
        [history],
        verbose,
        model,
        epochs=epochs,
        steps=steps_per_epoch or batches.per_pass,
    )
    model.history = history
    model.stop_training = False
    was_training = model.training
    loss_tracker = metrics_module.Mean("loss")
    replica: torch.nn.Module | None = None  # what a training step calls (see Group.replicate)
    callback_list.on_train_begin()
    epoch_logs: dict[str, float] | None = None
    interrupted_epoch: int | None = None
    epoch = initial_epoch
    try:
        for epoch in range(initial_epoch, epochs):
            loss_tracker.reset()
            for metric in compiled.metrics:
                metric.reset()
            callback_list.on_epoch_begin(epoch)
            model.train()
            logs: dict[str, float] = {}
            for step, index in enumerate(batches.epoch(steps_per_epoch)):
                callback_list.on_train_batch_begin(step)
                index, share = group.shard(index)
                if replica is None:
                    replica = group.replicate(model, take(x, index))
                device = model_device(model)
                x_batch, y_batch = take(x, index, device), take(y, index, device)
                logs = train_step(
                    model, compiled, loss_tracker, x_batch, y_batch, replica, share, group
                )
                callback_list.on_train_batch_end(step, logs)
                model.stop_training = group.any(model.stop_training)
                if model.stop_training:
                    break
            logs = dict(logs)
            if validation is not None:
                val_logs = _run_test(model, compiled, *validation, batch_size, callback_list, group)
                logs.update((f"val_{name}", value) for name, value in val_logs.items())
            callback_list.on_epoch_end(epoch, logs)
            epoch_logs = logs
            model.stop_training = group.any(model.stop_training)
            if model.stop_training:
                break
    except KeyboardInterrupt:
        if group.distributed:  # the processes cannot agree where to stop: end them all
            raise
        interrupted_epoch = epoch
    finally:
        model.train(was_training)
    callback_list.on_train_end(epoch_logs)
    group.barrier()  # the files process 0 wrote are complete when fit returns anywhere
    if interrupted_epoch is not None:
        completed = len(history.epoch)
        print(
            f"\nTraining interrupted (Ctrl-C) in epoch {interrupted_epoch + 1}/{epochs}; the "
            f"model keeps the weights learned so far. Returning the History of {completed} "
            f"completed epoch{'s' if completed != 1 else ''}."
        )
    return history


# --------------------------------------------------------------------- evaluate, predict
def evaluate(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = 32,
    verbose: int | str = "auto",
    return_dict: bool = False,
    callbacks: Sequence[Callback] | None = None,
) -> float | list[float] | dict[str, float]:
    """The loss and metrics of `model` on `(x, y)`, in eval mode, as Keras's `Model.evaluate`.

    Args:
        model: a compiled model.
        x: inputs `(samples, ...)` (or a list for several inputs); y: targets `(samples, ...)`.
        batch_size: samples per batch (default 32).
        verbose: "auto" or 1 (progress bar), 2 (one line), 0 (silent).
        return_dict: return `{name: value}` instead of a list.
        callbacks: `Callback`s; their `on_test_*` hooks run.

    Returns:
        `[loss, metric, ...]` in compile order (just the loss when there are no metrics), or
        a dict with `return_dict=True`.
    """
    compiled = compiled_with_loss(model, "evaluate")
    verbose = _check_verbose(verbose)
    batch_size = _check_batch_size(batch_size)
    x, y, samples = prepare_arrays(model, x, y, "evaluate")
    steps = math.ceil(samples / batch_size)
    callback_list = _callback_list(callbacks, [], verbose, model, epochs=1, steps=steps)
    logs = _run_test(model, compiled, x, y, samples, batch_size, callback_list)
    if return_dict:
        return logs
    values = [logs["loss"], *(logs[metric.name] for metric in compiled.metrics)]
    return values[0] if len(values) == 1 else values


def predict(
    model: Any,
    x: Any,
    *,
    batch_size: int | None = 32,
    verbose: int | str = "auto",
    callbacks: Sequence[Callback] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """The model's outputs on `x`, batch by batch in eval mode, as NumPy.

    Args:
        model: the model (it need not be compiled).
        x: inputs `(samples, ...)`, or a list of them for several inputs.
        batch_size: samples per batch (default 32).
        verbose: "auto" or 1 (progress bar), 2 (one line), 0 (silent).
        callbacks: `Callback`s; their `on_predict_*` hooks run.

    Returns:
        `(samples, ...)` array, or a list of arrays for a model with several outputs.
    """
    verbose = _check_verbose(verbose)
    batch_size = _check_batch_size(batch_size)
    if x is None:
        raise ValueError("`predict` needs inputs `x`; received None.")
    x = to_data(x, "x", float_dtype(model))
    samples = num_samples(x, "x")
    if samples == 0:
        raise ValueError("`predict` received no samples (x has length 0).")
    steps = math.ceil(samples / batch_size)
    callback_list = _callback_list(callbacks, [], verbose, model, epochs=1, steps=steps)
    callback_list.on_predict_begin()
    chunks: list[Any] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for step, index in enumerate(IndexBatches(samples, batch_size, False, None).epoch()):
                callback_list.on_predict_batch_begin(step)
                outputs = model(take(x, index, model_device(model)))
                chunks.append(outputs)
                callback_list.on_predict_batch_end(step, {"outputs": outputs})
    finally:
        model.train(was_training)
    callback_list.on_predict_end()
    if chunks and isinstance(chunks[0], (list, tuple)):
        return [torch.cat([c[i] for c in chunks]).cpu().numpy() for i in range(len(chunks[0]))]
    return torch.cat(chunks).cpu().numpy()
