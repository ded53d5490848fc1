"""Weight and activity regularizers with Keras 3's names, formulas and configs, on torch tensors.

A regularizer maps a tensor to a scalar penalty that is added to the training loss
(``layer.losses``). The string names use Keras's default factors: ``"l1"`` and ``"l2"`` give
0.01, and ``"l1_l2"`` gives ``l1=l2=0.01`` as Keras documents (Keras 3 itself only knows the
name ``"l1l2"``, which gives zero factors; rnnkit accepts both names and uses 0.01).

Example:
    >>> import torch
    >>> from rnnkit import regularizers
    >>> regularizers.L2(0.5)(torch.tensor([1.0, -2.0]))
    tensor(2.5000)
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from typing import Any

import torch

RegularizerLike = Callable[[torch.Tensor], torch.Tensor]


def _factor(value: Any, name: str) -> float:
    """Checks that a penalty factor is a finite, non-negative number; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a non-negative float, received {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Argument `{name}` must be a non-negative float, received {value!r}.")
    return float(value)


class Regularizer:
    """Base class: ``__call__(x)`` returns a scalar penalty; subclasses add ``get_config``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the penalty for ``x`` as a 0-d tensor of ``x``'s dtype (here: 0)."""
        return x.new_zeros(())

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as a JSON-ready dict."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `get_config()`.")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        """Recreates the regularizer from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            config = {}
        arguments = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({arguments})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x ** 2)``.

    Args:
        l1: L1 factor (default 0.0; None means 0.0).
        l2: L2 factor (default 0.0; None means 0.0).
    """

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        penalty = x.new_zeros(())
        if self.l1 != 0.0:
            penalty = penalty + self.l1 * torch.sum(torch.abs(x))
        if self.l2 != 0.0:
            penalty = penalty + self.l2 * torch.sum(torch.square(x))
        return penalty

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum(|x|)``.

    Args:
        l1: L1 factor (default 0.01; None means 0.01).
    """

    def __init__(self, l1: float | None = 0.01):
        self.l1 = _factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * torch.sum(torch.abs(x))

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(x ** 2)``.

    Args:
        l2: L2 factor (default 0.01; None means 0.01).
    """

    def __init__(self, l2: float | None = 0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * torch.sum(torch.square(x))

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (or columns) of a 2-D tensor towards mutual orthogonality.

    With ``u_i`` the L2-normalized rows (``mode="rows"``) or columns, and ``n`` their number:
    ``factor * 0.5 * sum_{i != j} |u_i . u_j| / (n * (n - 1) / 2)``.

    Args:
        factor: penalty factor (default 0.01).
        mode: ``"rows"`` (default) or ``"columns"``.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _factor(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError(f"Argument `mode` must be 'rows' or 'columns', received {mode!r}.")
        self.mode = mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(
                f"OrthogonalRegularizer needs a 2-D input, received shape {tuple(x.shape)}."
            )
        vectors = x if self.mode == "rows" else x.T  # (n, d)
        norms = torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
        vectors = vectors / torch.clamp(norms, min=1e-7)  # Keras: x * min(rsqrt(|x|^2), 1/eps)
        size = vectors.shape[0]
        product = vectors @ vectors.T  # (n, n)
        off_diagonal = product * (1.0 - torch.eye(size, dtype=x.dtype, device=x.device))
        num_pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * torch.sum(torch.abs(off_diagonal)) / num_pairs

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "mode": self.mode}


_CLASSES = (L1, L2, L1L2, OrthogonalRegularizer)
_BY_NAME: dict[str, type[Regularizer]] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower(): cls for cls in _CLASSES},
    "l1l2": L1L2,
}
# Factors a bare name gives where they differ from the constructor's defaults (see above).
_NAME_DEFAULTS: dict[type[Regularizer], dict[str, float]] = {L1L2: {"l1": 0.01, "l2": 0.01}}


def deserialize(
    config: str | dict[str, Any], custom_objects: dict[str, type] | None = None
) -> Regularizer:
    """Builds a regularizer from a name or from ``{"class_name": ..., "config": {...}}``.

    Keras's extra keys (``module``, ``registered_name``) are ignored.

    Raises:
        ValueError: an unknown name (the message lists the accepted ones).
        TypeError: ``config`` is neither a string nor such a dict.
    """
    table = {**_BY_NAME, **(custom_objects or {})}
    if isinstance(config, str):
        if config not in table:
            raise ValueError(f"Unknown regularizer {config!r}; accepted names: {sorted(table)}.")
        cls = table[config]
        return cls(**_NAME_DEFAULTS.get(cls, {}))
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise TypeError(
            "A regularizer config must be a name or a dict with 'class_name' and 'config', "
            f"received {config!r}."
        )
    name = config["class_name"]
    if name not in table:
        raise ValueError(f"Unknown regularizer {name!r}; accepted names: {sorted(table)}.")
    return table[name].from_config(dict(config.get("config") or {}))


def get(identifier: str | dict[str, Any] | RegularizerLike | None) -> RegularizerLike | None:
    """Turns a Keras name, a config dict, a class or a callable into a regularizer.

    Args:
        identifier: ``None`` (returned as is), a name (``"l2"`` or ``"L2"``), a config dict,
            a :class:`Regularizer` class (instantiated with its defaults) or a callable
            ``x -> scalar tensor``.

    Raises:
        ValueError: an unknown name.
        TypeError: anything else that is not callable.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(
        "Argument `regularizer` must be None, a name, a dict, a Regularizer or a callable, "
        f"received {identifier!r}."
    )


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    """Returns ``{"class_name": ..., "config": {...}}`` (Keras 3's format), or None for None.

    Raises:
        TypeError: ``regularizer`` has no ``get_config()`` (a plain function cannot be saved).
    """
    if regularizer is None:
        return None
    if not callable(getattr(regularizer, "get_config", None)):
        raise TypeError(
            f"Cannot serialize the regularizer {regularizer!r}: it has no `get_config()`. "
            "Subclass rnnkit.regularizers.Regularizer to make it serializable."
        )
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
