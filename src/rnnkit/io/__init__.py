"""Interoperability: Keras 3 files in and out, PyTorch recurrent modules, ONNX export.

- `load_keras(path)`: a Keras 3 `.keras` archive as an rnnkit model (no Keras needed);
- `load_weights(model, path)` / `save_weights(model, path)`: Keras 3's `.weights.h5` layout;
- `from_torch(module)` / `to_torch(layer)`: `torch.nn.RNN`/`LSTM`/`GRU` and rnnkit layers;
- `export_onnx(model, path, example_input)`: an ONNX file with dynamic batch and time axes.
"""

from rnnkit.io.keras_config import load_keras
from rnnkit.io.keras_weights import load_weights, save_weights
from rnnkit.io.onnx_export import export_onnx
from rnnkit.io.torch_modules import from_torch, to_torch

__all__ = ["export_onnx", "from_torch", "load_keras", "load_weights", "save_weights", "to_torch"]
