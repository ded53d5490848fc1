"""Tests for `rnnkit.data.imdb`: Keras's IMDB loading rules on a small generated `imdb.npz`,
compared with `keras.datasets.imdb.load_data` on the same file where Keras is installed."""

import collections
import inspect
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import zip_damage

from rnnkit import datasets
from rnnkit.data import imdb
from rnnkit.data.download import DownloadError


def ragged(reviews):
    array = np.empty(len(reviews), dtype=object)
    for i, review in enumerate(reviews):
        array[i] = list(review)
    return array


def make_split(rng, count, vocabulary=30):
    reviews = [list(rng.integers(1, vocabulary, size=rng.integers(3, 12))) for _ in range(count)]
    reviews = [[int(w) for w in review] for review in reviews]
    labels = rng.integers(0, 2, size=count).astype(np.int64)
    return reviews, labels


@pytest.fixture
def small_imdb(tmp_path):
    """A small imdb.npz in Keras's format; returns (path, train reviews/labels, test ones)."""
    rng = np.random.default_rng(7)
    train, train_labels = make_split(rng, 12)
    test, test_labels = make_split(rng, 9)
    path = tmp_path / "imdb.npz"
    np.savez(
        path, x_train=ragged(train), y_train=train_labels, x_test=ragged(test), y_test=test_labels
    )
    return path, (train, train_labels), (test, test_labels)


@pytest.fixture
def keras_load_data(monkeypatch):
    """Keras's own `load_data`, pointed at a local file instead of its download."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("keras", reason="Keras 3 is the reference for load_data")
    from keras.src.datasets import imdb as keras_imdb

    def load(path, **kwargs):
        monkeypatch.setattr(keras_imdb, "get_file", lambda **_: str(path))
        return keras_imdb.load_data(**kwargs)

    return load


def test_public_module():
    assert datasets.imdb is imdb
    assert datasets.imdb.load_data is imdb.load_data


def expected_order(seed, train_count, test_count):
    rng = np.random.RandomState(seed)
    train_order = np.arange(train_count)
    rng.shuffle(train_order)
    test_order = np.arange(test_count)
    rng.shuffle(test_order)
    return train_order, test_order


def test_default_semantics_by_hand(small_imdb):
    path, (train, train_labels), (test, test_labels) = small_imdb
    (x_train, y_train), (x_test, y_test) = imdb.load_data(path=path)
    assert x_train.dtype == object and x_train.shape == (12,)
    assert x_test.dtype == object and x_test.shape == (9,)
    assert all(isinstance(review, list) for review in x_train)

    train_order, test_order = expected_order(113, 12, 9)
    np.testing.assert_array_equal(y_train, train_labels[train_order])
    np.testing.assert_array_equal(y_test, test_labels[test_order])
    # Keras's rule: with num_words=None the largest index present also becomes oov_char.
    largest = max(w + 3 for review in train + test for w in review)
    for got, raw in zip(
        list(x_train) + list(x_test),
        [train[i] for i in train_order] + [test[i] for i in test_order],
        strict=True,
    ):
        expected = [1] + [w + 3 if w + 3 < largest else 2 for w in raw]
        assert got == expected


def test_seed_shuffles_deterministically(small_imdb):
    path = small_imdb[0]
    first = imdb.load_data(path=path, seed=5)
    again = imdb.load_data(path=path, seed=5)
    other = imdb.load_data(path=path, seed=6)
    assert first[0][0].tolist() == again[0][0].tolist()
    np.testing.assert_array_equal(first[1][1], again[1][1])
    assert first[0][0].tolist() != other[0][0].tolist()


def test_num_words_skip_top_and_oov(small_imdb):
    path = small_imdb[0]
    (x_train, _), (x_test, _) = imdb.load_data(path=path, num_words=15, skip_top=6, oov_char=2)
    values = {w for review in list(x_train) + list(x_test) for w in review[1:]}
    assert values <= set(range(6, 15)) | {2}
    assert 2 in values
    assert all(review[0] == 2 for review in x_train)  # start_char 1 < skip_top -> oov


def test_oov_char_none_drops_words(small_imdb):
    path, (train, _), _ = small_imdb
    (x_train, _), _ = imdb.load_data(path=path, num_words=10, oov_char=None, seed=0)
    train_order, _ = expected_order(0, 12, 9)
    for got, i in zip(x_train, train_order, strict=True):
        assert got == [1] + [w + 3 for w in train[i] if w + 3 < 10]


def test_start_char_and_index_from(small_imdb):
    path, (train, _), _ = small_imdb
    (x_train, _), _ = imdb.load_data(path=path, start_char=None, index_from=0, num_words=1000)
    train_order, _ = expected_order(113, 12, 9)
    assert x_train.tolist() == [train[i] for i in train_order]


def test_maxlen_keeps_reviews_shorter_than_maxlen(small_imdb):
    path, (train, train_labels), _ = small_imdb
    (x_train, y_train), _ = imdb.load_data(path=path, maxlen=8, num_words=1000)
    train_order, _ = expected_order(113, 12, 9)
    kept = [i for i in train_order if len(train[i]) + 1 < 8]
    assert len(kept) < 12
    assert x_train.tolist() == [[1] + [w + 3 for w in train[i]] for i in kept]
    np.testing.assert_array_equal(y_train, train_labels[kept])
    with pytest.raises(ValueError, match="maxlen=2"):
        imdb.load_data(path=path, maxlen=2)


def test_equal_length_reviews_still_give_a_1d_object_array(tmp_path):
    path = tmp_path / "square.npz"
    np.savez(
        path,
        x_train=np.array([[1, 2], [3, 4]]),
        y_train=np.array([0, 1]),
        x_test=np.array([[5, 6]]),
        y_test=np.array([1]),
    )
    (x_train, _), (x_test, _) = imdb.load_data(path=path, num_words=100, seed=0)
    assert x_train.shape == (2,) and x_test.shape == (1,)
    assert x_test[0] == [1, 8, 9]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_words": 12},
        {"num_words": 20, "skip_top": 7},
        {"maxlen": 9, "seed": 3},
        {"start_char": None, "index_from": 0},
        {"oov_char": None, "num_words": 14, "skip_top": 2},
        {"start_char": 5, "oov_char": 7, "index_from": 10, "num_words": 30},
    ],
)
def test_matches_keras(small_imdb, keras_load_data, kwargs):
    path = small_imdb[0]
    (k_x_train, k_y_train), (k_x_test, k_y_test) = keras_load_data(path, **kwargs)
    (x_train, y_train), (x_test, y_test) = imdb.load_data(path=str(path), **kwargs)
    assert x_train.tolist() == k_x_train.tolist()
    assert x_test.tolist() == k_x_test.tolist()
    np.testing.assert_array_equal(y_train, k_y_train)
    np.testing.assert_array_equal(y_test, k_y_test)
    assert y_train.dtype == k_y_train.dtype


def test_origin_and_hash_are_keras_own():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("keras", reason="Keras 3 holds the reference origin and hash")
    from keras.src.datasets import imdb as keras_imdb

    load_source = inspect.getsource(keras_imdb.load_data)
    assert imdb.IMDB_SHA256 in load_source
    assert imdb.IMDB_ORIGIN.rsplit("/", 1)[0] in load_source
    assert imdb.WORD_INDEX_MD5 in inspect.getsource(keras_imdb.get_word_index)


def test_bare_name_goes_through_the_cache(tmp_path, small_imdb, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    calls = []

    def fake_get_file(fname, origin, file_hash=None):
        calls.append((fname, origin, file_hash))
        return str(small_imdb[0])

    monkeypatch.setattr(imdb, "get_file", fake_get_file)
    (x_train, _), _ = imdb.load_data(path="imdb_cached.npz")
    assert len(x_train) == 12
    assert calls == [
        (
            "imdb_cached.npz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz",
            "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
        )
    ]


def test_no_file_and_no_network_says_how_to_pass_a_local_copy(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DownloadError, match="path="):
        imdb.load_data()


def test_missing_local_path_is_file_not_found(tmp_path):
    missing = tmp_path / "nowhere" / "imdb.npz"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        imdb.load_data(path=missing)


def test_not_a_zip_names_the_path(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=r"broken\.npz.*not a zip"):
        imdb.load_data(path=path)


def test_missing_keys_name_the_path_and_keys(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=ragged([[1, 2]]), y_train=np.array([1]))
    with pytest.raises(ValueError, match=r"partial\.npz.*'x_test', 'y_test'"):
        imdb.load_data(path=path)


def test_mismatched_lengths_name_the_arrays(tmp_path):
    path = tmp_path / "uneven.npz"
    np.savez(
        path,
        x_train=ragged([[1, 2], [3]]),
        y_train=np.array([1]),
        x_test=ragged([[1]]),
        y_test=np.array([0]),
    )
    with pytest.raises(ValueError, match=r"uneven\.npz.*x_train has 2 reviews"):
        imdb.load_data(path=path)


def test_pickled_non_array_objects_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    evil = np.empty(1, dtype=object)
    evil[0] = collections.OrderedDict(a=1)
    np.savez(path, x_train=evil, y_train=np.array([1]), x_test=ragged([[1]]), y_test=np.array([0]))
    with pytest.raises(ValueError, match=r"evil\.npz.*collections\.OrderedDict"):
        imdb.load_data(path=path)


def test_truncated_member_names_the_path(tmp_path, small_imdb):
    source = small_imdb[0]
    path = tmp_path / "cut.npz"
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(path, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            out.writestr(name, data[: len(data) // 2] if name == "x_train.npy" else data)
    with pytest.raises(ValueError, match=r"cut\.npz"):
        imdb.load_data(path=path)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_words": -1}, ValueError, "num_words=-1"),
        ({"skip_top": "a"}, TypeError, "skip_top='a'"),
        ({"maxlen": 2.5}, TypeError, "maxlen=2.5"),
        ({"index_from": -3}, ValueError, "index_from=-3"),
    ],
)
def test_bad_arguments(small_imdb, kwargs, error, message):
    with pytest.raises(error, match=message):
        imdb.load_data(path=small_imdb[0], **kwargs)


def test_get_word_index_from_a_local_file(tmp_path):
    path = tmp_path / "words.json"
    path.write_text(json.dumps({"the": 1, "and": 2}))
    assert imdb.get_word_index(path=path) == {"the": 1, "and": 2}
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"words\.json.*JSON object"):
        imdb.get_word_index(path=path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"words\.json"):
        imdb.get_word_index(path=path)


def test_get_word_index_downloads_with_keras_md5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    word_file = tmp_path / "cached.json"
    word_file.write_text('{"film": 3}')
    calls = []

    def fake_get_file(fname, origin, file_hash=None):
        calls.append((fname, origin, file_hash))
        return str(word_file)

    monkeypatch.setattr(imdb, "get_file", fake_get_file)
    assert imdb.get_word_index() == {"film": 3}
    assert calls == [
        (
            "imdb_word_index.json",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json",
            "bfafd718b763782e994055a2d397834f",
        )
    ]


def test_files_pickled_by_numpy_1_load(tmp_path):
    """The real imdb.npz predates NumPy 2: its pickles name `numpy.core.multiarray`."""

    def old_npy(array):
        buffer = io.BytesIO()
        np.save(buffer, array)
        header = buffer.getvalue()[: buffer.getvalue().index(b"\n") + 1]
        if array.dtype != object:
            return buffer.getvalue()
        legacy = pickle.dumps(array, protocol=3).replace(b"numpy._core.", b"numpy.core.")
        assert b"numpy.core.multiarray" in legacy
        return header + legacy

    path = tmp_path / "old.npz"
    arrays = {
        "x_train": ragged([[1, 2], [3]]),
        "y_train": np.array([1, 0]),
        "x_test": ragged([[4, 5, 6]]),
        "y_test": np.array([1]),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", old_npy(array))
    (x_train, y_train), (x_test, _) = imdb.load_data(path=path, num_words=100, seed=0)
    assert sorted(x_train.tolist()) == [[1, 4, 5], [1, 6]]
    assert x_test.tolist() == [[1, 7, 8, 9]]
    assert sorted(y_train.tolist()) == [0, 1]


def test_lists_of_numpy_integers_load(tmp_path):
    """A user-made file whose reviews are lists of np.int64 (NumPy pickles each as a scalar)."""
    path = tmp_path / "mine.npz"
    reviews = ragged([[np.int64(3), np.int64(4)], [np.int64(5)]])
    labels = np.array([0, 1])
    np.savez(path, x_train=reviews, y_train=labels, x_test=reviews, y_test=labels)
    (x_train, _), _ = imdb.load_data(path=path, num_words=10, start_char=None, index_from=0)
    assert sorted(list(review) for review in x_train) == [[3, 4], [5]]


def test_a_corrupt_compressed_member_names_the_path(tmp_path, small_imdb):
    path = tmp_path / "bad.npz"
    with np.load(small_imdb[0], allow_pickle=True) as arrays:
        np.savez_compressed(path, **{key: arrays[key] for key in arrays.files})
    zip_damage.break_deflate_stream(path, "x_train.npy")
    with pytest.raises(ValueError, match=r"bad\.npz'.*zlib\.error"):
        imdb.load_data(path=path)
