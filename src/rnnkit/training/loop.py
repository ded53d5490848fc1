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

Data: `x` and `y` are NumPy arrays or torch tensors with samples on the first axis (a list of
them for several inputs); floating arrays become float32 (the model's float dtype once it has
weights), and each batch moves to the device of the model's weights. Ragged lists of sequences
are refused with a pointer to `pad_sequences`.

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
import math
import signal
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rnnkit._interrupts import uninterruptible
from rnnkit.training import distributed, optimizers
from rnnkit.training import losses as losses_module
from rnnkit.training import metrics as metrics_module
from rnnkit.training.callbacks import Callback, CallbackList
from rnnkit.training.history import History
from rnnkit.training.progress import ProgbarLogger

Data = Any  # an array/tensor, or a list of them (several inputs)


# ---------------------------------------------------------------------------------- compile
class Compiled:
    """What `compile` resolved for a model: optimizer, loss and metrics.

    Attributes:
        optimizer: the torch optimizer, built from the model's parameters on first access (a
            model whose layers build lazily has no parameters before its first call).
        loss: `loss(y_true, y_pred) -> scalar tensor`, or None when compiled without one.
        metrics: the metric objects, named as the user wrote them.
    """

    def __init__(self, model: torch.nn.Module, optimizer: Any, loss: Any, metrics: Any) -> None:
        self._model = weakref.ref(model)
        self._optimizer_spec = optimizers.resolve(optimizer)
        self._optimizer = (
            self._optimizer_spec
            if isinstance(self._optimizer_spec, torch.optim.Optimizer)
            else None
        )
        self._loss_identifier = loss
        self.loss = None if loss is None else losses_module.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)) or not isinstance(
            metrics, (list, tuple)
        ):
            metrics = [metrics]
        self._metric_identifiers = list(metrics)
        self.metrics = [metrics_module.get(metric) for metric in metrics]

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
        return config


def compile(
    model: torch.nn.Module, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None
) -> Compiled:
    """Resolves Keras-style `compile` arguments for `model`.

    Args:
        model: the model to train.
        optimizer: a name ("rmsprop", default), an rnnkit optimizer, a torch optimizer, ...
            (see `optimizers.resolve`).
        loss: a name ("binary_crossentropy", "mse", ...), a loss object or a callable
            `(y_true, y_pred) -> tensor` (per-sample values are averaged), or None.
        metrics: a list of metric names or objects, e.g. `["acc"]` (default none).

    Returns:
        A `Compiled`, for `model.compiled`.
    """
    return Compiled(model, optimizer, loss, metrics)


def _compiled_with_loss(model: Any, method: str) -> Compiled:
    compiled = getattr(model, "compiled", None)
    if compiled is None or compiled.loss is None:
        raise ValueError(
            f"`{method}` needs a loss: call model.compile(optimizer=..., loss=...) first."
        )
    return compiled


# -------------------------------------------------------------------------------- data
def _float_dtype(model: torch.nn.Module) -> torch.dtype:
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.get_default_dtype()


def _ragged_error(argument: str, value: Any) -> ValueError:
    lengths = sorted({len(item) for item in value if hasattr(item, "__len__")})
    example = f" (lengths from {lengths[0]} to {lengths[-1]})" if len(lengths) > 1 else ""
    return ValueError(
        f"`{argument}` holds sequences of different lengths{example}; a batch needs one length. "
        f"Pad them first: {argument} = rnnkit.preprocessing.pad_sequences({argument}, maxlen=...)."
    )


def _to_tensor(value: Any, argument: str, float_dtype: torch.dtype) -> torch.Tensor:
    """One array-like as a tensor: floats in `float_dtype`, integers kept (int64 if unusual)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        array = value
    else:
        try:
            array = np.asarray(value.tolist() if isinstance(value, np.ndarray) else value)
        except ValueError:
            raise _ragged_error(argument, value) from None
        if array.dtype == object:
            raise _ragged_error(argument, value)
    if array.dtype.kind in "fb":
        return torch.as_tensor(array, dtype=float_dtype)
    if array.dtype.kind in "iu":
        keep = array.dtype in (np.int32, np.int64)
        return torch.as_tensor(array if keep else array.astype(np.int64))
    raise TypeError(f"`{argument}` must hold numbers; received an array of dtype {array.dtype}.")


def _is_several(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(item, (np.ndarray, torch.Tensor)) for item in value
    )


def _to_data(value: Any, argument: str, float_dtype: torch.dtype) -> Data:
    if _is_several(value) and value:
        return [_to_tensor(item, f"{argument}[{i}]", float_dtype) for i, item in enumerate(value)]
    return _to_tensor(value, argument, float_dtype)


def _num_samples(data: Data, argument: str) -> int:
    tensors = data if isinstance(data, list) else [data]
    sizes = {len(t) if t.dim() else 0 for t in tensors}
    if len(sizes) > 1:
        raise ValueError(
            f"The inputs in `{argument}` must have the same number of samples; received "
            f"{[len(t) for t in tensors]}."
        )
    return sizes.pop()


def _take(data: Data, index: slice | torch.Tensor, device: torch.device | None = None) -> Data:
    """The samples at `index`, on `device` (that of the model's weights) when given."""
    if isinstance(data, list):
        return [_take(t, index, device) for t in data]
    batch = data[index]
    return batch if device is None else batch.to(device, non_blocking=True)


def _device(model: torch.nn.Module) -> torch.device | None:
    return next((p.device for p in model.parameters()), None)


def _prepare(model: torch.nn.Module, x: Any, y: Any, method: str) -> tuple[Data, Data, int]:
    """`x` and `y` as tensors, checked for matching sample counts."""
    if x is None or y is None:
        raise ValueError(f"`{method}` needs both inputs `x` and targets `y`; received None.")
    if _is_several(y) and len(y) > 1:
        raise ValueError(
            f"`{method}` supports models with one output; received {len(y)} target arrays in `y`."
        )
    float_dtype = _float_dtype(model)
    x = _to_data(x, "x", float_dtype)
    y = _to_data(y, "y", float_dtype)
    samples = _num_samples(x, "x")
    targets = _num_samples(y, "y")
    if samples != targets:
        raise ValueError(
            f"`x` and `y` must have the same number of samples; received x with {samples} and "
            f"y with {targets}."
        )
    if samples == 0:
        raise ValueError(f"`{method}` received no samples (x has length 0).")
    return x, y, samples


class _Batches:
    """Index batches over `num_samples` samples, in passes (a new shuffle for each pass).

    An epoch is one pass; with `steps_per_epoch` it is that many batches from the current pass
    (Keras: the pass continues across epochs and a new one starts when it is used up).
    """

    def __init__(
        self, num_samples: int, batch_size: int, shuffle: bool, generator: torch.Generator | None
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.per_pass = math.ceil(num_samples / batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self._order: torch.Tensor | None = None
        self._position = self.per_pass  # no pass started

    def _new_pass(self) -> None:
        if self.shuffle:
            self._order = torch.randperm(self.num_samples, generator=self.generator)
        self._position = 0

    def epoch(self, steps: int | None = None) -> Iterator[slice | torch.Tensor]:
        if steps is None or self._position >= self.per_pass:
            self._new_pass()
        for step in range(steps or self.per_pass):
            if self._position >= self.per_pass:
                warnings.warn(
                    f"The data ran out after {step} of steps_per_epoch={steps} batches in this "
                    f"epoch (a pass over the data is {self.per_pass} batches); the epoch ends "
                    "early and the next one starts a new pass.",
                    stacklevel=3,
                )
                return
            start = self._position * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
            self._position += 1
            yield slice(start, stop) if self._order is None else self._order[start:stop]


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


# ------------------------------------------------------------------------------ steps
def _single_output(outputs: Any, method: str) -> torch.Tensor:
    if isinstance(outputs, (list, tuple)):
        raise ValueError(
            f"`{method}` supports models with one output; this model returned {len(outputs)}."
        )
    return outputs


def _batch_loss(
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


def _results(
    loss_tracker: metrics_module.Mean,
    compiled: Compiled,
    group: distributed.Group = distributed.SINGLE_PROCESS,
) -> dict[str, float]:
    """The logs: the loss and each metric, means over every process's samples, sorted by name."""
    trackers = [loss_tracker, *compiled.metrics]
    results = {tracker.name: value for tracker, value in zip(trackers, group.means(trackers))}
    return dict(sorted(results.items()))


def _update_trackers(
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
def _uninterruptible() -> Iterator[None]:
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


def _train_step(
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
    outputs = _single_output((model if replica is None else replica)(x), "fit")
    loss, compiled_loss = _batch_loss(model, compiled, y, outputs)
    objective = loss if share == 1.0 else loss + (share - 1.0) * compiled_loss
    optimizer = compiled.optimizer  # built here on the first step, once the model has weights
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    with _uninterruptible():
        optimizer.step()
        apply_constraints = getattr(model, "apply_constraints", None)
        if apply_constraints is not None:
            apply_constraints()
    if share > 0.0:  # a share of 0 is a stand-in sample (see `Group.shard`): not counted
        _update_trackers(loss_tracker, compiled, loss, y, outputs)
    return _results(loss_tracker, compiled, group)


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
            for step, index in enumerate(_Batches(num_samples, batch_size, False, None).epoch()):
                callbacks.on_test_batch_begin(step)
                index, share = group.shard(index)
                if share > 0.0:
                    device = _device(model)
                    y_batch = _take(y, index, device)
                    outputs = _single_output(model(_take(x, index, device)), "evaluate")
                    loss, _ = _batch_loss(model, compiled, y_batch, outputs)
                    _update_trackers(loss_tracker, compiled, loss, y_batch, outputs)
                callbacks.on_test_batch_end(step, _results(loss_tracker, compiled, group))
    finally:
        model.train(was_training)
    logs = _results(loss_tracker, compiled, group)
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
        return x, y, samples, _prepare(model, *validation_data, "fit")
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
    validation = (_take(x, tail), _take(y, tail), samples - split_at)
    return _take(x, head), _take(y, head), split_at, validation


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
    compiled = _compiled_with_loss(model, "fit")
    verbose = _check_verbose(verbose)
    batch_size = _check_batch_size(batch_size)
    x, y, samples = _prepare(model, x, y, "fit")
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
    batches = _Batches(samples, batch_size, shuffle, generator)
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
                    replica = group.replicate(model, _take(x, index))
                device = _device(model)
                x_batch, y_batch = _take(x, index, device), _take(y, index, device)
                logs = _train_step(
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
    compiled = _compiled_with_loss(model, "evaluate")
    verbose = _check_verbose(verbose)
    batch_size = _check_batch_size(batch_size)
    x, y, samples = _prepare(model, x, y, "evaluate")
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
    x = _to_data(x, "x", _float_dtype(model))
    samples = _num_samples(x, "x")
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
            for step, index in enumerate(_Batches(samples, batch_size, False, None).epoch()):
                callback_list.on_predict_batch_begin(step)
                outputs = model(_take(x, index, _device(model)))
                chunks.append(outputs)
                callback_list.on_predict_batch_end(step, {"outputs": outputs})
    finally:
        model.train(was_training)
    callback_list.on_predict_end()
    if chunks and isinstance(chunks[0], (list, tuple)):
        return [torch.cat([c[i] for c in chunks]).cpu().numpy() for i in range(len(chunks[0]))]
    return torch.cat(chunks).cpu().numpy()
