"""The chapter's workflow end to end: IMDB-format data, pad, Embedding + RNN, fit, save, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import layers

RECURRENT = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def load(path, maxlen=40):
    (x_train, y_train), (x_test, y_test) = rk.datasets.imdb.load_data(path=path, num_words=300)
    pad = rk.preprocessing.pad_sequences
    return (pad(x_train, maxlen=maxlen), y_train), (pad(x_test, maxlen=maxlen), y_test)


def sentiment_model(kind):
    model = rk.Sequential(
        [
            layers.Embedding(300, 16),
            RECURRENT[kind](16),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    optimizer = rk.optimizers.RMSprop(learning_rate=0.005)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["acc"])
    return model


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_seeded_training_learns_sentiment(sentiment_imdb, kind):
    torch.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load(sentiment_imdb)
    model = sentiment_model(kind)
    history = model.fit(x_train, y_train, epochs=6, batch_size=32, validation_split=0.2, verbose=0)
    loss, acc = history.history["loss"], history.history["acc"]
    assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert loss[-1] < 0.8 * loss[0]
    assert acc[-1] > acc[0] and acc[-1] > 0.75
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    assert test_acc > 0.7


def test_saved_model_predicts_identically_and_training_resumes(sentiment_imdb, tmp_path):
    torch.manual_seed(0)
    (x_train, y_train), (x_test, _) = load(sentiment_imdb)
    model = sentiment_model("lstm")
    model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    path = tmp_path / "sentiment.rnnkit"
    model.save(path)
    loaded = rk.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0)
    )
    # The optimizer state came along: one more epoch from either gives the same weights.
    torch.manual_seed(1)
    model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0, shuffle=False)
    torch.manual_seed(1)
    loaded.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_interrupted_fit_keeps_what_was_learned(sentiment_imdb):
    torch.manual_seed(0)
    (x_train, y_train), _ = load(sentiment_imdb)
    model = sentiment_model("gru")
    before = model.predict(x_train[:8], verbose=0)

    class Interrupt(rk.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise KeyboardInterrupt

    history = model.fit(x_train, y_train, epochs=3, verbose=0, callbacks=[Interrupt()])
    assert history.epoch == []  # the first epoch never finished
    assert not np.allclose(model.predict(x_train[:8], verbose=0), before)  # 4 steps were kept
    resumed = model.fit(x_train, y_train, epochs=1, verbose=0)
    assert len(resumed.epoch) == 1


def test_early_stopping_and_checkpoint_in_the_chapter_model(sentiment_imdb, tmp_path):
    torch.manual_seed(0)
    (x_train, y_train), _ = load(sentiment_imdb)
    model = sentiment_model("simple_rnn")
    best = tmp_path / "best.rnnkit"
    stop = rk.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    checkpoint = rk.callbacks.ModelCheckpoint(str(best), save_best_only=True)
    history = model.fit(
        x_train, y_train, epochs=4, validation_split=0.2, callbacks=[stop, checkpoint], verbose=0
    )
    assert best.exists()
    val_loss = history.history["val_loss"]
    reloaded = rk.load_model(best)
    x_val, y_val = x_train[-80:], y_train[-80:]
    assert reloaded.evaluate(x_val, y_val, verbose=0)[0] == pytest.approx(min(val_loss), rel=1e-5)


def test_ragged_lists_point_to_pad_sequences():
    model = sentiment_model("lstm")
    with pytest.raises(ValueError, match="pad_sequences"):
        model.fit([[1, 2, 3], [4, 5]], np.array([0, 1]), verbose=0)
