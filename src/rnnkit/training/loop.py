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

The work is split by job: `compile.py` resolves the compile arguments, `data_adapters.py`
(arrays: `array_data.py`) turns any data into batches, `epoch_iterator.py` cuts them into
epochs, `step.py` runs one train or test step, and this module runs the epochs and the
callbacks around them.

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

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit.training import distributed
from rnnkit.training import metrics as metrics_module
from rnnkit.training.array_data import (
    check_class_weight,
    float_dtype,
    model_device,
    prepare_arrays,
    split_validation,
)
from rnnkit.training.callbacks import Callback
from rnnkit.training.compile import Compiled, compile, compiled_with_loss
from rnnkit.training.data_adapters import (
    ArrayAdapter,
    Shuffled,
    adapt,
    is_dataset,
    shuffled_by_fit,
)
from rnnkit.training.epoch_iterator import EpochIterator
from rnnkit.training.evaluation import (
    check_batch_size,
    check_verbose,
    evaluate,
    make_callback_list,
    on_device,
    predict,
    run_test,
)
from rnnkit.training.finite import NonFiniteLossError, describe_nonfinite_batch
from rnnkit.training.fit_arguments import check_fit_arguments
from rnnkit.training.history import History
from rnnkit.training.step import NonFiniteStep, reset_trackers, results, train_step

__all__ = ["Compiled", "compile", "evaluate", "fit", "predict"]


def _should_validate(epoch: int, validation_freq: Any) -> bool:
    """Keras's rule: validate after epoch `e` (1-based) when `e % freq == 0`, or `e in freq`."""
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        if validation_freq < 1:
            raise ValueError(
                f"`validation_freq` must be a positive integer or a list of epochs; received "
                f"validation_freq={validation_freq}."
            )
        return (epoch + 1) % validation_freq == 0
    if isinstance(validation_freq, (list, tuple)):
        return epoch + 1 in validation_freq
    raise ValueError(
        "`validation_freq` must be a positive integer or a list of epochs; received "
        f"validation_freq={validation_freq!r} of type {type(validation_freq).__name__}."
    )


# ------------------------------------------------------------------------------- fit
def _unpack_validation(validation_data: Any) -> tuple[Any, Any, Any]:
    """`(x_val, y_val, sample_weight_val)` from `validation_data` (None when there is none)."""
    if validation_data is None or is_dataset(validation_data):
        return validation_data, None, None
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        return (*validation_data, None)[:3]
    length = len(validation_data) if hasattr(validation_data, "__len__") else "?"
    raise ValueError(
        "`validation_data` must be (x_val, y_val), (x_val, y_val, sample_weight_val) or a "
        f"dataset; received {type(validation_data).__name__} of length {length}."
    )


def fit(
    model: Any,
    x: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    verbose: int | str = "auto",
    callbacks: Sequence[Callback] | None = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    class_weight: dict[int, float] | None = None,
    sample_weight: Any = None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_batch_size: int | None = None,
    validation_freq: int | Sequence[int] = 1,
    skip_nonfinite_batches: bool = False,
) -> History:
    """Trains `model` for `epochs` epochs on `x`, as Keras's `Model.fit`.

    Args:
        model: a compiled model (see the module docstring for the interface).
        x: inputs, `(samples, ...)` array or tensor (a list of them for several inputs), or a
            dataset holding the targets too: a torch `Dataset` or `DataLoader`, a `PyDataset`,
            or an iterable or generator of `(x, y)` / `(x, y, sample_weight)` batches (see
            `data_adapters.py`).
        y: targets `(samples, ...)` when `x` holds arrays (None with a dataset).
        batch_size: samples per gradient step for arrays and Datasets (default 32).
        epochs: the epoch to stop at (training runs `initial_epoch .. epochs - 1`).
        verbose: "auto" or 1 (progress bar), 2 (a line per epoch), 0 (silent).
        callbacks: `Callback`s to call during training.
        validation_split: fraction of array data, taken from the END of `x`/`y` before any
            shuffling, held out to compute `val_` metrics after each epoch (default 0.0).
        validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight_val)` arrays, or a
            dataset of any kind `x` may be, to validate on instead.
        shuffle: reshuffle arrays, Datasets and PyDatasets every epoch (default True); the
            order comes from a generator seeded from torch's global RNG, so `torch.manual_seed`
            fixes it (in a distributed run, from process 0's). A DataLoader shuffles itself.
        class_weight: `{class index: weight}`: each sample's loss (and weighted metrics) is
            weighted by its class's weight.
        sample_weight: `(samples,)` weights beside array `x`: the batch loss is
            `sum(w * loss) / batch size`, as in Keras.
        initial_epoch: the epoch to start at (to resume a run).
        steps_per_epoch: batches per epoch (needed for data that never ends), or None for
            one pass over the data.
        validation_steps: batches per validation, or None for one pass.
        validation_batch_size: batch size for array validation data (default `batch_size`).
        validation_freq: validate every this many epochs, or after the (1-based) epochs listed.
        skip_nonfinite_batches: (rnnkit's own) a batch whose loss or gradients hold NaN or inf
            is never applied. False (default): fit stops with `NonFiniteLossError` naming the
            epoch, the batch and whether the inputs or targets held NaN/inf. True: such
            batches are skipped, listed in `History.skipped_batches` and counted in a
            RuntimeWarning at the end.

    Under `torchrun` (`WORLD_SIZE` > 1) the processes train the model together, each on its
    part of every batch, and all log the same global results: see `distributed.py`.

    Returns:
        The `History` (also stored as `model.history`).

    Raises:
        ValueError: not compiled with a loss; `x`/`y` of different lengths; ragged sequences;
            malformed batches; bad arguments.
        TypeError: an argument of the wrong type (`epochs=2.5`, `validation_split="0.2"`).
        NonFiniteLossError: (a ValueError) a batch's loss or gradients held NaN or inf.
    """
    compiled = compiled_with_loss(model, "fit")
    epochs, initial_epoch, steps_per_epoch, validation_split, callbacks = check_fit_arguments(
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_split=validation_split,
        callbacks=callbacks,
    )
    if not isinstance(skip_nonfinite_batches, (bool, np.bool_)):
        raise TypeError(
            "fit: `skip_nonfinite_batches` must be True or False, received "
            f"{skip_nonfinite_batches!r}."
        )
    verbose = check_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    validation_batch_size = check_batch_size(
        validation_batch_size or batch_size, "validation_batch_size"
    )
    class_weight = check_class_weight(class_weight)
    validated = [e for e in range(initial_epoch, epochs) if _should_validate(e, validation_freq)]
    dtype = float_dtype(model)
    train: Any = None  # the (x, y, sample_weight) tensors of array data
    if not is_dataset(x):
        *arrays, samples = prepare_arrays(model, x, y, "fit", sample_weight, class_weight)
        if validation_data is None:
            arrays, validation_data = split_validation(tuple(arrays), samples, validation_split)
        train = tuple(arrays)
    elif validation_split:
        raise ValueError(
            "`validation_split` needs arrays, to cut the validation samples from; `x` is a "
            f"dataset. Pass validation_data instead. Received validation_split={validation_split}."
        )
    val_x, val_y, val_weight = _unpack_validation(validation_data)
    group = distributed.setup()
    with group.failing_together():
        seed = 0
        if shuffle and shuffled_by_fit(x):
            seed = group.broadcast(int(torch.randint(0, 2**62, (1,)).item()))
        generator = torch.Generator().manual_seed(seed)
        if train is not None:
            samples = len(train[1])
            adapter = ArrayAdapter(
                train, samples, batch_size, Shuffled(samples, shuffle, generator), group
            )
        else:
            adapter = adapt(
                model,
                x,
                y,
                method="fit",
                dtype=dtype,
                sample_weight=sample_weight,
                class_weight=class_weight,
                batch_size=batch_size,
                shuffle=shuffle,
                generator=generator,
                group=group,
            )
        training = EpochIterator(adapter, steps_per_epoch, group, "x")
        validation = None
        if val_x is not None and validated:
            val_adapter = adapt(
                model,
                val_x,
                val_y,
                method="fit",
                dtype=dtype,
                sample_weight=val_weight,
                batch_size=validation_batch_size,
                group=group,
                argument="validation_data",
            )
            validation = EpochIterator(
                val_adapter, validation_steps, group, "validation_data", training=False
            )
            if val_adapter.one_shot and validation_steps is None and len(validated) > 1:
                raise ValueError(
                    "`validation_data` is a generator, which can be iterated only once, and fit "
                    f"validates after {len(validated)} epochs. Pass validation_steps (with a "
                    "generator that yields that many batches for every validation), or a list "
                    "of batches, a DataLoader or a PyDataset."
                )
        lengths = {f"the number of training {adapter.length_unit}": adapter.length_for_check()}
        if validation is not None:
            unit = validation.adapter.length_unit
            lengths[f"the number of validation {unit}"] = validation.adapter.length_for_check()
        group.require_same({name: value or 0 for name, value in lengths.items()})
        return _fit(
            model,
            compiled,
            group,
            training,
            validation,
            epochs=epochs,
            verbose=verbose,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
            validation_freq=validation_freq,
            skip_nonfinite_batches=bool(skip_nonfinite_batches),
        )


def _warn_skipped(skipped: list[tuple[int, int]]) -> None:
    shown = ", ".join(f"epoch {epoch + 1}, batch {batch + 1}" for epoch, batch in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    warnings.warn(
        f"fit skipped {len(skipped)} batch{'es' * (len(skipped) != 1)} whose loss or gradients "
        f"held NaN or inf ({shown}{more}); they were not applied. History.skipped_batches lists "
        "them.",
        RuntimeWarning,
        stacklevel=3,
    )


def _fit(
    model: Any,
    compiled: Compiled,
    group: distributed.Group,
    training: EpochIterator,
    validation: EpochIterator | None,
    *,
    epochs: int,
    verbose: int,
    callbacks: Sequence[Callback] | None,
    initial_epoch: int,
    validation_freq: Any,
    skip_nonfinite_batches: bool,
) -> History:
    """`fit` once its data is adapted, on the processes of `group`."""
    history = History()
    callback_list = make_callback_list(
        callbacks, [history], verbose, model, epochs=epochs, steps=training.num_batches
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
            reset_trackers(loss_tracker, compiled)
            callback_list.on_epoch_begin(epoch)
            model.train()
            logs: dict[str, float] = {}
            steps_done = 0
            with contextlib.closing(training.epoch()) as batches:
                for step, batch in batches:
                    callback_list.on_train_batch_begin(step)
                    if replica is None:
                        replica = group.replicate(model, batch.x)
                    x, y, sample_weight, share = on_device(batch, model_device(model))
                    try:
                        logs = train_step(
                            model, compiled, loss_tracker, x, y, sample_weight, replica, share,
                            group,
                        )  # fmt: skip
                    except NonFiniteStep as failed:
                        if not skip_nonfinite_batches:
                            message = describe_nonfinite_batch(
                                failed.loss, x, y, sample_weight, epoch, step
                            )
                            raise NonFiniteLossError(message) from None
                        history.skipped_batches.append((epoch, step))
                        logs = results(loss_tracker, compiled, group)
                    callback_list.on_train_batch_end(step, logs)
                    steps_done += 1
                    model.stop_training = group.any(model.stop_training)
                    if model.stop_training:
                        break
            if training.exhausted and steps_done == 0:
                break  # the data had run out before this epoch: it is not logged
            logs = dict(logs)
            if validation is not None and _should_validate(epoch, validation_freq):
                val_logs = run_test(model, compiled, validation, callback_list, group)
                logs.update((f"val_{name}", value) for name, value in val_logs.items())
            callback_list.on_epoch_end(epoch, logs)
            epoch_logs = logs
            model.stop_training = group.any(model.stop_training)
            if model.stop_training or training.exhausted:
                break
    except KeyboardInterrupt:
        if group.distributed:  # the processes cannot agree where to stop: end them all
            raise
        interrupted_epoch = epoch
    finally:
        model.train(was_training)
    callback_list.on_train_end(epoch_logs)
    group.barrier()  # the files process 0 wrote are complete when fit returns anywhere
    if history.skipped_batches:
        _warn_skipped(history.skipped_batches)
    if interrupted_epoch is not None:
        completed = len(history.epoch)
        print(
            f"\nTraining interrupted (Ctrl-C) in epoch {interrupted_epoch + 1}/{epochs}; the "
            f"model keeps the weights learned so far. Returning the History of {completed} "
            f"completed epoch{'s' if completed != 1 else ''}."
        )
    return history
