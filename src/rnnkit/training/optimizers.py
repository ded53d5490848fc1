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
import numbers
from collections.abc import Callable, Iterable
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
        _check_learning_rate(learning_rate)
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
        _check_learning_rate(value)
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


def _check_learning_rate(value: Any) -> None:
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
            gradients = _clip(gradients, rule)
            for parameter, gradient in zip(parameters, gradients):
                if rule.weight_decay:
                    parameter.sub_(parameter * rule.weight_decay * learning_rate)
                rule.update_step(parameter, gradient, self.state[parameter], learning_rate)
        return loss


def _clip(gradients: list[torch.Tensor], rule: Optimizer) -> list[torch.Tensor]:
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
            parameter.sub_(gradient * learning_rate)
            return
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(parameter)
        velocity = state["momentum"]
        velocity.mul_(self.momentum).sub_(gradient * learning_rate)
        if self.nesterov:
            parameter.add_(velocity * self.momentum - gradient * learning_rate)
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
        velocity.copy_(self.rho * velocity + (1 - self.rho) * gradient.square())
        if self.centered:
            average = state["average_gradient"]
            average.copy_(self.rho * average + (1 - self.rho) * gradient)
            denominator = velocity - average.square() + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = learning_rate * gradient / torch.sqrt(denominator)
        if self.momentum > 0:
            momentum = state["momentum"]
            momentum.copy_(self.momentum * momentum + increment)
            parameter.sub_(momentum)
        else:
            parameter.sub_(increment)

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
        momentum.add_((gradient - momentum) * (1 - self.beta_1))
        velocity.add_((gradient.square() - velocity) * (1 - self.beta_2))
        if self.amsgrad:
            torch.maximum(state["velocity_hat"], velocity, out=state["velocity_hat"])
            velocity = state["velocity_hat"]
        parameter.sub_(momentum * alpha / (torch.sqrt(velocity) + self.epsilon))

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
        accumulator.add_(gradient.square())
        parameter.sub_(learning_rate * gradient / torch.sqrt(accumulator + self.epsilon))

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


def get_learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of a torch optimizer (that of its first parameter group)."""
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Sets the learning rate of every parameter group of a torch optimizer."""
    _check_learning_rate(value)
    for group in optimizer.param_groups:
        group["lr"] = float(value)
