"""Data for the recurrent-networks chapter: padding, tokenizing, downloading, datasets.

NumPy only (no torch): `pad_sequences`, `Tokenizer`, `get_file`, `PyDataset` (Keras's base
class for data given to `fit` as whole batches), `timeseries_dataset_from_array` (lazy windows
over a series), `to_categorical`, and the dataset modules `imdb` (Keras's IMDB sentiment
reviews) and `text_corpus` (text for character-level language models). Users reach them through
`rnnkit.preprocessing`, `rnnkit.datasets` and `rnnkit.utils`.
"""

from rnnkit.data import imdb, text_corpus
from rnnkit.data.categorical import to_categorical
from rnnkit.data.download import DownloadError, get_file
from rnnkit.data.py_dataset import PyDataset
from rnnkit.data.sequences import pad_sequences
from rnnkit.data.text import Tokenizer, text_to_word_sequence, tokenizer_from_json
from rnnkit.data.timeseries import timeseries_dataset_from_array

__all__ = [
    "DownloadError",
    "PyDataset",
    "Tokenizer",
    "get_file",
    "imdb",
    "pad_sequences",
    "text_corpus",
    "text_to_word_sequence",
    "timeseries_dataset_from_array",
    "to_categorical",
    "tokenizer_from_json",
]
