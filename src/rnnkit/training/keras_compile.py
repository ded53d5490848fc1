"""The `compile()` arguments and the optimizer state in Keras 3's `.keras` format, both ways.

Keras keeps the compile arguments in `config.json` (`"compile_config"`: optimizer, loss, metrics,
each a name or a serialized object) and the optimizer's variables in `model.weights.h5` under
`optimizer/vars/<i>`, in the order the optimizer created them:

    0: iterations (int64)   1: learning_rate   then the slots of each trainable weight,
    the weights in `model.trainable_variables` order (that of the weights file):
    RMSprop   velocity of every weight, then momentum of every weight (momentum > 0), then
              average_gradient of every weight (centered)
    Adam(W)   momentum and velocity of each weight in turn, then velocity_hat of every weight
              (amsgrad)
    SGD       momentum of every weight (momentum != 0)
    Adagrad   accumulator of every weight

rnnkit's optimizers apply Keras's update rules with the same slots (`state[parameter][slot]`),
so the state moves over unchanged, with one exception: rnnkit counts steps only where the rule
uses them (Adam's `step`), so for RMSprop, SGD and Adagrad the iteration count is written as 0
(their updates do not depend on it). Compile arguments Keras has no name for (a torch.optim
optimizer, a custom loss or metric function) are not written: such a model is saved uncompiled.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.io import keras_weights
from rnnkit.training import losses, metrics, optimizers

_ANY = object()
# Keras-only arguments of optimizers, losses and metrics, and the values under which rnnkit's
# objects compute the same thing (_ANY: any value).
_NEUTRAL: dict[str, Any] = {
    "name": _ANY,
    "dtype": _ANY,
    "use_ema": False,
    "ema_momentum": _ANY,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "reduction": "sum_over_batch_size",
    "label_smoothing": 0.0,
    "axis": -1,
    "ignore_class": None,
}
# What Keras's `compile_config` holds besides optimizer, loss and metrics, when it changes
# nothing rnnkit computes.
_NEUTRAL_COMPILE: dict[str, Any] = {
    "loss_weights": None,
    "weighted_metrics": None,
    "run_eagerly": _ANY,
    "steps_per_execution": _ANY,
    "jit_compile": _ANY,
    "auto_scale_loss": _ANY,
}


def _slot_blocks(rule: optimizers.Optimizer) -> list[list[str]]:
    """Keras's slot variables of `rule`: blocks written one after another; within a block, the
    slots of each weight in turn."""
    if isinstance(rule, optimizers.Adam):
        return [["momentum", "velocity"]] + ([["velocity_hat"]] if rule.amsgrad else [])
    if isinstance(rule, optimizers.RMSprop):
        blocks = [["velocity"]]
        blocks += [["momentum"]] if rule.momentum > 0 else []
        return blocks + ([["average_gradient"]] if rule.centered else [])
    if isinstance(rule, optimizers.SGD):
        return [["momentum"]] if rule.momentum != 0 else []
    if isinstance(rule, optimizers.Adagrad):
        return [["accumulator"]]
    raise ValueError(f"No Keras optimizer state layout for {type(rule).__name__}.")


def _initial_slot(rule: optimizers.Optimizer, slot: str, parameter: nn.Parameter) -> torch.Tensor:
    if slot == "accumulator":
        return torch.full_like(parameter, rule.initial_accumulator_value)
    return torch.zeros_like(parameter)


def trainable_weights(model: nn.Module) -> list[nn.Parameter]:
    """The trainable weights of `model` in Keras's order (`model.trainable_variables`)."""
    return [
        parameter
        for group in keras_weights.model_groups(model)
        for _, parameter in group.weights
        if parameter.requires_grad
    ]


# ------------------------------------------------------------------------------- writing
def _keras_object(module: str, value: Any) -> Any:
    if isinstance(value, dict) and module == "keras.metrics" and value["class_name"] == "Accuracy":
        return "accuracy"  # Keras's name for what rnnkit's Accuracy computes
    if isinstance(value, dict):
        config = dict(value.get("config") or {})
        return {"module": module, "class_name": value["class_name"], "config": config}
    return value


def compile_config(compiled: Any) -> dict[str, Any] | None:
    """Keras's `compile_config` for a model's `Compiled`, or None when Keras has no name for
    its optimizer, loss or one of its metrics (the model is then saved uncompiled)."""
    config = compiled.get_config()
    optimizer = config.get("optimizer")
    if optimizer is None or (
        isinstance(optimizer, dict) and optimizer["class_name"] not in optimizers._CLASSES
    ):
        return None
    if compiled.loss is not None and "loss" not in config:
        return None
    if len(config["metrics"]) != len(compiled.metrics):
        return None
    return {
        "optimizer": _keras_object("keras.optimizers", optimizer),
        "loss": _keras_object("keras.losses", config.get("loss")),
        "loss_weights": None,
        "metrics": [_keras_object("keras.metrics", metric) for metric in config["metrics"]],
        "weighted_metrics": None,
    }


def optimizer_variables(model: Any) -> tuple[str, list[np.ndarray]] | None:
    """The compiled model's optimizer as Keras saves it: its name and its variables in Keras's
    order (see the module docstring), or None when it is not an rnnkit optimizer."""
    optimizer = model.compiled._optimizer
    spec = model.compiled._optimizer_spec
    if isinstance(optimizer, optimizers.KerasOptimizer):
        rule, states = optimizer.rule, optimizer.state
    elif optimizer is None and isinstance(spec, optimizers.Optimizer):
        # Not built yet (compiled, never trained): Keras builds its optimizer on load and
        # expects every variable, so the initial ones are written.
        rule, states = spec, {}
    else:
        return None
    parameters = trainable_weights(model)
    steps = [states[p].get("step", 0) for p in parameters if p in states]
    values = [
        np.asarray(max(steps, default=0), dtype=np.int64),
        np.asarray(rule.learning_rate, dtype=np.float32),
    ]
    for block in _slot_blocks(rule):
        for parameter in parameters:
            state = states.get(parameter, {})
            for slot in block:
                value = state.get(slot)
                value = _initial_slot(rule, slot, parameter) if value is None else value
                values.append(value.detach().cpu().numpy())
    return keras_weights.snake_case(type(rule).__name__), values


# ------------------------------------------------------------------------------- reading
def _rnnkit_arguments(kind: str, keras_object: dict[str, Any], cls: type) -> dict[str, Any]:
    """The constructor arguments of rnnkit's `cls` from a Keras object config.

    Raises:
        ValueError: an argument rnnkit lacks holds a value that changes what Keras computes.
    """
    accepted = set(inspect.signature(cls.__init__).parameters)
    if issubclass(cls, optimizers.Optimizer):
        accepted |= set(inspect.signature(optimizers.Optimizer.__init__).parameters)
    arguments = {}
    for key, value in (keras_object.get("config") or {}).items():
        if key in accepted and key != "self":
            arguments[key] = value
        elif key in _NEUTRAL and _NEUTRAL[key] in (_ANY, value):
            continue
        else:
            raise ValueError(
                f"The {kind} {keras_object['class_name']} has option `{key}` = {value!r}, which "
                "rnnkit does not support; load the model with `rnnkit.io.load_keras(path)` "
                "(without its compile arguments) and compile it yourself."
            )
    return arguments


def _from_keras(kind: str, value: Any, classes: dict[str, type]) -> Any:
    """A name as it is; a serialized Keras object as the rnnkit object of the same class."""
    if not isinstance(value, dict):
        return value
    cls = classes.get(value.get("class_name"))
    # rnnkit's `Accuracy` is Keras's "accuracy" name (chosen from the shapes), not
    # `keras.metrics.Accuracy` (exact equality).
    if cls is None or (kind == "metric" and cls is metrics.Accuracy):
        raise ValueError(
            f"rnnkit has no {kind} {value.get('class_name')!r}; load the model with "
            "`rnnkit.io.load_keras(path)` (without its compile arguments) and compile it yourself."
        )
    return cls(**_rnnkit_arguments(kind, value, cls))


def compile_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """rnnkit's `compile()` arguments from Keras's `compile_config`.

    Raises:
        ValueError: an optimizer, loss, metric or option that rnnkit lacks (named).
    """
    for key, value in config.items():
        if key in ("optimizer", "loss", "metrics"):
            continue
        if key not in _NEUTRAL_COMPILE or _NEUTRAL_COMPILE[key] not in (_ANY, value):
            raise ValueError(
                f"The compile argument `{key}` = {value!r} is not supported by rnnkit; load the "
                "model with `rnnkit.io.load_keras(path)` and compile it yourself."
            )
    metric_list = config.get("metrics") or []
    return {
        "optimizer": _from_keras("optimizer", config.get("optimizer"), optimizers._CLASSES),
        "loss": _from_keras("loss", config.get("loss"), losses._CLASSES),
        "metrics": [_from_keras("metric", metric, metrics._CLASSES) for metric in metric_list],
    }


def set_optimizer_variables(model: Any, values: list[np.ndarray], source: str) -> None:
    """Sets the compiled model's optimizer state from Keras's optimizer variables.

    Args:
        model: a model compiled with an rnnkit optimizer (others are left as they are).
        values: the arrays under `optimizer/vars`, in Keras's order; just the iteration count
            and learning rate when Keras had not built its optimizer yet (never trained).
        source: how errors name the file.

    Raises:
        ValueError: another number of variables than the model's optimizer has, or one of
            another shape than its weight.
    """
    optimizer = model.compiled.optimizer
    if not isinstance(optimizer, optimizers.KerasOptimizer):
        return
    rule = optimizer.rule
    parameters = trainable_weights(model)
    slots = [(p, slot) for block in _slot_blocks(rule) for p in parameters for slot in block]
    if len(values) == 2:
        slots = []
    if len(values) != 2 + len(slots):
        raise ValueError(
            f"{source}: the {type(rule).__name__} state has {len(values)} variables, the model's "
            f"optimizer needs {2 + len(slots)}; was it saved from another model?"
        )
    for (parameter, slot), value in zip(slots, values[2:]):
        if tuple(value.shape) != tuple(parameter.shape):
            raise ValueError(
                f"{source}: optimizer variable {slot!r} has shape {value.shape}, its weight "
                f"{tuple(parameter.shape)}."
            )
    optimizer.learning_rate = float(values[1])
    for (parameter, slot), value in zip(slots, values[2:]):
        state = optimizer.state[parameter]
        state[slot] = torch.as_tensor(value, dtype=parameter.dtype).to(parameter.device)
        if isinstance(rule, optimizers.Adam):
            state["step"] = int(values[0])
