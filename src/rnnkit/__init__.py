"""rnnkit: Keras-exact recurrent neural network layers on PyTorch, and the Keras workflow.

Public names: `Sequential`, `Model`, `Input`, `load_model`, and the modules `layers`,
`reference` (the NumPy textbook loops), `activations`, `initializers`, `regularizers`,
`constraints`, `losses`, `metrics`, `optimizers`, `callbacks`, `preprocessing`, `datasets`,
`plot`, `io` (Keras files, torch.nn modules, ONNX), `diagnostics`, `utils` (Keras's
`keras.utils`: timeseries windows, `PyDataset`, `set_random_seed`, `to_categorical`).
"""

from rnnkit import (
    activations,
    callbacks,
    constraints,
    datasets,
    diagnostics,
    initializers,
    io,
    layers,
    plot,
    preprocessing,
    reference,
    regularizers,
    utils,
)
from rnnkit.layers.symbolic import Input
from rnnkit.models import Model, Sequential, load_model
from rnnkit.training import losses, metrics, optimizers

__version__ = "0.1.0"

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "activations",
    "callbacks",
    "constraints",
    "datasets",
    "diagnostics",
    "initializers",
    "io",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "plot",
    "preprocessing",
    "reference",
    "regularizers",
    "utils",
]
