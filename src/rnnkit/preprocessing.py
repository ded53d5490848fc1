"""Preprocessing utilities with Keras's names: `pad_sequences` and the legacy `Tokenizer`.

`rnnkit.preprocessing.pad_sequences` is `keras.utils.pad_sequences`; `Tokenizer`,
`tokenizer_from_json` and `text_to_word_sequence` are the legacy
`keras.preprocessing.text` ones. The submodule-style spellings of Keras 2
(`preprocessing.sequence.pad_sequences`, `preprocessing.text.Tokenizer`) also work.
"""

from rnnkit.data import sequences as sequence
from rnnkit.data import text
from rnnkit.data.sequences import pad_sequences
from rnnkit.data.text import Tokenizer, text_to_word_sequence, tokenizer_from_json

__all__ = [
    "Tokenizer",
    "pad_sequences",
    "sequence",
    "text",
    "text_to_word_sequence",
    "tokenizer_from_json",
]
