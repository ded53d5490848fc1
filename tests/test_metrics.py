"""Streaming metrics: hand-computed values, Keras 3 parity over batches, `acc` resolution."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rnnkit.training import metrics

os.environ.setdefault("KERAS_BACKEND", "jax")

RNG = np.random.default_rng(1)


def test_binary_accuracy_by_hand():
    metric = metrics.get("binary_accuracy")
    # > 0.5 counts as 1: predictions 1, 0, 0, 1 (0.5 itself is 0, as in Keras)
    metric.update(torch.tensor([1, 0, 1, 0]), torch.tensor([[0.9], [0.1], [0.5], [0.7]]))
    assert metric.result() == pytest.approx(0.5)
    metric.update(torch.tensor([1.0, 1.0]), torch.tensor([[0.8], [0.6]]))
    assert metric.result() == pytest.approx(4 / 6)  # streaming: 4 right out of 6 samples
    metric.reset()
    assert metric.result() == 0.0


def test_binary_accuracy_threshold():
    metric = metrics.BinaryAccuracy(threshold=0.7)
    metric.update(torch.tensor([1, 1]), torch.tensor([0.65, 0.75]))
    assert metric.result() == pytest.approx(0.5)


def test_sparse_and_categorical_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])  # argmax 1, 0, 2
    sparse = metrics.get("sparse_categorical_accuracy")
    sparse.update(torch.tensor([[1], [2], [2]]), scores)
    assert sparse.result() == pytest.approx(2 / 3)
    categorical = metrics.get("categorical_accuracy")
    categorical.update(torch.eye(3)[[1, 0, 0]], scores)
    assert categorical.result() == pytest.approx(2 / 3)


def test_sequence_metrics_count_each_sample_once():
    # (batch, timesteps, 1): each sample's value is its mean over time, as in Keras's Mean.
    metric = metrics.get("mae")
    metric.update(
        torch.zeros(2, 3, 1), torch.tensor([[[1.0], [1.0], [1.0]], [[0.0], [0.0], [3.0]]])
    )
    assert metric.result() == pytest.approx(1.0)
    assert metric.count == 2


@pytest.mark.parametrize(
    ("y_true", "y_pred", "resolved"),
    [
        (np.array([1, 0, 1]), np.array([[0.9], [0.2], [0.3]]), metrics.binary_accuracy),
        (np.array([2, 0, 1]), np.eye(3)[[2, 1, 1]], metrics.sparse_categorical_accuracy),
        (np.array([[2], [0], [1]]), np.eye(3)[[2, 1, 1]], metrics.sparse_categorical_accuracy),
        (np.eye(3)[[2, 0, 1]], np.eye(3)[[2, 1, 1]], metrics.categorical_accuracy),
    ],
)
def test_acc_resolves_from_shapes_like_keras(y_true, y_pred, resolved):
    metric = metrics.get("acc")
    assert metric.name == "acc"
    assert metric.direction == "up"
    metric.update(torch.as_tensor(y_true), torch.as_tensor(y_pred))
    assert metric.fn is resolved
    assert metric.result() == pytest.approx(2 / 3)


KERAS_CASES = {
    "binary_accuracy": ("BinaryAccuracy", lambda n: RNG.integers(0, 2, n).astype("float32"),
                        lambda n: RNG.uniform(size=(n, 1)).astype("float32")),
    "categorical_accuracy": ("CategoricalAccuracy",
                             lambda n: np.eye(4, dtype="float32")[RNG.integers(0, 4, n)],
                             lambda n: RNG.uniform(size=(n, 4)).astype("float32")),
    "sparse_categorical_accuracy": ("SparseCategoricalAccuracy",
                                    lambda n: RNG.integers(0, 4, (n, 1)),
                                    lambda n: RNG.uniform(size=(n, 4)).astype("float32")),
    "mae": ("MeanAbsoluteError", lambda n: RNG.normal(size=(n, 3)).astype("float32"),
            lambda n: RNG.normal(size=(n, 3)).astype("float32")),
    "mse": ("MeanSquaredError", lambda n: RNG.normal(size=(n, 5, 2)).astype("float32"),
            lambda n: RNG.normal(size=(n, 5, 2)).astype("float32")),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_streaming_matches_keras(name):
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for metric values")
    keras_name, make_true, make_pred = KERAS_CASES[name]
    reference, metric = getattr(keras.metrics, keras_name)(), metrics.get(name)
    for size in (7, 3, 5):  # batches of different sizes
        y_true, y_pred = make_true(size), make_pred(size)
        reference.update_state(y_true, y_pred)
        metric.update(torch.as_tensor(y_true), torch.as_tensor(y_pred))
        np.testing.assert_allclose(metric.result(), float(reference.result()), rtol=1e-6)


def test_mean_weights_scalars():
    loss = metrics.Mean("loss")
    loss.update(torch.tensor(1.0), weight=3)
    loss.update(torch.tensor(2.0), weight=1)
    assert loss.result() == pytest.approx(1.25)
    loss.update(torch.tensor([4.0, 6.0]))  # one value per sample
    assert loss.result() == pytest.approx(15 / 6)


def test_get_names_objects_functions_and_errors():
    assert metrics.get("accuracy").name == "accuracy"
    assert metrics.get("mean_squared_error").name == "mean_squared_error"
    crossentropy = metrics.get("binary_crossentropy")
    crossentropy.update(torch.tensor([1.0]), torch.tensor([[0.5]]))
    assert crossentropy.result() == pytest.approx(np.log(2), rel=1e-6)
    assert crossentropy.direction == "down"
    existing = metrics.BinaryAccuracy(name="bin")
    assert metrics.get(existing) is existing

    def off_by(y_true, y_pred):
        return (y_pred - y_true).abs()

    custom = metrics.get(off_by)
    custom.update(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]))
    assert (custom.name, custom.result()) == ("off_by", pytest.approx(0.5))
    with pytest.raises(ValueError, match="Unknown metric: metrics entry 'acuracy'"):
        metrics.get("acuracy")
    with pytest.raises(TypeError, match="received 5"):
        metrics.get(5)


def test_serialize_round_trip():
    assert metrics.serialize("acc") == "acc"
    config = metrics.serialize(metrics.BinaryAccuracy(name="bin", threshold=0.3))
    restored = metrics.get(config)
    assert (type(restored), restored.name, restored.config) == (
        metrics.BinaryAccuracy,
        "bin",
        {"threshold": 0.3},
    )
    assert metrics.serialize(lambda y_true, y_pred: y_pred) is None
