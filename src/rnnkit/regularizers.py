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
from collections.abc import Callable
from typing import Any

import torch

from rnnkit._registry import Registry

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


_REGISTRY = Registry(
    "regularizer",
    Regularizer,
    (L1, L2, L1L2, OrthogonalRegularizer),
    aliases={"l1l2": L1L2},
    # A bare name's factors where they differ from the constructor's defaults (see above).
    name_defaults={L1L2: {"l1": 0.01, "l2": 0.01}},
)
deserialize = _REGISTRY.deserialize
get = _REGISTRY.get
serialize = _REGISTRY.serialize
