"""The data-path benchmark: one epoch of `fit` over lazy timeseries windows against the same
windows materialised as arrays (`rnnkit bench --data-path`).

The chapter's Jena setup in size: windows of 120 steps (one every 6 raw rows) over 14
features, batches of 256, 120 steps an epoch, a GRU of 32 units. The windows come from
`timeseries_dataset_from_array`, which cuts each batch when `fit` draws it; the arrays path
gets every window cut beforehand (`(windows, 120, 14)` float32, ~200 MB here). Both run
unshuffled, so the two epochs see the same batches in the same order.

Reported: each path's median seconds for one epoch (measured in turns, see
`bench.medians_in_turns`), their ratio (windows / arrays), and each path's peak memory of
building its data plus one epoch, as traced by `tracemalloc` (NumPy's and Python's allocations:
the data; torch's own allocator is not traced, and is the same for both paths), beside the size
of the series and of all its windows.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import rnnkit as rk
from rnnkit import bench, layers
from rnnkit.data.timeseries import TimeseriesDataset, timeseries_dataset_from_array

SHAPE = {
    "batch_size": 256,
    "steps": 120,  # batches in the epoch
    "sequence_length": 120,
    "sampling_rate": 6,
    "features": 14,
    "units": 32,
}


def series(shape: dict[str, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random series just long enough for `steps` full batches of windows:
    `(rows, features)` inputs and `(rows,)` targets, float32."""
    windows = shape["batch_size"] * shape["steps"]
    rows = windows + shape["sampling_rate"] * (shape["sequence_length"] - 1)
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, shape["features"])).astype("float32")
    return data, data[:, 1].copy()


def windows(shape: dict[str, int], data: np.ndarray, targets: np.ndarray) -> TimeseriesDataset:
    """The lazy windows over `data`, unshuffled, `steps` batches."""
    return timeseries_dataset_from_array(
        data,
        targets,
        sequence_length=shape["sequence_length"],
        sampling_rate=shape["sampling_rate"],
        batch_size=shape["batch_size"],
    )


def materialise(dataset: TimeseriesDataset) -> tuple[np.ndarray, np.ndarray]:
    """Every window and target of `dataset`, cut now: `(windows, T, features)`, `(windows,)`."""
    batches = [dataset[index] for index in range(len(dataset))]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def model(shape: dict[str, int], seed: int = 0) -> Any:
    """The GRU regressor both paths train (RMSprop, MSE)."""
    torch.manual_seed(seed)
    gru = rk.Sequential(
        [
            rk.Input(shape=(shape["sequence_length"], shape["features"])),
            layers.GRU(shape["units"]),
            layers.Dense(1),
        ]
    )
    gru.compile(optimizer="rmsprop", loss="mse")
    return gru


def epoch_functions(shape: dict[str, int]) -> dict[str, Callable[[], Any]]:
    """One epoch of `fit` on each path: `{"windows": ..., "arrays": ...}`."""
    data, targets = series(shape)
    lazy = windows(shape, data, targets)
    x, y = materialise(lazy)
    lazy_model, array_model = model(shape), model(shape)
    return {
        "windows": lambda: lazy_model.fit(lazy, epochs=1, shuffle=False, verbose=0),
        "arrays": lambda: array_model.fit(
            x, y, batch_size=shape["batch_size"], epochs=1, shuffle=False, verbose=0
        ),
    }


def peak_memory_mb(shape: dict[str, int], path: str) -> float:
    """Peak traced memory (MB) of building `path`'s data and fitting one epoch on it."""
    gru = model(shape)
    tracemalloc.start()
    try:
        data, targets = series(shape)
        lazy = windows(shape, data, targets)
        if path == "windows":
            gru.fit(lazy, epochs=1, shuffle=False, verbose=0)
        else:
            x, y = materialise(lazy)
            gru.fit(x, y, batch_size=shape["batch_size"], epochs=1, shuffle=False, verbose=0)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run(
    shape: dict[str, int] | None = None, repeats: int = 3, memory: bool = True, stream: Any = None
) -> dict[str, Any]:
    """Measures both paths; prints one line per path and the ratio when `stream` is given.

    Args:
        shape: the workload (default `SHAPE`).
        repeats: timed epochs per path (after a warm-up epoch each).
        memory: also measure each path's peak traced memory.
        stream: where to print (None: silent).

    Returns:
        `{"shape", "seconds": {path: median}, "ratio" (windows / arrays), "series_mb",
        "windows_mb", "peak_mb": {path: MB} (with memory)}`.
    """
    shape = dict(shape or SHAPE)
    seconds = bench.medians_in_turns(epoch_functions(shape), repeats)
    data, _ = series(shape)
    window_count = shape["batch_size"] * shape["steps"]
    result: dict[str, Any] = {
        "shape": shape,
        "seconds": seconds,
        "ratio": seconds["windows"] / seconds["arrays"],
        "series_mb": data.nbytes / 2**20,
        "windows_mb": window_count * shape["sequence_length"] * shape["features"] * 4 / 2**20,
    }
    if memory:
        result["peak_mb"] = {path: peak_memory_mb(shape, path) for path in seconds}
    if stream is not None:
        for path, value in seconds.items():
            peak = f", peak {result['peak_mb'][path]:.1f} MB" if memory else ""
            print(f"data path, {path}: {value:.3f} s an epoch{peak}", file=stream)
        print(
            f"data path: windows / arrays = {result['ratio']:.2f}x (series "
            f"{result['series_mb']:.1f} MB, all windows {result['windows_mb']:.1f} MB)",
            file=stream,
        )
    return result
