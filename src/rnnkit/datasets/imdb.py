"""The IMDB sentiment reviews under Keras's module path `keras.datasets.imdb` (see
`rnnkit.data.imdb`: read from Keras's own file, downloaded once)."""

from rnnkit.data.imdb import get_word_index, load_data

__all__ = ["get_word_index", "load_data"]
