"""Shared test data: a small IMDB-format file whose labels really depend on the words."""

from __future__ import annotations

import numpy as np
import pytest


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
