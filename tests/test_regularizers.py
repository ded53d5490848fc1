"""Tests for rnnkit.regularizers: penalties by hand and against Keras 3, configs and lookup."""

import json
import os

import numpy as np
import pytest
import torch

from rnnkit import regularizers

os.environ.setdefault("KERAS_BACKEND", "jax")

WEIGHTS = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)  # (rows, cols)


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="Keras 3 not importable", exc_type=ImportError)


def _orthogonal_penalty(w: np.ndarray, factor: float, mode: str) -> float:
    """The textbook formula: mean |cosine| over distinct pairs of rows (or columns), halved."""
    vectors = w if mode == "rows" else w.T
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(unit)
    cosines = [abs(unit[i] @ unit[j]) for i in range(n) for j in range(n) if i != j]
    return factor * 0.5 * sum(cosines) / (n * (n - 1) / 2)


def test_values_by_hand():
    w = WEIGHTS.astype(np.float64)
    x = torch.from_numpy(w)
    assert regularizers.L1(0.3)(x).item() == pytest.approx(0.3 * np.abs(w).sum())
    assert regularizers.L2(0.2)(x).item() == pytest.approx(0.2 * np.square(w).sum())
    both = regularizers.L1L2(l1=0.3, l2=0.2)(x).item()
    assert both == pytest.approx(0.3 * np.abs(w).sum() + 0.2 * np.square(w).sum())
    assert regularizers.L1L2()(x).item() == 0.0
    for mode in ("rows", "columns"):
        ours = regularizers.OrthogonalRegularizer(0.1, mode)(x).item()
        assert ours == pytest.approx(_orthogonal_penalty(w, 0.1, mode))


def test_orthogonal_regularizer_is_zero_for_orthogonal_rows():
    rows = torch.linalg.qr(torch.randn(5, 3, dtype=torch.float64))[0].T  # (3, 5), orthonormal rows
    assert regularizers.OrthogonalRegularizer(1.0)(rows).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "regularizer",
    [
        regularizers.L1(0.3),
        regularizers.L2(0.2),
        regularizers.L1L2(l1=0.3, l2=0.2),
        regularizers.L1L2(l2=0.5),
        regularizers.OrthogonalRegularizer(0.1, "rows"),
        regularizers.OrthogonalRegularizer(0.1, "columns"),
    ],
    ids=repr,
)
def test_matches_keras(keras, regularizer):
    theirs = keras.regularizers.deserialize(regularizers.serialize(regularizer))
    expected = float(theirs(keras.ops.convert_to_tensor(WEIGHTS)))
    ours = regularizer(torch.from_numpy(WEIGHTS))
    assert ours.dtype == torch.float32
    assert ours.shape == ()
    assert ours.item() == pytest.approx(expected, rel=1e-6)


def test_gradient():
    x = torch.from_numpy(WEIGHTS.astype(np.float64)).requires_grad_()
    (grad,) = torch.autograd.grad(regularizers.L1L2(l1=0.1, l2=0.2)(x), x)
    torch.testing.assert_close(grad, 0.1 * torch.sign(x) + 0.4 * x.detach())
    zero_row = torch.zeros(3, 4, dtype=torch.float64).index_fill(0, torch.tensor([0]), 1.0)
    zero_row.requires_grad_()
    (grad,) = torch.autograd.grad(regularizers.OrthogonalRegularizer()(zero_row), zero_row)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    "regularizer",
    [
        regularizers.L1(0.25),
        regularizers.L2(1e-4),
        regularizers.L1L2(l1=0.5, l2=0.125),
        regularizers.OrthogonalRegularizer(0.5, mode="columns"),
    ],
    ids=repr,
)
def test_config_round_trip(regularizer):
    config = json.loads(json.dumps(regularizers.serialize(regularizer)))
    assert config["class_name"] == type(regularizer).__name__
    restored = regularizers.get(config)
    assert type(restored) is type(regularizer)
    assert restored.get_config() == regularizer.get_config()


def test_reads_keras_configs(keras):
    config = keras.regularizers.serialize(keras.regularizers.L1L2(l1=0.5, l2=0.25))
    assert set(config) >= {"module", "class_name", "config", "registered_name"}
    assert regularizers.deserialize(config).get_config() == {"l1": 0.5, "l2": 0.25}


def test_get_identifiers():
    assert regularizers.get(None) is None
    assert regularizers.get("l1").get_config() == {"l1": 0.01}
    assert regularizers.get("L2").get_config() == {"l2": 0.01}
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.get("l1l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert isinstance(
        regularizers.get("orthogonal_regularizer"), regularizers.OrthogonalRegularizer
    )
    assert regularizers.get(regularizers.L1L2).get_config() == {"l1": 0.0, "l2": 0.0}
    instance = regularizers.L2(0.5)
    assert regularizers.get(instance) is instance
    assert regularizers.get(torch.sum) is torch.sum
    assert regularizers.serialize(None) is None
    assert regularizers.L1(None).l1 == 0.01 and regularizers.L1L2(None, None).l1 == 0.0


def test_bad_identifiers_and_arguments():
    with pytest.raises(ValueError, match="'l3'.*l1_l2"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="'L3'"):
        regularizers.get({"class_name": "L3", "config": {}})
    with pytest.raises(TypeError, match="regularizer"):
        regularizers.get(0.01)
    with pytest.raises(TypeError, match="get_config"):
        regularizers.serialize(torch.sum)
    with pytest.raises(ValueError, match="`l1`.*-0.1"):
        regularizers.L1(-0.1)
    with pytest.raises(ValueError, match="`l2`"):
        regularizers.L1L2(l2=float("inf"))
    with pytest.raises(ValueError, match="`factor`"):
        regularizers.OrthogonalRegularizer(factor=-1.0)
    with pytest.raises(TypeError, match="`l2`"):
        regularizers.L2("0.1")
    with pytest.raises(ValueError, match="`mode`"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="2-D"):
        regularizers.OrthogonalRegularizer()(torch.ones(3))
