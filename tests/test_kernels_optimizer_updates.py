"""The compiled one-pass RMSprop step: the same arithmetic as the torch operations it replaces,
the fallbacks, Keras's numbers through the optimizer, and never a kernel build of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rnnkit.kernels import cpu_library
from rnnkit.kernels.optimizer_updates import rmsprop_update
from rnnkit.training import optimizers

LEARNING_RATE, RHO, EPSILON = 1e-3, 0.9, 1e-7


@pytest.fixture(autouse=True)
def kernels_loaded():
    cpu_library.library()  # the compiled step runs only once a recurrent layer loaded them


def torch_rmsprop(parameter, gradient, velocity):
    """The torch operations `RMSprop.update_step` runs where the compiled step cannot."""
    velocity.mul_(RHO).addcmul_(gradient, gradient, value=1 - RHO)
    denominator = velocity.add(EPSILON).sqrt_()
    parameter.addcdiv_(gradient, denominator, value=-LEARNING_RATE)


def arrays(size, dtype, seed=0):
    """Weights, gradients of scales from 1e-6 to 10 (where epsilon matters and where it does
    not), and a velocity as a few steps leave it."""
    generator = torch.Generator().manual_seed(seed)
    parameter = torch.randn(size, generator=generator, dtype=dtype)
    scales = 10.0 ** torch.randint(-6, 2, (size,), generator=generator).to(dtype)
    gradient = torch.randn(size, generator=generator, dtype=dtype) * scales
    velocity = torch.rand(size, generator=generator, dtype=dtype) * scales**2
    return parameter, gradient, velocity


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [1, 17, 300_000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_pass_computes_what_the_torch_operations_compute(dtype, size, threads):
    parameter, gradient, velocity = arrays(size, dtype)
    expected_parameter, expected_velocity = parameter.clone(), velocity.clone()
    torch_rmsprop(expected_parameter, gradient, expected_velocity)
    given_gradient, version = gradient.clone(), parameter._version
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ran = rmsprop_update(parameter, gradient, velocity, LEARNING_RATE, RHO, EPSILON)
    finally:
        torch.set_num_threads(previous_threads)
    assert ran
    torch.testing.assert_close(velocity, expected_velocity, rtol=0, atol=0)  # bit for bit
    # The square roots may differ by an ulp (torch's may be MKL's), the steps with them.
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(parameter, expected_parameter, rtol=tolerance, atol=1e-9)
    assert not torch.equal(parameter, arrays(size, dtype)[0])  # the weights moved
    assert torch.equal(gradient, given_gradient)
    assert parameter._version > version  # autograd and the prepared calls see the change


def test_it_falls_back_where_the_compiled_step_cannot_take_the_arrays(monkeypatch):
    parameter, gradient, velocity = arrays(64, torch.float32)
    strided = torch.zeros(64, 2)[:, 0]
    cases = {
        "a strided parameter": (strided, gradient, velocity),
        "a float64 velocity": (parameter, gradient, velocity.double()),
        "float16 arrays": (parameter.half(), gradient.half(), velocity.half()),
        "a shorter gradient": (parameter, gradient[:32], velocity),
    }
    for name, (weights, gradients, velocities) in cases.items():
        before = [array.clone() for array in (weights, gradients, velocities)]
        assert not rmsprop_update(weights, gradients, velocities, LEARNING_RATE, RHO, EPSILON)
        for array, copy in zip((weights, gradients, velocities), before):
            assert torch.equal(array, copy), name
    monkeypatch.setattr(cpu_library, "loaded", lambda: False)
    assert not rmsprop_update(parameter, gradient, velocity, LEARNING_RATE, RHO, EPSILON)


@pytest.mark.parametrize("options", [{}, {"clipnorm": 1.0, "weight_decay": 0.05}])
def test_rmsprop_matches_keras_through_the_compiled_step(options, monkeypatch):
    """Keras's RMSprop on an embedding table with gradients of every scale and untouched rows,
    with the optimizer's steps taken by the compiled update."""
    keras = pytest.importorskip("keras", reason="Keras 3 is the reference for update rules")
    calls = []

    def counted(*args):
        ran = rmsprop_update(*args)
        calls.append(ran)
        return ran

    monkeypatch.setattr(optimizers, "rmsprop_update", counted)
    generator = np.random.default_rng(1)
    table = generator.normal(size=(64, 8)).astype("float32")
    variable = keras.Variable(table.copy())
    reference = keras.optimizers.RMSprop(**options)
    weight = torch.nn.Parameter(torch.from_numpy(table.copy()))
    optimizer = optimizers.RMSprop(**options).build([weight])
    row_scales = 10.0 ** generator.uniform(-6, 0, size=(64, 1))
    for _ in range(6):
        rows = generator.normal(size=(64, 8)) * row_scales * (generator.uniform(size=(64, 1)) < 0.7)
        rows = rows.astype("float32")
        reference.apply_gradients([(keras.ops.convert_to_tensor(rows), variable)])
        weight.grad = torch.from_numpy(rows.copy())
        optimizer.step()
    assert calls and all(calls)
    assert not np.allclose(weight.detach().numpy(), table)
    np.testing.assert_allclose(weight.detach().numpy(), np.asarray(variable), rtol=1e-5, atol=1e-6)


def test_an_optimizer_step_never_builds_the_kernels(tmp_path):
    """A model without recurrent layers steps with the torch operations and leaves the kernels
    unbuilt (a fresh process and an empty kernel cache)."""
    script = textwrap.dedent(
        """
        import torch
        from rnnkit.kernels import cpu_library
        from rnnkit.training.optimizers import RMSprop
        weight = torch.nn.Parameter(torch.ones(8))
        optimizer = RMSprop().build([weight])
        weight.grad = torch.ones(8)
        optimizer.step()
        assert not torch.equal(weight.detach(), torch.ones(8)), "the weights did not move"
        print("loaded", cpu_library.loaded())
        """
    )
    environment = {**os.environ, "RNNKIT_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["loaded", "False"]
    assert not list(tmp_path.rglob("*.so"))
