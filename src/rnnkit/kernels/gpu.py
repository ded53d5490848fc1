"""The Triton path: `supports` says whether it can run a cell, `run_gpu` runs it.

`run_gpu` has `run_loop`'s signature and result. It projects all timesteps' inputs with one
matrix product in PyTorch (so autograd handles the kernel, the input bias and input dropout),
then hands the recurrence to the persistent Triton kernels of `rnnkit.kernels.triton_kernels`
through a `torch.autograd.Function`. Its backward runs the sequential Triton pass for the
gradients of the pre-activations and the initial states, then forms the recurrent kernel's
gradient as large matrix products over all rows and timesteps:

    dR[:, gate g] = sum over (b, t) of (h_{t-1} * m_g)^T @ dz_g      # (U, U) per gate

(one product for every gate at once when recurrent dropout is shared by the gates or off; for
GRU with `reset_after=False` the h-gate's product uses r * h_{t-1} * m_h instead).

Runs on CUDA tensors, or on CPU tensors in Triton's interpreter when `TRITON_INTERPRET=1` was
set before this module was imported. Inputs in float32, bfloat16, float16 and float64; states
and gate arithmetic in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from rnnkit import activations
from rnnkit.kernels.loop import zero_masked_steps
from rnnkit.layers.cells import GRUCell, LSTMCell, SimpleRNNCell

try:
    from rnnkit.kernels import triton_kernels as kernels

    IMPORT_ERROR: str | None = None
except ImportError as error:  # Triton is not installed, or does not load here
    kernels = None
    IMPORT_ERROR = str(error)

# Read once, as `triton.jit` does when it decorates the kernels at import.
INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
BLOCK_B = 16  # batch rows per program; tl.dot needs at least 16
# One program holds the recurrent kernel as G tiles of (BLOCK_U, BLOCK_U), BLOCK_U the power of
# two >= max(units, 16). The largest BLOCK_U whose forward and backward kernels fit in the
# 227 KiB of shared memory an H100/H200 gives one program, by number of gates and weight dtype
# (measured with `triton.compile` for sm_90, Triton 3.9, BLOCK_B = 16):
MAX_BLOCK_UNITS = {
    1: {torch.float32: 128, torch.bfloat16: 256, torch.float16: 256, torch.float64: 128},
    3: {torch.float32: 64, torch.bfloat16: 128, torch.float16: 128, torch.float64: 64},
    4: {torch.float32: 64, torch.bfloat16: 64, torch.float16: 64, torch.float64: 32},
}
DTYPES = tuple(MAX_BLOCK_UNITS[1])


def _cell_code(cell: nn.Module) -> int | None:
    if kernels is None:
        return None
    if type(cell) is GRUCell:
        return (kernels.GRU_AFTER if cell.reset_after else kernels.GRU_BEFORE).value
    codes = {SimpleRNNCell: kernels.SIMPLE.value, LSTMCell: kernels.LSTM.value}
    return codes.get(type(cell))


def _activation_code(function: Any) -> int | None:
    for name, code in kernels.ACTIVATION_CODES.items():
        if function is activations.get(name):
            return code
    return None


def _block_units(units: int) -> int:
    return max(16, 1 << (units - 1).bit_length())


def supports(cell: nn.Module, inputs: torch.Tensor) -> str | None:
    """None if the Triton kernels can run `cell` over `inputs`, else the reason they cannot
    (it names the option that blocks them)."""
    if kernels is None:
        return f"triton is not importable ({IMPORT_ERROR})"
    if _cell_code(cell) is None:
        return (
            f"the cell is a {type(cell).__name__} (Triton kernels exist for SimpleRNNCell, "
            "LSTMCell and GRUCell)"
        )
    for argument in ("activation", "recurrent_activation"):
        function = getattr(cell, argument, None)
        if function is not None and _activation_code(function) is None:
            name = getattr(function, "__name__", repr(function))
            return (
                f"`{argument}={name}` has no Triton implementation (implemented: "
                f"{', '.join(kernels.ACTIVATION_CODES)})"
            )
    if cell.dtype not in DTYPES:
        names = ", ".join(str(dtype) for dtype in DTYPES)
        return f"the weights are {cell.dtype} (Triton kernels run {names})"
    if inputs.dtype != cell.dtype:
        return f"the inputs are {inputs.dtype} but the weights are {cell.dtype}"
    if inputs.device != cell.device:
        return f"the inputs are on {inputs.device} but the weights are on {cell.device}"
    if inputs.device.type != "cuda" and not (INTERPRETING and inputs.device.type == "cpu"):
        return (
            f"the inputs are on {inputs.device} (Triton kernels run on CUDA, or on the CPU "
            "under TRITON_INTERPRET=1)"
        )
    largest = MAX_BLOCK_UNITS[cell.gates][cell.dtype]
    if _block_units(cell.units) > largest:
        return (
            f"`units={cell.units}` is too large to keep the recurrent kernel of a "
            f"{type(cell).__name__} in one program ({cell.dtype} weights: at most {largest})"
        )
    return None


def _accumulator(dtype: torch.dtype) -> Any:
    return kernels.tl.float64 if dtype == torch.float64 else kernels.tl.float32


def _mask_strides(rmask: torch.Tensor | None) -> tuple[int, int]:
    """(row stride, gate stride) of a contiguous recurrent dropout mask (B, U) or (B, G, U)."""
    if rmask is None:
        return 0, 0
    if rmask.dim() == 2:
        return rmask.shape[1], 0
    return rmask.shape[1] * rmask.shape[2], rmask.shape[2]


def _launch_options(xproj: torch.Tensor, units: int) -> dict[str, Any]:
    block_units = _block_units(units)
    return {
        "UPCAST": INTERPRETING,
        "ACC": _accumulator(xproj.dtype),
        "BLOCK_B": BLOCK_B,
        "BLOCK_U": block_units,
        "num_warps": 4 if xproj.shape[2] // units * block_units**2 <= 4 * 64 * 64 else 8,
    }


def _grid(batch: int) -> tuple[int]:
    return ((batch + BLOCK_B - 1) // BLOCK_B,)


class _TritonRecurrence(torch.autograd.Function):
    """Autograd wrapper around the Triton forward and backward recurrences."""

    @staticmethod
    def forward(ctx, xproj, recurrent_kernel, recurrent_bias, h0, c0, flags, rmask, options):
        cell, backwards, act, ract, save = options
        batch, timesteps, width = xproj.shape
        units = recurrent_kernel.shape[0]
        lstm = cell == kernels.LSTM.value
        acc = torch.float64 if xproj.dtype == torch.float64 else torch.float32

        def saved(condition: bool, *shape: int) -> torch.Tensor:
            size = shape if condition else (1,)
            return torch.empty(size, dtype=acc, device=xproj.device)

        out = torch.empty(batch, timesteps, units, dtype=xproj.dtype, device=xproj.device)
        h_last = torch.empty_like(h0)
        c_last = torch.empty_like(c0) if lstm else torch.zeros_like(h0)
        hs = saved(save, batch, timesteps + 1, units)
        cs = saved(save and lstm, batch, timesteps + 1, units)
        gates = saved(save, batch, timesteps, width)
        aux = saved(save and cell != kernels.SIMPLE.value, batch, timesteps, units)
        row_stride, gate_stride = _mask_strides(rmask)
        kernels.forward_kernel[_grid(batch)](
            xproj, recurrent_kernel, recurrent_bias, h0, c0 if lstm else h0, flags,
            rmask if rmask is not None else h0, out, h_last, c_last, hs, cs, gates, aux,
            batch, timesteps, units, row_stride, gate_stride,
            CELL=cell, GATES=width // units, ACT=act, RACT=ract, BACKWARDS=backwards,
            MASKED=rmask is not None, SAVE=save, **_launch_options(xproj, units),
        )  # fmt: skip
        ctx.save_for_backward(recurrent_kernel, flags, rmask, hs, cs, gates, aux)
        ctx.options = options
        if not lstm:
            ctx.mark_non_differentiable(c_last)
        return out, h_last, c_last

    @staticmethod
    def backward(ctx, dout, dh_last, dc_last):
        recurrent_kernel, flags, rmask, hs, cs, gates, aux = ctx.saved_tensors
        cell, backwards, act, ract, _ = ctx.options
        batch, timesteps, units = dout.shape
        width = recurrent_kernel.shape[1]
        device = dout.device
        dtype = recurrent_kernel.dtype
        gru_after = cell == kernels.GRU_AFTER.value
        lstm = cell == kernels.LSTM.value
        dxproj = torch.empty(batch, timesteps, width, dtype=dtype, device=device)
        dinner = torch.empty(
            batch, timesteps, units if gru_after else 1, dtype=dtype, device=device
        )
        dh0 = torch.empty(batch, units, dtype=dh_last.dtype, device=device)
        dc0 = torch.empty_like(dh0) if lstm else None
        row_stride, gate_stride = _mask_strides(rmask)
        kernels.backward_kernel[_grid(batch)](
            recurrent_kernel, flags, rmask if rmask is not None else hs, hs, cs, gates, aux,
            dout.contiguous(), dh_last.contiguous(), dc_last.contiguous(), dxproj, dinner,
            dh0, dc0 if lstm else dh0, batch, timesteps, units, row_stride, gate_stride,
            CELL=cell, GATES=width // units, ACT=act, RACT=ract, BACKWARDS=backwards,
            MASKED=rmask is not None, **_launch_options(dxproj, units),
        )  # fmt: skip
        drecurrent = dbias = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            drecurrent, dbias = _weight_gradients(
                cell, backwards, hs, aux, rmask, dxproj, dinner, recurrent_kernel
            )
        return dxproj, drecurrent, dbias, dh0, dc0, None, None, None


def _weight_gradients(cell, backwards, hs, aux, rmask, dxproj, dinner, recurrent_kernel):
    """The gradients of the recurrent kernel (U, G*U) and of the recurrent bias (G*U,) from
    the states and the pre-activation gradients, as matrix products over all (b, t)."""
    units = recurrent_kernel.shape[0]
    dtype = recurrent_kernel.dtype
    states = hs[:, :-1].to(dtype)  # (B, T, U): the state each step reads, processing order
    if backwards:  # to time order, as dxproj is
        states = states.flip(1)
    if cell == kernels.GRU_AFTER.value:
        dproduct = torch.cat([dxproj[..., : 2 * units], dinner], dim=-1)  # (B, T, 3U)
    elif cell == kernels.GRU_BEFORE.value:
        dproduct = dxproj[..., : 2 * units]  # z and r; the h-gate's product reads r * h * m_h
    else:
        dproduct = dxproj
    product_gates = dproduct.shape[-1] // units
    drecurrent = torch.empty_like(recurrent_kernel)
    if rmask is None or rmask.dim() == 2:
        masked = states if rmask is None else states * rmask.unsqueeze(1).to(dtype)
        drecurrent[:, : product_gates * units] = masked.flatten(0, 1).t() @ dproduct.flatten(0, 1)
    else:
        for gate in range(product_gates):
            masked = (states * rmask[:, gate].unsqueeze(1).to(dtype)).flatten(0, 1)  # (B*T, U)
            columns = slice(gate * units, (gate + 1) * units)
            drecurrent[:, columns] = masked.t() @ dproduct[..., columns].flatten(0, 1)
    if cell == kernels.GRU_BEFORE.value:
        inner = (aux.flip(1) if backwards else aux).to(dtype).flatten(0, 1)  # r * h * m_h
        drecurrent[:, 2 * units :] = inner.t() @ dxproj[..., 2 * units :].flatten(0, 1)
    dbias = dproduct.sum((0, 1)) if cell == kernels.GRU_AFTER.value else None
    return drecurrent, dbias


def _step_flags(
    mask: torch.Tensor | None,
    shape: tuple[int, int],
    device: torch.device,
    *,
    go_backwards: bool,
    zero_output_for_mask: bool,
    unroll: bool,
) -> torch.Tensor:
    """(B, T) int8 in processing order: REAL, REPEAT (a masked step repeating the previous
    output) or ZERO (a masked step outputting zeros: always with `zero_output_for_mask`, and
    before a row's first real step with `unroll`)."""
    if mask is None:
        return torch.full(shape, kernels.REAL.value, dtype=torch.int8, device=device)
    keep = mask.to(device=device, dtype=torch.bool)
    if go_backwards:
        keep = keep.flip(1)
    zero = torch.full_like(keep, zero_output_for_mask)
    if unroll:
        zero |= keep.cumsum(1) == 0
    flags = torch.where(zero, kernels.ZERO.value, kernels.REPEAT.value)
    return torch.where(keep, kernels.REAL.value, flags).to(torch.int8)


def run_gpu(
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
    """Runs a built-in cell over `inputs` with the Triton kernels; same contract as
    `rnnkit.kernels.loop.run_loop`.

    Raises:
        ValueError: when `supports(cell, inputs)` finds something that blocks the kernels, or
            `mask` is not `(batch, timesteps)`.
    """
    blocker = supports(cell, inputs)
    if blocker is not None:
        raise ValueError(f"run_gpu: the Triton kernels cannot run: {blocker}.")
    batch, timesteps = inputs.shape[:2]
    if mask is not None and tuple(mask.shape) != (batch, timesteps):
        raise ValueError(
            f"run_gpu: argument `mask` must have shape {(batch, timesteps)}, "
            f"received {tuple(mask.shape)}."
        )
    code = _cell_code(cell)
    units = cell.units
    input_mask = dropout_masks.inputs if dropout_masks is not None else None
    recurrent_mask = dropout_masks.recurrent if dropout_masks is not None else None
    inputs = zero_masked_steps(inputs, mask)
    xproj = cell.project_inputs(inputs, input_mask).contiguous()  # (B, T, G*U)
    if code == kernels.GRU_AFTER.value and cell.bias is not None:
        recurrent_bias = cell.bias[1]
    else:
        recurrent_bias = torch.zeros(cell.gates * units, dtype=xproj.dtype, device=xproj.device)
    if recurrent_mask is not None:
        recurrent_mask = recurrent_mask.to(xproj.dtype).contiguous()
    flags = _step_flags(
        mask,
        (batch, timesteps),
        inputs.device,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        unroll=unroll,
    )
    lstm = code == kernels.LSTM.value
    h0 = initial_states[0].contiguous()
    c0 = initial_states[1].contiguous() if lstm else None
    differentiable = (xproj, cell.recurrent_kernel, recurrent_bias, h0, c0)
    options = (
        code,
        go_backwards,
        _activation_code(cell.activation),
        _activation_code(getattr(cell, "recurrent_activation", activations.linear)),
        # What the backward pass reads is kept only when there will be one.
        torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in differentiable),
    )
    out, h, c = _TritonRecurrence.apply(
        xproj, cell.recurrent_kernel.contiguous(), recurrent_bias.contiguous(), h0, c0, flags,
        recurrent_mask, options,
    )  # fmt: skip
    states = [h, c] if lstm else [h]
    return (out if return_sequences else None), out[:, -1], states
