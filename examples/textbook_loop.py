"""The textbook's NumPy RNN loop, the reference loop and the `SimpleRNN` layer, side by side.

"An RNN is a for loop that reuses quantities computed during the previous iteration": this
program runs that loop as the book writes it, then `rnnkit.reference.simple_rnn` and the
`rnnkit.layers.SimpleRNN` layer with the same weights, and shows that all three agree.

Run: `python examples/textbook_loop.py` (or `make demo`).
"""

# %%
import numpy as np
import torch

import rnnkit as rk
from rnnkit import layers

# %%
timesteps = 100
input_features = 32
output_features = 64

rng = np.random.default_rng(0)
inputs = rng.random((timesteps, input_features))
# The book draws weights from [0, 1); scaled down here so tanh does not saturate everywhere.
W = 0.1 * rng.random((output_features, input_features))
U = 0.1 * rng.random((output_features, output_features))
b = 0.1 * rng.random((output_features,))

# %%
# 1. The textbook loop.
state_t = np.zeros((output_features,))
successive_outputs = []
for input_t in inputs:
    output_t = np.tanh(np.dot(W, input_t) + np.dot(U, state_t) + b)
    successive_outputs.append(output_t)
    state_t = output_t
final_output_sequence = np.stack(successive_outputs, axis=0)

# %%
# 2. The reference loop: the same computation with weights in Keras's layout (transposed).
reference_outputs, _ = rk.reference.simple_rnn(inputs, W.T, U.T, b)

# %%
# 3. The layer: a PyTorch module with Keras's weights and semantics.
layer = layers.SimpleRNN(output_features, return_sequences=True, dtype=torch.float64)
layer.build((None, timesteps, input_features))
layer.set_weights([W.T, U.T, b])
layer_outputs = layer(inputs[np.newaxis]).detach().numpy()[0]

# %%
print(f"inputs {inputs.shape} -> outputs {final_output_sequence.shape}")
print(f"kernel {W.T.shape}, recurrent_kernel {U.T.shape}, bias {b.shape} (Keras layout)")
print("max |textbook loop - rnnkit.reference.simple_rnn| =", end=" ")
print(f"{np.abs(final_output_sequence - reference_outputs).max():.3e}")
print("max |textbook loop - layers.SimpleRNN|            =", end=" ")
print(f"{np.abs(final_output_sequence - layer_outputs).max():.3e}")
print("first output step, first 4 units:", np.round(final_output_sequence[0, :4], 6))
