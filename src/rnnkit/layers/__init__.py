"""Layers: recurrent layers and cells, and the core layers the chapter's models use.

A typical chapter model chains them, one module per layer as in Keras:

    ids (batch, timesteps) int → Embedding → (batch, timesteps, output_dim)
    → LSTM → (batch, units) → Dropout → Dense → (batch, 1)

Masks follow Keras's convention: a `(batch, timesteps)` bool tensor, True marking real steps.
`Embedding(mask_zero=True)` and `Masking` create one (`compute_mask`); `Dense`, `Dropout` and
`TimeDistributed` pass the mask they receive on unchanged.
"""

from rnnkit.layers.base import Layer
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.dense import Dense
from rnnkit.layers.dropout import Dropout
from rnnkit.layers.embedding import Embedding
from rnnkit.layers.flatten import Flatten
from rnnkit.layers.gru import GRU, GRUCell
from rnnkit.layers.lstm import LSTM, LSTMCell
from rnnkit.layers.masking import Masking
from rnnkit.layers.rnn import RNN
from rnnkit.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from rnnkit.layers.stacked_rnn_cells import StackedRNNCells
from rnnkit.layers.symbolic import Input
from rnnkit.layers.time_distributed import TimeDistributed

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
