"""PyTorch's own recurrent operators as a kernel: cuDNN on CUDA, oneDNN (or ATen) on the CPU.

Where their recurrence is exactly the cell's — SimpleRNN with tanh or relu; LSTM, and GRU with
`reset_after=True`, with tanh and sigmoid; no mask; no recurrent dropout — `run_torch` hands the
whole sequence to `torch.ops.aten.rnn_tanh` / `rnn_relu` / `lstm` / `gru`, the operators behind
`torch.nn.RNN`/`LSTM`/`GRU`. `blocker` says whether it can, naming what blocks it.

Of `rnnkit.kernels.loop.run_loop`'s rules it reproduces (projection) with input dropout shared
by the gates (multiplied into the inputs), (order) by flipping the inputs, (step) in torch's
operator, and (last); calls with a mask or recurrent dropout, which (mask), (unroll) and
per-gate dropout would need, are blocked. The weights
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

import torch

from rnnkit import activations
from rnnkit.activations import ActivationCode
from rnnkit.kernels.spec import (
    GATE_NAMES,
    CellKind,
    CellSpec,
    KernelResult,
    Recurrence,
    input_dropout,
    recurrent_dropout,
)

# torch's gate order, in Keras's gate names (`GATE_NAMES`).
TORCH_GATES = {
    CellKind.SIMPLE_RNN: ("h",),
    CellKind.LSTM: ("i", "f", "c", "o"),
    CellKind.GRU_RESET_AFTER: ("r", "z", "h"),
}
_SIMPLE_RNN_OPERATORS = {
    ActivationCode.TANH: torch.ops.aten.rnn_tanh,
    ActivationCode.RELU: torch.ops.aten.rnn_relu,
}
DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def keras_rows(kind: CellKind, units: int) -> torch.Tensor:
    """Row indices that put torch's gate blocks in Keras's gate order."""
    torch_gates = TORCH_GATES[kind]
    blocks = [torch_gates.index(gate) for gate in GATE_NAMES[kind]]
    return torch.cat([torch.arange(b * units, (b + 1) * units) for b in blocks])


def torch_rows(kind: CellKind, units: int) -> torch.Tensor:
    """Row indices that put Keras's gate blocks in torch's gate order."""
    return torch.argsort(keras_rows(kind, units))


def activation_name(function: object) -> str:
    """The registered name of an activation, else its repr."""
    try:
        return activations.serialize(function)
    except (TypeError, ValueError):
        return repr(function)


def cell_blocker(spec: CellSpec) -> str | None:
    """None if torch's recurrent operators compute the cell's step exactly, else what differs."""
    if spec.kind is None:
        return "only SimpleRNN, LSTM and GRU cells have a torch.nn equivalent"
    simple = spec.kind == CellKind.SIMPLE_RNN
    allowed = tuple(_SIMPLE_RNN_OPERATORS) if simple else (ActivationCode.TANH,)
    if spec.activation_code not in allowed:
        names = [code.name.lower() for code in allowed]
        return (
            f"activation {activation_name(spec.activation)!r} has no torch.nn equivalent "
            f"(torch.nn supports {names})"
        )
    if not simple and spec.recurrent_activation_code != ActivationCode.SIGMOID:
        return (
            f"recurrent_activation {activation_name(spec.recurrent_activation)!r} has no "
            "torch.nn equivalent (torch.nn uses 'sigmoid')"
        )
    if spec.kind == CellKind.GRU_RESET_BEFORE:
        return (
            "reset_after=False has no torch.nn equivalent (nn.GRU applies the reset gate after "
            "the recurrent product, Keras's reset_after=True)"
        )
    return None


def blocker(recurrence: Recurrence, inputs: torch.Tensor) -> str | None:
    """None if `run_torch` computes this call exactly as the loop does, else the reason it
    cannot (it names the option)."""
    spec = recurrence.cell
    reason = cell_blocker(spec)
    if reason is not None:
        return reason
    if recurrence.mask is not None:
        return "a mask was given (torch's recurrent operators have no masking)"
    recurrent_mask = recurrent_dropout(recurrence)
    if recurrent_mask is not None:
        return f"recurrent_dropout={spec.recurrent_dropout} (torch's operators have none)"
    input_mask = input_dropout(recurrence)
    if input_mask is not None and input_mask.dim() != 2:
        return "the input dropout masks differ by gate"
    device = inputs.device.type
    if spec.dtype not in DTYPES.get(device, ()):
        return f"the weights are {spec.dtype} (torch's operators on {device} run {DTYPES[device]})"
    return None


def _torch_parameters(spec: CellSpec) -> list[torch.Tensor]:
    """[weight_ih, weight_hh(, bias_ih, bias_hh)] in torch's layout, from the cell's weights."""
    rows = torch_rows(spec.kind, spec.units).to(spec.device)
    weight_ih = spec.kernel.t()[rows]  # (G*U, F)
    weight_hh = spec.recurrent_kernel.t()[rows]  # (G*U, U)
    if spec.input_bias is None:
        return [weight_ih, weight_hh]
    bias_ih = spec.input_bias[rows]
    if spec.recurrent_bias is None:
        return [weight_ih, weight_hh, bias_ih, torch.zeros_like(bias_ih)]
    return [weight_ih, weight_hh, bias_ih, spec.recurrent_bias[rows]]


def run_torch(
    recurrence: Recurrence, inputs: torch.Tensor, initial_states: list[torch.Tensor]
) -> KernelResult:
    """Runs the cell over `inputs` (batch, timesteps, features) with torch's recurrent operator;
    same contract as `rnnkit.kernels.loop.run_loop`, for the calls `blocker` accepts (so the
    mask, `zero_output_for_mask` and `unroll` change nothing here)."""
    spec = recurrence.cell
    inputs = inputs.to(spec.dtype)
    if recurrence.go_backwards:
        inputs = inputs.flip(1)  # outputs come back in processing order, as the loop's
    input_mask = input_dropout(recurrence)
    if input_mask is not None:
        inputs = inputs * input_mask.unsqueeze(1)  # (B, 1, F): the same every step
    parameters = _torch_parameters(spec)
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
        if spec.kind == CellKind.LSTM:
            outputs, h, c = torch.ops.aten.lstm.input(inputs, hx, parameters, *flags)
            states = [h[0], c[0]]
        else:
            operator = (
                torch.ops.aten.gru
                if spec.kind == CellKind.GRU_RESET_AFTER
                else _SIMPLE_RNN_OPERATORS[spec.activation_code]
            )
            outputs, h = operator.input(inputs, hx[0], parameters, *flags)
            states = [h[0]]
    return (outputs if recurrence.return_sequences else None), outputs[:, -1], states
