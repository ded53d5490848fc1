"""Tests for rnnkit.constraints: projections against Keras 3 and by hand, configs and lookup."""

import json
import os

import numpy as np
import pytest
import torch

from rnnkit import constraints

os.environ.setdefault("KERAS_BACKEND", "jax")

# (input_dim, units): column norms range from small to large, one column is all zeros.
SCALES = np.array([0.1, 0.5, 2.0, 0.0], dtype=np.float32)
WEIGHTS = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32) * SCALES

CONSTRAINTS = [
    constraints.MaxNorm(),
    constraints.MaxNorm(max_value=1.5, axis=1),
    constraints.MaxNorm(max_value=0.5, axis=[0, 1]),
    constraints.NonNeg(),
    constraints.UnitNorm(),
    constraints.UnitNorm(axis=1),
    constraints.MinMaxNorm(),
    constraints.MinMaxNorm(min_value=0.5, max_value=1.2, rate=0.7, axis=0),
    constraints.MinMaxNorm(min_value=1.0, max_value=2.0, rate=1.0, axis=1),
]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="Keras 3 not importable", exc_type=ImportError)


@pytest.mark.parametrize("constraint", CONSTRAINTS, ids=repr)
def test_matches_keras(keras, constraint):
    theirs = keras.constraints.deserialize(constraints.serialize(constraint))
    expected = np.asarray(theirs(keras.ops.convert_to_tensor(WEIGHTS)))
    ours = constraint(torch.from_numpy(WEIGHTS))
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_values_by_hand():
    w = torch.tensor([[3.0, 0.3], [4.0, -0.4]], dtype=torch.float64)  # column norms 5 and 0.5
    eps = constraints.EPSILON
    expected = w * torch.tensor([2.0 / (5.0 + eps), 0.5 / (0.5 + eps)], dtype=torch.float64)
    torch.testing.assert_close(constraints.MaxNorm(2.0)(w), expected)
    unit = w / torch.tensor([5.0 + eps, 0.5 + eps], dtype=torch.float64)
    torch.testing.assert_close(constraints.UnitNorm()(w), unit)
    torch.testing.assert_close(
        constraints.NonNeg()(w), torch.tensor([[3.0, 0.3], [4.0, 0.0]], dtype=torch.float64)
    )
    # rate 0.5: halfway from the norm to the interval [1, 2]: 5 -> 3.5, 0.5 -> 0.75.
    halfway = w * torch.tensor([3.5 / (5.0 + eps), 0.75 / (0.5 + eps)], dtype=torch.float64)
    torch.testing.assert_close(constraints.MinMaxNorm(1.0, 2.0, rate=0.5)(w), halfway)


def test_zero_weights_stay_finite():
    zeros = torch.zeros(3, 2)
    for constraint in CONSTRAINTS:
        assert torch.equal(constraint(zeros), zeros)


@pytest.mark.parametrize("constraint", CONSTRAINTS, ids=repr)
def test_config_round_trip(constraint):
    config = json.loads(json.dumps(constraints.serialize(constraint)))
    assert config["class_name"] == type(constraint).__name__
    restored = constraints.get(config)
    assert type(restored) is type(constraint)
    assert restored.get_config() == constraint.get_config()
    torch.testing.assert_close(
        restored(torch.from_numpy(WEIGHTS)), constraint(torch.from_numpy(WEIGHTS))
    )


def test_reads_keras_configs(keras):
    config = keras.constraints.serialize(keras.constraints.MinMaxNorm(0.5, 3.0, 0.9, 1))
    restored = constraints.deserialize(config)
    assert restored.get_config() == {"min_value": 0.5, "max_value": 3.0, "rate": 0.9, "axis": 1}


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("max_norm", constraints.MaxNorm),
        ("MaxNorm", constraints.MaxNorm),
        ("non_neg", constraints.NonNeg),
        ("unit_norm", constraints.UnitNorm),
        ("min_max_norm", constraints.MinMaxNorm),
        ("MinMaxNorm", constraints.MinMaxNorm),
    ],
)
def test_get_names(keras, name, cls):
    constraint = constraints.get(name)
    assert type(constraint) is cls
    assert constraint.get_config() == keras.constraints.get(name).get_config()


def test_get_identifiers():
    assert constraints.get(None) is None
    assert constraints.serialize(None) is None
    instance = constraints.MaxNorm(3.0)
    assert constraints.get(instance) is instance
    assert isinstance(constraints.get(constraints.NonNeg), constraints.NonNeg)
    assert constraints.get(torch.abs) is torch.abs


def test_bad_identifiers_and_arguments():
    with pytest.raises(ValueError, match="'max_nrom'.*max_norm"):
        constraints.get("max_nrom")
    with pytest.raises(TypeError, match="constraint"):
        constraints.get(2.0)
    with pytest.raises(TypeError, match="get_config"):
        constraints.serialize(torch.abs)
    with pytest.raises(TypeError, match="`axis`"):
        constraints.UnitNorm(axis="rows")
    with pytest.raises(TypeError, match="`max_value`"):
        constraints.MaxNorm(max_value=None)
    with pytest.raises(ValueError, match="`min_value`"):
        constraints.MinMaxNorm(min_value=2.0, max_value=1.0)
