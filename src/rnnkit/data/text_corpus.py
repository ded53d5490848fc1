"""A text corpus and next-character samples for character-level language modelling.

The book's chapter trains an LSTM to predict the next character of a text: cut the text into
windows of `seq_len` characters (one every `step` characters), and pair each window with the
character that follows it. This module does exactly that, on any text file or, by default, on a
corpus that needs no download: the Python standard library's own source code (the top-level
public `.py` files of `sysconfig.get_paths()["stdlib"]`, in sorted name order, so the same
Python gives the same text on every run).

    text = load_text(max_chars=500_000)
    train_text, val_text = train_val_split(text, 0.1)
    chars, char_to_index = char_vocabulary(text)
    x, y = make_char_dataset(train_text, seq_len=60, step=3, vocab=char_to_index)
    # x: (n, 60) int64 character indices; y: (n,) int64 index of the next character.
    # One-hot, as in the book: np.eye(len(chars), dtype=bool)[x] -> (n, 60, len(chars)).

NumPy only.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping
from pathlib import Path

import numpy as np

DEFAULT_MAX_CHARS = 1_000_000


def stdlib_source_files() -> list[Path]:
    """The files of the default corpus: the standard library's top-level public `.py` files.

    Returns:
        Paths sorted by file name (names starting with "_" are left out).

    Raises:
        FileNotFoundError: this Python has no standard-library source files on disk.
    """
    directory = Path(sysconfig.get_paths()["stdlib"])
    files = (
        sorted(
            path
            for path in directory.iterdir()
            if path.suffix == ".py" and not path.name.startswith("_") and path.is_file()
        )
        if directory.is_dir()
        else []
    )
    if not files:
        raise FileNotFoundError(
            f"No standard-library .py files in {directory}; pass a text file with `path=`."
        )
    return files


def _check_text(path: str, text: str) -> None:
    """Raises a ValueError if `text` (read from `path`) looks like binary data: a NUL byte, or
    more than 1% of its characters undecodable. A stray bad byte in real text is tolerated."""
    undecodable = text.count("\ufffd")
    if "\0" in text or undecodable > 0.01 * len(text):
        raise ValueError(
            f"{path!r} is not a text file (it holds binary data: "
            f"{'NUL bytes' if chr(0) in text else f'{undecodable:,} bytes that are not UTF-8'}); "
            "give a UTF-8 text file."
        )


def load_text(path: str | os.PathLike[str] | None = None, max_chars: int | None = None) -> str:
    """Returns a training text: a file's contents, or by default Python's standard library source.

    Args:
        path: a UTF-8 text file. Default None: the standard library's source files (see
            `stdlib_source_files`), concatenated.
        max_chars: keep at most this many characters (from the start). Default None: the whole
            file when `path` is given, `DEFAULT_MAX_CHARS` (1,000,000) for the default corpus.

    Returns:
        The text (newlines normalized to "\\n").

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `max_chars` is not a positive int, or `path` holds binary data (NUL bytes,
            or more than 1% of it is not UTF-8), not text.

    Example:
        >>> text = load_text(max_chars=1000)
        >>> len(text)
        1000
    """
    if max_chars is not None and (
        isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1
    ):
        raise ValueError(f"`max_chars` must be a positive int or None; received {max_chars!r}.")
    if path is not None:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read() if max_chars is None else stream.read(max_chars)
        _check_text(os.fspath(path), text)
        return text

    limit = DEFAULT_MAX_CHARS if max_chars is None else max_chars
    pieces: list[str] = []
    total = 0
    for file in stdlib_source_files():
        with open(file, encoding="utf-8", errors="replace") as stream:
            piece = stream.read(limit - total)
        pieces.append(piece)
        total += len(piece)
        if total >= limit:
            break
    return "".join(pieces)


def char_vocabulary(text: str) -> tuple[list[str], dict[str, int]]:
    """The sorted distinct characters of a text, and each one's index.

    Args:
        text: the text.

    Returns:
        `(chars, char_to_index)`: `chars[i]` is the character of index `i`, and
        `char_to_index[chars[i]] == i`.

    Example:
        >>> char_vocabulary("abca")
        (['a', 'b', 'c'], {'a': 0, 'b': 1, 'c': 2})
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str; received an object of type {type(text).__name__}.")
    chars = sorted(set(text))
    return chars, {char: index for index, char in enumerate(chars)}


def make_char_dataset(
    text: str, seq_len: int, step: int, vocab: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a text into (window, next character) pairs, as indices.

    Sample `k` is the window `text[k*step : k*step + seq_len]` and its target is the character
    right after it, `text[k*step + seq_len]`, for every start `k*step < len(text) - seq_len`
    (the book's loop `range(0, len(text) - maxlen, step)`).

    Args:
        text: the text.
        seq_len: characters per window (the book's `maxlen`, 60).
        step: characters between the starts of consecutive windows (the book uses 3).
        vocab: `{character: index}`, e.g. from `char_vocabulary`; must hold every character of
            `text`.

    Returns:
        `(x, y)`: `x` int64 `(n, seq_len)` character indices; `y` int64 `(n,)` the index of the
        character that follows each window; `n = ceil((len(text) - seq_len) / step)`.

    Raises:
        ValueError: `seq_len` or `step` not a positive int; `text` not longer than `seq_len`; a
            character of `text` missing from `vocab`.

    Example:
        >>> chars, vocab = char_vocabulary("abcabc")
        >>> make_char_dataset("abcabc", seq_len=2, step=2, vocab=vocab)
        (array([[0, 1],
               [2, 0]]), array([2, 1]))
    """
    for name, value in (("seq_len", seq_len), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {name}={value!r}.")
    if len(text) <= seq_len:
        raise ValueError(
            f"`text` must be longer than seq_len={seq_len} to give one sample; "
            f"it has {len(text)} characters."
        )
    missing = sorted(set(text) - set(vocab))
    if missing:
        raise ValueError(
            f"`vocab` lacks {len(missing)} character(s) of `text`: {''.join(missing[:20])!r}; "
            "build it with char_vocabulary() on a text that contains them."
        )
    encoded = np.fromiter((vocab[char] for char in text), dtype=np.int64, count=len(text))
    starts = np.arange(0, len(text) - seq_len, step)  # (n,)
    x = encoded[starts[:, None] + np.arange(seq_len)]  # (n, seq_len)
    y = encoded[starts + seq_len]  # (n,)
    return x, y


def train_val_split(text: str, fraction: float) -> tuple[str, str]:
    """Splits a text into a training part and a validation part (its last `fraction`).

    The split is a single cut, not a shuffle, so no validation window overlaps a training one.

    Args:
        text: the text.
        fraction: the share of characters that go to validation, `0 < fraction < 1`.

    Returns:
        `(train_text, val_text)` with `train_text + val_text == text` and
        `len(val_text) == round(len(text) * fraction)`.

    Example:
        >>> train_val_split("abcdefghij", 0.2)
        ('abcdefgh', 'ij')
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"`fraction` must be a float; received fraction={fraction!r}.")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be between 0 and 1 (exclusive); received {fraction}.")
    cut = len(text) - round(len(text) * fraction)
    return text[:cut], text[cut:]
