"""SimpleRNN's output shapes: the last output only, or the full sequence; stacked layers.

Run: `python examples/simple_rnn_shapes.py`.
"""

# %%
import numpy as np

import rnnkit as rk
from rnnkit import layers

# %%
# Only the last output: (batch, units).
model = rk.Sequential([layers.Embedding(10000, 32), layers.SimpleRNN(32)])
model.summary()

# %%
# Every timestep's output: (batch, timesteps, units).
model = rk.Sequential([layers.Embedding(10000, 32), layers.SimpleRNN(32, return_sequences=True)])
model.summary()

# %%
# Stacked recurrent layers: every layer but the last returns its full sequence.
model = rk.Sequential(
    [
        layers.Embedding(10000, 32),
        layers.SimpleRNN(32, return_sequences=True),
        layers.SimpleRNN(32, return_sequences=True),
        layers.SimpleRNN(32),
    ]
)
model.summary()

# %%
# The functional form, with sequences of any length and 14 features per step.
inputs = rk.Input(shape=(None, 14))
outputs = layers.SimpleRNN(16, return_sequences=True)(inputs)
print("symbolic output shape:", outputs.shape)
model = rk.Model(inputs, outputs)
print("on real data:", tuple(model(np.zeros((2, 120, 14), dtype="float32")).shape))
