"""rnnkit: Keras-exact recurrent neural network layers on PyTorch, and the Keras workflow.

Public names: `Sequential`, `Model`, `Input`, `load_model`, and the modules `layers`,
`reference` (the NumPy textbook loops), `activations`, `initializers`, `regularizers`,
`constraints`, `losses`, `metrics`, `optimizers`, `callbacks`, `preprocessing`, `datasets`,
`plot`, `io` (Keras files, torch.nn modules, ONNX), `diagnostics`, `utils` (Keras's
`keras.utils`: timeseries windows, `PyDataset`, `set_random_seed`, `to_categorical`).

The names load on first use (PEP 562's module `__getattr__`), so `import rnnkit` alone, and
the command line's `--help` and option errors, answer without importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it (a submodule of its own where the two are equal).
_PUBLIC = {
    "Input": "rnnkit.layers.symbolic",
    "Model": "rnnkit.models",
    "Sequential": "rnnkit.models",
    "load_model": "rnnkit.models",
    "activations": "rnnkit.activations",
    "callbacks": "rnnkit.callbacks",
    "constraints": "rnnkit.constraints",
    "datasets": "rnnkit.datasets",
    "diagnostics": "rnnkit.diagnostics",
    "initializers": "rnnkit.initializers",
    "io": "rnnkit.io",
    "layers": "rnnkit.layers",
    "losses": "rnnkit.training.losses",
    "metrics": "rnnkit.training.metrics",
    "optimizers": "rnnkit.training.optimizers",
    "plot": "rnnkit.plot",
    "preprocessing": "rnnkit.preprocessing",
    "reference": "rnnkit.reference",
    "regularizers": "rnnkit.regularizers",
    "utils": "rnnkit.utils",
}

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


def __getattr__(name: str) -> Any:
    """Imports a public name the first time it is read (`rk.Sequential`, `rk.layers`)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name])
    value = module if module.__name__.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value  # the next read is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see: the same names, imported eagerly
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
