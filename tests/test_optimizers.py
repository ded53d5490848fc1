"""Optimizers: a few steps against Keras 3 on the same quadratic problem, defaults, learning
rate control, (de)serialization and state round trips."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from rnnkit.training import optimizers

os.environ.setdefault("KERAS_BACKEND", "jax")

# f(w) = |A w - b|^2 on float32 weights: gradients differ per element and change every step.
A = np.array([[2.0, -1.0, 0.5], [0.3, 1.5, -2.0], [1.0, 0.0, 1.0]], dtype="float32")
B = np.array([1.0, -2.0, 0.5], dtype="float32")
W0 = np.array([0.5, -1.0, 2.0], dtype="float32")
STEPS = 6


def gradient(w: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The gradient of `scale * f` at `w` (small scales show where epsilon sits)."""
    return (scale * 2.0 * A.T @ (A @ w - B)).astype("float32")


def keras_steps(keras, name: str, kwargs: dict, scale: float = 1.0) -> np.ndarray:
    variable = keras.Variable(W0.copy())
    optimizer = getattr(keras.optimizers, name)(**kwargs)
    for _ in range(STEPS):
        grad = keras.ops.convert_to_tensor(gradient(np.asarray(variable.value), scale))
        optimizer.apply_gradients([(grad, variable)])
    return np.asarray(variable.value)


def rnnkit_steps(
    optimizer: torch.optim.Optimizer, weight: torch.nn.Parameter, scale: float = 1.0
) -> np.ndarray:
    for _ in range(STEPS):
        weight.grad = torch.from_numpy(gradient(weight.detach().numpy(), scale))
        optimizer.step()
    return weight.detach().numpy()


CASES = {  # name: (class, kwargs, gradient scale)
    "rmsprop": ("RMSprop", {}),
    "rmsprop small gradients": ("RMSprop", {}, 1e-4),
    "adam small gradients": ("Adam", {}, 1e-5),
    "adagrad small gradients": ("Adagrad", {}, 1e-4),
    "rmsprop momentum centered": ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9,
                                              "centered": True, "rho": 0.8}),
    "rmsprop momentum": ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5}),
    "rmsprop centered": ("RMSprop", {"learning_rate": 0.01, "centered": True}),
    "adam": ("Adam", {"learning_rate": 0.01}),
    "adam amsgrad": ("Adam", {"learning_rate": 0.05, "beta_2": 0.9, "amsgrad": True}),
    "adamw": ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    "sgd": ("SGD", {}),
    "sgd nesterov": ("SGD", {"learning_rate": 0.02, "momentum": 0.9, "nesterov": True}),
    "sgd momentum": ("SGD", {"learning_rate": 0.02, "momentum": 0.9}),
    "adagrad": ("Adagrad", {"learning_rate": 0.1}),
    "rmsprop clipnorm weight_decay": ("RMSprop", {"clipnorm": 1.0, "weight_decay": 0.05}),
    "adam global_clipnorm": ("Adam", {"global_clipnorm": 0.5}),
    "sgd clipvalue": ("SGD", {"clipvalue": 0.3}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_steps_match_keras(case):
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for update rules")
    name, kwargs, *scale = CASES[case]
    expected = keras_steps(keras, name, kwargs, *scale)
    weight = torch.nn.Parameter(torch.from_numpy(W0.copy()))
    actual = rnnkit_steps(getattr(optimizers, name)(**kwargs).build([weight]), weight, *scale)
    assert not np.allclose(actual, W0)  # the weights moved
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def table_gradients(seed: int) -> list[np.ndarray]:
    """STEPS gradients for a (64, 8) table as an Embedding's: rows of scales from 1e-6 to 1
    (where epsilon matters and where it does not) and rows that no id touched (zero)."""
    rng = np.random.default_rng(seed)
    row_scales = 10.0 ** rng.uniform(-6, 0, size=(64, 1))
    gradients = []
    for _ in range(STEPS):
        rows = rng.normal(size=(64, 8)) * row_scales * (rng.uniform(size=(64, 1)) < 0.7)
        gradients.append(rows.astype("float32"))
    return gradients


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_place_updates_match_keras_on_an_embedding_table(case):
    """The rules run in place (no temporaries the size of the table); on a table with gradients
    of every scale, and untouched rows, they still match Keras to float32 rounding and leave
    each gradient as it was."""
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for update rules")
    name, kwargs, *_ = CASES[case]
    table = np.random.default_rng(1).normal(size=(64, 8)).astype("float32")
    gradients = table_gradients(seed=2)
    variable = keras.Variable(table.copy())
    reference = getattr(keras.optimizers, name)(**kwargs)
    weight = torch.nn.Parameter(torch.from_numpy(table.copy()))
    optimizer = getattr(optimizers, name)(**kwargs).build([weight])
    for gradient_rows in gradients:
        reference.apply_gradients([(keras.ops.convert_to_tensor(gradient_rows), variable)])
        weight.grad = torch.from_numpy(gradient_rows.copy())
        optimizer.step()
        np.testing.assert_array_equal(weight.grad.numpy(), gradient_rows)
    assert not np.allclose(weight.detach().numpy(), table)  # the weights moved
    np.testing.assert_allclose(weight.detach().numpy(), np.asarray(variable), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "make_torch"),
    [
        ("RMSprop", lambda w: torch.optim.RMSprop(w, lr=0.001, alpha=0.9, eps=1e-7)),
        ("Adam", lambda w: torch.optim.Adam(w, lr=0.001, eps=1e-7)),
    ],
)
def test_torch_optimizers_differ_from_keras_for_small_gradients(name, make_torch):
    """Why the rules are written out: torch places epsilon differently."""
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for update rules")
    expected = keras_steps(keras, name, {}, scale=1e-5)
    weight = torch.nn.Parameter(torch.from_numpy(W0.copy()))
    actual = rnnkit_steps(make_torch([weight]), weight, scale=1e-5)
    assert not np.allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rmsprop", {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7}),
        ("adam", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
        ("sgd", {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
        ("adagrad", {"learning_rate": 0.001, "initial_accumulator_value": 0.1}),
        ("adamw", {"learning_rate": 0.001, "weight_decay": 0.004}),
    ],
)
def test_names_give_keras_defaults(name, expected):
    optimizer = optimizers.get(name, [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, torch.optim.Optimizer)
    config = optimizer.rule.get_config()
    assert {key: config[key] for key in expected} == expected
    assert optimizer.param_groups[0]["lr"] == expected["learning_rate"]


def test_learning_rate_is_shared_between_config_and_torch_optimizer():
    config = optimizers.RMSprop(learning_rate=0.01)
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = config.build([weight])
    config.learning_rate = 0.5
    assert optimizer.param_groups[0]["lr"] == 0.5
    optimizer.learning_rate = 0.25
    assert config.learning_rate == 0.25
    optimizers.set_learning_rate(optimizer, 0.125)
    assert optimizers.get_learning_rate(optimizer) == 0.125 == config.learning_rate
    # torch's schedulers drive the same param_groups
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    weight.grad = torch.ones(3)
    optimizer.step()
    scheduler.step()
    assert config.learning_rate == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="learning_rate=-1"):
        config.learning_rate = -1


def test_plain_sgd_step_by_hand():
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = optimizers.get("sgd", [weight])
    weight.grad = torch.tensor([10.0, -10.0])
    optimizer.step()
    np.testing.assert_allclose(weight.detach().numpy(), [0.9, 2.1], rtol=1e-6)


def test_parameters_without_gradient_are_left_alone():
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = optimizers.Adam(weight_decay=0.1).build([used, unused])
    used.grad = torch.ones(2)
    optimizer.step()
    assert torch.equal(unused.detach(), torch.ones(2))
    assert not torch.equal(used.detach(), torch.ones(2))


def test_state_dict_round_trip_continues_identically():
    def make():
        weight = torch.nn.Parameter(torch.from_numpy(W0.copy()))
        return weight, optimizers.Adam(learning_rate=0.01).build([weight])

    weight, optimizer = make()
    rnnkit_steps(optimizer, weight)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    copy, restored = make()
    with torch.no_grad():
        copy.copy_(weight)
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    np.testing.assert_array_equal(rnnkit_steps(restored, copy), rnnkit_steps(optimizer, weight))


def test_resolve_get_and_serialize():
    weight = torch.nn.Parameter(torch.zeros(2))
    torch_adam = torch.optim.Adam([weight], lr=0.02)
    assert optimizers.get(torch_adam, [weight]) is torch_adam
    config = optimizers.serialize(torch_adam)
    assert config["class_name"] == "torch.optim.Adam" and config["config"]["lr"] == 0.02
    rebuilt = optimizers.get(config, [weight])
    assert type(rebuilt) is torch.optim.Adam and rebuilt.param_groups[0]["lr"] == 0.02

    built = optimizers.get(optimizers.SGD(momentum=0.5), [weight])
    config = optimizers.serialize(built)
    assert config["class_name"] == "SGD" and config["config"]["momentum"] == 0.5
    assert optimizers.get(config, [weight]).rule.momentum == 0.5
    assert optimizers.serialize("adam") == "adam"

    def factory(parameters):
        return torch.optim.SGD(parameters, lr=0.3)

    assert optimizers.get(factory, [weight]).param_groups[0]["lr"] == 0.3
    with pytest.raises(ValueError, match="Unknown optimizer: optimizer='rmsprob'"):
        optimizers.resolve("rmsprob")
    with pytest.raises(TypeError, match="received 3"):
        optimizers.resolve(3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Only one of `clipnorm`"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="momentum=2"):
        optimizers.SGD(momentum=2)
    with pytest.raises(ValueError, match="learning_rate='fast'"):
        optimizers.Adam(learning_rate="fast")
