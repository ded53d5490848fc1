"""Recurrent layers for ONNX export: the native `torch.nn` op where the configuration maps and no
mask is given, else a TorchScript loop per direction (exported as an ONNX `Loop`).

The loops reproduce `rnnkit.kernels.loop.run_loop`'s rules for a built-in cell read from its
`CellSpec`: (projection) every step's input product at once, (order), (step) each cell's
equations written for TorchScript (the cells' own steps take Python callables TorchScript cannot
compile), (mask) at a masked step the states are kept and the output repeats the previous one
(zeros with `zero_output_for_mask`), and (last). `tests/test_io_onnx.py` checks every kind and
option against the model itself.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import activations
from rnnkit.activations import ActivationCode
from rnnkit.io.torch_modules import check_cell, kind, torch_module_for
from rnnkit.kernels.spec import CellKind
from rnnkit.layers import RNN, Bidirectional
from rnnkit.layers.bidirectional import merge


class _HardSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


# Activation code -> a module TorchScript can compile (the loop's activations).
_ACTIVATION_MODULES = {
    ActivationCode.TANH: nn.Tanh,
    ActivationCode.SIGMOID: nn.Sigmoid,
    ActivationCode.HARD_SIGMOID: _HardSigmoid,
    ActivationCode.RELU: nn.ReLU,
    ActivationCode.RELU6: nn.ReLU6,
    ActivationCode.LINEAR: nn.Identity,
    ActivationCode.SOFTSIGN: nn.Softsign,
    ActivationCode.SILU: nn.SiLU,
}


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
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
    module = _ACTIVATION_MODULES.get(activations.code_of(function))
    if module is None:
        names = sorted(code.name.lower() for code in _ACTIVATION_MODULES)
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
        spec = layer.cell_spec()
        owner = f"export_onnx: layer '{layer.name}'"
        zeros = spec.kernel.new_zeros(spec.kernel.shape[1])
        self.kernel = _constant(spec.kernel)
        self.recurrent_kernel = _constant(spec.recurrent_kernel)
        self.input_bias = _constant(spec.input_bias if spec.input_bias is not None else zeros)
        self.recurrent_bias = _constant(
            spec.recurrent_bias if spec.recurrent_bias is not None else zeros
        )
        self.activation = _activation_module(spec.activation, owner)
        recurrent = spec.recurrent_activation or activations.sigmoid
        self.recurrent_activation = _activation_module(recurrent, owner)
        self.units = spec.units
        self.state_count = state_count
        self.reset_after = spec.kind == CellKind.GRU_RESET_AFTER
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


_LOOPS = {
    CellKind.SIMPLE_RNN: (_SimpleRNNLoop, 1),
    CellKind.LSTM: (_LSTMLoop, 2),
    CellKind.GRU_RESET_AFTER: (_GRULoop, 1),
    CellKind.GRU_RESET_BEFORE: (_GRULoop, 1),
}


def _scripted_loop(layer: RNN) -> torch.jit.ScriptModule:
    owner = f"export_onnx: layer '{layer.name}'"
    cell_kind = layer.cell_spec().kind
    if cell_kind is None:
        raise ValueError(
            f"{owner}: cell {type(layer.cell).__name__} cannot be exported; supported: "
            "SimpleRNN, LSTM and GRU cells."
        )
    if layer.stateful:
        raise ValueError(f"{owner}: stateful=True cannot be exported (ONNX keeps no state).")
    loop_class, state_count = _LOOPS[cell_kind]
    with quiet_torchscript():
        return torch.jit.script(loop_class(layer, state_count))


# ---------------------------------------------------------------------- recurrent layers
class RecurrentForExport(nn.Module):
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
                check_cell(direction.cell_spec(), direction.name)
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
        else:
            output = merge(outputs[0], outputs[1], self.merge_mode)
        if not self.return_state:
            return output
        return (*output, *states) if isinstance(output, tuple) else (output, *states)
