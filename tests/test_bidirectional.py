"""`Bidirectional` against two reference loops, one forwards and one backwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.layers import GRU, LSTM, SimpleRNN
from rnnkit.layers.bidirectional import Bidirectional

MERGES = {
    "concat": lambda f, b: np.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
}


def build(layer, features=3, seed=0, **kwargs):
    wrapper = Bidirectional(layer, **kwargs)
    wrapper.build((None, None, features))
    rng = np.random.default_rng(seed)
    wrapper.set_weights([rng.normal(0, 0.5, w.shape) for w in wrapper.get_weights()])
    return wrapper


def split_weights(wrapper):
    weights = wrapper.get_weights()
    half = len(weights) // 2
    return weights[:half], weights[half:]


@pytest.mark.parametrize("merge_mode", sorted(MERGES))
def test_sequences_match_two_reference_loops(merge_mode):
    wrapper = build(LSTM(4, return_sequences=True, dtype=torch.float64), merge_mode=merge_mode)
    x = np.random.default_rng(1).normal(size=(3, 5, 3))
    mask = np.ones((3, 5), dtype=bool)
    mask[1, 3:] = False
    forward_w, backward_w = split_weights(wrapper)
    forward, _, _ = reference.lstm(x, *forward_w, mask=mask, zero_output_for_mask=True)
    backward, _, _ = reference.lstm(
        x, *backward_w, mask=mask, go_backwards=True, zero_output_for_mask=True
    )
    expected = MERGES[merge_mode](forward, backward[:, ::-1])
    got = wrapper(x, mask=mask).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_return_state_and_merge_none():
    wrapper = build(
        GRU(4, return_state=True, dtype=torch.float64), merge_mode=None, features=2, seed=3
    )
    x = np.random.default_rng(2).normal(size=(2, 6, 2))
    forward_out, backward_out, forward_h, backward_h = wrapper(x)
    forward_w, backward_w = split_weights(wrapper)
    _, h_forward = reference.gru(x, *forward_w)
    _, h_backward = reference.gru(x, *backward_w, go_backwards=True)
    for got, want in [(forward_out, h_forward), (forward_h, h_forward), (backward_h, h_backward)]:
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-10)
    np.testing.assert_allclose(backward_out.detach().numpy(), h_backward, atol=1e-10)


def test_initial_state_is_split_between_directions():
    wrapper = build(SimpleRNN(2, return_state=True, dtype=torch.float64), features=2)
    x = np.random.default_rng(4).normal(size=(2, 3, 2))
    h0 = [np.full((2, 2), 0.3), np.full((2, 2), -0.2)]
    _, forward_h, backward_h = wrapper(x, initial_state=h0)
    forward_w, backward_w = split_weights(wrapper)
    _, expected = reference.simple_rnn(x, *backward_w, initial_state=h0[1], go_backwards=True)
    np.testing.assert_allclose(backward_h.detach().numpy(), expected, atol=1e-10)
    with pytest.raises(ValueError, match="`initial_state` as 2 tensors"):
        wrapper(x, initial_state=h0[:1])


def test_layers_are_copies_with_opposite_direction_and_keras_names():
    inner = SimpleRNN(3, name="rnn", return_sequences=True)
    wrapper = Bidirectional(inner)
    assert wrapper.forward_layer is not inner
    assert wrapper.forward_layer.name == "forward_rnn"
    assert wrapper.backward_layer.name == "backward_rnn"
    assert wrapper.backward_layer.go_backwards and not wrapper.forward_layer.go_backwards
    assert wrapper.compute_output_shape((None, 7, 2)) == (None, 7, 6)
    wrapper(torch.zeros(1, 7, 2))
    assert len(wrapper.get_weights()) == 6
    clone = Bidirectional.from_config(wrapper.get_config())
    assert clone.backward_layer.go_backwards and clone.merge_mode == "concat"


def test_bad_arguments():
    with pytest.raises(TypeError, match="`layer` must be a recurrent layer"):
        Bidirectional(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`merge_mode` must be one of"):
        Bidirectional(SimpleRNN(2), merge_mode="max")
    with pytest.raises(ValueError, match="different `go_backwards`"):
        Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(2))
