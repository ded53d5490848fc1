"""Activation functions on torch tensors, with Keras 3's names, defaults and formulas.

Layers take an activation as a Keras name (``"tanh"``), ``None`` (linear) or any callable;
:func:`get` turns each into a function and :func:`serialize` turns a function back into its
name, so layer configs stay plain JSON. ``_ACTIVATIONS`` below is the one table of names.

Example:
    >>> import torch
    >>> from rnnkit import activations
    >>> activations.get("hard_sigmoid")(torch.tensor([-3.0, 0.0, 1.5]))
    tensor([0.0000, 0.5000, 0.7500])
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent: ``(exp(x) - exp(-x)) / (exp(x) + exp(-x))``."""
    return torch.tanh(x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid: ``1 / (1 + exp(-x))``."""
    return torch.sigmoid(x)


def relu(
    x: torch.Tensor,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Rectified linear unit, ``max(x, 0)`` with Keras's optional arguments.

    Args:
        x: input tensor.
        negative_slope: slope below ``threshold`` (default 0.0).
        max_value: upper saturation value, or ``None`` for none (default).
        threshold: values at or below it are damped (default 0.0).
    """
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return F.leaky_relu(x, negative_slope)
    negative_part = F.relu(threshold - x) if negative_slope != 0.0 else None
    x = torch.where(x > threshold, x, torch.zeros_like(x)) if threshold != 0.0 else F.relu(x)
    if max_value is not None:
        x = torch.clamp(x, 0.0, max_value)
    if negative_part is not None:
        x = x - negative_slope * negative_part
    return x


def linear(x: torch.Tensor) -> torch.Tensor:
    """Identity: returns ``x`` unchanged."""
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear sigmoid of Keras 3: ``relu6(x + 3) / 6`` (Keras 2 used ``0.2 x + 0.5``)."""
    return F.relu6(x + 3.0) / 6.0


def softsign(x: torch.Tensor) -> torch.Tensor:
    """Softsign: ``x / (|x| + 1)``."""
    return x / (torch.abs(x) + 1.0)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """Softplus: ``log(exp(x) + 1)``, computed stably as ``logaddexp(x, 0)``."""
    return torch.logaddexp(x, torch.zeros_like(x))


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Exponential linear unit: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)`` (alpha 1.0)."""
    return F.elu(x, alpha)


def selu(x: torch.Tensor) -> torch.Tensor:
    """Scaled ELU: ``1.0507 * elu(x, alpha=1.6733)`` (Klambauer et al., 2017)."""
    return F.selu(x)


def exponential(x: torch.Tensor) -> torch.Tensor:
    """Exponential: ``exp(x)``."""
    return torch.exp(x)


def silu(x: torch.Tensor) -> torch.Tensor:
    """Swish / SiLU: ``x * sigmoid(x)``."""
    return F.silu(x)


def relu6(x: torch.Tensor) -> torch.Tensor:
    """ReLU capped at 6: ``min(max(x, 0), 6)``."""
    return F.relu6(x)


def hard_silu(x: torch.Tensor) -> torch.Tensor:
    """Hard swish / hard SiLU: ``x * hard_sigmoid(x)``."""
    return x * hard_sigmoid(x)


def gelu(x: torch.Tensor, approximate: bool = False) -> torch.Tensor:
    """Gaussian error linear unit, ``x * P(X <= x)`` for ``X ~ N(0, 1)``.

    Args:
        x: input tensor.
        approximate: use the tanh approximation (default ``False``: the exact
            ``x / 2 * erfc(-x / sqrt(2))``, as Keras 3).
    """
    if approximate:
        return F.gelu(x, approximate="tanh")
    return 0.5 * x * torch.erfc(-x / math.sqrt(2.0))


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.2) -> torch.Tensor:
    """Leaky ReLU: ``x`` if ``x >= 0`` else ``negative_slope * x`` (Keras default 0.2)."""
    return F.leaky_relu(x, negative_slope)


def mish(x: torch.Tensor) -> torch.Tensor:
    """Mish: ``x * tanh(softplus(x))``."""
    return x * torch.tanh(softplus(x))


def softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Softmax along ``axis`` (default -1): ``exp(x) / sum(exp(x))``."""
    return torch.softmax(x, dim=axis)


def log_softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Logarithm of the softmax along ``axis`` (default -1)."""
    return torch.log_softmax(x, dim=axis)


swish = silu
hard_swish = hard_silu

# Canonical names come before their aliases: `serialize` returns the first name of a function.
_ACTIVATIONS: dict[str, Activation] = {
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "linear": linear,
    "hard_sigmoid": hard_sigmoid,
    "softsign": softsign,
    "softplus": softplus,
    "elu": elu,
    "selu": selu,
    "exponential": exponential,
    "silu": silu,
    "swish": silu,
    "relu6": relu6,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
    "gelu": gelu,
    "leaky_relu": leaky_relu,
    "mish": mish,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


class ActivationCode(enum.IntEnum):
    """The activations the compiled kernels implement, by the number each kernel uses.

    The one table of these numbers: the C++ kernels are compiled with them
    (`rnnkit.kernels.cpu_library` passes them as defines), the Triton kernels, torch's operators
    and the ONNX exporter read them from here. Each kernel implements a subset (its `blocker` says
    which); a function with no code runs in the plain loop.
    """

    LINEAR = 0
    TANH = 1
    SIGMOID = 2
    RELU = 3
    HARD_SIGMOID = 4
    SOFTSIGN = 5
    ELU = 6
    SELU = 7
    SOFTPLUS = 8
    EXPONENTIAL = 9
    SILU = 10
    RELU6 = 11


# By id: a user's callable need not be hashable.
_CODES = {id(_ACTIVATIONS[code.name.lower()]): code for code in ActivationCode}


def code_of(activation: Activation | None) -> ActivationCode | None:
    """The kernels' code of a built-in activation function, else None (a custom function, or
    one such as `gelu` that no kernel implements)."""
    return _CODES.get(id(activation))


def deserialize(
    name: str | dict[str, Any], custom_objects: dict[str, Activation] | None = None
) -> Activation:
    """Returns the activation function called ``name``.

    Args:
        name: a Keras activation name, or Keras's dict form ``{"config": name, ...}``.
        custom_objects: extra functions by name, for user-defined activations.

    Raises:
        ValueError: the name is unknown (the message lists the accepted names).
        TypeError: ``name`` is neither a string nor a dict.
    """
    if isinstance(name, dict):
        name = name.get("config")
    if not isinstance(name, str):
        raise TypeError(f"An activation name must be a string, received {name!r}.")
    table = {**_ACTIVATIONS, **(custom_objects or {})}
    if name not in table:
        raise ValueError(f"Unknown activation {name!r}; accepted names: {sorted(table)}.")
    return table[name]


def get(identifier: str | dict[str, Any] | Activation | None) -> Activation:
    """Turns a Keras name, ``None`` or a callable into an activation function.

    Args:
        identifier: ``None`` (gives :func:`linear`), a name such as ``"tanh"``, Keras's dict
            form, or a callable (returned as is).

    Raises:
        ValueError: an unknown name.
        TypeError: anything else that is not callable.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(
        "Argument `activation` must be None, a name, a dict or a callable, "
        f"received {identifier!r}."
    )


def serialize(activation: Activation) -> str:
    """Returns the name that :func:`get` maps back to ``activation``.

    Built-in functions give their canonical Keras name (``swish`` gives ``"silu"``, as in
    Keras 3). A user-defined function gives its ``__name__``; reloading it needs that function
    in ``custom_objects`` of :func:`deserialize`.

    Raises:
        ValueError: the callable has no usable name (a lambda or a ``functools.partial``).
        TypeError: ``activation`` is not callable.
    """
    for name, function in _ACTIVATIONS.items():
        if function is activation:
            return name
    if not callable(activation):
        raise TypeError(f"Cannot serialize {activation!r}: it is not callable.")
    name = getattr(activation, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise ValueError(
            f"Cannot serialize the activation {activation!r}: it has no name. Use a named "
            f"function or one of {sorted(_ACTIVATIONS)}."
        )
    return name
