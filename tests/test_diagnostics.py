"""Tests for `rnnkit.diagnostics.gradient_flow`: hand-computed and finite-difference gradients,
a gradient that really vanishes, and every kind of recurrent layer it must see."""

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit as rk
from rnnkit import initializers, layers
from rnnkit.diagnostics import GradientFlow, gradient_flow

F64 = torch.float64


def _model(*stack, timesteps=8, features=2):
    return rk.Sequential([rk.Input(shape=(timesteps, features)), *stack])


@pytest.mark.parametrize("u", [0.8, -1.2])
def test_linear_one_unit_rnn_matches_hand_computed(u):
    # h_t = w x_t + u h_{t-1} + b, L = mean_b (h_T - y)^2  ⇒  ∂L/∂h_t = u^(T-t) · 2(h_T - y)/B.
    timesteps, batch = 10, 4
    rnn = layers.SimpleRNN(1, activation="linear", dtype=F64)
    model = _model(rnn, timesteps=timesteps, features=1)
    model.set_weights([np.array([[0.7]]), np.array([[u]]), np.array([0.1])])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(batch, timesteps, 1)), rng.normal(size=(batch, 1))
    flow = gradient_flow(model, x, y, loss="mse")
    h_last = model(x).detach().numpy()
    last = np.abs(2 * (h_last - y) / batch).mean()
    expected = np.abs(u) ** (timesteps - np.arange(1, timesteps + 1)) * last
    assert isinstance(flow, GradientFlow) and list(flow) == [rnn.name]
    assert flow[rnn.name].shape == (timesteps,)
    np.testing.assert_allclose(flow[rnn.name], expected, rtol=1e-12)
    assert flow.spectral_radius[rnn.name] == {"h": pytest.approx(abs(u))}
    assert flow.loss == pytest.approx(np.mean((h_last - y) ** 2))


def _tanh_rnn_loss(weights, x, y, perturb=None):
    """NumPy forward of SimpleRNN(tanh, return_sequences) → Dense(1) → MSE, with an optional
    `(t, sample, unit, epsilon)` added to h_t (so later steps and outputs see it)."""
    kernel, recurrent, bias, dense_kernel, dense_bias = weights
    h = np.zeros((x.shape[0], recurrent.shape[0]))
    outputs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ kernel + bias + h @ recurrent)
        if perturb is not None and perturb[0] == t:
            h = h.copy()
            h[perturb[1], perturb[2]] += perturb[3]
        outputs.append(h @ dense_kernel + dense_bias)
    return np.mean((np.stack(outputs, axis=1) - y) ** 2)


def test_tanh_rnn_matches_finite_differences():
    timesteps, batch, units, eps = 6, 3, 4, 1e-6
    model = _model(
        layers.SimpleRNN(units, return_sequences=True, dtype=F64),
        layers.Dense(1, dtype=F64),
        timesteps=timesteps,
    )
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(batch, timesteps, 2)), rng.normal(size=(batch, timesteps, 1))
    model(x)
    weights = model.get_weights()
    flow = gradient_flow(model, x, y, loss="mse")
    expected = np.zeros(timesteps)
    for t in range(timesteps):
        for sample in range(batch):
            gradient = [
                (
                    _tanh_rnn_loss(weights, x, y, (t, sample, unit, eps))
                    - _tanh_rnn_loss(weights, x, y, (t, sample, unit, -eps))
                )
                / (2 * eps)
                for unit in range(units)
            ]
            expected[t] += np.linalg.norm(gradient) / batch
    (name,) = flow
    np.testing.assert_allclose(flow[name], expected, rtol=1e-6)


def test_simple_rnn_gradient_vanishes_and_lstm_keeps_it():
    timesteps = 40
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, timesteps, 2)), rng.normal(size=(16, 1))

    def ratio(layer_class):
        layer = layer_class(
            16,
            kernel_initializer=initializers.GlorotUniform(seed=0),
            recurrent_initializer=initializers.RandomNormal(stddev=0.05, seed=1),
        )
        dense = layers.Dense(1, kernel_initializer=initializers.GlorotUniform(seed=2))
        model = _model(layer, dense, timesteps=timesteps)
        norms = gradient_flow(model, x, y, loss="mse")[layer.name]
        return norms[0] / norms[-1]

    simple, lstm = ratio(layers.SimpleRNN), ratio(layers.LSTM)  # LSTM: forget bias 1 by default
    assert simple < 1e-20  # orders of magnitude below the last step
    assert lstm > 1e-8
    assert lstm / simple > 1e12


def test_bidirectional_gives_one_entry_per_direction_in_input_order():
    small = initializers.RandomNormal(stddev=0.1, seed=0)
    wrapper = layers.Bidirectional(layers.SimpleRNN(4, recurrent_initializer=small))
    model = _model(wrapper, layers.Dense(1), timesteps=12)
    x = np.random.default_rng(3).normal(size=(5, 12, 2))
    flow = gradient_flow(model, x, np.zeros((5, 1)), loss="mse")
    forward, backward = (f"{wrapper.name}/{layer.name}" for layer in wrapper.children())
    assert list(flow) == [forward, backward]
    assert flow.go_backwards == {forward: False, backward: True}
    # Each direction's loss-nearest step is the last one it processes.
    assert flow[forward][-1] > 1e3 * flow[forward][0]
    assert flow[backward][0] > 1e3 * flow[backward][-1]


class _MinimalCell(nn.Module):
    """A custom cell without `step`: h_t = tanh(x_t W + h_{t-1} U)."""

    state_size = 3

    def __init__(self, kernel, recurrent_kernel):
        super().__init__()
        self.kernel = nn.Parameter(kernel)
        self.recurrent_kernel = nn.Parameter(recurrent_kernel)

    def forward(self, inputs, states):
        h = torch.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
        return h, [h]


def test_custom_cell_agrees_with_the_built_in_cell():
    kernel = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    recurrent_kernel = 0.5 * torch.eye(3)
    custom = layers.RNN(_MinimalCell(kernel, recurrent_kernel))
    built_in = layers.SimpleRNN(3, use_bias=False)
    x = np.random.default_rng(4).normal(size=(4, 7, 2)).astype(np.float32)
    y = np.ones((4, 3), dtype=np.float32)
    built_in(x)
    built_in.set_weights([kernel.numpy(), recurrent_kernel.numpy()])
    flows = [
        gradient_flow(_model(layer, timesteps=7), x, y, loss="mse") for layer in (custom, built_in)
    ]
    np.testing.assert_allclose(flows[0][custom.name], flows[1][built_in.name], rtol=1e-5)
    assert flows[0].spectral_radius[custom.name] == {"0": pytest.approx(0.5)}


def test_stacked_layers_and_stacked_cells():
    cells = layers.RNN([layers.SimpleRNNCell(4, name="first"), layers.LSTMCell(3, name="second")])
    lstm = layers.LSTM(5, return_sequences=True)
    model = _model(lstm, cells, layers.Dense(1), timesteps=9)
    x = np.random.default_rng(5).normal(size=(3, 9, 2))
    flow = gradient_flow(model, x, np.zeros((3, 1)), loss="mse")
    assert list(flow) == [lstm.name, f"{cells.name}/first", f"{cells.name}/second"]
    assert all(norms.shape == (9,) and np.all(norms > 0) for norms in flow.values())
    assert set(flow.spectral_radius[lstm.name]) == {"i", "f", "c", "o"}


def test_masked_steps_are_left_out_of_the_batch_mean():
    timesteps = 10
    model = _model(layers.Masking(0.0), layers.GRU(4), layers.Dense(1), timesteps=timesteps)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, timesteps, 2)) + 3.0
    x[1, -3:] = 0.0  # the second sample is padded at the end
    y = np.zeros((2, 1))
    name = model.layers[1].name
    both = gradient_flow(model, x, y, loss="mse")[name]
    first = gradient_flow(model, x[:1], y[:1], loss="mse")[name]
    # With the loss a mean over 2 samples, sample 0's gradient is half its own; at the padded
    # steps only sample 0 counts.
    np.testing.assert_allclose(both[-3:], first[-3:] / 2, rtol=1e-5)
    x[:, -3:] = 0.0
    assert np.isnan(gradient_flow(model, x, y, loss="mse")[name][-3:]).all()


def test_uses_the_compiled_loss_and_leaves_the_model_as_it_was():
    layer = layers.LSTM(4, dropout=0.5)
    model = _model(layer, layers.Dense(1), timesteps=6)
    model.compile(optimizer="adam", loss="mae")
    model.train()
    x, y = np.random.default_rng(7).normal(size=(3, 6, 2)), np.zeros((3, 1))
    first, second = gradient_flow(model, x, y), gradient_flow(model, x, y)
    np.testing.assert_array_equal(first[layer.name], second[layer.name])  # no dropout
    assert first.loss == pytest.approx(np.abs(model.predict(x, verbose=0)).mean(), rel=1e-5)
    assert model.training and layer.training and layer.use_fused == "auto"
    assert "step" not in vars(layer.cell)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_errors_name_the_argument():
    model = _model(layers.SimpleRNN(2))
    x, y = np.zeros((1, 8, 2)), np.zeros((1, 2))
    with pytest.raises(ValueError, match="argument `loss`"):
        gradient_flow(model, x, y)
    with pytest.raises(ValueError, match="argument `model` must contain a recurrent layer"):
        gradient_flow(_model(layers.Dense(1)), x, np.zeros((1, 8, 1)), loss="mse")
