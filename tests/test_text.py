"""Tests for `rnnkit.data.text`: the legacy Keras `Tokenizer`, with hand-computed values."""

import json
import math

import numpy as np
import pytest

from rnnkit import preprocessing
from rnnkit.data.text import (
    DEFAULT_FILTERS,
    Tokenizer,
    text_to_word_sequence,
    tokenizer_from_json,
)

SAMPLES = ["The cat sat on the mat.", "The dog ate my homework."]
EXPECTED_INDEX = {
    "the": 1,
    "cat": 2,
    "sat": 3,
    "on": 4,
    "mat": 5,
    "dog": 6,
    "ate": 7,
    "my": 8,
    "homework": 9,
}


def fitted(**kwargs):
    tokenizer = Tokenizer(**kwargs)
    tokenizer.fit_on_texts(SAMPLES)
    return tokenizer


def test_public_names():
    assert preprocessing.Tokenizer is Tokenizer
    assert preprocessing.tokenizer_from_json is tokenizer_from_json
    assert preprocessing.text.Tokenizer is Tokenizer
    assert preprocessing.sequence.pad_sequences is preprocessing.pad_sequences


def test_default_filters_are_keras_punctuation_without_quote():
    assert DEFAULT_FILTERS == '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def test_text_to_word_sequence():
    text = "Hello, World!  It's me\tyou\n"
    assert text_to_word_sequence(text) == ["hello", "world", "it's", "me", "you"]
    assert text_to_word_sequence("A-b c", filters="", lower=False) == ["A-b", "c"]
    assert text_to_word_sequence("a;b;;c", split=";", filters="") == ["a", "b", "c"]


def test_word_index_ranks_by_frequency_from_one():
    tokenizer = fitted()
    assert tokenizer.word_index == EXPECTED_INDEX
    assert tokenizer.index_word == {i: w for w, i in EXPECTED_INDEX.items()}
    assert tokenizer.word_counts["the"] == 3
    assert list(tokenizer.word_counts) == list(EXPECTED_INDEX)  # first-seen order
    assert tokenizer.word_docs["the"] == 2 and tokenizer.word_docs["cat"] == 1
    assert tokenizer.index_docs[1] == 2 and tokenizer.index_docs[9] == 1
    assert tokenizer.document_count == 2


def test_ties_keep_first_seen_order():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(["b a", "a b c"])
    assert tokenizer.word_index == {"b": 1, "a": 2, "c": 3}


def test_fitting_again_adds_counts_and_reranks():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(["x y y"])
    tokenizer.fit_on_texts(["x x z"])
    assert tokenizer.word_counts == {"x": 3, "y": 2, "z": 1}
    assert tokenizer.word_index == {"x": 1, "y": 2, "z": 3}
    assert tokenizer.document_count == 2


def test_texts_to_sequences_drops_unknown_words():
    tokenizer = fitted()
    assert tokenizer.texts_to_sequences(SAMPLES) == [[1, 2, 3, 4, 1, 5], [1, 6, 7, 8, 9]]
    assert tokenizer.texts_to_sequences(["the zebra ate the homework"]) == [[1, 7, 1, 9]]
    assert list(tokenizer.texts_to_sequences_generator(["Cat!"])) == [[2]]


def test_num_words_keeps_indices_below_it():
    tokenizer = fitted(num_words=5)
    assert tokenizer.word_index == EXPECTED_INDEX  # the index itself keeps every word
    assert tokenizer.texts_to_sequences(["the cat ate the mat on"]) == [[1, 2, 1, 4]]
    assert tokenizer.sequences_to_texts([[1, 2, 7, 4]]) == ["the cat on"]


def test_oov_token_takes_index_one():
    tokenizer = fitted(oov_token="<OOV>")
    assert tokenizer.word_index["<OOV>"] == 1
    assert tokenizer.word_index["the"] == 2 and tokenizer.word_index["homework"] == 10
    assert tokenizer.texts_to_sequences(["the zebra ate"]) == [[2, 1, 8]]
    assert tokenizer.sequences_to_texts([[2, 3, 99]]) == ["the cat <OOV>"]


def test_oov_token_with_num_words_replaces_cut_words():
    tokenizer = fitted(oov_token="<OOV>", num_words=5)
    assert tokenizer.texts_to_sequences(["the zebra ate homework cat"]) == [[2, 1, 1, 1, 3]]
    assert tokenizer.sequences_to_texts([[2, 8, 3]]) == ["the <OOV> cat"]


def test_sequences_to_texts_without_oov_drops_unknown_indices():
    assert fitted().sequences_to_texts([[1, 2, 99, 0], []]) == ["the cat", ""]


def test_char_level_ignores_filters():
    tokenizer = Tokenizer(char_level=True)
    tokenizer.fit_on_texts(["aAb!"])
    assert tokenizer.word_index == {"a": 1, "b": 2, "!": 3}
    assert tokenizer.texts_to_sequences(["ba!?"]) == [[2, 1, 3]]


def test_lists_of_tokens_are_used_as_tokens():
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts([["Hello", "new-york"], ["hello"]])
    assert tokenizer.word_index == {"hello": 1, "new-york": 2}
    assert tokenizer.texts_to_sequences([["NEW-YORK", "hello"]]) == [[2, 1]]


def test_texts_to_matrix_modes():
    tokenizer = fitted()
    texts = ["the cat the", "dog"]
    binary = tokenizer.texts_to_matrix(texts, mode="binary")
    assert binary.shape == (2, 10) and binary.dtype == np.float64
    expected = np.zeros((2, 10))
    expected[0, 1] = expected[0, 2] = expected[1, 6] = 1
    np.testing.assert_array_equal(binary, expected)

    count = tokenizer.texts_to_matrix(texts, mode="count")
    assert count[0, 1] == 2 and count[0, 2] == 1 and count[1, 6] == 1 and count.sum() == 4

    freq = tokenizer.texts_to_matrix(texts, mode="freq")
    np.testing.assert_allclose(freq[0, [1, 2]], [2 / 3, 1 / 3])
    assert freq[1, 6] == 1

    tfidf = tokenizer.texts_to_matrix(texts, mode="tfidf")
    # "the" is in both fitted texts, "cat" and "dog" in one of two.
    np.testing.assert_allclose(tfidf[0, 1], (1 + math.log(2)) * math.log(1 + 2 / 3))
    np.testing.assert_allclose(tfidf[0, 2], math.log(2))
    np.testing.assert_allclose(tfidf[1, 6], math.log(2))
    assert np.count_nonzero(tfidf) == 3


def test_matrix_width_is_num_words():
    matrix = fitted(num_words=4).texts_to_matrix(["the cat homework"], mode="count")
    np.testing.assert_array_equal(matrix, [[0, 1, 1, 0]])


def test_fit_on_sequences_feeds_tfidf():
    tokenizer = Tokenizer(num_words=4)
    tokenizer.fit_on_sequences([[1, 2, 2], [2, 3]])
    assert tokenizer.document_count == 2
    assert tokenizer.index_docs == {1: 1, 2: 2, 3: 1}
    matrix = tokenizer.sequences_to_matrix([[2, 2, 3, 7]], mode="tfidf")
    expected = [0, 0, (1 + math.log(2)) * math.log(1 + 2 / 3), math.log(2)]
    np.testing.assert_allclose(matrix, [expected])


def test_json_round_trip():
    tokenizer = fitted(num_words=6, oov_token="<OOV>")
    text = tokenizer.to_json()
    data = json.loads(text)
    assert data["class_name"] == "Tokenizer"
    # The legacy layout: the dicts are stored as JSON strings inside the config.
    assert json.loads(data["config"]["word_index"])["the"] == 2
    restored = tokenizer_from_json(text)
    for name in (
        "num_words",
        "filters",
        "lower",
        "split",
        "char_level",
        "oov_token",
        "document_count",
        "word_counts",
        "word_docs",
        "index_docs",
        "word_index",
        "index_word",
    ):
        assert getattr(restored, name) == getattr(tokenizer, name), name
    assert list(restored.word_counts) == list(tokenizer.word_counts)
    probe = ["the dog sat on a zebra"]
    assert restored.texts_to_sequences(probe) == tokenizer.texts_to_sequences(probe)
    np.testing.assert_array_equal(
        restored.texts_to_matrix(probe, mode="tfidf"), tokenizer.texts_to_matrix(probe, "tfidf")
    )


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="num_words=0"):
        Tokenizer(num_words=0)
    with pytest.raises(ValueError, match="split=''"):
        Tokenizer(split="")
    with pytest.raises(ValueError, match="mode='tf'"):
        fitted().texts_to_matrix(["the"], mode="tf")
    with pytest.raises(TypeError, match="`texts`.*single str"):
        Tokenizer().fit_on_texts("the cat")
    with pytest.raises(TypeError, match="int"):
        Tokenizer().fit_on_texts([3])
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer().sequences_to_matrix([[1]])
    with pytest.raises(ValueError, match="tfidf"):
        Tokenizer(num_words=3).sequences_to_matrix([[1]], mode="tfidf")
    with pytest.raises(ValueError, match="config"):
        tokenizer_from_json("[1, 2]")
