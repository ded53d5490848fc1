"""`from_torch` / `to_torch`: torch.nn.RNN, LSTM and GRU (multi-layer and bidirectional
included) and rnnkit layers compute the same outputs (1e-5), both ways round."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
import rnnkit.io
from rnnkit import layers

ATOL = 1e-5
FEATURES, HIDDEN = 3, 4

TORCH_CLASSES = {
    "rnn_tanh": (nn.RNN, {}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
}
# (num_layers, bidirectional, batch_first, bias, dropout)
SHAPES = {
    "one_layer": (1, False, True, True, 0.0),
    "bidirectional": (1, True, True, True, 0.0),
    "stacked_bidirectional_time_major": (2, True, False, True, 0.25),
    "three_layers_no_bias": (3, False, True, False, 0.0),
}


def torch_module(kind: str, shape: str) -> nn.RNNBase:
    torch.manual_seed(0)
    cls, options = TORCH_CLASSES[kind]
    num_layers, bidirectional, batch_first, bias, dropout = SHAPES[shape]
    module = cls(
        FEATURES,
        HIDDEN,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        dropout=dropout,
        **options,
    )
    with torch.no_grad():  # non-zero biases on both sides
        for parameter in module.parameters():
            parameter.uniform_(-0.5, 0.5)
    return module.eval()


def run_torch(module: nn.RNNBase, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's `(output, h_n)` for batch-first `x`, output batch-first."""
    output, states = module(x if module.batch_first else x.transpose(0, 1))
    h_n = states[0] if isinstance(states, tuple) else states
    return (output if module.batch_first else output.transpose(0, 1)), h_n


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("kind", sorted(TORCH_CLASSES))
def test_from_torch_then_to_torch(kind, shape):
    module = torch_module(kind, shape)
    x = torch.randn(2, 5, FEATURES)
    expected, h_n = run_torch(module, x)

    converted = rnnkit.io.from_torch(module).eval()
    num_layers = module.num_layers
    assert isinstance(converted, rnnkit.Sequential if num_layers > 1 else layers.Layer)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), expected, atol=ATOL, rtol=0)

    back = rnnkit.io.to_torch(converted).eval()
    assert type(back) is type(module) and back.batch_first
    assert (back.num_layers, back.bidirectional, back.bias) == (
        num_layers,
        module.bidirectional,
        module.bias,
    )
    assert back.dropout == module.dropout
    with torch.no_grad():
        output, back_h_n = run_torch(back, x)
    torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(back_h_n, h_n, atol=ATOL, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_from_torch_last_output_is_h_n(bidirectional):
    module = nn.LSTM(FEATURES, HIDDEN, num_layers=2, bidirectional=bidirectional).eval()
    x = torch.randn(3, 6, FEATURES)
    _, (h_n, _) = module(x.transpose(0, 1))
    last = torch.cat([h_n[-2], h_n[-1]], dim=-1) if bidirectional else h_n[-1]
    converted = rnnkit.io.from_torch(module, return_sequences=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(converted(x), last, atol=ATOL, rtol=0)


def built(layer, features: int = FEATURES):
    layer.build((None, None, features))
    layer.built = True
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.uniform_(-0.5, 0.5)
    return layer.eval()


RNNKIT_LAYERS = {
    "simple_rnn_relu": lambda: layers.SimpleRNN(HIDDEN, activation="relu", return_sequences=True),
    "lstm_no_bias": lambda: layers.LSTM(HIDDEN, use_bias=False, return_sequences=True),
    "gru": lambda: layers.GRU(HIDDEN, return_sequences=True),
    "gru_no_bias": lambda: layers.GRU(HIDDEN, use_bias=False, return_sequences=True),
    "bidirectional_gru": lambda: layers.Bidirectional(layers.GRU(HIDDEN, return_sequences=True)),
}


@pytest.mark.parametrize("name", sorted(RNNKIT_LAYERS))
def test_to_torch_then_from_torch(name):
    layer = built(RNNKIT_LAYERS[name]())
    x = torch.randn(2, 5, FEATURES)
    with torch.no_grad():
        expected = layer(x)
        module = rnnkit.io.to_torch(layer).eval()
        torch.testing.assert_close(module(x)[0], expected, atol=ATOL, rtol=0)
        again = rnnkit.io.from_torch(module).eval()
        torch.testing.assert_close(again(x), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["lstm_no_bias", "bidirectional_gru"])
def test_a_layers_to_torch_method_is_io_to_torch(name):
    layer = built(RNNKIT_LAYERS[name]())
    x = torch.randn(2, 5, FEATURES)
    with torch.no_grad():
        torch.testing.assert_close(layer.to_torch()(x), rnnkit.io.to_torch(layer)(x))


def test_to_torch_with_last_output_only():
    layer = built(layers.LSTM(HIDDEN))
    x = torch.randn(2, 5, FEATURES)
    with torch.no_grad():
        torch.testing.assert_close(
            rnnkit.io.to_torch(layer)(x)[0][:, -1], layer(x), atol=ATOL, rtol=0
        )


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: layers.GRU(HIDDEN, reset_after=False), "reset_after=False"),
        (lambda: layers.LSTM(HIDDEN, recurrent_activation="hard_sigmoid"), "recurrent_activation"),
        (lambda: layers.SimpleRNN(HIDDEN, activation="sigmoid"), "activation 'sigmoid'"),
        (lambda: layers.GRU(HIDDEN, activation="relu"), "activation 'relu'"),
        (lambda: layers.LSTM(HIDDEN, dropout=0.1), "dropout=0.1"),
        (lambda: layers.GRU(HIDDEN, recurrent_dropout=0.2), "recurrent_dropout=0.2"),
        (lambda: layers.LSTM(HIDDEN, go_backwards=True), "go_backwards=True"),
        (lambda: layers.SimpleRNN(HIDDEN, stateful=True), "stateful=True"),
        (lambda: layers.Bidirectional(layers.LSTM(HIDDEN), merge_mode="sum"), "merge_mode='sum'"),
    ],
)
def test_to_torch_names_what_torch_lacks(make, option):
    with pytest.raises(ValueError, match=option):
        rnnkit.io.to_torch(built(make()))


def test_to_torch_needs_a_built_layer():
    with pytest.raises(ValueError, match="built"):
        rnnkit.io.to_torch(layers.LSTM(HIDDEN))


def test_to_torch_rejects_mixed_stacks():
    stack = rnnkit.Sequential(
        [
            rnnkit.Input(shape=(None, FEATURES)),
            layers.LSTM(HIDDEN, return_sequences=True),
            layers.GRU(HIDDEN),
        ]
    )
    with pytest.raises(ValueError, match="one kind"):
        rnnkit.io.to_torch(stack)
    stack = rnnkit.Sequential([built(layers.LSTM(HIDDEN)), built(layers.LSTM(HIDDEN), HIDDEN)])
    with pytest.raises(ValueError, match="return_sequences=True"):
        rnnkit.io.to_torch(stack)


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="torch.nn.RNN, LSTM or GRU"):
        rnnkit.io.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="proj_size=2"):
        rnnkit.io.from_torch(nn.LSTM(FEATURES, HIDDEN, proj_size=2))
