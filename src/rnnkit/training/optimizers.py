"""Keras 3's optimizers, with Keras's defaults and update rules, as torch optimizers.

`RMSprop`, `Adam`, `AdamW`, `SGD` and `Adagrad` are Keras-style configurations: create one with
Keras's arguments, and `build(parameters)` returns a `torch.optim.Optimizer` that applies
exactly Keras's update rule (so training matches Keras step for step). Names work too:
`get("rmsprop", model.parameters())`.

Why not `torch.optim.RMSprop` / `Adam` / `Adagrad`? Their formulas differ from Keras's:
- RMSprop: Keras divides by `sqrt(v + epsilon)`, torch by `sqrt(v) + epsilon`;
- Adam: Keras adds epsilon to `sqrt(v)` *before* the bias correction of `v` (torch after), so
  in torch's terms its epsilon is `epsilon / sqrt(1 - beta_2 ** t)` (larger early on);
- Adagrad: Keras starts the accumulator at 0.1 and divides by `sqrt(acc + epsilon)`;
- SGD with momentum: Keras's velocity holds `learning_rate * gradient`, so a learning-rate change
  takes effect gradually (torch: at once).
The differences are negligible for large gradients but not for small ones (|g| of about
1e-3 and below, common for embeddings and in late training), so the rules are written out here
and checked against Keras step by step.

Every optimizer also takes Keras's `weight_decay` (decoupled: `w -= w * weight_decay * lr`,
before the update), `clipnorm` (each gradient's norm), `global_clipnorm` and `clipvalue`.
The learning rate lives in torch's `param_groups[i]["lr"]`, so `torch.optim.lr_scheduler` works;
`optimizer.learning_rate` reads and writes it, on the configuration and on the built optimizer.

Example:
    >>> config = RMSprop(learning_rate=1e-3)
    >>> optimizer = config.build(model.parameters())   # a torch.optim.Optimizer
    >>> config.learning_rate = 1e-4                     # also changes optimizer's param_groups
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from rnnkit.kernels.optimizer_updates import rmsprop_update
from rnnkit.training.optimizer import (
    KerasOptimizer,
    Optimizer,
    get_learning_rate,
    set_learning_rate,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "KerasOptimizer",
    "Optimizer",
    "OptimizerSpec",
    "RMSprop",
    "get",
    "get_learning_rate",
    "resolve",
    "serialize",
    "set_learning_rate",
]


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as `keras.optimizers.SGD`.

    `velocity = momentum * velocity - lr * g`; `w += velocity` (Nesterov:
    `w += momentum * velocity - lr * g`); without momentum `w -= lr * g`.

    Args:
        learning_rate: default 0.01.
        momentum: default 0.0.
        nesterov: default False.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1]; received momentum={momentum!r}.")
        self.momentum = momentum
        self.nesterov = nesterov

    def update_step(
        self,
        parameter: torch.Tensor,
        gradient: torch.Tensor,
        state: dict[str, Any],
        learning_rate: float,
    ) -> None:
        if self.momentum == 0:
            parameter.add_(gradient, alpha=-learning_rate)
            return
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(parameter)
        velocity = state["momentum"]
        velocity.mul_(self.momentum).add_(gradient, alpha=-learning_rate)
        if self.nesterov:
            parameter.add_(torch.mul(velocity, self.momentum).add_(gradient, alpha=-learning_rate))
        else:
            parameter.add_(velocity)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop as `keras.optimizers.RMSprop`.

    `v = rho * v + (1 - rho) * g**2`; `w -= lr * g / sqrt(v + epsilon)`
    (centered: `sqrt(v - mean_g**2 + epsilon)`; with momentum the step feeds a velocity).

    Args:
        learning_rate: default 0.001.
        rho: decay of the squared-gradient average, default 0.9.
        momentum: default 0.0.
        epsilon: default 1e-7.
        centered: default False.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def update_step(
        self,
        parameter: torch.Tensor,
        gradient: torch.Tensor,
        state: dict[str, Any],
        learning_rate: float,
    ) -> None:
        if not state:
            state["velocity"] = torch.zeros_like(parameter)
            if self.momentum > 0:
                state["momentum"] = torch.zeros_like(parameter)
            if self.centered:
                state["average_gradient"] = torch.zeros_like(parameter)
        velocity = state["velocity"]
        if not (self.momentum > 0 or self.centered) and rmsprop_update(
            parameter, gradient, velocity, learning_rate, self.rho, self.epsilon
        ):
            return  # one compiled pass over the arrays instead of the five below
        # In place: one temporary (the denominator) instead of eight, for embedding tables.
        velocity.mul_(self.rho).addcmul_(gradient, gradient, value=1 - self.rho)
        if self.centered:
            average = state["average_gradient"]
            average.mul_(self.rho).add_(gradient, alpha=1 - self.rho)
            denominator = torch.addcmul(velocity, average, average, value=-1).add_(self.epsilon)
        else:
            denominator = velocity.add(self.epsilon)
        denominator.sqrt_()
        if self.momentum > 0:
            momentum = state["momentum"]
            momentum.mul_(self.momentum).addcdiv_(gradient, denominator, value=learning_rate)
            parameter.sub_(momentum)
        else:
            parameter.addcdiv_(gradient, denominator, value=-learning_rate)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "rho": self.rho, "momentum": self.momentum}
        return {**config, "epsilon": self.epsilon, "centered": self.centered}


class Adam(Optimizer):
    """Adam as `keras.optimizers.Adam`.

    `m += (g - m) * (1 - beta_1)`; `v += (g**2 - v) * (1 - beta_2)`;
    `w -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)`.

    Args:
        learning_rate: default 0.001.
        beta_1: default 0.9.
        beta_2: default 0.999.
        epsilon: default 1e-7.
        amsgrad: use the running maximum of `v` (default False).
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def update_step(
        self,
        parameter: torch.Tensor,
        gradient: torch.Tensor,
        state: dict[str, Any],
        learning_rate: float,
    ) -> None:
        if not state:
            state["step"] = 0
            state["momentum"] = torch.zeros_like(parameter)
            state["velocity"] = torch.zeros_like(parameter)
            if self.amsgrad:
                state["velocity_hat"] = torch.zeros_like(parameter)
        state["step"] += 1
        step = state["step"]
        alpha = learning_rate * math.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        momentum, velocity = state["momentum"], state["velocity"]
        # lerp_ is Keras's `m += (g - m) * (1 - beta_1)`, in place.
        momentum.lerp_(gradient, 1 - self.beta_1)
        velocity.lerp_(gradient.square(), 1 - self.beta_2)
        if self.amsgrad:
            torch.maximum(state["velocity_hat"], velocity, out=state["velocity_hat"])
            velocity = state["velocity_hat"]
        parameter.addcdiv_(momentum, velocity.sqrt().add_(self.epsilon), value=-alpha)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
        return {**config, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay, as `keras.optimizers.AdamW` (`weight_decay=0.004`).

    Args:
        learning_rate: default 0.001.
        weight_decay: default 0.004.
        **kwargs: Adam's `beta_1`, `beta_2`, `epsilon`, `amsgrad`, and the clipping options.
    """

    def __init__(
        self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    """Adagrad as `keras.optimizers.Adagrad`.

    `acc += g**2` (starting at `initial_accumulator_value`); `w -= lr * g / sqrt(acc + epsilon)`.

    Args:
        learning_rate: default 0.001.
        initial_accumulator_value: default 0.1.
        epsilon: default 1e-7.
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def update_step(
        self,
        parameter: torch.Tensor,
        gradient: torch.Tensor,
        state: dict[str, Any],
        learning_rate: float,
    ) -> None:
        if not state:
            state["accumulator"] = torch.full_like(parameter, self.initial_accumulator_value)
        accumulator = state["accumulator"]
        accumulator.addcmul_(gradient, gradient)
        parameter.addcdiv_(gradient, accumulator.add(self.epsilon).sqrt_(), value=-learning_rate)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "epsilon": self.epsilon}
        return {**config, "initial_accumulator_value": self.initial_accumulator_value}


_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
}
_CLASSES = {cls.__name__: cls for cls in _OPTIMIZERS.values()}


OptimizerSpec = Optimizer | torch.optim.Optimizer | Callable[[Any], torch.optim.Optimizer]


def resolve(identifier: Any) -> OptimizerSpec:
    """What `identifier` stands for, before any parameters exist.

    Args:
        identifier: `"rmsprop"`, `"adam"`, `"adamw"`, `"sgd"`, `"adagrad"` (Keras's defaults);
            an `Optimizer` configuration such as `RMSprop(learning_rate=1e-4)`; a dict from
            `serialize`; a built `torch.optim.Optimizer`; or a function
            `parameters -> torch.optim.Optimizer`.

    Returns:
        An `Optimizer` configuration, the torch optimizer itself, or a function of the
        parameters.

    Raises:
        ValueError: unknown name. TypeError: an unsupported kind of object.
    """
    if isinstance(identifier, (Optimizer, torch.optim.Optimizer)):
        return identifier
    if isinstance(identifier, str):
        cls = _OPTIMIZERS.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Unknown optimizer: optimizer={identifier!r}. Expected one of "
                f"{sorted(_OPTIMIZERS)}, an rnnkit optimizer such as RMSprop(...), or a "
                "torch.optim.Optimizer."
            )
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("class_name", "")
        config = dict(identifier.get("config", {}))
        if name in _CLASSES:
            return _CLASSES[name](**config)
        torch_name = name.removeprefix("torch.optim.")
        if name.startswith("torch.optim.") and hasattr(torch.optim, torch_name):
            return functools.partial(getattr(torch.optim, torch_name), **config)
        raise ValueError(f"Unknown optimizer class_name {name!r} in optimizer={identifier!r}.")
    if callable(identifier):
        return identifier
    raise TypeError(
        "Expected `optimizer` to be a name, an rnnkit optimizer, a torch.optim.Optimizer or a "
        f"function of the parameters; received {identifier!r}."
    )


def get(identifier: Any, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """A built torch optimizer over `parameters` for anything `resolve` accepts (a torch
    optimizer that is already built is returned unchanged).

    Example:
        >>> get("rmsprop", model.parameters())   # Keras's RMSprop: lr 0.001, rho 0.9, eps 1e-7
    """
    spec = resolve(identifier)
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if isinstance(spec, Optimizer):
        return spec.build(parameters)
    return spec(parameters)


def serialize(optimizer: Any) -> str | dict[str, Any] | None:
    """A JSON-able form of `optimizer` that `get` accepts (with the current learning rate), or
    None when it has none (a torch optimizer with unusual settings)."""
    if isinstance(optimizer, str):
        return optimizer
    if isinstance(optimizer, KerasOptimizer):
        optimizer = optimizer.rule
    if isinstance(optimizer, Optimizer):
        return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
    if isinstance(optimizer, torch.optim.Optimizer):
        config = {**optimizer.defaults, "lr": get_learning_rate(optimizer)}
        try:
            json.dumps(config)
        except (TypeError, ValueError):
            return None
        return {"class_name": f"torch.optim.{type(optimizer).__name__}", "config": config}
    return None
