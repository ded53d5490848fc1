"""Callbacks that set the optimizer's learning rate: `LearningRateScheduler` (a function of the
epoch) and `ReduceLROnPlateau` (a monitored quantity stopped improving)."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

import torch

from rnnkit.training.callback import Callback, Logs, print_on_primary
from rnnkit.training.monitor import MonitorCallback
from rnnkit.training.optimizer import get_learning_rate, set_learning_rate


def model_optimizer(model: Any) -> torch.optim.Optimizer:
    compiled = getattr(model, "compiled", None)
    if compiled is None:
        raise ValueError("This callback needs a compiled model: call model.compile(...) first.")
    return compiled.optimizer


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
        optimizer = model_optimizer(self.model)
        current = get_learning_rate(optimizer)
        rate = self.schedule(epoch, current) if self._takes_rate() else self.schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise ValueError(
                f"The `schedule` function must return a number; it returned {rate!r} for epoch "
                f"{epoch}."
            )
        set_learning_rate(optimizer, float(rate))
        if self.verbose > 0:
            print_on_primary(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}."
            )

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(model_optimizer(self.model))


class ReduceLROnPlateau(MonitorCallback):
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
        optimizer = model_optimizer(self.model)
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(optimizer)
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
        old_rate = get_learning_rate(optimizer)
        if self.wait >= self.patience and old_rate > self.min_lr:
            new_rate = max(old_rate * self.factor, self.min_lr)
            set_learning_rate(optimizer, new_rate)
            if self.verbose > 0:
                print_on_primary(
                    f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_rate}."
                )
            self.cooldown_counter = self.cooldown
            self.wait = 0
