"""Shared test data: the table of recurrent cell kinds every layer and kernel test runs over, and
a small IMDB-format file whose labels really depend on the words."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import pytest

from rnnkit import reference
from rnnkit.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell


class CellKind(NamedTuple):
    """One kind of recurrent cell, as each test needs to name it."""

    layer: type  # the rnnkit layer
    cell: type  # its cell
    keras_name: str  # the Keras layer's class name
    options: dict[str, Any]  # the layer's (and cell's) arguments that make this kind
    reference: Callable  # the NumPy loop of `rnnkit.reference`, options applied
    gates: int  # gate blocks per weight
    states: int  # states per step (LSTM: h and c)


# The kinds every test of the layers, kernels and file formats runs over.
KINDS = {
    "simple_rnn": CellKind(SimpleRNN, SimpleRNNCell, "SimpleRNN", {}, reference.simple_rnn, 1, 1),
    "lstm": CellKind(LSTM, LSTMCell, "LSTM", {}, reference.lstm, 4, 2),
    "gru_reset_after": CellKind(
        GRU, GRUCell, "GRU", {"reset_after": True}, partial(reference.gru, reset_after=True), 3, 1
    ),
    "gru_reset_before": CellKind(
        GRU, GRUCell, "GRU", {"reset_after": False}, partial(reference.gru, reset_after=False), 3, 1
    ),
}


def write_sentiment_imdb(path, train=400, test=100, seed=0):
    """Writes an imdb.npz in Keras's format (object arrays of word-rank lists, 0/1 labels).

    Positive reviews draw several words from ranks 10-19, negative ones from ranks 20-29;
    the rest are filler ranks 30-199, so a model must find the telling words to do well.
    """
    rng = np.random.default_rng(seed)

    def split(count):
        reviews = np.empty(count, dtype=object)
        labels = rng.integers(0, 2, size=count).astype(np.int64)
        for i, label in enumerate(labels):
            filler = rng.integers(30, 200, size=rng.integers(15, 30))
            telling = rng.integers(10, 20, size=4) + (0 if label else 10)
            review = np.concatenate([filler, telling])
            rng.shuffle(review)
            reviews[i] = [int(word) for word in review]
        return reviews, labels

    x_train, y_train = split(train)
    x_test, y_test = split(test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture
def sentiment_imdb(tmp_path):
    return write_sentiment_imdb(tmp_path / "imdb.npz")


@pytest.fixture
def jena_csv(tmp_path):
    """A function `write(rows=240)` that writes `rows` ten-minute rows in Jena's CSV format (a
    daily temperature cycle plus noise) and returns the file's path."""
    from rnnkit.data import jena_climate

    def write(rows: int = 240):
        rng = np.random.default_rng(0)
        header = '"Date Time",' + ",".join(f'"{name}"' for name in jena_climate.COLUMNS)
        lines = [header]
        for row in range(rows):
            values = rng.normal(size=14) + 10.0
            values[jena_climate.TEMPERATURE_COLUMN] = 5 * np.sin(row / 24) + rng.normal() * 0.1
            day, minutes = divmod(row * 10, 24 * 60)
            stamp = f"{day % 28 + 1:02d}.{day // 28 % 12 + 1:02d}.2009 "
            lines.append(
                f"{stamp}{minutes // 60:02d}:{minutes % 60:02d}:00,"
                + ",".join(f"{v:.2f}" for v in values)
            )
        path = tmp_path / f"jena-{rows}.csv"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
