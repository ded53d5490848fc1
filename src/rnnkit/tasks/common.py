"""What the training tasks share: the recurrent layer by name, and writing the outputs."""

from __future__ import annotations

import os
from typing import Any

from rnnkit import layers, plot
from rnnkit.training import distributed
from rnnkit.training.callbacks import CSVLogger

RECURRENT_LAYERS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def recurrent_layer(name: str, units: int, **kwargs: Any) -> layers.RNN:
    """`SimpleRNN`, `LSTM` or `GRU` by its command-line name."""
    if name not in RECURRENT_LAYERS:
        raise ValueError(f"--layer must be one of {sorted(RECURRENT_LAYERS)}, received {name!r}.")
    return RECURRENT_LAYERS[name](units, **kwargs)


def output_paths(out_dir: str, stream: Any = None) -> dict[str, str]:
    """Where a task writes: the model, the per-epoch history CSV and the curves PNG.

    A second run into the same folder replaces the first one's files (as `model.save` replaces
    a file), after a note on `stream` that says so, so that no model is lost without a word.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "model": os.path.join(out_dir, "model.rnnkit"),
        "history": os.path.join(out_dir, "history.csv"),
        "curves": os.path.join(out_dir, "curves.png"),
    }
    if stream is not None and os.path.exists(paths["model"]):
        print(
            f"note: {out_dir} holds an earlier run's outputs; this run replaces them "
            "(give another --out to keep both)",
            file=stream,
        )
    return paths


def fit_and_save(model: Any, paths: dict[str, str], *args: Any, **kwargs: Any) -> Any:
    """`model.fit(*args, **kwargs)` logging to the history CSV, then saves model and curves
    (on the first process only, when training runs on several)."""
    history = model.fit(*args, callbacks=[CSVLogger(paths["history"])], **kwargs)
    if distributed.is_primary():  # under torchrun, process 0 writes for every process
        model.save(paths["model"])
        if history.history:
            plot.history(history, paths["curves"])
    return history


def report(paths: dict[str, str], stream: Any) -> None:
    """Prints where each output went (only those that exist)."""
    for label, path in paths.items():
        if os.path.exists(path):
            print(f"wrote {label}: {path}", file=stream)
