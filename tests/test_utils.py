"""`rnnkit.utils`: Keras's `keras.utils` names (seeding, one-hot, re-exports)."""

import random

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import utils


def test_keras_names_are_exported():
    from rnnkit.data.py_dataset import PyDataset
    from rnnkit.data.sequences import pad_sequences
    from rnnkit.data.timeseries import timeseries_dataset_from_array

    assert rk.utils is utils
    assert utils.PyDataset is PyDataset
    assert utils.pad_sequences is pad_sequences
    assert utils.timeseries_dataset_from_array is timeseries_dataset_from_array


def _draws():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_set_random_seed_seeds_python_numpy_and_torch():
    utils.set_random_seed(123)
    first = _draws()
    utils.set_random_seed(123)
    assert _draws() == first
    utils.set_random_seed(124)
    assert all(a != b for a, b in zip(_draws(), first))


def test_set_random_seed_makes_shuffled_windows_repeatable():
    def windows():
        dataset = utils.timeseries_dataset_from_array(
            np.arange(100), None, sequence_length=3, batch_size=200, shuffle=True
        )
        return dataset[0]

    utils.set_random_seed(9)
    first = windows()
    utils.set_random_seed(9)
    np.testing.assert_array_equal(first, windows())


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_set_random_seed_refuses_non_integers(seed):
    with pytest.raises(ValueError, match="Expected `seed` argument to be an integer"):
        utils.set_random_seed(seed)


def test_set_random_seed_refuses_seeds_numpy_cannot_take():
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, 2\*\*32\)"):
        utils.set_random_seed(-1)


def test_to_categorical_keras_docstring_example():
    np.testing.assert_array_equal(utils.to_categorical([0, 1, 2, 3], num_classes=4), np.eye(4))


def test_to_categorical_infers_classes_and_drops_a_trailing_unit_axis():
    result = utils.to_categorical(np.array([[2], [0], [1]]))
    assert result.shape == (3, 3) and result.dtype == np.float64
    np.testing.assert_array_equal(result, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    grid = utils.to_categorical([[0, 1], [1, 1]], num_classes=3)
    assert grid.shape == (2, 2, 3)
    np.testing.assert_array_equal(grid[1, 0], [0, 1, 0])


def test_to_categorical_keeps_tensors_tensors():
    result = utils.to_categorical(torch.tensor([[1], [0]]), num_classes=3)
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    np.testing.assert_array_equal(result.numpy(), [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize(
    ("labels", "num_classes", "message"),
    [
        ([0, 3], 3, r"Class indices must lie in \[0, num_classes=3\)"),
        ([-1, 1], 3, "from -1 to 1"),
        ([0.5, 1], None, "integer class indices"),
        (torch.tensor([0.0, 1.0]), None, "integer class indices"),
        (torch.tensor([0, 5]), 2, "num_classes=2"),
        ([0, 1], -2, "`num_classes` must be 0 or greater"),
    ],
)
def test_to_categorical_bad_labels(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        utils.to_categorical(labels, num_classes=num_classes)


def test_to_categorical_num_classes_type():
    with pytest.raises(TypeError, match="`num_classes` must be an int or None"):
        utils.to_categorical([0, 1], num_classes=2.0)
