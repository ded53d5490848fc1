"""The legacy Keras text tools under their Keras 2 module path `keras.preprocessing.text`
(Keras 3 dropped them; the chapter's IMDB-from-raw-text listing still uses `Tokenizer`)."""

from rnnkit.data.text import Tokenizer, text_to_word_sequence, tokenizer_from_json

__all__ = ["Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]
