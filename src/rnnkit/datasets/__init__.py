"""Datasets with Keras's names: `rnnkit.datasets.imdb.load_data(...)` as `keras.datasets.imdb`.

- `imdb`: the IMDB sentiment reviews (`load_data`, `get_word_index`), read from Keras's own
  file, downloaded once into `~/.rnnkit/datasets` (or `$RNNKIT_HOME`); a submodule, so
  `from rnnkit.datasets.imdb import load_data` works as in Keras.
- `text_corpus`: text for character-level language models (`load_text`, `char_vocabulary`,
  `make_char_dataset`, `train_val_split`); the default corpus needs no download.
- `adding_problem`, `copy_memory`: seeded long-memory tasks of any length (see
  `rnnkit.data.synthetic`), the tasks that show vanishing gradients.
"""

from rnnkit.data import text_corpus
from rnnkit.data.synthetic import adding_problem, copy_memory
from rnnkit.datasets import imdb

__all__ = ["adding_problem", "copy_memory", "imdb", "text_corpus"]
