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
  is the input's length. It reproduces `rnnkit.kernels.loop.run_loop`: at a masked step the
  states are kept and the output repeats the previous one (or is zero with
  `zero_output_for_mask`);
- Embedding, Dense, Dropout (inference: identity), Masking, Flatten and TimeDistributed keep their
  inference computation; masks flow as in the model.

The timestep axis is dynamic when the model accepts a longer input (checked by running it);
`Flatten` over time followed by `Dense`, for one, fixes the length.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import activations
from rnnkit._files import atomic_write
from rnnkit.io.torch_modules import check_cell, kind, torch_module_for
from rnnkit.layers import (
    RNN,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    TimeDistributed,
)
from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.layers.symbolic import replace
from rnnkit.models.model import Model
from rnnkit.models.sequential import Sequential


class _HardSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


# rnnkit activation -> a module TorchScript can compile (the loop's activations).
_ACTIVATION_MODULES = {
    activations.tanh: nn.Tanh,
    activations.sigmoid: nn.Sigmoid,
    activations.hard_sigmoid: _HardSigmoid,
    activations.relu: nn.ReLU,
    activations.relu6: nn.ReLU6,
    activations.linear: nn.Identity,
    activations.softsign: nn.Softsign,
    activations.silu: nn.SiLU,
}


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silences what torch says about the TorchScript tools this module relies on.

    torch 2.9+ deprecates `torch.jit.script`/`trace` and the TorchScript ONNX exporter in favour
    of `torch.export`, which cannot yet export a loop whose trip count is the input's length;
    the exporter also warns about LSTM/GRU batch sizes (our initial states follow the input's
    batch size) and about scripted methods' signatures, and torch.nn's recurrent modules warn
    while traced. None of these concern the exported graph, which the tests run.
    """
    with warnings.catch_warnings():
        for message in (
            r"`torch\.jit\.\w+` is deprecated",
            r"You are using the legacy TorchScript-based ONNX export",
            r"The feature will be removed",
        ):
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        for message in (
            r"Exporting a model to ONNX with a batch_size other than 1",
            r"no signature found for <torch\.ScriptMethod",
        ):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        warnings.filterwarnings(
            "ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.modules\.rnn"
        )
        yield


def _activation_module(function: Any, owner: str) -> nn.Module:
    module = _ACTIVATION_MODULES.get(function)
    if module is None:
        names = sorted(activations.serialize(f) for f in _ACTIVATION_MODULES)
        raise ValueError(
            f"{owner}: activation {function!r} cannot be exported; supported: {names}."
        )
    return module()


def _constant(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)


# ------------------------------------------------------------------------------ the loop
class _Loop(nn.Module):
    """One direction of a recurrent layer as a TorchScript loop (mask-aware).

    Call: `inputs (batch, timesteps, features)`, `mask (batch, timesteps)` bool; returns
    `(outputs (batch, timesteps, units) in processing order, last output (batch, units),
    final states)`.
    """

    def __init__(self, layer: RNN, state_count: int) -> None:
        super().__init__()
        cell = layer.cell
        owner = f"export_onnx: layer '{layer.name}'"
        width = cell.kernel.shape[1]
        bias = cell.bias.detach() if cell.use_bias else cell.kernel.new_zeros(width)
        reset_after = isinstance(cell, GRUCell) and cell.reset_after
        self.kernel = _constant(cell.kernel)
        self.recurrent_kernel = _constant(cell.recurrent_kernel)
        self.input_bias = _constant(bias[0] if reset_after and cell.use_bias else bias)
        recurrent_bias = bias[1] if reset_after and cell.use_bias else bias.new_zeros(width)
        self.recurrent_bias = _constant(recurrent_bias)
        self.activation = _activation_module(cell.activation, owner)
        recurrent = getattr(cell, "recurrent_activation", activations.sigmoid)
        self.recurrent_activation = _activation_module(recurrent, owner)
        self.units = cell.units
        self.state_count = state_count
        self.reset_after = reset_after
        self.go_backwards = layer.go_backwards
        self.zero_output_for_mask = layer.zero_output_for_mask

    def gate(self, values: torch.Tensor, index: int) -> torch.Tensor:
        """Gate `index`'s columns of `(batch, gates*units)` values (slices export where
        `chunk` needs a rank ONNX cannot always infer)."""
        return values[:, index * self.units : (index + 1) * self.units]

    def step(
        self, projected: torch.Tensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(
        self, inputs: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        projected = inputs @ self.kernel + self.input_bias  # (B, T, gates*units)
        states: list[torch.Tensor] = []
        for _ in range(self.state_count):
            states.append(inputs.new_zeros((inputs.size(0), self.units)))
        previous = states[0]
        outputs: list[torch.Tensor] = []
        timesteps = inputs.size(1)
        for step in range(timesteps):
            t = timesteps - 1 - step if self.go_backwards else step
            output, new_states = self.step(projected[:, t], states)
            keep = mask[:, t].unsqueeze(1)  # (B, 1)
            if self.zero_output_for_mask:
                output = torch.where(keep, output, torch.zeros_like(output))
            else:
                output = torch.where(keep, output, previous)
                previous = output
            kept: list[torch.Tensor] = []
            for index in range(self.state_count):
                kept.append(torch.where(keep, new_states[index], states[index]))
            states = kept
            outputs.append(output)
        return torch.stack(outputs, 1), outputs[-1], states


class _SimpleRNNLoop(_Loop):
    def step(
        self, projected: torch.Tensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.activation(projected + states[0] @ self.recurrent_kernel)
        return h, [h]


class _LSTMLoop(_Loop):
    def step(
        self, projected: torch.Tensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = projected + states[0] @ self.recurrent_kernel  # (B, 4*units): i, f, c, o
        i = self.recurrent_activation(self.gate(z, 0))
        f = self.recurrent_activation(self.gate(z, 1))
        c = f * states[1] + i * self.activation(self.gate(z, 2))
        h = self.recurrent_activation(self.gate(z, 3)) * self.activation(c)
        return h, [h, c]


class _GRULoop(_Loop):
    def step(
        self, projected: torch.Tensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h_prev = states[0]  # gates z, r, h
        if self.reset_after:
            inner = h_prev @ self.recurrent_kernel + self.recurrent_bias
            z = self.recurrent_activation(self.gate(projected, 0) + self.gate(inner, 0))
            r = self.recurrent_activation(self.gate(projected, 1) + self.gate(inner, 1))
            hh = self.activation(self.gate(projected, 2) + r * self.gate(inner, 2))
        else:
            inner = h_prev @ self.recurrent_kernel[:, : 2 * self.units]
            z = self.recurrent_activation(self.gate(projected, 0) + self.gate(inner, 0))
            r = self.recurrent_activation(self.gate(projected, 1) + self.gate(inner, 1))
            recurrent_h = self.recurrent_kernel[:, 2 * self.units :]
            hh = self.activation(self.gate(projected, 2) + (r * h_prev) @ recurrent_h)
        h = z * h_prev + (1 - z) * hh
        return h, [h]


_LOOPS = {SimpleRNNCell: (_SimpleRNNLoop, 1), LSTMCell: (_LSTMLoop, 2), GRUCell: (_GRULoop, 1)}


def _scripted_loop(layer: RNN) -> torch.jit.ScriptModule:
    owner = f"export_onnx: layer '{layer.name}'"
    if type(layer.cell) not in _LOOPS:
        raise ValueError(
            f"{owner}: cell {type(layer.cell).__name__} cannot be exported; supported: "
            "SimpleRNN, LSTM and GRU cells."
        )
    if layer.stateful:
        raise ValueError(f"{owner}: stateful=True cannot be exported (ONNX keeps no state).")
    loop_class, state_count = _LOOPS[type(layer.cell)]
    with _quiet_torchscript():
        return torch.jit.script(loop_class(layer, state_count))


# ---------------------------------------------------------------------- recurrent layers
class _Recurrent(nn.Module):
    """A recurrent layer or `Bidirectional` for export: native torch.nn op without a mask where
    the configuration maps, else one scripted loop per direction. Same call and results as the
    layer: `(inputs, mask)` -> output, or `(output, *states)` with `return_state`."""

    def __init__(self, layer: RNN | Bidirectional) -> None:
        super().__init__()
        self.bidirectional = isinstance(layer, Bidirectional)
        directions = [layer.forward_layer, layer.backward_layer] if self.bidirectional else [layer]
        self.loops = nn.ModuleList([_scripted_loop(direction) for direction in directions])
        self.native = self._native(directions)
        self.flip_input = not self.bidirectional and layer.go_backwards
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.merge_mode = layer.merge_mode if self.bidirectional else None
        self.state_count = self.loops[0].state_count

    @staticmethod
    def _native(directions: Sequence[RNN]) -> nn.RNNBase | None:
        """The torch.nn module for `directions`, or None where torch.nn cannot express them."""
        try:
            for direction in directions:
                check_cell(direction.cell, direction.name)
        except ValueError:
            return None
        if len(directions) == 2 and (
            directions[0].go_backwards
            or not directions[1].go_backwards
            or kind(directions[0]) != kind(directions[1])
        ):
            return None
        return torch_module_for([list(directions)]).eval()

    def _run_native(self, inputs: torch.Tensor) -> list[tuple]:
        """Per direction: (outputs in input order, last output, states)."""
        if self.flip_input:
            inputs = torch.flip(inputs, [1])
        output, states = self.native(inputs)
        states = list(states) if isinstance(states, tuple) else [states]  # each (D, B, units)
        units = states[0].shape[-1]
        if not self.bidirectional:
            return [(output, output[:, -1], [s[0] for s in states])]
        forward = (output[..., :units], states[0][0], [s[0] for s in states])
        backward = (output[..., units:], states[0][1], [s[1] for s in states])
        return [forward, backward]

    def _run_loops(self, inputs: torch.Tensor, mask: torch.Tensor | None) -> list[tuple]:
        if mask is None:
            mask = torch.ones_like(inputs[..., 0], dtype=torch.bool)
        results = []
        for index, loop in enumerate(self.loops):
            outputs, last, states = loop(inputs, mask)
            if self.bidirectional and index == 1:
                outputs = torch.flip(outputs, [1])  # back to input order
            results.append((outputs, last, states))
        return results

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        if mask is None and self.native is not None:
            results = self._run_native(inputs)
        else:
            results = self._run_loops(inputs, mask)
        outputs = [seq if self.return_sequences else last for seq, last, _ in results]
        states = [state for _, _, direction_states in results for state in direction_states]
        if not self.bidirectional:
            output: Any = outputs[0]
        elif self.merge_mode == "concat":
            output = torch.cat(outputs, -1)
        elif self.merge_mode == "sum":
            output = outputs[0] + outputs[1]
        elif self.merge_mode == "mul":
            output = outputs[0] * outputs[1]
        elif self.merge_mode == "ave":
            output = (outputs[0] + outputs[1]) / 2
        else:
            output = tuple(outputs)
        if not self.return_state:
            return output
        return (*output, *states) if isinstance(output, tuple) else (output, *states)


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
                self.recurrent[key] = _Recurrent(module)

    def forward(self, *inputs: torch.Tensor) -> Any:
        value = inputs[0] if len(inputs) == 1 else list(inputs)
        output, _ = self.run(self.model, value, None)
        return tuple(output) if isinstance(output, list) else output

    def run(self, layer: nn.Module, inputs: Any, mask: Any) -> tuple[Any, Any]:
        """`(outputs, output mask)` of `layer` on `inputs` with input `mask`."""
        if isinstance(layer, Sequential):
            for item in layer.layers:
                inputs, mask = self.run(item, inputs, mask)
            return inputs, mask
        if isinstance(layer, Model):
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
        known = {id(tensor): value for tensor, value in zip(model._graph_inputs, values)}
        masks: dict[int, Any] = {}
        for node in model._nodes:
            extra = {key for key in node.kwargs if key != "training"}
            if len(node.args) != 1 or extra:
                raise ValueError(
                    f"export_onnx: the call of layer '{node.layer.name}' passes extra "
                    f"arguments {sorted(extra)}; only plain layer calls can be exported."
                )
            source = node.args[0]
            outputs, output_mask = self.run(
                node.layer, replace(source, known), masks.get(id(source))
            )
            outputs = list(outputs) if len(node.outputs) > 1 else [outputs]
            output_masks = output_mask if isinstance(output_mask, list) else [output_mask]
            output_masks = output_masks + [None] * (len(outputs) - len(output_masks))
            for tensor, value, mask in zip(node.outputs, outputs, output_masks):
                known[id(tensor)] = value
                masks[id(tensor)] = mask
        results = [known[id(tensor)] for tensor in model._graph_outputs]
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
    with atomic_write(path) as temporary, _quiet_torchscript():
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
