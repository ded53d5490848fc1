"""The machinery shared by rnnkit's optimizers: `Optimizer`, the Keras-style configuration every
update rule derives from, and `KerasOptimizer`, the `torch.optim.Optimizer` a configuration
builds (it applies weight decay, gradient clipping and the rule's `update_step`). The rules
themselves, and the names that find them, are in `optimizers.py`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import torch


class Optimizer:
    """Base of the Keras-style optimizer configurations.

    Args:
        learning_rate: step size (Keras's default depends on the optimizer).
        weight_decay: decoupled weight decay, or None (default).
        clipnorm: clip each gradient to this L2 norm, or None (default).
        clipvalue: clip each gradient element to `[-clipvalue, clipvalue]`, or None (default).
        global_clipnorm: clip all gradients together to this global L2 norm, or None (default).

    Subclasses implement `update_step(parameter, gradient, state, learning_rate)`, Keras's
    per-variable rule, updating `parameter` and the tensors in `state` in place.
    """

    def __init__(
        self,
        learning_rate: float,
        *,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
    ) -> None:
        if sum(value is not None for value in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set; received "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}."
            )
        check_learning_rate(learning_rate)
        self._learning_rate = float(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.torch_optimizer: KerasOptimizer | None = None

    @property
    def learning_rate(self) -> float:
        """The current learning rate (that of the built torch optimizer, once built)."""
        if self.torch_optimizer is not None:
            return self.torch_optimizer.learning_rate
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        check_learning_rate(value)
        self._learning_rate = float(value)
        if self.torch_optimizer is not None:
            self.torch_optimizer.learning_rate = value

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """A torch optimizer over `parameters` that applies this configuration's rule."""
        self.torch_optimizer = KerasOptimizer(parameters, self, self._learning_rate)
        return self.torch_optimizer

    def update_step(
        self,
        parameter: torch.Tensor,
        gradient: torch.Tensor,
        state: dict[str, Any],
        learning_rate: float,
    ) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Keras-style constructor arguments (the learning rate is the current one)."""
        config = {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay}
        config.update(clipnorm=self.clipnorm, clipvalue=self.clipvalue)
        config["global_clipnorm"] = self.global_clipnorm
        return config

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def check_learning_rate(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(
            f"`learning_rate` must be a non-negative number; received learning_rate={value!r}."
        )


class KerasOptimizer(torch.optim.Optimizer):
    """A torch optimizer that applies a Keras optimizer's update rule (built by `build`).

    Args:
        params: the parameters (or parameter groups) to optimize.
        rule: the `Optimizer` configuration whose `update_step` runs for each parameter.
        lr: the initial learning rate.
    """

    def __init__(self, params: Iterable[Any], rule: Optimizer, lr: float) -> None:
        super().__init__(params, {"lr": lr})
        self.rule = rule

    @property
    def learning_rate(self) -> float:
        """The learning rate, Keras's spelling of `param_groups[i]["lr"]` (read and write)."""
        return get_learning_rate(self)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        set_learning_rate(self, value)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Applies one update to every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rule = self.rule
        for group in self.param_groups:
            learning_rate = group["lr"]
            parameters = [p for p in group["params"] if p.grad is not None]
            gradients = [p.grad for p in parameters]
            if any(gradient.is_sparse for gradient in gradients):
                raise ValueError(
                    f"{type(rule).__name__} does not take sparse gradients (e.g. from "
                    "`nn.Embedding(sparse=True)`); use dense gradients."
                )
            gradients = clip_gradients(gradients, rule)
            for parameter, gradient in zip(parameters, gradients):
                if rule.weight_decay:
                    parameter.add_(parameter, alpha=-rule.weight_decay * learning_rate)
                rule.update_step(parameter, gradient, self.state[parameter], learning_rate)
        return loss


def clip_gradients(gradients: list[torch.Tensor], rule: Optimizer) -> list[torch.Tensor]:
    """Keras's gradient clipping: per-tensor norm, global norm, or value."""
    if rule.clipnorm:
        return [g * rule.clipnorm / torch.clamp(g.norm(), min=rule.clipnorm) for g in gradients]
    if rule.global_clipnorm and gradients:
        norm = torch.sqrt(sum(g.square().sum() for g in gradients))
        scale = rule.global_clipnorm * torch.minimum(
            1.0 / norm, torch.tensor(1.0 / rule.global_clipnorm)
        )
        return [g * scale for g in gradients]
    if rule.clipvalue:
        return [g.clamp(-rule.clipvalue, rule.clipvalue) for g in gradients]
    return gradients


def get_learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of a torch optimizer (that of its first parameter group)."""
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Sets the learning rate of every parameter group of a torch optimizer."""
    check_learning_rate(value)
    for group in optimizer.param_groups:
        group["lr"] = float(value)
