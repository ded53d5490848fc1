"""Preprocessing utilities with Keras's names: `pad_sequences` and the legacy `Tokenizer`.

`rnnkit.preprocessing.pad_sequences` is `keras.utils.pad_sequences`; `Tokenizer`,
`tokenizer_from_json` and `text_to_word_sequence` are the legacy
`keras.preprocessing.text` ones. The submodules have Keras's module paths, so
`from rnnkit.preprocessing.sequence import pad_sequences` and
`from rnnkit.preprocessing.text import Tokenizer` work as in Keras.
"""

from rnnkit.data.sequences import pad_sequences
from rnnkit.data.text import Tokenizer, text_to_word_sequence, tokenizer_from_json
from rnnkit.preprocessing import sequence, text

__all__ = [
    "Tokenizer",
    "pad_sequences",
    "sequence",
    "text",
    "text_to_word_sequence",
    "tokenizer_from_json",
]
