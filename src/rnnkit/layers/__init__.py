"""Layers: recurrent layers and cells, and the core layers the chapter's models use."""

from rnnkit.layers.base import Layer
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.core import Dense, Dropout, Embedding, Flatten, Masking, TimeDistributed
from rnnkit.layers.gru import GRU, GRUCell
from rnnkit.layers.lstm import LSTM, LSTMCell
from rnnkit.layers.rnn import RNN
from rnnkit.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from rnnkit.layers.stacked_rnn_cells import StackedRNNCells
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
