"""Tests for rnnkit.activations: Keras 3's formulas, names and lookup."""

import functools
import os

import numpy as np
import pytest
import torch

from rnnkit import activations

os.environ.setdefault("KERAS_BACKEND", "jax")

NAMES = [
    "tanh",
    "sigmoid",
    "relu",
    "linear",
    "hard_sigmoid",
    "softsign",
    "softplus",
    "elu",
    "selu",
    "exponential",
    "swish",
    "silu",
    "relu6",
    "hard_silu",
    "hard_swish",
    "gelu",
    "leaky_relu",
    "mish",
    "softmax",
    "log_softmax",
]

# Float32 inputs, incl. the points where pieces join and large magnitudes. (2, 17).
INPUTS = np.array(
    [
        [-50.0, -20.0, -6.0, -3.0, -1.5, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 1.5, 3.0, 6.0]
        + [20.0, 50.0],
        np.linspace(-4.0, 4.0, 17),
    ],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="Keras 3 not importable", exc_type=ImportError)


def _assert_close_to_keras(ours: torch.Tensor, theirs, atol: float = 1e-12) -> None:
    # Keras computes in float32; ours runs in float64 on the same float32 values. The tiny
    # default absolute floor absorbs float32 underflow and special-function error far below
    # 1e-6 (gelu(-20) ~ 1e-88 is 0 in float32; float32 erfc is off by 2e-6 relative at -6).
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs, np.float64), rtol=1e-6, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_matches_keras(keras, name):
    theirs = keras.activations.get(name)(INPUTS)
    if name in ("softmax", "log_softmax"):  # keep the values moderate: float32 sums of exps
        theirs = keras.activations.get(name)(INPUTS / 10)
        ours = activations.get(name)(torch.from_numpy(INPUTS / 10).double())
    else:
        ours = activations.get(name)(torch.from_numpy(INPUTS).double())
    _assert_close_to_keras(ours, theirs)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("relu", {"negative_slope": 0.5}),
        ("relu", {"max_value": 5.0}),
        ("relu", {"max_value": 6.0}),
        ("relu", {"threshold": 1.0}),
        ("relu", {"negative_slope": 0.3, "max_value": 2.0, "threshold": -1.0}),
        ("elu", {"alpha": 0.5}),
        ("leaky_relu", {"negative_slope": 0.01}),
        ("gelu", {"approximate": True}),
        ("softmax", {"axis": 0}),
        ("log_softmax", {"axis": 0}),
    ],
)
def test_arguments_match_keras(keras, name, kwargs):
    x = INPUTS / 10
    theirs = getattr(keras.activations, name)(x, **kwargs)
    ours = getattr(activations, name)(torch.from_numpy(x).double(), **kwargs)
    # float32 cancellation in `1 + tanh(...)` (approximate gelu) and in log-sum-exp costs
    # Keras up to about one float32 ulp of 1 in absolute terms.
    _assert_close_to_keras(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_serialize_gives_keras_name(keras, name):
    fn = activations.get(name)
    assert activations.serialize(fn) == keras.activations.serialize(keras.activations.get(name))
    assert activations.get(activations.serialize(fn)) is fn


@pytest.mark.parametrize("name", NAMES)
def test_gradient_finite_at_zero(name):
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(activations.get(name)(x).sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", ["gelu", "softplus", "mish", "hard_silu", "selu", "elu"])
def test_gradcheck(name):
    x = torch.linspace(-5.0, 5.0, 12, dtype=torch.float64).add(0.05).requires_grad_()
    assert torch.autograd.gradcheck(activations.get(name), (x,))


def test_keras3_formulas():
    x = torch.tensor([-4.0, -3.0, 0.0, 1.5, 3.0, 4.0])
    torch.testing.assert_close(
        activations.hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0])
    )
    torch.testing.assert_close(
        activations.hard_silu(x), torch.tensor([0.0, 0.0, 0.0, 1.125, 3.0, 4.0])
    )
    torch.testing.assert_close(activations.leaky_relu(torch.tensor([-1.0])), torch.tensor([-0.2]))
    assert activations.swish is activations.silu
    assert activations.hard_swish is activations.hard_silu


def test_keeps_dtype():
    x = torch.randn(3, 4, dtype=torch.float32)
    for name in NAMES:
        assert activations.get(name)(x).dtype == torch.float32


def test_get_none_and_callable():
    assert activations.get(None) is activations.linear
    assert activations.get(torch.relu) is torch.relu
    assert activations.get({"class_name": "function", "config": "tanh"}) is activations.tanh


def test_get_bad_identifiers():
    with pytest.raises(ValueError, match="'not_an_activation'.*tanh"):
        activations.get("not_an_activation")
    with pytest.raises(TypeError, match="activation"):
        activations.get(3)


def test_serialize_custom_functions():
    def my_activation(x):
        return x * 2

    assert activations.serialize(my_activation) == "my_activation"
    restored = activations.deserialize("my_activation", {"my_activation": my_activation})
    assert restored is my_activation
    with pytest.raises(ValueError, match="no name"):
        activations.serialize(lambda x: x)
    with pytest.raises(ValueError, match="no name"):
        activations.serialize(functools.partial(activations.relu, max_value=1.0))
    with pytest.raises(TypeError, match="not callable"):
        activations.serialize(3)


def test_activation_codes_name_the_functions_the_kernels_implement():
    for code in activations.ActivationCode:
        assert activations.code_of(activations.get(code.name.lower())) is code
    assert activations.code_of(activations.swish) is activations.ActivationCode.SILU
    assert activations.code_of(activations.gelu) is None
    assert activations.code_of(lambda x: x) is None
