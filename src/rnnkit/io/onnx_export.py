"""Export rnnkit models to ONNX with a dynamic batch axis and, where the model allows it, a
dynamic timestep axis.

The model is rewritten into an exportable twin and traced by torch's TorchScript-based exporter
(`torch.onnx.export(..., dynamo=False)`):

- a recurrent layer that `torch.nn` can express (see `torch_modules.check_cell`) and that sees no
  mask becomes `torch.nn.RNN`/`LSTM`/`GRU`, which export as ONNX's own `RNN`/`LSTM`/`GRU` ops
  (`go_backwards` flips the time axis; `Bidirectional` runs both directions in one op and merges
  with any `merge_mode`);
- any other built-in recurrent layer (masked inputs, GRU `reset_after=False`, `hard_sigmoid`, ...)
  becomes a TorchScript loop over the timesteps, which exports as an ONNX `Loop` whose trip count
  is the input's length (both in `onnx_recurrent.py`);
- Embedding, Dense, Dropout (inference: identity), Masking, Flatten and TimeDistributed keep their
  inference computation; a functional model is replayed with `rnnkit.layers.graph.replay`, so
  masks flow as in the model.

The timestep axis is dynamic when the model accepts a longer input (checked by running it);
`Flatten` over time followed by `Dense`, for one, fixes the length.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit._files import atomic_write
from rnnkit.io.onnx_recurrent import RecurrentForExport, quiet_torchscript
from rnnkit.layers import (
    RNN,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    TimeDistributed,
    serialization,
)
from rnnkit.layers.graph import replay
from rnnkit.layers.symbolic import Node

if TYPE_CHECKING:
    from rnnkit.models.model import Model


# --------------------------------------------------------------------------- the model
class _ExportGraph(nn.Module):
    """`model`'s inference computation in exportable pieces (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.recurrent = nn.ModuleDict()
        self._keys: dict[int, str] = {}
        for module in model.modules():
            if isinstance(module, (RNN, Bidirectional)) and not _inside_bidirectional(
                module, model
            ):
                key = str(len(self._keys))
                self._keys[id(module)] = key
                self.recurrent[key] = RecurrentForExport(module)

    def forward(self, *inputs: torch.Tensor) -> Any:
        value = inputs[0] if len(inputs) == 1 else list(inputs)
        output, _ = self.run(self.model, value, None)
        return tuple(output) if isinstance(output, list) else output

    def run(self, layer: nn.Module, inputs: Any, mask: Any) -> tuple[Any, Any]:
        """`(outputs, output mask)` of `layer` on `inputs` with input `mask`."""
        if isinstance(layer, serialization.model_class("Sequential")):
            for item in layer.layers:
                inputs, mask = self.run(item, inputs, mask)
            return inputs, mask
        if isinstance(layer, serialization.model_class("Model")):
            return self._run_functional(layer, inputs), None
        if id(layer) in self._keys:
            outputs = self.recurrent[self._keys[id(layer)]](inputs, mask)
            return outputs, layer.compute_mask(inputs, mask)
        if isinstance(layer, Embedding):
            mask = inputs != 0 if layer.mask_zero else None
            return F.embedding(inputs.long(), layer.embeddings), mask
        if isinstance(layer, Masking):
            return layer(inputs), layer.compute_mask(inputs)
        if isinstance(layer, Dropout):
            return inputs, mask
        if isinstance(layer, Dense):
            outputs = inputs @ layer.kernel
            outputs = outputs if layer.bias is None else outputs + layer.bias
            return layer.activation(outputs), mask
        if isinstance(layer, Flatten):
            return inputs.flatten(1), None
        if isinstance(layer, TimeDistributed):
            steps = inputs.reshape(-1, *inputs.shape[2:])  # (batch*timesteps, ...)
            folded, _ = self.run(layer.layer, steps, None)
            return folded.reshape(inputs.shape[0], inputs.shape[1], *folded.shape[1:]), mask
        raise ValueError(
            f"export_onnx: layer '{getattr(layer, 'name', '?')}' ({type(layer).__name__}) "
            "cannot be exported."
        )

    def _run_functional(self, model: Model, inputs: Any) -> Any:
        values = inputs if isinstance(inputs, (list, tuple)) else [inputs]

        def call(node: Node, args: tuple, kwargs: dict, mask: Any) -> tuple[Any, Any]:
            extra = {key for key in kwargs if key != "training"}
            if len(args) != 1 or extra:
                raise ValueError(
                    f"export_onnx: the call of layer '{node.layer.name}' passes extra "
                    f"arguments {sorted(extra)}; only plain layer calls can be exported."
                )
            return self.run(node.layer, args[0], mask)

        results = replay(model._graph_inputs, model._nodes, model._graph_outputs, values, call)
        return results[0] if model._single_output else results


def _inside_bidirectional(module: nn.Module, model: nn.Module) -> bool:
    return any(
        isinstance(outer, Bidirectional) and module in (outer.forward_layer, outer.backward_layer)
        for outer in model.modules()
    )


# ------------------------------------------------------------------------------ export
def _as_tensors(example_input: Any) -> list[torch.Tensor]:
    items = list(example_input) if isinstance(example_input, (list, tuple)) else [example_input]
    if not items or any(not isinstance(item, (torch.Tensor, np.ndarray)) for item in items):
        raise TypeError(
            "export_onnx: `example_input` must be one batch the model accepts (a tensor or NumPy "
            f"array, or a list of them), received {type(example_input).__name__}."
        )
    tensors = [torch.as_tensor(item) for item in items]
    for tensor in tensors:
        if tensor.dim() < 1:
            raise ValueError(
                "export_onnx: `example_input` needs a batch axis, received a scalar tensor."
            )
        if 0 in tensor.shape[:2]:
            raise ValueError(
                "export_onnx: `example_input` needs at least one sample and one timestep, "
                f"received shape {tuple(tensor.shape)}."
            )
    return tensors


# The opsets whose files onnxruntime runs: from 13 (the first in which the loops' sequence
# outputs are valid) to 20 (the newest that torch's TorchScript exporter writes).
OPSETS = range(13, 21)


def _check_opset(opset_version: Any) -> None:
    if isinstance(opset_version, bool) or opset_version not in OPSETS:
        raise ValueError(
            f"export_onnx: `opset_version` must be an integer from {OPSETS.start} to "
            f"{OPSETS.stop - 1}, received {opset_version!r}."
        )


def _check_runnable(model: nn.Module) -> None:
    """Refuses a built model whose file onnxruntime could not run."""
    if any(parameter.dtype == torch.float64 for parameter in model.parameters()):
        raise ValueError(
            "export_onnx: the model's weights are float64, and onnxruntime cannot run float64 "
            "recurrent layers (its LSTM, GRU and RNN ops have no double kernels): build the "
            "model in float32 (the default dtype) to export it."
        )


def _flat(outputs: Any) -> list[torch.Tensor]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _time_axes(graph: _ExportGraph, inputs: list[torch.Tensor]) -> list[set[int]] | None:
    """For each output, the axes that follow the input length; None if the length is fixed."""
    if not all(tensor.dim() >= 2 for tensor in inputs):
        return None
    longer = [torch.cat([tensor, tensor[:, :1]], dim=1) for tensor in inputs]
    with torch.no_grad():
        shapes = [tuple(out.shape) for out in _flat(graph(*inputs))]
        try:
            longer_shapes = [tuple(out.shape) for out in _flat(graph(*longer))]
        except (ValueError, RuntimeError):
            return None  # e.g. Flatten over time then Dense: the length is part of the model
    return [
        {axis for axis, (a, b) in enumerate(zip(short, long)) if a != b and axis > 0}
        for short, long in zip(shapes, longer_shapes)
    ]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example_input: Any,
    *,
    opset_version: int = 17,
) -> None:
    """Writes `model` (inference mode) to an ONNX file that onnxruntime can run.

    The batch axis of every input and output is dynamic; the timestep axis (axis 1 of each input,
    and the output axes that follow it) is dynamic too, unless the model needs a fixed length.
    Recurrent layers without masks whose configuration torch.nn can express become ONNX's own
    `RNN`/`LSTM`/`GRU` ops; others become an ONNX `Loop` (see the module docstring). Inputs are
    named `input` (or `input_0`, `input_1`, ...), outputs `output` (or `output_0`, ...).

    Args:
        model: an rnnkit `Sequential`, functional `Model`, or a single layer.
        path: the `.onnx` file to write (written to a temporary file, then moved over it).
        example_input: one batch the model accepts (tensor or NumPy array, or a list of them
            for several inputs), e.g. `(batch, timesteps, features)` or integer ids
            `(batch, timesteps)`.
        opset_version: the ONNX opset, 13 to 20 (default 17).

    Raises:
        ImportError: the `onnx` package is not installed.
        ValueError: a layer or option cannot be exported (the message names it): stateful
            layers, custom cells, layer calls with extra arguments, unsupported activations,
            float64 weights (onnxruntime cannot run them), an opset outside 13-20, an
            `example_input` without samples or timesteps.
        TypeError: `example_input` is not a tensor or array (or a list of them).

    Example:
        >>> rnnkit.io.export_onnx(model, "model.onnx", x_test[:2])
        >>> session = onnxruntime.InferenceSession("model.onnx")
        >>> session.run(None, {"input": x_test})
    """
    if importlib.util.find_spec("onnx") is None:
        raise ImportError(
            "export_onnx needs the `onnx` package (torch's exporter writes the file with it): "
            "pip install onnx (onnxruntime too, to run the file)."
        )
    _check_opset(opset_version)
    inputs = _as_tensors(example_input)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs[0] if len(inputs) == 1 else inputs)  # builds a lazy model
        _check_runnable(model)
        graph = _ExportGraph(model).eval()
        axes = _time_axes(graph, inputs)
        with torch.no_grad():
            outputs = _flat(graph(*inputs))
        input_names = ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]
        output_names = (
            ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
        )
        dynamic = {name: {0: "batch"} for name in input_names + output_names}
        if axes is not None:
            for name in input_names:
                dynamic[name][1] = "timesteps"
            for name, output_axes in zip(output_names, axes):
                dynamic[name].update({axis: "timesteps" for axis in output_axes})
        _write(
            graph, tuple(inputs), os.fspath(path), input_names, output_names, dynamic, opset_version
        )
    finally:
        model.train(was_training)


def _write(graph, inputs, path, input_names, output_names, dynamic, opset_version) -> None:
    with atomic_write(path) as temporary, quiet_torchscript():
        # Tracing first keeps the scripted loops as loops (the exporter's own tracing
        # rejects scripted submodules).
        traced = torch.jit.trace(graph, inputs)
        torch.onnx.export(
            traced,
            inputs,
            temporary,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=opset_version,
        )
