"""IMDB sentiment: the chapter's SimpleRNN and LSTM classifiers, with their training curves.

Run: `python examples/imdb_sentiment.py [simple_rnn|lstm]` (downloads imdb.npz once, about
17 MB, into ~/.rnnkit/datasets). Environment variables: `RNNKIT_IMDB_PATH` reads a local copy
instead; `RNNKIT_EXAMPLES_QUICK=1` trains on a small slice for two epochs (used by the tests);
`RNNKIT_OUT` is the folder for the curves (default `out/`).
"""

# %%
import os
import sys

import rnnkit as rk
from rnnkit import layers

quick = os.environ.get("RNNKIT_EXAMPLES_QUICK") == "1"
out_dir = os.environ.get("RNNKIT_OUT", "out")
# The layer: `python examples/imdb_sentiment.py lstm`; in the notebook, edit the default here
# (a Jupyter kernel's own arguments start with "-").
kind = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "simple_rnn"
max_features = 10000  # number of words to consider as features
maxlen = 500  # cut texts after this number of words
batch_size = 32

# %%
print("Loading data...")
path = os.environ.get("RNNKIT_IMDB_PATH", "imdb.npz")
(input_train, y_train), (input_test, y_test) = rk.datasets.imdb.load_data(
    path=path, num_words=max_features
)
if quick:
    input_train, y_train, input_test, y_test = (
        input_train[:200],
        y_train[:200],
        input_test[:100],
        y_test[:100],
    )
print(len(input_train), "train sequences")
print(len(input_test), "test sequences")

# %%
print("Pad sequences (samples x time)")
input_train = rk.preprocessing.pad_sequences(input_train, maxlen=maxlen)
input_test = rk.preprocessing.pad_sequences(input_test, maxlen=maxlen)
print("input_train shape:", input_train.shape)
print("input_test shape:", input_test.shape)

# %%
recurrent = layers.SimpleRNN(32) if kind == "simple_rnn" else layers.LSTM(32)
model = rk.Sequential(
    [layers.Embedding(max_features, 32), recurrent, layers.Dense(1, activation="sigmoid")]
)
model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
model.summary()

# %%
history = model.fit(
    input_train,
    y_train,
    epochs=2 if quick else 10,
    batch_size=128,
    validation_split=0.2,
)
# %%
curves = os.path.join(out_dir, f"imdb_{kind}_curves.png")
rk.plot.history(history, curves)
print("curves written to", curves)
loss, acc = model.evaluate(input_test, y_test, verbose=0)
print(f"test accuracy: {acc:.4f}")
