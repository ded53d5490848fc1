"""Datasets with Keras's names: `rnnkit.datasets.imdb.load_data(...)` as `keras.datasets.imdb`.

- `imdb`: the IMDB sentiment reviews (`load_data`, `get_word_index`), read from Keras's own
  file, downloaded once into `~/.rnnkit/datasets` (or `$RNNKIT_HOME`).
- `jena_climate`: the forecasting chapter's weather series (`load_data`), downloaded once into
  the same cache, or read from a local `.csv`/`.zip`.
- `mauna_loa_co2`: weekly Mauna Loa CO2, 1958–2001 (`load_data`), public domain, shipped inside
  rnnkit: a real series to forecast with no network.
- `text_corpus`: text for character-level language models (`load_text`, `char_vocabulary`,
  `make_char_dataset`, `train_val_split`); the default corpus needs no download.
- `adding_problem`, `copy_memory`: seeded long-memory tasks of any length (see
  `rnnkit.data.synthetic`), the tasks that show vanishing gradients.
"""

from rnnkit.data import imdb, jena_climate, mauna_loa_co2, text_corpus
from rnnkit.data.synthetic import adding_problem, copy_memory

__all__ = [
    "adding_problem",
    "copy_memory",
    "imdb",
    "jena_climate",
    "mauna_loa_co2",
    "text_corpus",
]
