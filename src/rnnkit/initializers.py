"""Weight initializers with Keras 3's names, defaults, formulas and configs, giving torch tensors.

An initializer is called as ``initializer(shape, dtype=None, device=None)``. Random values are
drawn on the CPU (then moved to ``device``): from a ``torch.Generator`` seeded with ``seed`` when
``seed`` is an int, so a seeded instance returns the same values on every call, or from torch's
global generator when ``seed=None``, so ``torch.manual_seed`` makes a run reproducible.
Values are not bit-identical to Keras's (the random generators differ); the distributions are.

Example:
    >>> from rnnkit import initializers
    >>> initializers.get("glorot_uniform")((32, 128)).shape
    torch.Size([32, 128])
    >>> initializers.serialize(initializers.Constant(0.5))
    {'class_name': 'Constant', 'config': {'value': 0.5}}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rnnkit._registry import Registry

InitializerLike = Callable[..., torch.Tensor]
DType = torch.dtype | str | None
Device = torch.device | str | None


def compute_fans(
    shape: Sequence[int],
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Returns ``(fan_in, fan_out)`` for a weight shape, as Keras 3 counts them.

    A 1-D shape has ``fan_in = fan_out = shape[0]``; a 2-D shape ``(shape[0], shape[1])``; a
    longer shape multiplies both by the receptive field (the product of ``shape[:-2]``).
    Given both ``input_axes`` and ``output_axes``, each fan is the product of those dimensions.
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    if not isinstance(shape, Sequence) or not all(isinstance(d, numbers.Integral) for d in shape):
        raise TypeError(f"Argument `shape` must be a sequence of ints, received {shape!r}.")
    if any(d < 0 for d in shape):
        raise ValueError(f"Argument `shape` must not have negative sizes, received {shape!r}.")
    return tuple(int(d) for d in shape)


def _dtype(dtype: DType, floating: bool = False) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or (floating and not resolved.is_floating_point):
        kind = "a floating torch.dtype" if floating else "a torch.dtype"
        raise TypeError(f"Argument `dtype` must be {kind} or its name, received {dtype!r}.")
    return resolved


class Initializer:
    """Base class: ``__call__(shape, dtype=None, device=None)`` returns a new tensor."""

    def __call__(
        self, shape: Sequence[int], dtype: DType = None, device: Device = None
    ) -> torch.Tensor:
        """Returns a tensor of ``shape`` (default dtype: ``torch.get_default_dtype()``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement `__call__`.")

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as a JSON-ready dict."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        """Recreates the initializer from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class Zeros(Initializer):
    """Fills with 0."""

    def __call__(self, shape: Sequence[int], dtype: DType = None, device: Device = None):
        return torch.zeros(_shape(shape), dtype=_dtype(dtype), device=device)


class Ones(Initializer):
    """Fills with 1."""

    def __call__(self, shape: Sequence[int], dtype: DType = None, device: Device = None):
        return torch.ones(_shape(shape), dtype=_dtype(dtype), device=device)


class Constant(Initializer):
    """Fills with one scalar.

    Args:
        value: the Python scalar to fill with (default 0.0).
    """

    def __init__(self, value: float = 0.0):
        if not isinstance(value, numbers.Number):
            raise TypeError(f"Argument `value` must be a Python scalar, received {value!r}.")
        self.value = value

    def __call__(self, shape: Sequence[int], dtype: DType = None, device: Device = None):
        return torch.full(_shape(shape), self.value, dtype=_dtype(dtype), device=device)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class Identity(Initializer):
    """``gain * eye(rows, cols)`` for a 2-D shape (rectangular allowed, as Keras 3).

    Args:
        gain: factor applied to the identity matrix (default 1.0).
    """

    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def __call__(self, shape: Sequence[int], dtype: DType = None, device: Device = None):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D `shape`, received shape={shape}.")
        return self.gain * torch.eye(*shape, dtype=_dtype(dtype), device=device)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


class _RandomInitializer(Initializer):
    """Holds the seed and draws on the CPU in float32 or float64, then casts and moves."""

    def __init__(self, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"Argument `seed` must be an int or None, received {seed!r}.")
        self.seed = seed

    def __call__(self, shape: Sequence[int], dtype: DType = None, device: Device = None):
        dtype = _dtype(dtype, floating=True)
        work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        values = self._draw(_shape(shape), work, generator)
        return values.to(dtype=dtype, device=device)

    def _draw(
        self, shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


def _uniform(shape, minval, maxval, dtype, generator) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype).uniform_(minval, maxval, generator=generator)


def _normal(shape, mean, stddev, dtype, generator) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype).normal_(mean, stddev, generator=generator)


def _truncated_normal(shape, mean, stddev, dtype, generator) -> torch.Tensor:
    """Normal values cut at two standard deviations from the mean, as Keras."""
    values = torch.empty(shape, dtype=dtype)
    low, high = mean - 2.0 * stddev, mean + 2.0 * stddev
    return torch.nn.init.trunc_normal_(values, mean, stddev, low, high, generator=generator)


class RandomUniform(_RandomInitializer):
    """Uniform values in ``[minval, maxval)`` (defaults -0.05, 0.05; ``seed`` None)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval = minval, maxval
        super().__init__(seed)

    def _draw(self, shape, dtype, generator):
        return _uniform(shape, self.minval, self.maxval, dtype, generator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class _MeanStddevInitializer(_RandomInitializer):
    _sample: Callable[..., torch.Tensor]

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev = mean, stddev
        super().__init__(seed)

    def _draw(self, shape, dtype, generator):
        return self._sample(shape, self.mean, self.stddev, dtype, generator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomNormal(_MeanStddevInitializer):
    """Normal values (defaults ``mean=0.0``, ``stddev=0.05``, ``seed=None``)."""

    _sample = staticmethod(_normal)


class TruncatedNormal(_MeanStddevInitializer):
    """Normal values, redrawn beyond two ``stddev`` of ``mean`` (defaults 0.0, 0.05, None)."""

    _sample = staticmethod(_truncated_normal)


class VarianceScaling(_RandomInitializer):
    """Random values whose variance is ``scale / n``, ``n`` set by ``mode`` from the fans.

    ``n`` is ``fan_in``, ``fan_out`` or their mean (each at least 1). ``"truncated_normal"``
    draws with ``stddev = sqrt(scale / n) / 0.87962566103423978`` (the std of a unit normal cut
    at two sigmas, so the result has the intended std); ``"untruncated_normal"`` with
    ``sqrt(scale / n)``; ``"uniform"`` in ``[-limit, limit)``, ``limit = sqrt(3 * scale / n)``.

    Args:
        scale: positive factor (default 1.0).
        mode: ``"fan_in"`` (default), ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (default; ``"normal"`` means the same),
            ``"untruncated_normal"`` or ``"uniform"``.
        seed: int for repeatable values, or None (default).
        input_axes, output_axes: optional axes that define the fans (see :func:`compute_fans`).
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ):
        if not isinstance(scale, numbers.Real) or scale <= 0:
            raise ValueError(f"Argument `scale` must be a positive float, received {scale!r}.")
        modes = ("fan_in", "fan_out", "fan_avg")
        if mode not in modes:
            raise ValueError(f"Argument `mode` must be one of {modes}, received {mode!r}.")
        distributions = ("truncated_normal", "untruncated_normal", "uniform")
        distribution = {"normal": "truncated_normal"}.get(str(distribution).lower(), distribution)
        if distribution not in distributions:
            raise ValueError(
                f"Argument `distribution` must be one of {distributions}, "
                f"received {distribution!r}."
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes, self.output_axes = input_axes, output_axes
        super().__init__(seed)

    def _draw(self, shape, dtype, generator):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        scale = self.scale / max(1.0, n[self.mode])
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / 0.87962566103423978
            return _truncated_normal(shape, 0.0, stddev, dtype, generator)
        if self.distribution == "untruncated_normal":
            return _normal(shape, 0.0, math.sqrt(scale), dtype, generator)
        limit = math.sqrt(3.0 * scale)
        return _uniform(shape, -limit, limit, dtype, generator)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class _FixedVarianceScaling(VarianceScaling):
    """A named VarianceScaling: only ``seed`` (and the fan axes) are arguments."""

    _fixed: tuple[float, str, str]

    def __init__(
        self,
        seed: int | None = None,
        *,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ):
        scale, mode, distribution = self._fixed
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit)``, ``limit = sqrt(6 / (fan_in + fan_out))`` (Xavier)."""

    _fixed = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with std ``sqrt(2 / (fan_in + fan_out))`` (Xavier)."""

    _fixed = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit)``, ``limit = sqrt(6 / fan_in)``."""

    _fixed = (2.0, "fan_in", "uniform")


class HeNormal(_FixedVarianceScaling):
    """Truncated normal with std ``sqrt(2 / fan_in)``."""

    _fixed = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit)``, ``limit = sqrt(3 / fan_in)``."""

    _fixed = (1.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with std ``sqrt(1 / fan_in)``."""

    _fixed = (1.0, "fan_in", "truncated_normal")


class Orthogonal(_RandomInitializer):
    """``gain`` times an orthogonal matrix from the QR decomposition of a normal matrix.

    The shape is treated as ``(prod(shape[:-1]), shape[-1])`` = ``(rows, cols)``. With
    ``rows >= cols`` the columns are orthonormal, otherwise the rows (e.g. a recurrent kernel
    ``(units, 4 * units)``). Signs follow ``diag(r)`` so the result is uniformly distributed.

    Args:
        gain: factor applied to the matrix (default 1.0).
        seed: int for repeatable values, or None (default).
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain = gain
        super().__init__(seed)

    def _draw(self, shape, dtype, generator):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank 2 or more, received {shape}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        normal = _normal((max(rows, cols), min(rows, cols)), 0.0, 1.0, dtype, generator)
        q, r = torch.linalg.qr(normal)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        # QR's factor comes column-major: row-major like every other weight, so that kernels can
        # use it where it is (a one-step call reruns its packed weights by address).
        return (self.gain * q.reshape(shape)).contiguous()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gain": self.gain}


_REGISTRY = Registry(
    "initializer",
    Initializer,
    (
        Zeros,
        Ones,
        Constant,
        Identity,
        RandomUniform,
        RandomNormal,
        TruncatedNormal,
        VarianceScaling,
        GlorotUniform,
        GlorotNormal,
        HeUniform,
        HeNormal,
        LecunUniform,
        LecunNormal,
        Orthogonal,
    ),  # fmt: skip
    aliases={  # Keras's
        "zero": Zeros,
        "one": Ones,
        "uniform": RandomUniform,
        "normal": RandomNormal,
        "IdentityInitializer": Identity,
        "OrthogonalInitializer": Orthogonal,
    },  # fmt: skip
)
deserialize = _REGISTRY.deserialize
get = _REGISTRY.get
serialize = _REGISTRY.serialize
