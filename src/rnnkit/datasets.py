"""Datasets with Keras's names: `rnnkit.datasets.imdb.load_data(...)` as `keras.datasets.imdb`.

- `imdb`: the IMDB sentiment reviews (`load_data`, `get_word_index`), read from Keras's own
  file, downloaded once into `~/.rnnkit/datasets` (or `$RNNKIT_HOME`).
- `text_corpus`: text for character-level language models (`load_text`, `char_vocabulary`,
  `make_char_dataset`, `train_val_split`); the default corpus needs no download.
"""

from rnnkit.data import imdb, text_corpus

__all__ = ["imdb", "text_corpus"]
