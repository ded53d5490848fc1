"""Layers: recurrent layers and cells, and the core layers the chapter's models use."""

from rnnkit.layers.base import Layer
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.layers.core import Dense, Dropout, Embedding, Flatten, Masking, TimeDistributed
from rnnkit.layers.rnn import GRU, LSTM, RNN, SimpleRNN
from rnnkit.layers.symbolic import Input

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Bidirectional",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRUCell",
    "Input",
    "LSTMCell",
    "Layer",
    "Masking",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "TimeDistributed",
]
