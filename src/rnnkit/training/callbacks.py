"""Callbacks: code that `fit`, `evaluate` and `predict` call at fixed points, as in Keras 3.

A callback subclasses `Callback` and overrides the hooks it needs. `fit` calls, in order:
`on_train_begin`, then per epoch `on_epoch_begin(epoch)`, per batch
`on_train_batch_begin(batch)` / `on_train_batch_end(batch, logs)`, the `on_test_*` hooks while
it validates, `on_epoch_end(epoch, logs)`, and finally `on_train_end(logs)`. `logs` maps names
to floats: `{"loss": 0.52, "acc": 0.74, "val_loss": ..., "val_acc": ...}`; batch logs hold the
running means over the epoch so far. A callback stops training by setting
`self.model.stop_training = True`. `self.model` and `self.params` (`verbose`, `epochs`,
`steps`) are set before training starts.

Ready-made: `EarlyStopping`, `ModelCheckpoint`, `CSVLogger`, `LambdaCallback`,
`LearningRateScheduler`, `ReduceLROnPlateau`, `TerminateOnNaN`; `History`, the progress bar
and `TensorBoard` live in `history.py`, `progress.py` and `tensorboard.py`.

In a distributed run (see `distributed.py`) every process runs the callbacks on the same global
logs, so they decide the same everywhere; only process 0 prints their messages and writes
files (`ModelCheckpoint`, `CSVLogger`).

Example:
    >>> stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    >>> model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[stop])
"""

from __future__ import annotations

import csv
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch

from rnnkit.training import distributed, optimizers

Logs = dict[str, Any]


def _print(message: str) -> None:
    """Prints a callback's message: from process 0 only in a distributed run."""
    if distributed.is_primary():
        print(message)


class Callback:
    """Base class of callbacks; every hook does nothing until overridden.

    Attributes:
        model: the model being trained (set by `set_model`).
        params: `{"verbose", "epochs", "steps"}` (set by `set_params`).
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None: ...

    def on_train_end(self, logs: Logs | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Keras's older name for `on_train_batch_begin` (which calls it)."""

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Keras's older name for `on_train_batch_end` (which calls it)."""

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: Logs | None = None) -> None: ...

    def on_test_end(self, logs: Logs | None = None) -> None: ...

    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...

    def on_predict_begin(self, logs: Logs | None = None) -> None: ...

    def on_predict_end(self, logs: Logs | None = None) -> None: ...

    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...


class CallbackList(Callback):
    """Calls each hook on every callback of a list, in order, with the same `logs` dict (so a
    callback may add entries, as `LearningRateScheduler` adds `learning_rate`).

    Args:
        callbacks: the callbacks.
        model: set on each callback, if given.
        params: set on each callback, if given.
    """

    def __init__(
        self,
        callbacks: Iterable[Callback] = (),
        model: Any = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    "Each entry of `callbacks` must be an rnnkit.callbacks.Callback; received "
                    f"{callback!r}."
                )
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs: Logs | None = None) -> None:
        self._call("on_test_begin", logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs: Logs | None = None) -> None:
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs: Logs | None = None) -> None:
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_predict_batch_end", batch, logs)


def _model_optimizer(model: Any) -> torch.optim.Optimizer:
    compiled = getattr(model, "compiled", None)
    if compiled is None:
        raise ValueError("This callback needs a compiled model: call model.compile(...) first.")
    return compiled.optimizer


class _MonitorCallback(Callback):
    """Shared by callbacks that watch one logged quantity (Keras's `MonitorCallback`).

    `mode="auto"` minimises losses and, for metrics, follows the metric's `direction`
    (accuracies are maximised); anything else needs `mode="min"` or `"max"`.
    """

    def __init__(
        self, monitor: str, mode: str, baseline: float | None = None, min_delta: float = 0.0
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"`mode` must be 'auto', 'min' or 'max'; received mode={mode!r}.")
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self._sign: int | None = None  # -1: lower is better, +1: higher is better

    def _direction(self) -> int:
        if self._sign is None:
            if self.mode != "auto":
                self._sign = -1 if self.mode == "min" else 1
            else:
                name = self.monitor.removeprefix("val_")
                compiled = getattr(self.model, "compiled", None)
                directions = {m.name: m.direction for m in getattr(compiled, "metrics", [])}
                directions["loss"] = "down"
                if name not in directions:
                    raise ValueError(
                        f"{type(self).__name__} cannot tell whether monitor={self.monitor!r} "
                        "should be minimised or maximised: pass mode='min' or mode='max'."
                    )
                self._sign = 1 if directions[name] == "up" else -1
        return self._sign

    def _is_improvement(self, current: float, reference: float | None) -> bool:
        sign = self._direction()  # first, so that an unknown direction fails at once
        if reference is None:
            return True
        if sign > 0:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def _monitored(self, logs: Logs | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} is conditioned on `{self.monitor}`, which is not in "
                f"the logs. Available: {', '.join(logs or {})}.",
                stacklevel=3,
            )
        return value


class EarlyStopping(_MonitorCallback):
    """Stops training when a monitored quantity has stopped improving.

    Args:
        monitor: the quantity to watch (default "val_loss").
        min_delta: smaller changes do not count as improvement (default 0).
        patience: epochs without improvement before stopping (default 0).
        verbose: 1 prints when it stops and restores (default 0).
        mode: "auto" (default), "min" or "max".
        baseline: training stops if the quantity does not beat it within `patience` epochs
            (default None).
        restore_best_weights: at the end of training, put back the weights of the best epoch
            (default False: keep the last ones).
        start_from_epoch: epochs to wait before watching at all (default 0).

    Attributes:
        stopped_epoch: the 0-based epoch at which it stopped training (0 if it did not).
        best_epoch: the 0-based epoch with the best value.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights: list[Any] | None = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = self._monitored(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Saves the model (or its weights) at the end of each epoch (from process 0 only in a
    distributed run).

    Args:
        filepath: where to save; may hold format fields filled from the epoch (1-based) and the
            logs, e.g. `"ckpt-{epoch:02d}-{val_loss:.2f}.rnnkit"`.
        monitor: the quantity that decides "best" (default "val_loss").
        verbose: 1 prints a line per decision (default 0).
        save_best_only: save only when `monitor` improves (default False: every epoch).
        save_weights_only: call `model.save_weights(path)` instead of `model.save(path)`
            (default False).
        mode: "auto" (default), "min" or "max".
        initial_value_threshold: the value to beat before the first save (default None).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"ModelCheckpoint cannot fill filepath={self.filepath!r} from epoch and logs "
                f"{sorted(logs)}: {error!r}"
            ) from None
        if self.save_best_only:
            current = self._monitored(logs)
            if current is not None:
                best = "None" if self.best is None else f"{self.best:.5f}"
                if not self._is_improvement(current, self.best):
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
                    return
                if self.verbose > 0:
                    _print(
                        f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                        f"{current:.5f}, saving model to {path}"
                    )
                self.best = current
        elif self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if not distributed.is_primary():
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file: `epoch,acc,loss,val_acc,val_loss`
    (from process 0 only in a distributed run).

    Args:
        filename: the CSV file.
        separator: the column separator (default ",").
        append: add to an existing file instead of overwriting it (default False); the header
            is written only if the file is empty.
    """

    def __init__(
        self, filename: str | os.PathLike, separator: str = ",", append: bool = False
    ) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file: Any = None
        self._writer: csv.DictWriter | None = None
        self.keys: list[str] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if not distributed.is_primary():
            return
        write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as existing:
                write_header = not existing.readline()
        self._close()
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._write_header = write_header
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if not distributed.is_primary():
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self._writer is None:
            self._writer = csv.DictWriter(
                self._file, fieldnames=["epoch", *self.keys], delimiter=self.separator
            )
            if self._write_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._writer = None


class LambdaCallback(Callback):
    """A callback made of plain functions, e.g.
    `LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))`.

    Args:
        on_epoch_begin, on_epoch_end: `f(epoch, logs)`.
        on_train_begin, on_train_end: `f(logs)`.
        on_train_batch_begin, on_train_batch_end: `f(batch, logs)`.
        **kwargs: other hooks by name (e.g. `on_test_end=f`).
    """

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        super().__init__()
        for name, function in hooks.items():
            if not (name.startswith("on_") and callable(getattr(Callback, name, None))):
                raise ValueError(f"LambdaCallback: {name!r} is not a callback hook.")
            if function is not None:
                setattr(self, name, function)


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch from `schedule(epoch, lr) -> lr`.

    Args:
        schedule: `f(epoch, lr)` (0-based epoch, current rate) returning the new rate;
            `f(epoch)` is accepted too.
        verbose: 1 prints each new rate (default 0).

    The rate at the end of each epoch is added to the logs as `learning_rate`.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _takes_rate(self) -> bool:
        try:
            inspect.signature(self.schedule).bind(0, 0.0)
        except TypeError:
            return False
        except ValueError:  # no signature available (some builtins): assume Keras's form
            return True
        return True

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = _model_optimizer(self.model)
        current = optimizers.get_learning_rate(optimizer)
        rate = self.schedule(epoch, current) if self._takes_rate() else self.schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise ValueError(
                f"The `schedule` function must return a number; it returned {rate!r} for epoch "
                f"{epoch}."
            )
        optimizers.set_learning_rate(optimizer, float(rate))
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = optimizers.get_learning_rate(_model_optimizer(self.model))


class ReduceLROnPlateau(_MonitorCallback):
    """Multiplies the learning rate by `factor` when a quantity stops improving.

    Args:
        monitor: the quantity to watch (default "val_loss").
        factor: the multiplier, below 1 (default 0.1).
        patience: epochs without improvement before reducing (default 10).
        verbose: 1 prints each reduction (default 0).
        mode: "auto" (default), "min" or "max".
        min_delta: smaller changes do not count as improvement (default 1e-4).
        cooldown: epochs to wait after a reduction before counting again (default 0).
        min_lr: the rate never goes below it (default 0.0).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"`factor` must be below 1.0; received factor={factor}.")
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.on_train_begin()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = _model_optimizer(self.model)
        if logs is not None:
            logs["learning_rate"] = optimizers.get_learning_rate(optimizer)
        current = self._monitored(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        old_rate = optimizers.get_learning_rate(optimizer)
        if self.wait >= self.patience and old_rate > self.min_lr:
            new_rate = max(old_rate * self.factor, self.min_lr)
            optimizers.set_learning_rate(optimizer, new_rate)
            if self.verbose > 0:
                _print(
                    f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_rate}."
                )
            self.cooldown_counter = self.cooldown
            self.wait = 0


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite.

    Args:
        raise_error: raise `RuntimeError` instead of stopping gracefully (default False).
    """

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss at batch {batch}: loss={loss}.")
        _print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True
