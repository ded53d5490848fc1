"""rnnkit: Keras-exact recurrent neural network layers on PyTorch.

Public modules: `layers`, `reference` (the NumPy textbook loops), `activations`,
`initializers`, `regularizers`, `constraints`, `preprocessing`, `datasets`.
"""

from rnnkit import (
    activations,
    constraints,
    initializers,
    layers,
    reference,
    regularizers,
)

__version__ = "0.1.0"

__all__ = [
    "activations",
    "constraints",
    "initializers",
    "layers",
    "reference",
    "regularizers",
]
