"""Weight constraints with Keras 3's names, formulas and configs, on torch tensors.

A constraint maps a weight to its projection (clipped norm, non-negative values, ...); layers
apply it after each optimizer step (``layer.apply_constraints()``). Norms are taken along
``axis`` (default 0: for a ``kernel (input_dim, units)``, each unit's incoming weights), and
``EPSILON`` (Keras's ``backend.epsilon()``, 1e-7) keeps the divisions finite.

Example:
    >>> import torch
    >>> from rnnkit import constraints
    >>> constraints.get("unit_norm")(torch.tensor([[3.0], [4.0]])).flatten()
    tensor([0.6000, 0.8000])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rnnkit._registry import Registry

EPSILON = 1e-7
ConstraintLike = Callable[[torch.Tensor], torch.Tensor]
Axis = int | Sequence[int]


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a number, received {value!r}.")
    return value


def _axis(axis: Axis) -> Axis:
    ok = isinstance(axis, int) or (
        isinstance(axis, Sequence) and all(isinstance(a, int) for a in axis)
    )
    if not ok or isinstance(axis, bool):
        raise TypeError(f"Argument `axis` must be an int or a list of ints, received {axis!r}.")
    return axis


def _norms(w: torch.Tensor, axis: Axis) -> torch.Tensor:
    """L2 norms along ``axis``, kept as size-1 dimensions so they broadcast against ``w``."""
    dim = axis if isinstance(axis, int) else tuple(axis)
    return torch.sqrt(torch.sum(torch.square(w), dim=dim, keepdim=True))


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight (here: ``w`` unchanged)."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """Returns the projection of ``w`` (same shape and dtype)."""
        return w

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as a JSON-ready dict."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        """Recreates the constraint from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class MaxNorm(Constraint):
    """Scales each weight vector whose norm exceeds ``max_value`` down to it.

    ``w * clip(norm, 0, max_value) / (EPSILON + norm)``.

    Args:
        max_value: the largest norm allowed (default 2).
        axis: the axis (or list of axes) the norms are taken over (default 0).
    """

    def __init__(self, max_value: float = 2, axis: Axis = 0):
        self.max_value = _number(max_value, "max_value")
        self.axis = _axis(axis)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        return w * (torch.clamp(norms, 0.0, self.max_value) / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Replaces negative weights by 0: ``max(w, 0)``."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(w, min=0.0)


class UnitNorm(Constraint):
    """Scales each weight vector to norm 1: ``w / (EPSILON + norm)``.

    Args:
        axis: the axis (or list of axes) the norms are taken over (default 0).
    """

    def __init__(self, axis: Axis = 0):
        self.axis = _axis(axis)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each weight vector's norm into ``[min_value, max_value]`` at speed ``rate``.

    ``desired = rate * clip(norm, min_value, max_value) + (1 - rate) * norm``, then
    ``w * desired / (EPSILON + norm)``; ``rate=1`` enforces the bounds at once.

    Args:
        min_value: the smallest norm (default 0.0).
        max_value: the largest norm (default 1.0).
        rate: the fraction of the way to the bounds taken per call (default 1.0).
        axis: the axis (or list of axes) the norms are taken over (default 0).
    """

    def __init__(
        self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Axis = 0
    ):
        self.min_value = _number(min_value, "min_value")
        self.max_value = _number(max_value, "max_value")
        self.rate = _number(rate, "rate")
        if min_value > max_value:
            raise ValueError(
                f"Argument `min_value` must not exceed `max_value`, received "
                f"min_value={min_value!r}, max_value={max_value!r}."
            )
        self.axis = _axis(axis)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        clipped = torch.clamp(norms, self.min_value, self.max_value)
        desired = self.rate * clipped + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


_REGISTRY = Registry("constraint", Constraint, (MaxNorm, NonNeg, UnitNorm, MinMaxNorm))
deserialize = _REGISTRY.deserialize
get = _REGISTRY.get
serialize = _REGISTRY.serialize
