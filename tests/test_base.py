"""The base `Layer`'s call path (`rnnkit.layers.base`): the cheap reads a call makes every time
(the weights' dtype and device, whether the arguments are symbolic, the activity losses) give
what the general reads give, after every change that could make them differ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit import layers, regularizers
from rnnkit.layers.base import _first_parameter, uninitialized_weights


def built(layer, shape, dtype=torch.float32):
    with torch.no_grad():
        layer(torch.zeros(shape, dtype=dtype))
    return layer


@pytest.mark.parametrize(
    "make",
    [
        lambda: built(layers.Dense(3), (2, 4)),
        lambda: built(layers.Dense(3, use_bias=False), (2, 4)),
        lambda: built(layers.Embedding(7, 3), (2, 5), torch.int64),
        lambda: built(layers.LSTM(3), (2, 5, 4)),
        lambda: built(layers.Bidirectional(layers.GRU(3)), (2, 5, 4)),
        lambda: built(layers.TimeDistributed(layers.Dense(3)), (2, 5, 4)),
        lambda: built(
            rk.Sequential([layers.Embedding(7, 3), layers.SimpleRNN(2)]), (2, 5), torch.int64
        ),
        lambda: layers.Dense(3),  # not built: no parameter
    ],
    ids=str.split(
        "dense dense_no_bias embedding lstm bidirectional time_distributed sequential unbuilt"
    ),
)
def test_the_first_parameter_is_the_first_that_parameters_lists(make):
    layer = make()
    assert _first_parameter(layer) is next(layer.parameters(), None)
    for module in layer.modules():
        assert _first_parameter(module) is next(module.parameters(), None)


def test_dtype_and_device_follow_the_weights():
    layer = built(layers.Dense(3, activation="tanh"), (2, 4))
    x = torch.randn(2, 4)
    assert layer(x).dtype == torch.float32
    layer.double()
    assert layer.dtype == torch.float64 and layer.device == torch.device("cpu")
    expected = torch.tanh(x.double() @ layer.kernel + layer.bias)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)  # cast, as Keras autocasts
    layer.bias = nn.Parameter(torch.zeros(3, dtype=torch.float16))  # the first parameter
    assert layer.dtype == torch.float16


def test_a_wrapper_reads_the_dtype_of_its_sublayer():
    layer = built(layers.LSTM(3), (1, 2, 4))
    layer.cell.double()  # the cell alone: the layer has no weights of its own
    assert layer.dtype == torch.float64
    assert layer(torch.randn(1, 2, 4)).dtype == torch.float64


def test_an_unbuilt_layer_reads_the_configured_dtype():
    assert layers.Dense(3, dtype="float64").dtype == torch.float64
    assert layers.Dense(3).dtype == torch.get_default_dtype()
    assert layers.Dense(3).device == torch.device("cpu")


def test_a_symbolic_argument_beside_a_tensor_is_still_seen():
    """A tensor with other arguments goes through the walk of every argument."""
    state = rk.Input(shape=(3,))
    with pytest.raises(TypeError, match="expects one symbolic tensor as its first argument"):
        layers.SimpleRNN(3)(torch.zeros(1, 2, 4), initial_state=[state])
    layer = layers.Dense(3)
    layer(torch.zeros(1, 4))
    symbolic = layer(rk.Input(shape=(4,)))  # a lone symbolic tensor: recorded, not run
    assert symbolic.shape == (None, 3) and symbolic.node.layer is layer


def test_numpy_inputs_are_still_converted_and_checked():
    layer = layers.Dense(2)
    assert layer(np.ones((1, 3))).dtype == torch.float32
    with pytest.raises(TypeError, match="of numbers, received an array of <U1"):
        layer(np.array([["a", "b", "c"]]))
    with pytest.raises(TypeError, match=r"torch.Tensor or NumPy array, received list"):
        layer([[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match="expects real `inputs`"):
        layer(torch.ones(1, 3, dtype=torch.complex64))


def test_activity_losses_are_those_of_the_last_call():
    layer = layers.Dense(2, activity_regularizer=regularizers.L2(0.5))
    layer(torch.ones(4, 3))
    assert len(layer.losses) == 1 and layer.losses[0] > 0
    layer.activity_regularizer = None
    layer(torch.ones(4, 3))
    assert layer.losses == []
    layer(torch.ones(4, 3))
    assert layer.losses == []


def test_weights_built_in_uninitialized_weights_skip_their_initializers():
    calls = []

    def counting(shape, dtype=None, device=None):
        calls.append(shape)
        return torch.ones(shape, dtype=dtype, device=device)

    with uninitialized_weights():
        inside = built(layers.Dense(3, kernel_initializer=counting), (2, 4))
    assert calls == [] and inside.kernel.shape == (4, 3)
    with pytest.raises(RuntimeError, match="inside"), uninitialized_weights():
        raise RuntimeError("inside")
    outside = built(layers.Dense(3, kernel_initializer=counting), (2, 4))  # the block is over
    assert calls == [(4, 3)] and torch.equal(outside.kernel, torch.ones(4, 3))
