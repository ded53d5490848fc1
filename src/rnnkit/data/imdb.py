"""The IMDB movie-review sentiment dataset, loaded exactly as `keras.datasets.imdb` loads it.

25,000 training and 25,000 test reviews, each a list of word indices (words ranked by frequency
in the training set), labelled 1 (positive) or 0 (negative). `load_data` reads Keras's own
`imdb.npz` file (downloaded once into rnnkit's cache, see `rnnkit.data.download`), shuffles,
re-indexes and filters it with Keras's rules, so with the same arguments it returns the same
arrays as Keras.

The `.npz` stores ragged object arrays, which NumPy keeps as pickles; they are read with an
unpickler that only rebuilds NumPy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from typing import Any

import numpy as np

from rnnkit._files import decode_errors
from rnnkit.data.download import get_file

_ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
IMDB_ORIGIN = _ORIGIN_FOLDER + "imdb.npz"
IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_ORIGIN = _ORIGIN_FOLDER + "imdb_word_index.json"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"

_REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
# The only globals needed to rebuild NumPy object arrays (both NumPy 1 and 2 spellings).
_ALLOWED_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        # NumPy scalars (a user's lists of np.int64): rebuilt from a dtype and raw bytes.
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
)


def load_data(
    path: str | os.PathLike[str] = "imdb.npz",
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the IMDB dataset: `(x_train, y_train), (x_test, y_test)`, as Keras does.

    Steps, in Keras's order: shuffle the training set, then the test set, with one
    `np.random.RandomState(seed)`; add `index_from` to every word index and prefix each review
    with `start_char`; drop reviews whose length (with `start_char`) is `>= maxlen`; replace
    every index `< skip_top` or `>= num_words` by `oov_char` (or drop it if `oov_char` is None).
    As in Keras, when `num_words` is None it becomes the largest index present, so that index
    too becomes `oov_char`.

    Args:
        path: an existing local `.npz` file in Keras's format (used as it is), or a file name in
            rnnkit's cache (default "imdb.npz"), downloaded from Keras's server when missing.
        num_words: keep the word indices `< num_words` (the most frequent words); default None.
        skip_top: also replace the indices `< skip_top` (the most frequent words) by `oov_char`;
            default 0.
        maxlen: keep only reviews shorter than `maxlen` (counting `start_char`); default None.
        seed: seed of the shuffle (default 113).
        start_char: index that starts every review (default 1); None for none.
        oov_char: index that replaces the words cut by `num_words`/`skip_top` (default 2); None
            drops them.
        index_from: offset added to every word index (default 3, so 0, 1, 2 are free for
            padding, start and out-of-vocabulary).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: `x_*` are 1-D object arrays of `(num_reviews,)`
        whose elements are lists of ints; `y_*` are integer arrays of labels `(num_reviews,)`,
        1 positive, 0 negative.

    Raises:
        FileNotFoundError: `path` names a file in a folder and that file does not exist.
        DownloadError: (a `ConnectionError`) the file is not cached and cannot be downloaded.
        ValueError: the file is not a valid IMDB `.npz`; an argument has a wrong value; `maxlen`
            leaves no review.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data(num_words=10000)  # doctest: +SKIP
        >>> x_train.shape, y_train[:3]  # doctest: +SKIP
        ((25000,), array([1, 0, 0]))
    """
    for name, value, minimum in (
        ("num_words", num_words, 0),
        ("maxlen", maxlen, 0),
        ("start_char", start_char, 0),
        ("oov_char", oov_char, 0),
    ):
        if value is not None:
            _check_int(name, value, minimum)
    _check_int("skip_top", skip_top, 0)
    _check_int("index_from", index_from, 0)
    _check_int("seed", seed, 0)

    file_path = _resolve(path, IMDB_ORIGIN, IMDB_SHA256)
    arrays = _load_npz(file_path)
    x_train, labels_train = arrays["x_train"], arrays["y_train"]
    x_test, labels_test = arrays["x_test"], arrays["y_test"]

    rng = np.random.RandomState(seed)
    indices = np.arange(len(x_train))
    rng.shuffle(indices)
    x_train, labels_train = x_train[indices], labels_train[indices]
    indices = np.arange(len(x_test))
    rng.shuffle(indices)
    x_test, labels_test = x_test[indices], labels_test[indices]

    prefix = [] if start_char is None else [start_char]
    train = [prefix + [int(w) + index_from for w in review] for review in x_train]
    test = [prefix + [int(w) + index_from for w in review] for review in x_test]

    if maxlen:
        train, labels_train = _shorter_than(maxlen, train, labels_train)
        test, labels_test = _shorter_than(maxlen, test, labels_test)
        if not train or not test:
            raise ValueError(
                f"No review is shorter than maxlen={maxlen} (in the training or the test set); "
                "increase `maxlen`."
            )

    reviews = train + test
    labels = np.concatenate([labels_train, labels_test])
    if not num_words:
        num_words = max((max(review) for review in reviews if review), default=0)
    if oov_char is not None:
        reviews = [[w if skip_top <= w < num_words else oov_char for w in r] for r in reviews]
    else:
        reviews = [[w for w in r if skip_top <= w < num_words] for r in reviews]

    split = len(train)
    return (
        (_object_array(reviews[:split]), labels[:split]),
        (_object_array(reviews[split:]), labels[split:]),
    )


def get_word_index(path: str | os.PathLike[str] = "imdb_word_index.json") -> dict[str, int]:
    """Loads the `{word: index}` dictionary of the IMDB dataset (indices before `index_from`).

    Args:
        path: an existing local JSON file, or a file name in rnnkit's cache (default
            "imdb_word_index.json"), downloaded from Keras's server when missing.

    Returns:
        `{word: rank}`; a review's index `i` is the word of rank `i - index_from`.

    Raises:
        FileNotFoundError, DownloadError: as `load_data`.
        ValueError: the file is not a JSON object.

    Example:
        >>> word_index = get_word_index()  # doctest: +SKIP
        >>> words = {rank + 3: word for word, rank in word_index.items()}  # doctest: +SKIP
        >>> " ".join(words.get(i, "?") for i in x_train[0][1:])  # doctest: +SKIP
    """
    file_path = _resolve(path, WORD_INDEX_ORIGIN, WORD_INDEX_MD5)
    try:
        with open(file_path, encoding="utf-8") as stream:
            word_index = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file_path} is not a valid word-index JSON file: {error}") from error
    if not isinstance(word_index, dict):
        raise ValueError(
            f"{file_path} must hold a JSON object {{word: index}}; "
            f"it holds a {type(word_index).__name__}."
        )
    return word_index


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; received {name}={value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; received {name}={value}.")


def _resolve(path: str | os.PathLike[str], origin: str, file_hash: str) -> str:
    """An existing file is used as it is; a bare name is looked up (or fetched) in the cache."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isfile(path):
        return path
    if os.path.basename(path) != path:
        raise FileNotFoundError(
            f"No file at path={path!r}. Pass an existing file, or a bare file name to use "
            "rnnkit's download cache."
        )
    return get_file(path, origin, file_hash=file_hash)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_npy(stream: io.BytesIO) -> np.ndarray:
    """Reads one `.npy` member: numeric arrays without pickle, object arrays restricted."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    if not dtype.hasobject:
        stream.seek(0)
        return np.lib.format.read_array(stream, allow_pickle=False)
    return _ArrayUnpickler(stream).load()


def _load_npz(path: str) -> dict[str, np.ndarray]:
    """The four arrays of an IMDB `.npz` file, or a ValueError naming the file and the fault."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a valid .npz file (not a zip archive).")
    with decode_errors(path, "the .npz archive"), zipfile.ZipFile(path) as archive:
        members = {
            name[: -len(".npy")]: name for name in archive.namelist() if name.endswith(".npy")
        }
        missing = [key for key in _REQUIRED_KEYS if key not in members]
        if missing:
            raise ValueError(
                f"{path} is not an IMDB dataset file: it lacks the arrays {missing} "
                f"(expected {list(_REQUIRED_KEYS)}, found {sorted(members)})."
            )
        try:
            arrays = {
                key: _read_npy(io.BytesIO(archive.read(members[key]))) for key in _REQUIRED_KEYS
            }
        except ValueError as error:  # NumPy's word for a bad header or a short array
            raise ValueError(f"{path!r} holds an array that cannot be read: {error}") from None
    for split in ("train", "test"):
        reviews, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if not isinstance(reviews, np.ndarray) or not isinstance(labels, np.ndarray):
            raise ValueError(f"{path}: x_{split} and y_{split} must be NumPy arrays.")
        if len(reviews) != len(labels):
            raise ValueError(
                f"{path}: x_{split} has {len(reviews)} reviews but y_{split} has {len(labels)} "
                "labels; they must match."
            )
    return arrays


def _shorter_than(
    maxlen: int, reviews: list[list[int]], labels: np.ndarray
) -> tuple[list[list[int]], np.ndarray]:
    """Keeps the reviews (and their labels) with fewer than `maxlen` indices."""
    kept = [i for i, review in enumerate(reviews) if len(review) < maxlen]
    return [reviews[i] for i in kept], np.asarray(labels)[kept]


def _object_array(reviews: list[list[int]]) -> np.ndarray:
    """A 1-D object array holding one list per review (even when all lengths are equal)."""
    array = np.empty(len(reviews), dtype=object)
    for i, review in enumerate(reviews):
        array[i] = review
    return array
