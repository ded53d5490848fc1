"""`Tokenizer`: the legacy Keras text tokenizer (`keras.preprocessing.text.Tokenizer`).

Keras 3 dropped this class (its replacement is the `TextVectorization` layer), but the book's
chapter uses it, so rnnkit keeps it with the same arguments, attributes and results:

- words are indexed by frequency in the fitted texts, starting at 1 (0 is reserved for
  padding); ties keep the order in which the words were first seen;
- `oov_token`, when given, takes index 1 and stands for every unknown word;
- `num_words` keeps only the indices `< num_words` when converting texts (the index itself still
  holds every word);
- `to_json()` writes the same JSON layout as the legacy class, so `tokenizer_from_json` reads
  either.

NumPy only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

_MATRIX_MODES = ("binary", "count", "tfidf", "freq")


def text_to_word_sequence(
    text: str,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
) -> list[str]:
    """Splits a text into words: lower-case it, turn every filtered character into `split`.

    Args:
        text: the text.
        filters: characters to remove (each is replaced by `split`). Default: punctuation except
            `'`, plus tab and newline.
        lower: lower-case the text first (default True).
        split: the word separator (default " ").

    Returns:
        The list of non-empty words.

    Example:
        >>> text_to_word_sequence("The cat sat on the mat.")
        ['the', 'cat', 'sat', 'on', 'the', 'mat']
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str; received an object of type {type(text).__name__}.")
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({character: split for character in filters}))
    return [word for word in text.split(split) if word]


class Tokenizer:
    """Turns texts into sequences of word indices, or into bag-of-words matrices.

    Args:
        num_words: keep only the `num_words - 1` most frequent words (indices `< num_words`)
            when converting texts; None (default) keeps every word.
        filters: characters removed from the texts (default: punctuation except `'`, plus tab
            and newline). Not applied when `char_level=True`.
        lower: lower-case the texts (default True).
        split: the word separator (default " ").
        char_level: every character is a token (default False).
        oov_token: if given, a token added to the vocabulary at index 1 that replaces every
            out-of-vocabulary word (and, with `num_words`, every word cut off). Default None:
            unknown words are dropped.
        document_count: number of documents already seen (default 0; set when restoring).

    Attributes:
        word_index: `{word: index}`, indices from 1 in order of decreasing frequency.
        index_word: `{index: word}`, the inverse of `word_index`.
        word_counts: `{word: count}` over all fitted texts, in order of first appearance.
        word_docs: `{word: number of texts that contain it}`.
        index_docs: `{index: number of texts that contain it}` (used by `mode="tfidf"`).
        document_count: number of texts (and sequences) fitted.

    Example:
        >>> tokenizer = Tokenizer(num_words=1000)
        >>> tokenizer.fit_on_texts(["The cat sat on the mat.", "The dog ate my homework."])
        >>> tokenizer.texts_to_sequences(["the cat ate the homework"])
        [[1, 2, 7, 1, 9]]
        >>> tokenizer.texts_to_matrix(["the cat"], mode="binary").shape
        (1, 1000)
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        document_count: int = 0,
    ) -> None:
        if num_words is not None and (
            isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < 1
        ):
            raise ValueError(
                f"`num_words` must be a positive int or None; received num_words={num_words!r}."
            )
        if not isinstance(filters, str):
            raise TypeError(f"`filters` must be a str; received filters={filters!r}.")
        if not isinstance(split, str) or not split:
            raise ValueError(f"`split` must be a non-empty str; received split={split!r}.")
        if oov_token is not None and not isinstance(oov_token, str):
            raise TypeError(f"`oov_token` must be a str or None; received oov_token={oov_token!r}.")
        self.num_words = num_words
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self.document_count = document_count
        self.word_counts: dict[str, int] = {}
        self.word_docs: dict[str, int] = {}
        self.index_docs: dict[int, int] = {}
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    def _tokens(self, text: str | list[str]) -> list[str]:
        """The tokens of one text: characters, the given list of tokens, or the split words."""
        if isinstance(text, list):
            return [token.lower() for token in text] if self.lower else list(text)
        if not isinstance(text, str):
            raise TypeError(
                "Each text must be a str or a list of str tokens; "
                f"received an object of type {type(text).__name__}."
            )
        if self.char_level:
            return list(text.lower() if self.lower else text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts: Iterable[str | list[str]]) -> None:
        """Updates the vocabulary (counts and indices) from a list of texts.

        Args:
            texts: strings, or lists of tokens (used as they are, lower-cased if `lower`).
                Fitting again adds to the counts and re-ranks the whole vocabulary.
        """
        _check_not_a_single_text(texts, "texts")
        for text in texts:
            tokens = self._tokens(text)
            self.document_count += 1
            for token in tokens:
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
            for token in set(tokens):
                self.word_docs[token] = self.word_docs.get(token, 0) + 1

        # A stable sort: words with equal counts keep the order in which they were first seen.
        ranked = sorted(self.word_counts.items(), key=lambda item: item[1], reverse=True)
        vocabulary = [] if self.oov_token is None else [self.oov_token]
        vocabulary.extend(word for word, _ in ranked)
        # Index 0 is reserved for padding and never assigned to a word.
        self.word_index = {word: index for index, word in enumerate(vocabulary, start=1)}
        self.index_word = {index: word for word, index in self.word_index.items()}
        for word, count in self.word_docs.items():
            self.index_docs[self.word_index[word]] = count

    def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
        """Updates the document counts (for `mode="tfidf"`) from sequences of word indices.

        Args:
            sequences: lists of integer word indices.
        """
        self.document_count += len(sequences)
        for sequence in sequences:
            for index in set(sequence):
                self.index_docs[index] = self.index_docs.get(index, 0) + 1

    def texts_to_sequences_generator(self, texts: Iterable[str | list[str]]) -> Iterator[list[int]]:
        """Yields, for each text, its list of word indices (see `texts_to_sequences`)."""
        _check_not_a_single_text(texts, "texts")
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for text in texts:
            sequence = []
            for token in self._tokens(text):
                index = self.word_index.get(token)
                if index is not None and not (self.num_words and index >= self.num_words):
                    sequence.append(index)
                elif oov_index is not None:
                    sequence.append(oov_index)
            yield sequence

    def texts_to_sequences(self, texts: Iterable[str | list[str]]) -> list[list[int]]:
        """Converts each text to its list of word indices.

        Words not in the vocabulary, and words with index `>= num_words`, become the
        `oov_token`'s index when there is one and are dropped otherwise.

        Args:
            texts: strings, or lists of tokens.

        Returns:
            One list of ints per text.
        """
        return list(self.texts_to_sequences_generator(texts))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        """Yields, for each sequence of word indices, its text (see `sequences_to_texts`)."""
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for sequence in sequences:
            words = []
            for index in sequence:
                word = self.index_word.get(index)
                if word is not None and not (self.num_words and index >= self.num_words):
                    words.append(word)
                elif oov_index is not None:
                    words.append(self.index_word[oov_index])
            yield " ".join(words)

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Converts sequences of word indices back to space-separated texts.

        Unknown indices, and indices `>= num_words`, become the `oov_token` when there is one and
        are dropped otherwise.

        Args:
            sequences: lists of integer word indices.

        Returns:
            One string per sequence.
        """
        return list(self.sequences_to_texts_generator(sequences))

    def texts_to_matrix(self, texts: Iterable[str | list[str]], mode: str = "binary") -> np.ndarray:
        """Converts texts to a bag-of-words matrix (see `sequences_to_matrix`).

        Args:
            texts: strings, or lists of tokens.
            mode: "binary" (default), "count", "tfidf" or "freq".

        Returns:
            float64 array of shape `(len(texts), num_words)`.
        """
        _check_mode(mode)
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(
        self, sequences: Sequence[Sequence[int]], mode: str = "binary"
    ) -> np.ndarray:
        """Converts sequences of word indices to a bag-of-words matrix.

        Column `j` describes word index `j` (indices `>= num_words` are ignored):

        - "binary": 1 if the word occurs;
        - "count": how many times it occurs;
        - "freq": its count divided by the sequence's length;
        - "tfidf": `(1 + log(count)) * log(1 + document_count / (1 + docs(j)))`, where `docs(j)`
          is the number of fitted texts that contain word `j`.

        Args:
            sequences: lists of integer word indices.
            mode: "binary" (default), "count", "tfidf" or "freq".

        Returns:
            float64 array of shape `(len(sequences), num_words)`; `num_words` is
            `len(word_index) + 1` when the tokenizer has no `num_words`.

        Raises:
            ValueError: unknown `mode`; no `num_words` and nothing fitted; "tfidf" before any fit.
        """
        _check_mode(mode)
        if self.num_words:
            num_words = self.num_words
        elif self.word_index:
            num_words = len(self.word_index) + 1
        else:
            raise ValueError(
                "`sequences_to_matrix` needs a width: pass `num_words` to the Tokenizer, "
                "or fit it on some texts first."
            )
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Fit the Tokenizer on some data before using mode='tfidf'.")

        matrix = np.zeros((len(sequences), num_words))  # (samples, num_words)
        for row, sequence in enumerate(sequences):
            if not len(sequence):
                continue
            counts: dict[int, int] = {}
            for index in sequence:
                if index < num_words:
                    counts[index] = counts.get(index, 0) + 1
            for index, count in counts.items():
                if mode == "count":
                    matrix[row, index] = count
                elif mode == "freq":
                    matrix[row, index] = count / len(sequence)
                elif mode == "binary":
                    matrix[row, index] = 1
                else:
                    term_frequency = 1 + np.log(count)
                    inverse_document_frequency = np.log(
                        1 + self.document_count / (1 + self.index_docs.get(index, 0))
                    )
                    matrix[row, index] = term_frequency * inverse_document_frequency
        return matrix

    def get_config(self) -> dict[str, Any]:
        """The tokenizer's settings and state, in the legacy Keras layout (dicts as JSON text)."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs: Any) -> str:
        """Serializes the tokenizer to a JSON string; `tokenizer_from_json` restores it.

        Args:
            **kwargs: passed to `json.dumps` (e.g. `indent=2`).
        """
        return json.dumps({"class_name": "Tokenizer", "config": self.get_config()}, **kwargs)


def tokenizer_from_json(json_string: str) -> Tokenizer:
    """Restores a `Tokenizer` from `Tokenizer.to_json()` (rnnkit's or legacy Keras's).

    Args:
        json_string: the JSON text.

    Returns:
        A `Tokenizer` with the same settings, vocabulary and counts.

    Raises:
        ValueError: the JSON is not a serialized Tokenizer.
    """
    data = json.loads(json_string)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ValueError(
            "`json_string` must be the output of Tokenizer.to_json(): an object with a "
            f"'config' entry; received {json_string[:80]!r}."
        )
    config = data["config"]
    settings = ("num_words", "filters", "lower", "split", "char_level", "oov_token")
    tokenizer = Tokenizer(
        **{name: config[name] for name in settings if name in config},
        document_count=config.get("document_count", 0),
    )
    # JSON turns integer keys into strings; the index-keyed dicts get int keys back.
    tokenizer.word_counts = json.loads(config.get("word_counts", "{}"))
    tokenizer.word_docs = json.loads(config.get("word_docs", "{}"))
    tokenizer.index_docs = {
        int(k): v for k, v in json.loads(config.get("index_docs", "{}")).items()
    }
    tokenizer.index_word = {
        int(k): v for k, v in json.loads(config.get("index_word", "{}")).items()
    }
    tokenizer.word_index = json.loads(config.get("word_index", "{}"))
    return tokenizer


def _check_not_a_single_text(texts: Any, name: str) -> None:
    """A bare string would be read one character per text; ask for a list instead."""
    if isinstance(texts, str):
        raise TypeError(
            f"`{name}` must be a list of texts; received a single str ({texts[:40]!r}). "
            "Wrap it in a list."
        )


def _check_mode(mode: str) -> None:
    if mode not in _MATRIX_MODES:
        raise ValueError(
            f"`mode` must be one of {', '.join(map(repr, _MATRIX_MODES))}; received mode={mode!r}."
        )
