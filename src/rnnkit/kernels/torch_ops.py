"""PyTorch's own recurrent operators as a kernel: cuDNN on CUDA, oneDNN (or ATen) on the CPU.

Where their recurrence is exactly the cell's — SimpleRNN with tanh or relu; LSTM, and GRU with
`reset_after=True`, with tanh and sigmoid; no mask; no recurrent dropout — `run_torch` hands the
whole sequence to `torch.ops.aten.rnn_tanh` / `rnn_relu` / `lstm` / `gru`, the operators behind
`torch.nn.RNN`/`LSTM`/`GRU`. `supports` says whether it can, naming what blocks it. The weights
go over in torch's layout through differentiable indexing, so autograd reaches the cell's own
parameters:

    torch (per cell)                       rnnkit / Keras
    weight_ih (G*U, F), rows by torch gate kernel (F, G*U), columns by Keras gate
    weight_hh (G*U, U)                     recurrent_kernel (U, G*U)
    bias_ih, bias_hh (G*U,)                bias (G*U,) = bias_ih (bias_hh = 0)
                                           GRU: bias (2, 3*U) = [bias_ih, bias_hh]

Gate orders: LSTM torch i, f, g, o = Keras i, f, c, o; GRU torch r, z, n = Keras z, r, h.
`nn.GRU` applies the reset gate after the recurrent product (`r * (W_hn h + b_hn)`), which is
Keras's `reset_after=True`. In float32 on CUDA, cuDNN's products follow
`torch.backends.cudnn.allow_tf32`, as for `torch.nn.LSTM`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from rnnkit import activations
from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell

# torch's gate order, in Keras's gate names (`cell.gate_names`).
TORCH_GATES = {SimpleRNNCell: ("h",), LSTMCell: ("i", "f", "c", "o"), GRUCell: ("r", "z", "h")}
_SIMPLE_RNN_OPERATORS = {
    activations.tanh: torch.ops.aten.rnn_tanh,
    activations.relu: torch.ops.aten.rnn_relu,
}
DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def keras_rows(cell_class: type, units: int) -> torch.Tensor:
    """Row indices that put torch's gate blocks in Keras's gate order."""
    torch_gates = TORCH_GATES[cell_class]
    blocks = [torch_gates.index(gate) for gate in cell_class.gate_names]
    return torch.cat([torch.arange(b * units, (b + 1) * units) for b in blocks])


def torch_rows(cell_class: type, units: int) -> torch.Tensor:
    """Row indices that put Keras's gate blocks in torch's gate order."""
    return torch.argsort(keras_rows(cell_class, units))


def activation_name(function: Any) -> str:
    """The registered name of an activation, else its repr."""
    try:
        return activations.serialize(function)
    except (TypeError, ValueError):
        return repr(function)


def cell_blocker(cell: nn.Module) -> str | None:
    """None if torch's recurrent operators compute `cell`'s step exactly, else what differs."""
    if type(cell) not in TORCH_GATES:
        return "only SimpleRNN, LSTM and GRU cells have a torch.nn equivalent"
    allowed = (
        (activations.tanh, activations.relu) if type(cell) is SimpleRNNCell else (activations.tanh,)
    )
    if cell.activation not in allowed:
        return (
            f"activation {activation_name(cell.activation)!r} has no torch.nn equivalent "
            f"(torch.nn supports {[activation_name(a) for a in allowed]})"
        )
    recurrent = getattr(cell, "recurrent_activation", activations.sigmoid)
    if recurrent is not activations.sigmoid:
        return (
            f"recurrent_activation {activation_name(recurrent)!r} has no torch.nn equivalent "
            "(torch.nn uses 'sigmoid')"
        )
    if isinstance(cell, GRUCell) and not cell.reset_after:
        return (
            "reset_after=False has no torch.nn equivalent (nn.GRU applies the reset gate after "
            "the recurrent product, Keras's reset_after=True)"
        )
    return None


def supports(
    cell: nn.Module, inputs: torch.Tensor, *, mask: torch.Tensor | None, dropout_masks: Any
) -> str | None:
    """None if `run_torch` computes this call exactly as the loop does, else the reason it
    cannot (it names the option)."""
    blocker = cell_blocker(cell)
    if blocker is not None:
        return blocker
    if mask is not None:
        return "a mask was given (torch's recurrent operators have no masking)"
    if dropout_masks is not None and dropout_masks.recurrent is not None:
        return f"recurrent_dropout={cell.recurrent_dropout} (torch's operators have none)"
    if dropout_masks is not None and dropout_masks.inputs is not None:
        if dropout_masks.inputs.dim() != 2:
            return "the input dropout masks differ by gate"
    device = inputs.device.type
    if cell.dtype not in DTYPES.get(device, ()):
        return f"the weights are {cell.dtype} (torch's operators on {device} run {DTYPES[device]})"
    return None


def _torch_parameters(cell: nn.Module) -> list[torch.Tensor]:
    """[weight_ih, weight_hh(, bias_ih, bias_hh)] in torch's layout, from the cell's weights."""
    rows = torch_rows(type(cell), cell.units).to(cell.device)
    weight_ih = cell.kernel.t()[rows]  # (G*U, F)
    weight_hh = cell.recurrent_kernel.t()[rows]  # (G*U, U)
    if cell.bias is None:
        return [weight_ih, weight_hh]
    if cell.bias.dim() == 2:  # GRU reset_after: input and recurrent biases
        return [weight_ih, weight_hh, cell.bias[0][rows], cell.bias[1][rows]]
    bias_ih = cell.bias[rows]
    return [weight_ih, weight_hh, bias_ih, torch.zeros_like(bias_ih)]


def run_torch(
    cell: nn.Module,
    inputs: torch.Tensor,
    initial_states: list[torch.Tensor],
    *,
    mask: torch.Tensor | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    dropout_masks: Any = None,
    return_sequences: bool = True,
    unroll: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor, list[torch.Tensor]]:
    """Runs `cell` over `inputs` (batch, timesteps, features) with torch's recurrent operator;
    same contract as `rnnkit.kernels.loop.run_loop`, for the calls `supports` accepts (so
    `mask`, `zero_output_for_mask` and `unroll` change nothing here)."""
    inputs = inputs.to(cell.dtype)
    if go_backwards:
        inputs = inputs.flip(1)  # outputs come back in processing order, as the loop's
    if dropout_masks is not None and dropout_masks.inputs is not None:
        inputs = inputs * dropout_masks.inputs.unsqueeze(1)  # (B, 1, F): the same every step
    parameters = _torch_parameters(cell)
    has_biases = len(parameters) == 4
    hx = [state.unsqueeze(0) for state in initial_states]  # (layers=1, B, U) each
    needs_graph = torch.is_grad_enabled() and (
        inputs.requires_grad or any(p.requires_grad for p in parameters + hx)
    )
    # (has_biases, num_layers, dropout, train, bidirectional, batch_first): `train` keeps what
    # cuDNN's backward needs, and means nothing else with no dropout.
    flags = (has_biases, 1, 0.0, needs_graph, False, True)
    with warnings.catch_warnings():
        # cuDNN compacts weights that are not views of one buffer (ours are fresh each call)
        # and warns that nn modules should call flatten_parameters(); nothing to do here.
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        if isinstance(cell, LSTMCell):
            outputs, h, c = torch.ops.aten.lstm.input(inputs, hx, parameters, *flags)
            states = [h[0], c[0]]
        else:
            operator = (
                torch.ops.aten.gru
                if isinstance(cell, GRUCell)
                else _SIMPLE_RNN_OPERATORS[cell.activation]
            )
            outputs, h = operator.input(inputs, hx[0], parameters, *flags)
            states = [h[0]]
    return (outputs if return_sequences else None), outputs[:, -1], states
