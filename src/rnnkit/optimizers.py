"""Optimizers under Keras's module path: `from rnnkit.optimizers import RMSprop` as
`from keras.optimizers import RMSprop`.

Re-exports `rnnkit.training.optimizers` (Keras's update rules as torch optimizers; see there).
"""

from rnnkit.training.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, get, serialize

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "get", "serialize"]
