"""Character-level language model (the chapter's text generation): predict the next character.

By default the text is the Python standard library's own source, so no download is needed.
Reports validation bits per character (the cross-entropy in base 2) and prints a sample
generated from the trained model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

import rnnkit as rk
from rnnkit import layers
from rnnkit.data import text_corpus
from rnnkit.tasks.common import fit_and_save, output_paths, recurrent_layer, report


def build_model(vocabulary_size: int, layer: str, units: int) -> rk.Sequential:
    """Embedding → recurrent layer → softmax over the vocabulary."""
    return rk.Sequential(
        [
            layers.Embedding(vocabulary_size, 32),
            recurrent_layer(layer, units),
            layers.Dense(vocabulary_size, activation="softmax"),
        ]
    )


def sample(
    model: Any, seed_text: str, chars: list[str], length: int, temperature: float = 0.5
) -> str:
    """Generates `length` characters after `seed_text`, reweighting the predicted
    distribution by `temperature` (lower: more predictable), as the book does."""
    index = {char: i for i, char in enumerate(chars)}
    window = [index[char] for char in seed_text if char in index]
    generator = np.random.default_rng(0)
    generated = []
    model.eval()
    with torch.no_grad():
        for _ in range(length):
            probabilities = model(torch.tensor([window])).double().numpy()[0]
            logits = np.log(np.maximum(probabilities, 1e-12)) / temperature
            weights = np.exp(logits - logits.max())
            choice = int(generator.choice(len(chars), p=weights / weights.sum()))
            generated.append(chars[choice])
            window = window[1:] + [choice]
    return "".join(generated)


def run(options: Any, stream: Any) -> dict[str, Any]:
    """Trains on `options.data` (or the default corpus) and writes model, history and curves."""
    torch.manual_seed(options.seed)
    text = text_corpus.load_text(options.data, max_chars=options.max_chars)
    train_text, val_text = text_corpus.train_val_split(text, 0.1)
    chars, char_to_index = text_corpus.char_vocabulary(text)
    seq_len = options.maxlen
    shortest = min(len(train_text), len(val_text))
    if shortest <= seq_len:
        raise ValueError(
            f"--maxlen {seq_len} needs a text longer than that in both parts (90% training, "
            f"10% validation), but the shorter part has {shortest} characters: pass a smaller "
            "--maxlen, or --data with a longer text"
        )
    x, y = text_corpus.make_char_dataset(train_text, seq_len, 3, char_to_index)
    x_val, y_val = text_corpus.make_char_dataset(val_text, seq_len, seq_len, char_to_index)
    print(
        f"corpus: {len(text):,} characters, vocabulary {len(chars)}, "
        f"{len(x):,} training windows of {seq_len}",
        file=stream,
    )
    model = build_model(len(chars), options.layer, options.units)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["acc"])
    paths = output_paths(options.out, stream)
    history = fit_and_save(
        model,
        paths,
        x,
        y,
        batch_size=options.batch_size,
        epochs=options.epochs,
        validation_data=(x_val, y_val),
        verbose=options.verbose,
    )
    val_loss = history.history["val_loss"][-1] if history.history.get("val_loss") else math.nan
    bits = val_loss / math.log(2)
    print(f"validation bits per character: {bits:.3f}", file=stream)
    seed_text = val_text[:seq_len]
    print(f"sample after {seed_text[-30:]!r}:", file=stream)
    print(seed_text + sample(model, seed_text, chars, options.sample_length), file=stream)
    report(paths, stream)
    return {"bits_per_character": bits, "paths": paths}
