"""rnnkit: Keras-exact recurrent neural network layers on PyTorch, and the Keras workflow.

Public names: `Sequential`, `Model`, `Input`, `load_model`, and the modules `layers`,
`reference` (the NumPy textbook loops), `activations`, `initializers`, `regularizers`,
`constraints`, `preprocessing`, `datasets`.
"""

from rnnkit import (
    activations,
    constraints,
    datasets,
    initializers,
    layers,
    preprocessing,
    reference,
    regularizers,
)
from rnnkit.layers.symbolic import Input
from rnnkit.models import Model, Sequential, load_model

__version__ = "0.1.0"

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "activations",
    "constraints",
    "datasets",
    "initializers",
    "layers",
    "load_model",
    "preprocessing",
    "reference",
    "regularizers",
]
