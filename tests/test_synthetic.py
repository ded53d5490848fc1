"""Tests for `rnnkit.data.synthetic`: the adding problem and the copy-memory task."""

import math

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem, copy_memory
from rnnkit.training import losses


def test_adding_problem_shapes_markers_and_targets():
    x, y = adding_problem(500, 30, seed=0)
    assert x.shape == (500, 30, 2) and x.dtype == np.float32
    assert y.shape == (500, 1) and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers[:, :15].sum(axis=1) == 1).all() and (markers[:, 15:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=1), rtol=1e-6)


def test_adding_problem_seeds():
    first, again, other = (adding_problem(20, 10, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(adding_problem(20, 10)[0], adding_problem(20, 10)[0])


def test_adding_problem_trivial_predictor_scores_the_baseline():
    _, y = adding_problem(100_000, 2, seed=3)
    assert ADDING_BASELINE_MSE == pytest.approx(2 / 12)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(ADDING_BASELINE_MSE, abs=0.003)
    assert y.mean() == pytest.approx(1.0, abs=0.01)  # 1.0 is the best constant answer


def test_copy_memory_layout():
    symbols, length, timesteps = 5, 4, 7
    x, y = copy_memory(50, timesteps, symbols=symbols, length=length, seed=0)
    steps = timesteps + 2 * length + 1
    assert x.shape == y.shape == (50, steps) and x.dtype == y.dtype == np.int32
    data = x[:, :length]
    assert data.min() >= 1 and data.max() <= symbols
    assert (x[:, length : length + timesteps] == 0).all()
    assert (x[:, length + timesteps] == symbols + 1).all()  # the delimiter
    assert (x[:, -length:] == 0).all()
    assert (y[:, :-length] == 0).all()
    np.testing.assert_array_equal(y[:, -length:], data)


def test_copy_memory_one_hot_and_seeds():
    ids, _ = copy_memory(10, 3, seed=4)
    one_hot, y = copy_memory(10, 3, seed=4, one_hot=True)
    assert one_hot.shape == (*ids.shape, 10) and one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot.argmax(axis=-1), ids)
    np.testing.assert_array_equal(copy_memory(10, 3, seed=4)[1], y)
    assert not np.array_equal(copy_memory(10, 3, seed=5)[0], ids)


def test_copy_memory_chance_cross_entropy_is_log_symbols():
    symbols, length = 8, 10
    _, y = copy_memory(20_000, 5, symbols=symbols, length=length, seed=6)
    recall = y[:, -length:]
    # The best memoryless guess, the symbols' frequencies, scores about log(symbols) ...
    frequencies = np.bincount(recall.ravel(), minlength=symbols + 2) / recall.size
    assert -np.log(frequencies[recall]).mean() == pytest.approx(math.log(symbols), abs=0.01)
    # ... which is what a uniform guess scores with rnnkit's loss.
    uniform = torch.zeros(*recall.shape, symbols + 2)
    uniform[..., 1 : symbols + 1] = 1.0 / symbols
    loss = losses.get("sparse_categorical_crossentropy")(torch.as_tensor(recall), uniform)
    assert float(loss) == pytest.approx(math.log(symbols), rel=1e-6)


def test_exposed_in_rnnkit_datasets():
    assert rk.datasets.adding_problem is adding_problem
    assert rk.datasets.copy_memory is copy_memory


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: adding_problem(10, 1), "timesteps"),
        (lambda: adding_problem(0, 10), "n"),
        (lambda: adding_problem(10, 2.5), "timesteps"),
        (lambda: copy_memory(10, -1), "timesteps"),
        (lambda: copy_memory(10, 5, symbols=0), "symbols"),
        (lambda: copy_memory(10, 5, length=0), "length"),
    ],
)
def test_bad_arguments_are_named(call, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        call()
