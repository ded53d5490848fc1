"""Character-level language model (the chapter's text generation): predict the next character.

By default the text is the Python standard library's own source, so no download is needed.
Reports validation bits per character (the cross-entropy in base 2) and prints a sample
generated from the trained model: by `generate`, which by default runs a stateful copy of the
model one character per step (`StatefulPredictor`), or samples the book's way, re-running the
last window through the model for each new character (`sample`). `bits_per_character` measures
a model both ways on held-out text (benchmarks/charlm_generation.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import rnnkit as rk
from rnnkit import layers
from rnnkit._threads import one_torch_thread
from rnnkit.data import text_corpus
from rnnkit.layers.base import uninitialized_weights
from rnnkit.models import saving, step_plan
from rnnkit.tasks import sampling
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


def _check_generation(
    seed_text: Any, length: Any, vocabulary: Any, temperature: Any
) -> dict[str, int]:
    """Checks `generate`'s arguments; returns `{character: index}` of `vocabulary`."""
    if not isinstance(seed_text, str) or not seed_text:
        raise ValueError(f"`seed_text` must be a non-empty str; received {seed_text!r}.")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"`length` must be an int >= 0; received length={length!r}.")
    if isinstance(vocabulary, str) or not all(isinstance(c, str) for c in vocabulary):
        raise TypeError(
            "`vocabulary` must be a sequence of characters (index -> character, as "
            f"`text_corpus.char_vocabulary` returns); received {type(vocabulary).__name__}."
        )
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"`temperature` must be a float; received {temperature!r}.")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; received temperature={temperature}.")
    index = {char: i for i, char in enumerate(vocabulary)}
    missing = sorted(set(seed_text) - set(index))
    if missing:
        raise ValueError(
            f"`seed_text` has character(s) outside `vocabulary`: {''.join(missing)!r}."
        )
    return index


def _device(model: Any) -> torch.device:
    """Where the model's weights are (its inputs go there)."""
    return next(model.parameters()).device


def stateful_copy(model: Any) -> Any:
    """A copy of `model` with the same weights whose recurrent layers carry their states from
    one call to the next (`stateful=True`), in eval mode: feeding it a text in pieces gives the
    prediction of feeding it the whole text at once.

    Args:
        model: a `Sequential` or functional model whose recurrent layers run forwards.

    Returns:
        The copy (the model itself is unchanged); `copy.reset_state()` zeroes its states.

    Raises:
        ValueError: the model is not built; a recurrent layer reads the sequence backwards
            (`go_backwards`, or inside `Bidirectional`), so the model cannot run one character
            at a time.
    """
    if not getattr(model, "built", False):
        raise ValueError(f"Model '{model.name}' has no weights yet: train it (or call it) first.")
    config = {"class_name": type(model).__name__, "config": model.get_config()}
    first = next(model.parameters())
    with uninitialized_weights():  # every weight is loaded next
        copy = saving.model_from_config(config).to(device=first.device, dtype=first.dtype)
    copy.load_state_dict(model.state_dict())
    for module in copy.modules():
        if isinstance(module, layers.Bidirectional) or getattr(module, "go_backwards", False):
            raise ValueError(
                f"Layer '{module.name}' reads the sequence backwards, so the model cannot run "
                "one character at a time; generate with stateful=False."
            )
        if isinstance(module, layers.RNN):
            module.stateful = True
    return copy.eval()


class StatefulPredictor:
    """Next-character probabilities from a stateful copy of a model, one call per piece of text:
    each character costs one step of the recurrent layers, whatever came before (O(1)).

    Where the copy is a `Sequential` of Embedding, forward recurrent layers and a softmax (or
    linear) Dense on the CPU, the steps run as a prepared plan of the copy
    (`rnnkit.models.step_plan.StepPlan`: compiled steps on preallocated buffers, the same
    results to rounding); otherwise the copy itself runs.

    Args:
        model: a model from ids `(batch, timesteps)` to next-character probabilities
            `(batch, vocabulary_size)`, such as `build_model`'s (see `stateful_copy`).

    Attributes:
        model: the stateful copy (while a plan runs, the plan carries the states, not it).
        plan: the copy's `StepPlan`, or None where it has none.

    Example:
        >>> predictor = StatefulPredictor(model)
        >>> probabilities = predictor.feed([4, 8, 15])    # (vocabulary_size,) float64
        >>> probabilities = predictor.feed([16])          # continues after 4, 8, 15, 16
    """

    def __init__(self, model: Any) -> None:
        self.model = stateful_copy(model)
        self.plan = step_plan.prepare(self.model)

    def feed(self, ids: Sequence[int]) -> np.ndarray:
        """Runs the copy over `ids` (at least one), continuing from the characters fed before.

        Returns:
            `(vocabulary_size,)` float64: the probabilities of the character after `ids`.
        """
        if self.plan is not None:
            return self.plan.feed(ids)
        with torch.no_grad():
            return self._predict(ids).astype(np.float64)

    def _predict(self, ids: Sequence[int]) -> np.ndarray:
        """`feed` without a plan, in the caller's `torch.no_grad()`, in the model's dtype."""
        # A NumPy array: the model's first layer converts and checks it (and moves it to the
        # weights' device), at a microsecond's cost where `torch.tensor` of a list takes three.
        probabilities = self.model(np.asarray([ids]))  # (1, vocabulary_size)
        return probabilities.cpu().numpy()[0]

    def reset(self) -> None:
        """Forgets the characters fed so far (zero states)."""
        self.model.reset_state()
        if self.plan is not None:
            self.plan.reset()


def windowed_probabilities(model: Any, windows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Next-character probabilities the book's way: a fresh model call over each whole window.

    Args:
        model: as `StatefulPredictor`.
        windows: `(n, window)` int character ids.
        batch_size: windows per model call.

    Returns:
        `(n, vocabulary_size)` float64 probabilities of the character after each window.
    """
    model.eval()
    device = _device(model)
    with torch.no_grad():
        pieces = [
            model(torch.as_tensor(windows[start : start + batch_size], device=device)).double()
            for start in range(0, len(windows), batch_size)
        ]
    return torch.cat(pieces).cpu().numpy()


def generate(
    model: Any,
    seed_text: str,
    length: int,
    *,
    vocabulary: Sequence[str],
    temperature: float = 0.5,
    stateful: bool = True,
    seed: int | None = 0,
) -> str:
    """Generates `length` characters after `seed_text`, sampling each from the model's
    predicted distribution reweighted by `temperature`.

    With `stateful=True` a stateful copy of the model (`StatefulPredictor`) reads the seed once,
    then one character per step, so each new character costs one step of the recurrent layers
    and the model sees everything generated so far (on one torch thread: `one_torch_thread`). With
    `stateful=False` it samples the book's way (`sample`): the last `len(seed_text)` characters
    go through the model again for each new character (a window's steps per character, and no
    memory beyond the window).

    Args:
        model: a model from ids `(batch, timesteps)` to next-character probabilities
            `(batch, len(vocabulary))`, such as `build_model`'s.
        seed_text: the text to continue (every character in `vocabulary`); with
            `stateful=False`, its length is the window.
        length: characters to generate.
        vocabulary: the character of each index (`text_corpus.char_vocabulary(text)[0]`).
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it (default 0.5).
        stateful: run one character per step (default True) or re-run the window.
        seed: seed of the sampling's random generator (default 0; None: fresh entropy).

    Returns:
        The `length` generated characters (without the seed).

    Raises:
        ValueError: an empty `seed_text` or one with characters outside `vocabulary`; a
            negative `length`; `temperature` <= 0; a model that reads backwards, when stateful;
            a model that predicts NaN or infinite probabilities.
        TypeError: `vocabulary` is not a sequence of characters.

    Example:
        >>> chars, _ = text_corpus.char_vocabulary(text)
        >>> generate(model, text[:40], 200, vocabulary=chars, temperature=0.5)
    """
    if not stateful:
        return sample(model, seed_text, list(vocabulary), length, temperature, seed=seed)
    index = _check_generation(seed_text, length, vocabulary, temperature)
    generator = np.random.default_rng(seed)
    generated = []
    # On one thread: at batch 1 threads have nothing to share, and they cost: MKL runs even the
    # Dense layer's tiny product on every thread, and threads used by work just before
    # (building the stateful copy, for one, so it runs inside too) spin on through the
    # characters. On 2 cores with `OMP_NUM_THREADS=2`, stateful generation took 1.3x to 5x the
    # CPU time of one thread (benchmarks/README.md).
    with torch.no_grad(), one_torch_thread():  # once, not a context per character
        predictor = StatefulPredictor(model)
        plan = predictor.plan
        seed_ids = [index[char] for char in seed_text]
        if plan is not None:
            return _generate_with_plan(plan, seed_ids, length, vocabulary, temperature, generator)
        probabilities = predictor._predict(seed_ids)
        for position in range(length):
            choice = sampling.draw(probabilities, temperature, generator)
            generated.append(vocabulary[choice])
            if position + 1 < length:
                probabilities = predictor._predict([choice])
    return "".join(generated)


def _generate_with_plan(
    plan: step_plan.StepPlan,
    seed_ids: list[int],
    length: int,
    vocabulary: Sequence[str],
    temperature: float,
    generator: np.random.Generator,
) -> str:
    """`generate`'s loop on a `StepPlan`: each character is drawn from the logits of a
    softmax model (`sampling.draw_from_logits`), or from a linear model's outputs as from the copy's
    (`sampling.draw`), and stepped through the plan."""
    for char_id in seed_ids:
        plan.step(char_id)
    logits = plan.logits  # rewritten in place by each step
    draw = sampling.draw_from_logits if plan.softmax else sampling.draw
    generated = []
    for position in range(length):
        choice = draw(logits, temperature, generator)
        generated.append(vocabulary[choice])
        if position + 1 < length:
            plan.step(choice)
    return "".join(generated)


def sample(
    model: Any,
    seed_text: str,
    chars: list[str],
    length: int,
    temperature: float = 0.5,
    seed: int | None = 0,
) -> str:
    """Generates `length` characters after `seed_text` the book's way: the last
    `len(seed_text)` characters go through the model for each new character, whose
    distribution is reweighted by `temperature` (lower: more predictable). See `generate`
    (this is `generate(..., stateful=False)`, with `chars` as the vocabulary)."""
    index = _check_generation(seed_text, length, chars, temperature)
    window = [index[char] for char in seed_text]
    generator = np.random.default_rng(seed)
    generated = []
    for _ in range(length):
        probabilities = windowed_probabilities(model, np.array([window]))[0]
        choice = sampling.draw(probabilities, temperature, generator)
        generated.append(chars[choice])
        window = window[1:] + [choice]
    return "".join(generated)


def bits_per_character(
    model: Any, text: str, *, vocabulary: Sequence[str], window: int, stateful: bool
) -> float:
    """The model's cross-entropy in bits on the characters `text[window:]`.

    Args:
        model: as `generate`.
        text: held-out text (every character in `vocabulary`), longer than `window`.
        vocabulary: the character of each index.
        window: characters of context in the windowed way; both ways predict the same
            characters, `text[window:]`.
        stateful: predict each character from everything before it in `text`, one step per
            character (`StatefulPredictor`); or from the `window` characters before it only,
            a fresh model call per window (`windowed_probabilities`), as in training.

    Returns:
        Mean `-log2 p(character)` over `text[window:]`.
    """
    index = {char: i for i, char in enumerate(vocabulary)}
    x, targets = text_corpus.make_char_dataset(text, window, 1, index)  # (n, window), (n,)
    if stateful:
        ids = [index[char] for char in text]
        with one_torch_thread():
            predictor = StatefulPredictor(model)
            rows = [predictor.feed(ids[:window])]
            rows += [predictor.feed([ids[position]]) for position in range(window, len(ids) - 1)]
        probabilities = np.stack(rows)
    else:
        probabilities = windowed_probabilities(model, x)
    chosen = probabilities[np.arange(len(targets)), targets]
    return float(-np.log2(np.maximum(chosen, 1e-12)).mean())


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
    print(f"{options.sampler} sample after {seed_text[-30:]!r}:", file=stream)
    generated = generate(
        model,
        seed_text,
        options.sample_length,
        vocabulary=chars,
        temperature=options.temperature,
        stateful=options.sampler == "stateful",
        seed=options.seed,
    )
    print(seed_text + generated, file=stream)
    report(paths, stream)
    return {"bits_per_character": bits, "paths": paths}
