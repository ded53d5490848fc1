"""The callback protocol: code that `fit`, `evaluate` and `predict` call at fixed points, as in
Keras 3.

A callback subclasses `Callback` and overrides the hooks it needs. `fit` calls, in order:
`on_train_begin`, then per epoch `on_epoch_begin(epoch)`, per batch
`on_train_batch_begin(batch)` / `on_train_batch_end(batch, logs)`, the `on_test_*` hooks while
it validates, `on_epoch_end(epoch, logs)`, and finally `on_train_end(logs)`. `logs` maps names
to floats: `{"loss": 0.52, "acc": 0.74, "val_loss": ..., "val_acc": ...}`; batch logs hold the
running means over the epoch so far. A callback stops training by setting
`self.model.stop_training = True`. `self.model` and `self.params` (`verbose`, `epochs`,
`steps`) are set before training starts.

In a distributed run (see `distributed.py`) every process runs the callbacks on the same global
logs, so they decide the same everywhere; only process 0 prints their messages and writes
files (`file_callbacks.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rnnkit.training import distributed

Logs = dict[str, Any]


def print_on_primary(message: str) -> None:
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
