"""Tests for `rnnkit.data.text_corpus`: the default stdlib corpus, vocabulary, next-character
samples and the train/validation cut."""

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.data import text_corpus
from rnnkit.data.text_corpus import (
    DEFAULT_MAX_CHARS,
    char_vocabulary,
    load_text,
    make_char_dataset,
    stdlib_source_files,
    train_val_split,
)


def test_public_module():
    assert datasets.text_corpus is text_corpus


def test_stdlib_files_are_sorted_public_py_files():
    files = stdlib_source_files()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    assert all(f.parent == stdlib and f.suffix == ".py" for f in files)
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert not any(f.name.startswith("_") for f in files)
    assert stdlib / "abc.py" in files


def test_default_corpus_is_deterministic_stdlib_source():
    text = load_text(max_chars=200_000)
    assert len(text) == 200_000
    assert text == load_text(max_chars=200_000)
    files = stdlib_source_files()
    first = files[0].read_text(encoding="utf-8")
    assert text.startswith(first)
    second = files[1].read_text(encoding="utf-8")
    assert text[len(first) : len(first) + 1000] == second[:1000]
    assert "def " in text and "\r" not in text


def test_default_size():
    assert len(load_text()) == DEFAULT_MAX_CHARS == 1_000_000


def test_load_text_from_a_file(tmp_path):
    path = tmp_path / "nietzsche.txt"
    path.write_bytes("Übermensch\r\nline two\n".encode())
    assert load_text(path) == "Übermensch\nline two\n"
    assert load_text(path, max_chars=4) == "Über"
    with pytest.raises(FileNotFoundError):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="max_chars"):
        load_text(path, max_chars=0)


def test_char_vocabulary():
    chars, char_to_index = char_vocabulary("hello world")
    assert chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert char_to_index == {c: i for i, c in enumerate(chars)}
    with pytest.raises(TypeError, match="`text`"):
        char_vocabulary(["a"])


def test_make_char_dataset_pairs_windows_with_the_next_character():
    text = "abcdefghij"
    _, vocab = char_vocabulary(text)  # a -> 0 ... j -> 9
    x, y = make_char_dataset(text, seq_len=3, step=2, vocab=vocab)
    assert x.dtype == np.int64 and y.dtype == np.int64
    # Starts 0, 2, 4, 6 (range(0, 10 - 3, 2)), as the book's loop.
    np.testing.assert_array_equal(x, [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]])
    np.testing.assert_array_equal(y, [3, 5, 7, 9])


def test_make_char_dataset_matches_the_book_loop():
    text = load_text(max_chars=5_000)
    chars, vocab = char_vocabulary(text)
    seq_len, step = 60, 3
    sentences, next_chars = [], []
    for i in range(0, len(text) - seq_len, step):
        sentences.append(text[i : i + seq_len])
        next_chars.append(text[i + seq_len])
    x, y = make_char_dataset(text, seq_len, step, vocab)
    assert x.shape == (len(sentences), seq_len)
    assert ["".join(chars[i] for i in row) for row in x] == sentences
    assert [chars[i] for i in y] == next_chars


def test_make_char_dataset_errors():
    _, vocab = char_vocabulary("abc")
    with pytest.raises(ValueError, match="seq_len=0"):
        make_char_dataset("abcabc", 0, 1, vocab)
    with pytest.raises(ValueError, match="step=1.5"):
        make_char_dataset("abcabc", 2, 1.5, vocab)
    with pytest.raises(ValueError, match="longer than seq_len=3"):
        make_char_dataset("abc", 3, 1, vocab)
    with pytest.raises(ValueError, match="'xz'"):
        make_char_dataset("abczax", 2, 1, vocab)


def test_train_val_split():
    assert train_val_split("abcdefghij", 0.2) == ("abcdefgh", "ij")
    train, val = train_val_split("x" * 1001, 0.1)
    assert len(val) == 100 and len(train) == 901
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            train_val_split("abc", bad)
    with pytest.raises(TypeError, match="fraction"):
        train_val_split("abc", "0.1")


def test_binary_files_are_refused_and_a_stray_bad_byte_is_not(tmp_path):
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    with pytest.raises(ValueError, match="is not a text file.*NUL bytes"):
        text_corpus.load_text(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(ValueError, match="is not a text file.*not UTF-8"):
        text_corpus.load_text(latin)
    mostly_text = tmp_path / "text.txt"
    mostly_text.write_bytes(b"plain words " * 100 + b"\xff")
    assert text_corpus.load_text(mostly_text).startswith("plain words")
