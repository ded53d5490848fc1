"""`pad_sequences` under Keras's module path `keras.preprocessing.sequence`."""

from rnnkit.data.sequences import pad_sequences

__all__ = ["pad_sequences"]
