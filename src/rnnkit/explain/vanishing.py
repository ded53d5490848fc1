"""The vanishing-gradient experiment: four recurrent layers on the adding problem, several T.

For each sequence length T and each layer type (SimpleRNN, LSTM, GRU, and the IRNN of
Le et al. 2015: a ReLU SimpleRNN whose recurrent kernel starts as the identity), a model
`Input(T, 2) → layer(units) → Dense(1)` is trained with rnnkit's own `compile`/`fit` on fresh
adding-problem batches, then scored on a held-out test set (MSE; 0.167 is the score of always
answering 1.0). At the longest T, `diagnostics.gradient_flow` is measured on a test batch
before training (at initialization) and after training.

    results = run_experiment([25, 50, 100, 200], steps=1000, progress=print)
    results.mse["LSTM"]          # test MSE per length
    results.flows["SimpleRNN"]   # GradientFlow after training, at the longest length
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import rnnkit as rk
from rnnkit import initializers, layers
from rnnkit._threads import one_torch_thread
from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem
from rnnkit.diagnostics import GradientFlow, gradient_flow
from rnnkit.training.optimizers import Adam

LAYER_TYPES = ("SimpleRNN", "LSTM", "GRU", "IRNN")
# Adam's learning rate per layer type, chosen from short runs (1000 steps of 64, T = 25-200)
# at 1e-3, 3e-3 and 1e-2: LSTM and GRU learn the long lengths only at 1e-2, where SimpleRNN
# no longer learns even T=25; the IRNN, whose ReLU recurrence can explode, diverged at 1e-2
# and gets the smallest.
LEARNING_RATES = {"SimpleRNN": 3e-3, "LSTM": 1e-2, "GRU": 1e-2, "IRNN": 1e-3}
CLIPNORM = 1.0
TEST_SAMPLES = 1000
FLOW_SAMPLES = 128
CHUNK_STEPS = 250  # fresh training data is generated this many steps at a time


@dataclass
class VanishingResults:
    """What `run_experiment` measured.

    Attributes:
        lengths: the sequence lengths T, ascending.
        mse: `{layer type: [test MSE at each length]}`.
        flows: `{layer type: GradientFlow}` after training, at the longest length.
        initial_flows: the same, measured before training (at initialization).
        settings: steps, batch_size, units, seed, learning_rates, clipnorm.
        seconds: wall-clock time of the whole experiment.
        baseline: the MSE of always answering 1.0 (≈ 0.167).
    """

    lengths: list[int]
    mse: dict[str, list[float]] = field(default_factory=dict)
    flows: dict[str, GradientFlow] = field(default_factory=dict)
    initial_flows: dict[str, GradientFlow] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    baseline: float = ADDING_BASELINE_MSE

    @property
    def flow_timesteps(self) -> int:
        """The T at which the gradient flow was measured (the longest length)."""
        return self.lengths[-1]


def recurrent_layer(layer_type: str, units: int) -> layers.RNN:
    """The recurrent layer of one layer type; "IRNN" is Le et al.'s identity-ReLU SimpleRNN."""
    if layer_type == "IRNN":
        return layers.SimpleRNN(
            units,
            activation="relu",
            recurrent_initializer=initializers.Identity(gain=1.0),
            kernel_initializer=initializers.RandomNormal(stddev=0.001),
            name="irnn",
        )
    classes = {"SimpleRNN": layers.SimpleRNN, "LSTM": layers.LSTM, "GRU": layers.GRU}
    if layer_type not in classes:
        raise ValueError(
            f"argument `layer_type` must be one of {LAYER_TYPES}, received {layer_type!r}."
        )
    return classes[layer_type](units, name=layer_type.lower())


def build_model(layer_type: str, timesteps: int, units: int) -> rk.Sequential:
    """`Input(timesteps, 2) → recurrent layer → Dense(1)`, compiled with MSE and Adam (the
    layer type's learning rate from `LEARNING_RATES`, gradients clipped to norm 1)."""
    model = rk.Sequential(
        [rk.Input(shape=(timesteps, 2)), recurrent_layer(layer_type, units), layers.Dense(1)]
    )
    optimizer = Adam(learning_rate=LEARNING_RATES[layer_type], clipnorm=CLIPNORM)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def train(model: rk.Sequential, timesteps: int, *, steps: int, batch_size: int, seed: int) -> None:
    """`steps` optimizer steps of `fit`, each on a fresh batch of the adding problem."""
    done = 0
    while done < steps:
        chunk = min(CHUNK_STEPS, steps - done)
        x, y = adding_problem(chunk * batch_size, timesteps, seed=seed + done)
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        done += chunk


def run_experiment(
    lengths: Sequence[int],
    *,
    steps: int = 1000,
    batch_size: int = 64,
    units: int = 32,
    seed: int = 0,
    layer_types: Sequence[str] = LAYER_TYPES,
    progress: Callable[[str], None] = lambda line: None,
) -> VanishingResults:
    """Trains every layer type at every length and measures test MSE and gradient flow.

    Args:
        lengths: sequence lengths T (each at least 2).
        steps: optimizer steps per model (default 1000).
        batch_size: samples per step (default 64).
        units: units of each recurrent layer (default 32).
        seed: seeds the weights, the training data and the test data (default 0).
        layer_types: which of `LAYER_TYPES` to train (default all four).
        progress: called with one line of text after each model.

    PyTorch runs on one thread during the experiment (its setting is restored afterwards).

    Returns:
        A `VanishingResults`.
    """
    lengths = sorted(set(int(length) for length in lengths))
    if not lengths or lengths[0] < 2:
        raise ValueError(f"argument `lengths` must be integers >= 2, received {lengths!r}.")
    unknown = [name for name in layer_types if name not in LAYER_TYPES]
    if unknown or not layer_types:
        raise ValueError(
            f"argument `layer_types` must name some of {LAYER_TYPES}, received {layer_types!r}."
        )
    results = VanishingResults(
        lengths=lengths,
        settings=dict(
            steps=steps,
            batch_size=batch_size,
            units=units,
            seed=seed,
            learning_rates={name: LEARNING_RATES[name] for name in layer_types},
            clipnorm=CLIPNORM,
        ),
    )
    runs = [(timesteps, layer_type) for timesteps in lengths for layer_type in layer_types]
    start = time.perf_counter()
    # On one thread: these models are small enough that a second thread barely helps, and on
    # a busy machine its synchronisation costs several times more.
    with one_torch_thread():
        for number, (timesteps, layer_type) in enumerate(runs, start=1):
            began = time.perf_counter()
            mse = _train_and_measure(results, layer_type, timesteps)
            progress(
                f"[{number:>2}/{len(runs)}] T={timesteps:<4} {layer_type:<9} test MSE {mse:.4f}"
                f"  ({time.perf_counter() - began:.0f} s)"
            )
    results.seconds = time.perf_counter() - start
    return results


def _train_and_measure(results: VanishingResults, layer_type: str, timesteps: int) -> float:
    """Trains one model, records its test MSE (and, at the longest T, its gradient flow before
    and after training) in `results`; returns the MSE."""
    settings = results.settings
    seed = settings["seed"]
    x_test, y_test = adding_problem(TEST_SAMPLES, timesteps, seed=seed + 1_000_003)
    flow_batch = (x_test[:FLOW_SAMPLES], y_test[:FLOW_SAMPLES])
    longest = timesteps == results.flow_timesteps
    torch.manual_seed(seed)
    model = build_model(layer_type, timesteps, settings["units"])
    if longest:
        results.initial_flows[layer_type] = gradient_flow(model, *flow_batch)
    train(
        model,
        timesteps,
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        seed=seed + 7919 * timesteps,
    )
    mse = float(model.evaluate(x_test, y_test, batch_size=TEST_SAMPLES, verbose=0))
    results.mse.setdefault(layer_type, []).append(mse)
    if longest:
        results.flows[layer_type] = gradient_flow(model, *flow_batch)
    return mse
