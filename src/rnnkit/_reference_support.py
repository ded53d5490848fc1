"""The plumbing of `rnnkit.reference`, kept apart so that the loops read top to bottom: Keras 3's
activations in NumPy, by name, and the checking and casting of every argument (each error names
the argument, what was expected and what was received).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

Activation = Callable[[np.ndarray], np.ndarray]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, 0.0)  # log(1 + exp(x))


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return _relu6(x + 3.0) / 6.0  # Keras 3's hard sigmoid (Keras 2 used 0.2 * x + 0.5)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


def _hard_silu(x: np.ndarray) -> np.ndarray:
    return x * _hard_sigmoid(x)


# Keras 3's activations by name (keras/src/activations), with Keras's default arguments.
ACTIVATIONS: dict[str, Activation] = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "hard_sigmoid": _hard_sigmoid,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "softplus": _softplus,
    "elu": _elu,
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * _elu(x)),
    "exponential": np.exp,
    "swish": _silu,
    "silu": _silu,
    "relu6": _relu6,
    "hard_silu": _hard_silu,
    "hard_swish": _hard_silu,
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
}


def activation_named(name: str, value: str | Activation | None) -> Activation:
    """Look up an activation given by Keras name (None = linear) or pass a callable through."""
    if value is None:
        return ACTIVATIONS["linear"]
    if callable(value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a callable, a name or None, received {value!r}.")
    if value not in ACTIVATIONS:
        raise ValueError(f"`{name}` must be one of {sorted(ACTIVATIONS)}, received {value!r}.")
    return ACTIVATIONS[value]


# Checking and casting the arguments: every error names the argument, what was expected
# and what was received.


def _check_shape(name: str, array: np.ndarray, *expected: tuple[int, ...]) -> None:
    if array.shape not in expected:
        wanted = " or ".join(str(shape) for shape in expected)
        raise ValueError(f"`{name}` must have shape {wanted}, received shape {array.shape}.")


class Arguments(NamedTuple):
    """Every argument validated, cast to float64 (mask: bool) and batched."""

    inputs: np.ndarray  # (batch, timesteps, features)
    kernel: np.ndarray  # (features, gates*units)
    recurrent_kernel: np.ndarray  # (units, gates*units)
    bias: np.ndarray | None
    mask: np.ndarray | None  # (batch, timesteps)
    states: tuple[np.ndarray, ...]  # each (batch, units)
    dropout_mask: np.ndarray | None  # (batch, features) or (batch, gates, features)
    recurrent_dropout_mask: np.ndarray | None  # (batch, units) or (batch, gates, units)
    unbatched: bool  # `inputs` came in the textbook form (timesteps, features)


def prepare(
    inputs,
    kernel,
    recurrent_kernel,
    bias,
    *,
    gates: int,
    bias_shape: Callable[[int], tuple[int, ...]],
    state_names: tuple[str, ...],
    mask,
    initial_state,
    dropout_mask,
    recurrent_dropout_mask,
) -> Arguments:
    """Validate and cast every argument; raise ValueError naming the first one that is wrong."""
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim not in (2, 3) or inputs.shape[-2] == 0:
        raise ValueError(
            "`inputs` must have shape (batch, timesteps, features) or (timesteps, features) "
            f"with at least one timestep, received shape {inputs.shape}."
        )
    unbatched = inputs.ndim == 2
    lead = () if unbatched else inputs.shape[:1]  # the batch axis, when there is one
    timesteps, features = inputs.shape[-2:]
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != features or kernel.shape[1] % gates:
        raise ValueError(
            f"`kernel` must have shape (features, {gates}*units) with features = {features} "
            f"(the last axis of `inputs`), received shape {kernel.shape}."
        )
    units = kernel.shape[1] // gates
    recurrent_kernel = np.asarray(recurrent_kernel, dtype=np.float64)
    _check_shape("recurrent_kernel", recurrent_kernel, (units, gates * units))
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        _check_shape("bias", bias, bias_shape(units))
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        _check_shape("mask", mask, (*lead, timesteps))
    if initial_state is None:
        states = [np.zeros((*lead, units)) for _ in state_names]
    else:
        if len(state_names) == 1 and not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != len(state_names):
            received = (
                f"{len(initial_state)} arrays"
                if isinstance(initial_state, (list, tuple))
                else f"a single {type(initial_state).__name__}"
            )
            raise ValueError(
                f"`initial_state` must be {len(state_names)} array(s) "
                f"({', '.join(state_names)}), received {received}."
            )
        states = [np.asarray(state, dtype=np.float64) for state in initial_state]
        for state_name, state in zip(state_names, states, strict=True):
            _check_shape(f"initial_state ({state_name})", state, (*lead, units))
    if dropout_mask is not None:
        dropout_mask = np.asarray(dropout_mask, dtype=np.float64)
        _check_shape("dropout_mask", dropout_mask, (*lead, features), (*lead, gates, features))
    if recurrent_dropout_mask is not None:
        recurrent_dropout_mask = np.asarray(recurrent_dropout_mask, dtype=np.float64)
        _check_shape(
            "recurrent_dropout_mask", recurrent_dropout_mask, (*lead, units), (*lead, gates, units)
        )
    if unbatched:  # the textbook form is a batch of one
        inputs, mask, dropout_mask, recurrent_dropout_mask = (
            None if a is None else a[np.newaxis]
            for a in (inputs, mask, dropout_mask, recurrent_dropout_mask)
        )
        states = [state[np.newaxis] for state in states]
    return Arguments(
        inputs,
        kernel,
        recurrent_kernel,
        bias,
        mask,
        tuple(states),
        dropout_mask,
        recurrent_dropout_mask,
        unbatched,
    )
