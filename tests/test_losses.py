"""Losses against Keras 3 (values and shape rules), by name and by object, and `get`."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rnnkit.training import losses

os.environ.setdefault("KERAS_BACKEND", "jax")

RNG = np.random.default_rng(0)


def probabilities(*shape):
    """Probabilities with exact 0 and 1 mixed in, so Keras's clipping matters."""
    values = RNG.uniform(0.01, 0.99, size=shape).astype("float32")
    values.flat[0], values.flat[-1] = 0.0, 1.0
    return values


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype("float32")


LOGITS = RNG.normal(0, 3, size=(6, 4)).astype("float32")
LABELS = np.array([0, 3, 1, 2, 3, 0])
ONE_HOT = np.eye(4, dtype="float32")[LABELS]
BINARY = np.array([1, 0, 1, 1, 0, 0], dtype="float32")

# (rnnkit loss, Keras class name, Keras kwargs, y_true, y_pred)
CASES = {
    "binary (n,) vs (n,1)": ("binary_crossentropy", "BinaryCrossentropy", {}, BINARY,
                             probabilities(6, 1)),
    "binary (n,1) vs (n,)": ("binary_crossentropy", "BinaryCrossentropy", {}, BINARY[:, None],
                             probabilities(6)),
    "binary sequences": ("binary_crossentropy", "BinaryCrossentropy", {},
                         RNG.integers(0, 2, (3, 5, 2)).astype("float32"), probabilities(3, 5, 2)),
    "binary logits": (losses.BinaryCrossentropy(from_logits=True), "BinaryCrossentropy",
                      {"from_logits": True}, BINARY, LOGITS[:, :1] * 10),
    "categorical": ("categorical_crossentropy", "CategoricalCrossentropy", {}, ONE_HOT,
                    probabilities(6, 4)),
    "categorical logits": (losses.CategoricalCrossentropy(from_logits=True),
                           "CategoricalCrossentropy", {"from_logits": True}, ONE_HOT, LOGITS),
    "sparse (n,)": ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", {},
                    LABELS, softmax(LOGITS)),
    "sparse (n,1) float labels": ("sparse_categorical_crossentropy",
                                  "SparseCategoricalCrossentropy", {},
                                  LABELS[:, None].astype("float32"), probabilities(6, 4)),
    "sparse logits": (losses.SparseCategoricalCrossentropy(from_logits=True),
                      "SparseCategoricalCrossentropy", {"from_logits": True}, LABELS, LOGITS),
    "mse": ("mse", "MeanSquaredError", {}, RNG.normal(size=(6, 3)).astype("float32"),
            RNG.normal(size=(6, 3)).astype("float32")),
    "mean_squared_error (n,) vs (n,1)": ("mean_squared_error", "MeanSquaredError", {},
                                         BINARY, probabilities(6, 1)),
    "mae": ("mae", "MeanAbsoluteError", {}, RNG.normal(size=(6, 3)).astype("float32"),
            RNG.normal(size=(6, 3)).astype("float32")),
    "mean_absolute_error sequences": ("mean_absolute_error", "MeanAbsoluteError", {},
                                      RNG.normal(size=(2, 5, 1)).astype("float32"),
                                      RNG.normal(size=(2, 5)).astype("float32")),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_matches_keras(case):
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for loss values")
    identifier, keras_name, keras_kwargs, y_true, y_pred = CASES[case]
    expected = float(getattr(keras.losses, keras_name)(**keras_kwargs)(y_true, y_pred))
    actual = losses.get(identifier)(torch.as_tensor(y_true), torch.as_tensor(y_pred))
    assert actual.dim() == 0
    np.testing.assert_allclose(actual.item(), expected, rtol=1e-6, atol=1e-7)


def test_probabilities_are_clipped_like_keras():
    # log(0) would be -inf; Keras clips to [1e-7, 1 - 1e-7], so a confident mistake costs
    # -log(1e-7) = 16.118.
    loss = losses.binary_crossentropy(torch.tensor([[1.0]]), torch.tensor([[0.0]]))
    assert loss.item() == pytest.approx(-np.log(np.float32(1e-7)), rel=1e-6)


def test_from_logits_is_stable_for_huge_logits():
    logits = torch.tensor([[80.0], [-80.0]], requires_grad=True)
    loss = losses.BinaryCrossentropy(from_logits=True)(torch.tensor([0.0, 1.0]), logits)
    loss.backward()
    assert loss.item() == pytest.approx(80.0)
    assert torch.isfinite(logits.grad).all()


def test_categorical_normalises_probabilities_like_keras():
    # Keras divides by the sum first: unnormalised scores give the same loss as normalised.
    y_true = torch.tensor([[0.0, 1.0]])
    assert losses.categorical_crossentropy(y_true, torch.tensor([[1.0, 3.0]])).item() == (
        pytest.approx(-np.log(0.75))
    )


def test_losses_are_differentiable():
    y_pred = torch.full((4, 1), 0.3, requires_grad=True)
    losses.get("binary_crossentropy")(torch.ones(4), y_pred).backward()
    # d/dp of mean(-log p) over 4 samples = -1 / (4 p)
    np.testing.assert_allclose(y_pred.grad.numpy(), np.full((4, 1), -1 / (4 * 0.3)), rtol=1e-6)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"y_true.shape=\(4, 3\), y_pred.shape=\(4, 2\)"):
        losses.binary_crossentropy(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="without its last"):
        losses.sparse_categorical_crossentropy(torch.zeros(4, 2), torch.zeros(4, 3))


def test_get_names_aliases_objects_and_callables():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("MAE"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.Loss)
    loss = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(loss) is loss

    def custom(y_true, y_pred):
        return (y_true - y_pred).abs().mean()

    assert losses.get(custom) is custom
    with pytest.raises(ValueError, match="Unknown loss: loss='crossentropyy'"):
        losses.get("crossentropyy")
    with pytest.raises(TypeError, match="received 3"):
        losses.get(3)


def test_serialize_round_trip():
    assert losses.serialize("mse") == "mse"
    config = losses.serialize(losses.CategoricalCrossentropy(from_logits=True))
    assert config == {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    restored = losses.get(config)
    assert isinstance(restored, losses.CategoricalCrossentropy)
    assert restored.config == {"from_logits": True}
    assert losses.serialize(lambda y_true, y_pred: y_pred.sum()) is None


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error"])
def test_regression_losses_refuse_to_broadcast_mismatched_shapes(name):
    """(20, 5) targets against (20, 1) predictions would broadcast into a useless loss."""
    with pytest.raises(
        ValueError, match=r"same shape.*y_true.shape=\(20, 5\), y_pred.shape=\(20, 1\)"
    ):
        getattr(losses, name)(np.zeros((20, 5)), np.zeros((20, 1)))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0, 1, 2, 1.5], r"whole numbers\), received values such as 1.5"),
        ([0, 1, 3, 1], r"in \[0, 3\) .*received values from 0 to 3"),
        ([-1, 0, 0, 0], r"in \[0, 3\) .*received values from -1 to 0"),
    ],
)
def test_sparse_labels_must_be_class_indices(labels, message):
    with pytest.raises(ValueError, match=message):
        losses.sparse_categorical_crossentropy(np.array(labels), np.full((4, 3), 1 / 3))
