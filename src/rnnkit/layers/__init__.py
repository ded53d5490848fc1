"""Layers: recurrent layers and cells, and the core layers the chapter's models use."""

from rnnkit.layers.base import Layer
from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.layers.rnn import GRU, LSTM, RNN, SimpleRNN

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "Layer",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
]
