"""The fused CPU path: `supports` says whether it can run a cell, `run_fused` runs it.

`run_fused` has `run_loop`'s signature and result. It projects all timesteps' inputs with one
matrix product in PyTorch (so autograd handles the kernel, the input bias and input dropout),
then hands the recurrence to the compiled kernels in `rnnkit.kernels.cpu` through a
`torch.autograd.Function` whose backward runs the compiled backward pass.
"""

from __future__ import annotations

from typing import Any

import numba
import torch
from torch import nn

from rnnkit import activations
from rnnkit.kernels import cpu
from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell

_CELL_CODES = {SimpleRNNCell: cpu.SIMPLE, LSTMCell: cpu.LSTM}
_ACTIVATIONS = {id(activations.get(name)): code for name, code in cpu.ACTIVATION_CODES.items()}


def _cell_code(cell: nn.Module) -> int | None:
    if type(cell) is GRUCell:
        return cpu.GRU_AFTER if cell.reset_after else cpu.GRU_BEFORE
    return _CELL_CODES.get(type(cell))


def supports(cell: nn.Module) -> str | None:
    """None if the fused kernel can run `cell`, else the reason it cannot (names the option)."""
    if _cell_code(cell) is None:
        return (
            f"the cell is a {type(cell).__name__} (fused kernels exist for SimpleRNNCell, "
            "LSTMCell and GRUCell)"
        )
    for argument in ("activation", "recurrent_activation"):
        function = getattr(cell, argument, None)
        if function is not None and id(function) not in _ACTIVATIONS:
            name = getattr(function, "__name__", repr(function))
            return f"`{argument}={name}` has no fused implementation"
    if cell.dtype not in (torch.float32, torch.float64):
        return f"the weights are {cell.dtype} (fused kernels run float32 and float64)"
    if cell.device.type != "cpu":
        return f"the weights are on {cell.device} (the fused kernels run on the CPU)"
    return None


def _as_numpy(tensor: torch.Tensor) -> Any:
    return tensor.detach().contiguous().numpy()


def _by_gate(recurrent_kernel: torch.Tensor, transpose: bool = False) -> Any:
    """The recurrent kernel (U, G*U) as G contiguous (U, U) blocks, each transposed if asked."""
    units = recurrent_kernel.shape[0]
    blocks = recurrent_kernel.detach().reshape(units, -1, units).permute(1, 0, 2)
    return (blocks.transpose(1, 2) if transpose else blocks).contiguous().numpy()


def _empty(condition: bool, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A buffer of `shape` where the kernel fills it, else a one-element stand-in it ignores."""
    return torch.empty(shape if condition else (1,) * len(shape), dtype=dtype)


class _FusedRecurrence(torch.autograd.Function):
    """Autograd wrapper around the compiled forward and backward recurrences."""

    @staticmethod
    def forward(ctx, xproj, recurrent_kernel, recurrent_bias, h0, c0, keep, rmask, options):
        cell, backwards, zero_output, zero_leading, act, ract, masked, save = options
        batch, timesteps, width = xproj.shape
        units = recurrent_kernel.shape[0]
        gate_shape = (width // units, units)
        dtype = xproj.dtype
        keep_pre = cpu.SILU in (act, ract)
        out = torch.empty(batch, timesteps, units, dtype=dtype)
        h_last = torch.empty(batch, units, dtype=dtype)
        c_last = torch.empty(batch, units, dtype=dtype)
        hs = _empty(save, (batch, timesteps + 1, units), dtype)
        cs = _empty(save and cell == cpu.LSTM, (batch, timesteps + 1, units), dtype)
        gates = _empty(save, (batch, timesteps, *gate_shape), dtype)
        pre = _empty(save and keep_pre, (batch, timesteps, *gate_shape), dtype)
        aux = _empty(save and cell != cpu.SIMPLE, (batch, timesteps, units), dtype)
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        cpu.forward(
            cell, _as_numpy(xproj).reshape(batch, timesteps, *gate_shape),
            _as_numpy(recurrent_kernel), _by_gate(recurrent_kernel),
            _as_numpy(recurrent_bias).reshape(gate_shape), _as_numpy(h0), _as_numpy(c0),
            _as_numpy(keep), _as_numpy(rmask), masked, backwards, zero_output, zero_leading,
            act, ract, dtype == torch.float64, out.numpy(), h_last.numpy(), c_last.numpy(),
            save, hs.numpy(), cs.numpy(), gates.numpy(), pre.numpy(), keep_pre, aux.numpy(),
        )  # fmt: skip
        ctx.save_for_backward(recurrent_kernel, keep, rmask, hs, cs, gates, pre, aux)
        ctx.options = options
        return out, h_last, c_last

    @staticmethod
    def backward(ctx, dout, dh_last, dc_last):
        recurrent_kernel, keep, rmask, hs, cs, gates, pre, aux = ctx.saved_tensors
        cell, backwards, zero_output, zero_leading, act, ract, masked, _ = ctx.options
        batch, timesteps, units = dout.shape
        n_gates = gates.shape[2]
        dtype = dout.dtype
        chunks = (batch + cpu.CHUNK - 1) // cpu.CHUNK
        dxproj = torch.empty_like(gates)
        dR_chunks = torch.empty(chunks, units, n_gates * units, dtype=dtype)
        dRg_chunks = torch.empty(chunks, n_gates, units, units, dtype=dtype)
        dbrec_chunks = torch.empty(chunks, n_gates * units, dtype=dtype)
        dh0 = torch.empty(batch, units, dtype=dtype)
        dc0 = torch.empty(batch, units, dtype=dtype)
        zeros = torch.zeros(batch, units, dtype=dtype)
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        cpu.backward(
            cell, _as_numpy(recurrent_kernel), _as_numpy(recurrent_kernel.t()),
            _by_gate(recurrent_kernel, transpose=True), _as_numpy(keep), _as_numpy(rmask),
            masked, backwards, zero_output, zero_leading, act, ract, dtype == torch.float64,
            hs.numpy(), cs.numpy(), gates.numpy(), pre.numpy(), cpu.SILU in (act, ract),
            aux.numpy(), _as_numpy(dout),
            _as_numpy(dh_last if dh_last is not None else zeros),
            _as_numpy(dc_last if dc_last is not None else zeros),
            dxproj.numpy(), dR_chunks.numpy(), dRg_chunks.numpy(), dbrec_chunks.numpy(),
            dh0.numpy(), dc0.numpy(),
        )  # fmt: skip
        by_gate = dRg_chunks.sum(0).permute(1, 0, 2).reshape(units, n_gates * units)
        drecurrent = dR_chunks.sum(0) + by_gate
        return dxproj.flatten(2), drecurrent, dbrec_chunks.sum(0), dh0, dc0, None, None, None


def run_fused(
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
    """Runs a built-in cell over `inputs` with the compiled kernels; same contract as
    `rnnkit.kernels.loop.run_loop`."""
    code = _cell_code(cell)
    gates, units = cell.gates, cell.units
    batch = inputs.shape[0]
    input_mask = dropout_masks.inputs if dropout_masks is not None else None
    recurrent_mask = dropout_masks.recurrent if dropout_masks is not None else None
    xproj = cell.project_inputs(inputs, input_mask)  # (batch, timesteps, gates*units)
    dtype = xproj.dtype
    if recurrent_mask is None:
        rmask = torch.ones(batch, gates, units, dtype=dtype)
    elif recurrent_mask.dim() == 2:
        rmask = recurrent_mask.unsqueeze(1).expand(batch, gates, units)
    else:
        rmask = recurrent_mask
    if code == cpu.GRU_AFTER and cell.bias is not None:
        recurrent_bias = cell.bias[1]
    else:
        recurrent_bias = torch.zeros(gates * units, dtype=dtype)
    keep = mask if mask is not None else torch.ones(inputs.shape[:2], dtype=torch.bool)
    h0 = initial_states[0]
    c0 = initial_states[1] if code == cpu.LSTM else torch.zeros_like(h0)
    differentiable = (xproj, cell.recurrent_kernel, recurrent_bias, h0, c0)
    options = (
        code,
        go_backwards,
        zero_output_for_mask,
        unroll,
        _ACTIVATIONS[id(cell.activation)],
        _ACTIVATIONS.get(id(getattr(cell, "recurrent_activation", None)), cpu.LINEAR),
        recurrent_mask is not None,
        # What the backward pass reads is kept only when there will be one.
        torch.is_grad_enabled() and any(t.requires_grad for t in differentiable),
    )
    out, h, c = _FusedRecurrence.apply(*differentiable, keep, rmask.to(dtype), options)
    states = [h, c] if code == cpu.LSTM else [h]
    return (out if return_sequences else None), out[:, -1], states


def compile_kernels() -> None:
    """Compiles (or loads from Numba's cache) the kernels for float32 and float64 by running
    a tiny sequence forward and backward; prints how long it took."""
    import time

    from rnnkit.layers import SimpleRNN

    start = time.perf_counter()
    for dtype in (torch.float32, torch.float64):
        layer = SimpleRNN(2, use_fused=True, dtype=dtype)
        layer(torch.ones(1, 2, 1, dtype=dtype)).sum().backward()
    print(f"rnnkit fused kernels ready ({time.perf_counter() - start:.1f} s)")
