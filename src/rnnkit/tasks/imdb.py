"""IMDB sentiment classification, the chapter's main example: reviews as word indices, padded
to `maxlen`, through Embedding → recurrent layer → sigmoid."""

from __future__ import annotations

from typing import Any

import torch

import rnnkit as rk
from rnnkit import layers
from rnnkit.data import imdb
from rnnkit.data.sequences import pad_sequences
from rnnkit.tasks.common import fit_and_save, output_paths, recurrent_layer, report


def run(options: Any, stream: Any) -> dict[str, Any]:
    """Trains on IMDB (downloaded, or `options.data`) and reports test accuracy."""
    torch.manual_seed(options.seed)
    path = options.data or "imdb.npz"
    (x_train, y_train), (x_test, y_test) = imdb.load_data(path=path, num_words=options.num_words)
    x_train = pad_sequences(x_train, maxlen=options.maxlen)
    x_test = pad_sequences(x_test, maxlen=options.maxlen)
    print(f"{len(x_train):,} training and {len(x_test):,} test reviews", file=stream)
    model = rk.Sequential(
        [
            layers.Embedding(options.num_words, 32),
            recurrent_layer(options.layer, options.units),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    paths = output_paths(options.out, stream)
    fit_and_save(
        model,
        paths,
        x_train,
        y_train,
        epochs=options.epochs,
        batch_size=options.batch_size,
        validation_split=0.2,
        verbose=options.verbose,
    )
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {test_acc:.4f} (loss {test_loss:.4f})", file=stream)
    report(paths, stream)
    return {"test_acc": test_acc, "paths": paths}
