"""Tests for `rnnkit.data.sequences.pad_sequences`: Keras's documented results, edge cases, and a
sweep compared with `keras.utils.pad_sequences` itself where Keras is installed."""

import os

import numpy as np
import pytest

from rnnkit.data.sequences import pad_sequences
from rnnkit.preprocessing import pad_sequences as public_pad_sequences

SEQUENCES = [[1], [2, 3], [4, 5, 6]]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras", reason="Keras 3 is the reference for pad_sequences")


def test_public_name_is_the_same_function():
    assert public_pad_sequences is pad_sequences


def test_keras_documented_examples():
    out = pad_sequences(SEQUENCES)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(
        pad_sequences(SEQUENCES, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        pad_sequences(SEQUENCES, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    )
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, maxlen=2), [[0, 1], [2, 3], [5, 6]])


def test_truncating_post_keeps_the_beginning():
    out = pad_sequences(SEQUENCES, maxlen=2, truncating="post", padding="post")
    np.testing.assert_array_equal(out, [[1, 0], [2, 3], [4, 5]])


def test_maxlen_longer_than_every_sequence_pads_everything():
    out = pad_sequences([[7, 8]], maxlen=4)
    np.testing.assert_array_equal(out, [[0, 0, 7, 8]])


def test_empty_sequences_are_all_padding():
    out = pad_sequences([[], [1, 2], []], value=9)
    np.testing.assert_array_equal(out, [[9, 9], [1, 2], [9, 9]])
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences(SEQUENCES, maxlen=0).shape == (3, 0)


def test_arrays_tuples_and_generators_are_accepted():
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1, 2, 3], [4]
    np.testing.assert_array_equal(pad_sequences(ragged), [[1, 2, 3], [0, 0, 4]])
    np.testing.assert_array_equal(pad_sequences(((1, 2), (3,))), [[1, 2], [0, 3]])
    np.testing.assert_array_equal(pad_sequences(s for s in [[5], [6, 7]]), [[0, 5], [6, 7]])


def test_sequences_of_vectors_keep_the_trailing_shape():
    sequences = [[[1, 2], [3, 4], [5, 6]], [], [[7, 8]]]
    out = pad_sequences(sequences, maxlen=2, dtype="float32", value=-1.0)
    assert out.shape == (3, 2, 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[3, 4], [5, 6]], [[-1, -1], [-1, -1]], [[-1, -1], [7, 8]]])


def test_inconsistent_vector_shapes_raise():
    with pytest.raises(ValueError, match=r"position 1 .*\(3,\)"):
        pad_sequences([[[1, 2]], [[1, 2, 3]]])


def test_float_values_and_dtype():
    out = pad_sequences([[0.5, 1.5], [2.5]], dtype="float64", value=np.nan)
    np.testing.assert_array_equal(out, [[0.5, 1.5], [np.nan, 2.5]])
    # Cast to the integer dtype, as Keras does.
    np.testing.assert_array_equal(pad_sequences([[1.7, 2.2]]), [[1, 2]])


def test_strings_need_object_or_string_dtype():
    out = pad_sequences([["a", "bb"], ["ccc"]], dtype=object, value="<pad>")
    assert out.dtype == object
    assert out.tolist() == [["a", "bb"], ["<pad>", "ccc"]]
    out = pad_sequences([["a", "b"], ["c"]], dtype="<U3", value="-")
    assert out.tolist() == [["a", "b"], ["-", "c"]]
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="x")


@pytest.mark.parametrize("name", ["padding", "truncating"])
def test_bad_side_names_the_argument_and_value(name):
    with pytest.raises(ValueError, match=rf"`{name}`.*'middle'"):
        pad_sequences(SEQUENCES, **{name: "middle"})


def test_bad_sequences_name_the_argument():
    with pytest.raises(ValueError, match="`sequences`"):
        pad_sequences(5)
    with pytest.raises(ValueError, match="`sequences`.*position 1"):
        pad_sequences([[1], 2])


def test_bad_maxlen():
    with pytest.raises(ValueError, match="maxlen=-1"):
        pad_sequences(SEQUENCES, maxlen=-1)
    with pytest.raises(TypeError, match="maxlen=2.5"):
        pad_sequences(SEQUENCES, maxlen=2.5)


def test_matches_keras_on_random_ragged_input(keras):
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 50, size=rng.integers(0, 9))) for _ in range(20)]
    sequences[0] = [1, 2, 3]  # the first non-empty sequence
    for maxlen in (None, 1, 4, 12):
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                for value in (0.0, -3):
                    kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating)
                    expected = keras.utils.pad_sequences(sequences, value=value, **kwargs)
                    out = pad_sequences(sequences, value=value, **kwargs)
                    assert out.dtype == expected.dtype
                    np.testing.assert_array_equal(out, expected)


def test_matches_keras_on_vectors_and_floats(keras):
    rng = np.random.default_rng(1)
    sequences = [rng.normal(size=(length, 3)) for length in (4, 1, 6, 2)]
    for padding in ("pre", "post"):
        expected = keras.utils.pad_sequences(sequences, maxlen=5, dtype="float32", padding=padding)
        out = pad_sequences(sequences, maxlen=5, dtype="float32", padding=padding)
        np.testing.assert_array_equal(out, expected)
