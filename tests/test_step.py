"""The train/test step's weighting (training/step.py): `sample_weight`, `class_weight` and
`weighted_metrics` against hand-computed values and against Keras 3 itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import layers

KERNEL = np.array([[0.5], [-0.25], [1.0]], dtype="float32")
BIAS = np.array([0.1], dtype="float32")


def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = rng.normal(size=(6, 1)).astype("float32")
    weights = np.array([1.0, 2.0, 0.0, 1.0, 3.0, 0.5], dtype="float32")
    return x, y, weights


def dense_model(learning_rate=0.1, **compile_kwargs):
    model = rk.Sequential([rk.Input(shape=(3,)), layers.Dense(1)])
    model.set_weights([KERNEL, BIAS])
    compile_kwargs.setdefault("loss", "mse")
    model.compile(optimizer=rk.optimizers.SGD(learning_rate=learning_rate), **compile_kwargs)
    return model


@pytest.mark.parametrize("batch_size", [6, 4])
def test_weighted_loss_and_metrics_by_hand(batch_size):
    x, y, weights = data()
    errors = (x @ KERNEL + BIAS - y)[:, 0].astype("float64")  # (6,)
    model = dense_model(metrics=["mae"], weighted_metrics=["mae", "mse"])
    logs = model.evaluate(
        x, y, sample_weight=weights, batch_size=batch_size, return_dict=True, verbose=0
    )
    # Keras: the batch loss is sum(w * loss) / batch size; the logged loss their mean weighted
    # by batch size, i.e. sum(w * loss) / samples. Weighted metrics: sum(w * m) / sum(w).
    assert logs["loss"] == pytest.approx((weights * errors**2).sum() / 6, rel=1e-5)
    assert logs["mae"] == pytest.approx(np.abs(errors).mean(), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx(
        (weights * np.abs(errors)).sum() / weights.sum(), rel=1e-5
    )
    assert logs["mse"] == pytest.approx((weights * errors**2).sum() / weights.sum(), rel=1e-5)
    values = model.evaluate(x, y, sample_weight=weights, batch_size=batch_size, verbose=0)
    assert values == pytest.approx([logs["loss"], logs["mae"], logs["weighted_mae"], logs["mse"]])


def test_sample_weights_weigh_the_gradient():
    x, y, weights = data()
    model = dense_model()
    history = model.fit(x, y, sample_weight=weights, batch_size=6, shuffle=False, verbose=0)
    kernel = torch.tensor(KERNEL, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(BIAS, dtype=torch.float64, requires_grad=True)
    errors = torch.from_numpy(x).double() @ kernel + bias - torch.from_numpy(y).double()
    loss = (torch.from_numpy(weights).double() * errors[:, 0] ** 2).sum() / 6
    loss.backward()
    assert history.history["loss"][0] == pytest.approx(loss.item(), rel=1e-5)
    expected = [KERNEL - 0.1 * kernel.grad.numpy(), BIAS - 0.1 * bias.grad.numpy()]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_class_weight_is_a_sample_weight_per_class():
    x, _, _ = data()
    labels = np.array([0, 1, 1, 0, 2, 1])
    one_hot = np.eye(3, dtype="float32")[labels]
    class_weight = {0: 1.0, 1: 4.0}  # class 2 is missing: weight 1.0
    per_sample = np.array([1.0, 4.0, 4.0, 1.0, 1.0, 4.0], dtype="float32")

    def fitted(**kwargs):
        torch.manual_seed(0)
        model = rk.Sequential([rk.Input(shape=(3,)), layers.Dense(3, activation="softmax")])
        model.compile(optimizer=rk.optimizers.SGD(learning_rate=0.5), loss=kwargs.pop("loss"))
        history = model.fit(x, batch_size=4, shuffle=False, verbose=0, epochs=2, **kwargs)
        return model.get_weights(), history.history["loss"]

    cases = [("sparse_categorical_crossentropy", labels), ("categorical_crossentropy", one_hot)]
    for loss, targets in cases:
        by_class = fitted(y=targets, class_weight=class_weight, loss=loss)
        by_sample = fitted(y=targets, sample_weight=per_sample, loss=loss)
        unweighted = fitted(y=targets, loss=loss)
        for a, b in zip(by_class[0], by_sample[0]):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert by_class[1] == pytest.approx(by_sample[1])
        assert not np.allclose(by_class[0][0], unweighted[0][0])


def test_weights_with_a_dataset_and_validation():
    x, y, weights = data()
    model = dense_model(learning_rate=0.0, weighted_metrics=["mae"])
    batches = [(x[:4], y[:4], weights[:4]), (x[4:], y[4:], weights[4:])]
    reference = dense_model(learning_rate=0.0, weighted_metrics=["mae"])
    expected = reference.evaluate(x, y, sample_weight=weights, batch_size=4, return_dict=True,
                                  verbose=0)  # fmt: skip
    history = model.fit(batches, validation_data=(x, y, weights), verbose=0).history
    assert history["loss"][0] == pytest.approx(expected["loss"], rel=1e-6)
    assert history["val_mae"][0] == pytest.approx(expected["mae"], rel=1e-6)


def test_bad_weights_are_named():
    x, y, weights = data()
    model = dense_model()
    with pytest.raises(ValueError, match=r"one weight per sample, shape \(6,\); received shape"):
        model.fit(x, y, sample_weight=weights[:5], verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` and `class_weight` cannot be given"):
        model.fit(x, y, sample_weight=weights, class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match=r"`class_weight` must be a dict \{class index: weight\}"):
        model.fit(x, y, class_weight=[1.0, 2.0], verbose=0)


def test_the_weighting_is_keras_3s():
    keras = pytest.importorskip("keras")
    x, y, weights = data()
    reference = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    reference.set_weights([KERNEL, BIAS])
    reference.compile(optimizer="sgd", loss="mse", metrics=["mae"], weighted_metrics=["mae"])
    expected = reference.evaluate(x, y, sample_weight=weights, batch_size=4, return_dict=True,
                                  verbose=0)  # fmt: skip
    model = dense_model(metrics=["mae"], weighted_metrics=["mae"])
    logs = model.evaluate(x, y, sample_weight=weights, batch_size=4, return_dict=True, verbose=0)
    assert logs.keys() == expected.keys()
    for name, value in expected.items():
        assert logs[name] == pytest.approx(float(value), rel=1e-5), name
    labels = (y[:, 0] > 0).astype("int64")
    softmax = keras.layers.Dense(2, activation="softmax")
    keras_classes = keras.Sequential([keras.Input(shape=(3,)), softmax])
    keras_classes.compile(
        optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy"
    )
    start = [np.full((3, 2), 0.3, "float32") * [[1, -1]], np.array([0.1, -0.2], "float32")]
    keras_classes.set_weights(start)
    keras_loss = keras_classes.fit(x, labels, class_weight={0: 0.5, 1: 3.0}, batch_size=4,
                                   shuffle=False, verbose=0).history["loss"]  # fmt: skip
    classes = rk.Sequential([rk.Input(shape=(3,)), layers.Dense(2, activation="softmax")])
    classes.set_weights(start)
    classes.compile(optimizer=rk.optimizers.SGD(learning_rate=0.0),
                    loss="sparse_categorical_crossentropy")  # fmt: skip
    loss = classes.fit(x, labels, class_weight={0: 0.5, 1: 3.0}, batch_size=4, shuffle=False,
                       verbose=0).history["loss"]  # fmt: skip
    assert loss == pytest.approx(keras_loss, rel=1e-5)
