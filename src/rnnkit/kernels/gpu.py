"""The Triton path: `blocker` says whether it can run a call, `run_gpu` runs it.

`run_gpu` is a `Kernel` (`rnnkit.kernels.spec`). It projects all timesteps' inputs with one
matrix product in PyTorch (so autograd handles the kernel, the input bias and input dropout),
then hands the recurrence to the persistent Triton kernels of `rnnkit.kernels.triton_kernels`
through a `torch.autograd.Function`. Its backward runs the sequential Triton pass for the
gradients of the pre-activations and the initial states, then forms the recurrent kernel's
gradient as large matrix products over all rows and timesteps:

    dR[:, gate g] = sum over (b, t) of (h_{t-1} * m_g)^T @ dz_g      # (U, U) per gate

(one product for every gate at once when recurrent dropout is shared by the gates or off; for
GRU with `reset_after=False` the h-gate's product uses r * h_{t-1} * m_h instead).

Of `rnnkit.kernels.loop.run_loop`'s rules it reproduces (projection) as the loop does, with the
cell's kernel and input bias; (order), (step), (mask) and (unroll) in the Triton kernels, through
per-step flags (REAL, REPEAT, ZERO) worked out here from the mask; and (last).

Runs on CUDA tensors, or on CPU tensors in Triton's interpreter when `TRITON_INTERPRET=1` was
set before this module was imported. Inputs in float32, bfloat16, float16 and float64; states
and gate arithmetic in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from rnnkit.kernels.dropout import masked_matmul
from rnnkit.kernels.loop import zero_masked_steps
from rnnkit.kernels.spec import (
    CellKind,
    KernelResult,
    Recurrence,
    input_dropout,
    recurrent_dropout,
)

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


def _block_units(units: int) -> int:
    return max(16, 1 << (units - 1).bit_length())


def _name(function: object) -> str:
    return getattr(function, "__name__", repr(function))


def blocker(recurrence: Recurrence, inputs: torch.Tensor) -> str | None:
    """None if the Triton kernels can run the call over `inputs`, else the reason they cannot
    (it names the option that blocks them)."""
    spec = recurrence.cell
    if kernels is None:
        return f"triton is not importable ({IMPORT_ERROR})"
    if spec.kind is None:
        return (
            f"the cell is a {spec.name} (Triton kernels exist for SimpleRNNCell, LSTMCell and "
            "GRUCell)"
        )
    implemented = kernels.IMPLEMENTED_ACTIVATIONS
    for argument, code, function in (
        ("activation", spec.activation_code, spec.activation),
        ("recurrent_activation", spec.recurrent_activation_code, spec.recurrent_activation),
    ):
        if code not in implemented:
            return (
                f"`{argument}={_name(function)}` has no Triton implementation (implemented: "
                f"{', '.join(code.name.lower() for code in implemented)})"
            )
    if spec.dtype not in DTYPES:
        names = ", ".join(str(dtype) for dtype in DTYPES)
        return f"the weights are {spec.dtype} (Triton kernels run {names})"
    if inputs.dtype != spec.dtype:
        return f"the inputs are {inputs.dtype} but the weights are {spec.dtype}"
    if inputs.device != spec.device:
        return f"the inputs are on {inputs.device} but the weights are on {spec.device}"
    if inputs.device.type != "cuda" and not (INTERPRETING and inputs.device.type == "cpu"):
        return (
            f"the inputs are on {inputs.device} (Triton kernels run on CUDA, or on the CPU "
            "under TRITON_INTERPRET=1)"
        )
    largest = MAX_BLOCK_UNITS[spec.gates][spec.dtype]
    if _block_units(spec.units) > largest:
        return (
            f"`units={spec.units}` is too large to keep the recurrent kernel of a "
            f"{spec.name} in one program ({spec.dtype} weights: at most {largest})"
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
        lstm = cell == CellKind.LSTM
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
        aux = saved(save and cell != CellKind.SIMPLE_RNN, batch, timesteps, units)
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
        gru_after = cell == CellKind.GRU_RESET_AFTER
        lstm = cell == CellKind.LSTM
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
    if cell == CellKind.GRU_RESET_AFTER:
        dproduct = torch.cat([dxproj[..., : 2 * units], dinner], dim=-1)  # (B, T, 3U)
    elif cell == CellKind.GRU_RESET_BEFORE:
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
    if cell == CellKind.GRU_RESET_BEFORE:
        inner = (aux.flip(1) if backwards else aux).to(dtype).flatten(0, 1)  # r * h * m_h
        drecurrent[:, 2 * units :] = inner.t() @ dxproj[..., 2 * units :].flatten(0, 1)
    dbias = dproduct.sum((0, 1)) if cell == CellKind.GRU_RESET_AFTER else None
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
    recurrence: Recurrence, inputs: torch.Tensor, initial_states: list[torch.Tensor]
) -> KernelResult:
    """Runs a built-in cell over `inputs` with the Triton kernels; same contract as
    `rnnkit.kernels.loop.run_loop`.

    Raises:
        ValueError: when `blocker(recurrence, inputs)` finds something that blocks the kernels,
            or the mask is not `(batch, timesteps)`.
    """
    reason = blocker(recurrence, inputs)
    if reason is not None:
        raise ValueError(f"run_gpu: the Triton kernels cannot run: {reason}.")
    spec, mask = recurrence.cell, recurrence.mask
    batch, timesteps = inputs.shape[:2]
    if mask is not None and tuple(mask.shape) != (batch, timesteps):
        raise ValueError(
            f"run_gpu: argument `mask` must have shape {(batch, timesteps)}, "
            f"received {tuple(mask.shape)}."
        )
    kind, units = spec.kind, spec.units
    recurrent_mask = recurrent_dropout(recurrence)
    inputs = zero_masked_steps(inputs, mask)
    xproj = masked_matmul(inputs, spec.kernel, input_dropout(recurrence))  # (B, T, G*U)
    if spec.input_bias is not None:
        xproj = xproj + spec.input_bias
    xproj = xproj.contiguous()
    recurrent_bias = spec.recurrent_bias
    if recurrent_bias is None:
        recurrent_bias = torch.zeros(spec.gates * units, dtype=xproj.dtype, device=xproj.device)
    if recurrent_mask is not None:
        recurrent_mask = recurrent_mask.to(xproj.dtype).contiguous()
    flags = _step_flags(
        mask,
        (batch, timesteps),
        inputs.device,
        go_backwards=recurrence.go_backwards,
        zero_output_for_mask=recurrence.zero_output_for_mask,
        unroll=recurrence.unroll,
    )
    lstm = kind == CellKind.LSTM
    h0 = initial_states[0].contiguous()
    c0 = initial_states[1].contiguous() if lstm else None
    differentiable = (xproj, spec.recurrent_kernel, recurrent_bias, h0, c0)
    options = (
        kind.value,
        recurrence.go_backwards,
        spec.activation_code.value,
        spec.recurrent_activation_code.value,
        # What the backward pass reads is kept only when there will be one.
        torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in differentiable),
    )
    out, h, c = _TritonRecurrence.apply(
        xproj, spec.recurrent_kernel.contiguous(), recurrent_bias.contiguous(), h0, c0, flags,
        recurrent_mask, options,
    )  # fmt: skip
    states = [h, c] if lstm else [h]
    return (out if recurrence.return_sequences else None), out[:, -1], states
