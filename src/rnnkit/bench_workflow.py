"""`rnnkit bench`'s workloads of whole user actions: a `fit` epoch, `predict`, one stateful step.

The layer workloads of `rnnkit.bench` time one recurrent layer; users time what they run:

- **fit**: one `fit` epoch of the chapter's IMDB model (Embedding 10000×32 → LSTM 32 →
  Dense(1, sigmoid); 4,096 × 500 random ids, batch 128, rmsprop, binary cross-entropy, metric
  acc) and `predict` over the same data, against a hand-written torch.nn loop with the same
  model, optimizer (RMSprop with Keras's defaults) and batches, and Keras 3 (JAX) `fit` /
  `predict` where Keras is installed;
- **small_call**: one stateful step at batch 1 (LSTM 64 → 128 units, 1 and 16 timesteps per
  call, states carried from call to call, inference), as streaming and text generation run it,
  against `torch.nn.LSTMCell` (a Python loop over the timesteps) and `torch.nn.LSTM` with
  carried `hx`. The peers start from the rnnkit layer's weights, so all compute the same outputs.

Each workload's implementations are timed in turns (`bench.medians_in_turns`); ratios are the
fastest peer's median over the implementation's (> 1 is faster), as in the layer table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import bench

CHAPTER_MODEL = {  # the chapter's IMDB model and data (`rnnkit train imdb`'s defaults)
    "samples": 4096,
    "timesteps": 500,
    "vocabulary": 10000,
    "embedding": 32,
    "units": 32,
    "batch_size": 128,
}
SMALL_CALL = {"features": 64, "units": 128, "timesteps": (1, 16)}
# Small calls last tens of microseconds: each timed call runs this many of them.
CALLS_PER_TIMING = 100
FIT_PEERS = ("torch_nn", "keras_jax")
STEP_PEERS = ("torch_lstm_cell", "torch_lstm")

Steps = tuple[Callable[[], Any], Callable[[], Any]]


# ------------------------------------------------------------------------------------- fit
def chapter_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ids and labels of the chapter's shape.

    Returns:
        `(x, y)`: `x` int64 `(samples, timesteps)` ids below `vocabulary`; `y` float32
        `(samples,)` labels 0 or 1.
    """
    rng = np.random.default_rng(seed)
    shape = (CHAPTER_MODEL["samples"], CHAPTER_MODEL["timesteps"])
    x = rng.integers(0, CHAPTER_MODEL["vocabulary"], size=shape, dtype=np.int64)
    y = rng.integers(0, 2, size=CHAPTER_MODEL["samples"]).astype(np.float32)
    return x, y


def rnnkit_chapter_model() -> Any:
    """The chapter's model in rnnkit, compiled as the chapter compiles it."""
    import rnnkit as rk
    from rnnkit import layers

    model = rk.Sequential(
        [
            layers.Embedding(CHAPTER_MODEL["vocabulary"], CHAPTER_MODEL["embedding"]),
            layers.LSTM(CHAPTER_MODEL["units"]),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    return model


class TorchChapterModel(nn.Module):
    """The chapter's model written with torch.nn: ids `(batch, timesteps)` → `(batch,)`
    probabilities (the sigmoid of a Linear layer on the LSTM's last output)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(CHAPTER_MODEL["vocabulary"], CHAPTER_MODEL["embedding"])
        self.lstm = nn.LSTM(CHAPTER_MODEL["embedding"], CHAPTER_MODEL["units"], batch_first=True)
        self.dense = nn.Linear(CHAPTER_MODEL["units"], 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, (last_h, _) = self.lstm(self.embedding(ids))  # last_h: (1, batch, units)
        return torch.sigmoid(self.dense(last_h[0]))[:, 0]


def _keras_api_steps(model: Any, x: np.ndarray, y: np.ndarray) -> Steps:
    """One `fit` epoch and `predict` over `(x, y)` at the chapter's batch size, through the
    Keras API that rnnkit's and Keras's models share."""
    batch_size = CHAPTER_MODEL["batch_size"]

    def fit_epoch() -> Any:
        return model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)

    def predict() -> np.ndarray:
        return model.predict(x, batch_size=batch_size, verbose=0)

    return fit_epoch, predict


def _rnnkit_fit(x: np.ndarray, y: np.ndarray) -> Steps:
    return _keras_api_steps(rnnkit_chapter_model(), x, y)


def _torch_fit(x: np.ndarray, y: np.ndarray) -> Steps:
    """A training loop as a torch user writes it: shuffled batches, BCE, RMSprop with Keras's
    defaults (lr 1e-3, rho 0.9 as `alpha`, epsilon 1e-7), loss and accuracy summed on tensors
    and read once per epoch."""
    model = TorchChapterModel()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_function = nn.BCELoss()
    ids, labels = torch.from_numpy(x), torch.from_numpy(y)
    batch_size = CHAPTER_MODEL["batch_size"]
    samples = len(ids)

    def fit_epoch() -> dict[str, float]:
        model.train()
        order = torch.randperm(samples)
        total_loss, correct = torch.zeros(()), torch.zeros(())
        for start in range(0, samples, batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            probabilities = model(ids[index])
            loss = loss_function(probabilities, labels[index])
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                total_loss += loss * len(index)
                correct += ((probabilities > 0.5) == (labels[index] > 0.5)).sum()
        return {"loss": total_loss.item() / samples, "acc": correct.item() / samples}

    def predict() -> np.ndarray:
        model.eval()
        with torch.no_grad():
            batches = [model(ids[s : s + batch_size]) for s in range(0, samples, batch_size)]
        return torch.cat(batches).numpy()

    return fit_epoch, predict


def keras_or_reason() -> tuple[Any, str | None]:
    """Keras 3 on JAX, or None and why it cannot run (not installed, another backend)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as error:
        return None, f"Keras (JAX backend) is not installed ({error})"
    if keras.backend.backend() != "jax":
        return None, f"Keras runs on {keras.backend.backend()!r}, not JAX (set KERAS_BACKEND=jax)"
    return keras, None


def _keras_fit(keras: Any, x: np.ndarray, y: np.ndarray) -> Steps:
    model = keras.Sequential(
        [
            keras.Input((CHAPTER_MODEL["timesteps"],), dtype="int32"),
            keras.layers.Embedding(CHAPTER_MODEL["vocabulary"], CHAPTER_MODEL["embedding"]),
            keras.layers.LSTM(CHAPTER_MODEL["units"]),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    return _keras_api_steps(model, x.astype(np.int32), y)


def fit_rows(repeats: int, stream: Any = sys.stdout) -> list[dict[str, Any]]:
    """Times one `fit` epoch ("train") and `predict` ("infer") of the chapter's model for
    rnnkit and its peers, in turns; prints and returns one row in `bench.run`'s format, with
    `skipped: {implementation: reason}` for peers that cannot run here."""
    x, y = chapter_data()
    pairs: dict[str, Steps] = {"rnnkit": _rnnkit_fit(x, y), "torch_nn": _torch_fit(x, y)}
    skipped = {}
    keras, reason = keras_or_reason()
    if keras is None:
        skipped["keras_jax"] = reason
    else:
        pairs["keras_jax"] = _keras_fit(keras, x, y)
    times: dict[str, dict[str, float]] = {name: {} for name in pairs}
    for index, mode in enumerate(("train_ms", "infer_ms")):
        functions = {name: pair[index] for name, pair in pairs.items()}
        for name, seconds in bench.medians_in_turns(
            functions, repeats, pause=bench.PAUSE_BETWEEN_PEERS
        ).items():
            times[name][mode] = 1e3 * seconds
    row: dict[str, Any] = {"workload": "fit/chapter_imdb_lstm", "times": times, "skipped": skipped}
    bench.add_ratios(row, FIT_PEERS)
    shape = CHAPTER_MODEL
    print(
        f"\nfit/chapter_imdb_lstm: train = one fit epoch ({shape['samples']:,} × "
        f"{shape['timesteps']} ids, batch {shape['batch_size']}), infer = predict over them",
        file=stream,
    )
    for name, entry in times.items():
        print(bench.timing_text(name, entry, decimals=0), file=stream)
    for name, why in skipped.items():
        print(f"  {name:<13} skipped: {why}", file=stream)
    return [row]


# ------------------------------------------------------------------------------ small call
def small_call_steps(timesteps: int) -> dict[str, Callable[[], torch.Tensor]]:
    """One stateful inference call at batch 1 per implementation, each returning its last
    output `(1, units)`; the torch peers hold the rnnkit layer's weights.

    Args:
        timesteps: timesteps per call.

    Returns:
        `{"rnnkit": ..., "torch_lstm_cell": ..., "torch_lstm": ...}`: functions that run one
        call on the same input `(1, timesteps, features)`, carrying their states.
    """
    from rnnkit import layers

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, timesteps, SMALL_CALL["features"], generator=generator)
    stateless = layers.LSTM(SMALL_CALL["units"])
    layer = layers.LSTM(SMALL_CALL["units"], stateful=True).eval()
    with torch.no_grad():
        stateless(x), layer(x)  # builds the weights
    layer.set_weights(stateless.get_weights())
    layer.reset_state()
    lstm = stateless.to_torch().eval()  # (to_torch refuses stateful layers: torch has none)
    cell = nn.LSTMCell(SMALL_CALL["features"], SMALL_CALL["units"]).eval()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(lstm, f"{name}_l0"))
    zeros = torch.zeros(1, SMALL_CALL["units"])
    cell_state = [zeros, zeros]
    lstm_state = [(zeros[None], zeros[None])]

    def rnnkit_step() -> torch.Tensor:
        with torch.no_grad():
            return layer(x)

    def lstm_cell_step() -> torch.Tensor:
        with torch.no_grad():
            h, c = cell_state
            for t in range(timesteps):
                h, c = cell(x[:, t], (h, c))
        cell_state[:] = [h, c]
        return h

    def lstm_step() -> torch.Tensor:
        with torch.no_grad():
            outputs, lstm_state[0] = lstm(x, lstm_state[0])
        return outputs[:, -1]

    return {"rnnkit": rnnkit_step, "torch_lstm_cell": lstm_cell_step, "torch_lstm": lstm_step}


def _repeated(function: Callable[[], Any]) -> Callable[[], None]:
    def calls() -> None:
        for _ in range(CALLS_PER_TIMING):
            function()

    return calls


def small_call_rows(repeats: int, stream: Any = sys.stdout) -> list[dict[str, Any]]:
    """Times one stateful step at batch 1 per implementation, in turns, for each timestep
    count; prints and returns one row each: `times: {implementation: {"step_us": median,
    "vs_<peer>": peer's median / this one's}}`."""
    features, units = SMALL_CALL["features"], SMALL_CALL["units"]
    rows = []
    for timesteps in SMALL_CALL["timesteps"]:
        functions = {name: _repeated(f) for name, f in small_call_steps(timesteps).items()}
        medians = bench.medians_in_turns(functions, repeats, pause=bench.PAUSE_BETWEEN_PEERS)
        micros = {name: 1e6 * seconds / CALLS_PER_TIMING for name, seconds in medians.items()}
        times = {
            name: {"step_us": us, **{f"vs_{peer}": micros[peer] / us for peer in STEP_PEERS}}
            for name, us in micros.items()
        }
        name = f"small_call/lstm_{features}x{units}/batch1_t{timesteps}"
        rows.append({"workload": name, "times": times})
        print(f"\n{name}: one stateful inference call", file=stream)
        for implementation, entry in times.items():
            ratios = ", ".join(f"{entry[f'vs_{peer}']:.2f}x {peer}" for peer in STEP_PEERS)
            print(f"  {implementation:<15} {entry['step_us']:8.1f} µs   ({ratios})", file=stream)
    return rows
