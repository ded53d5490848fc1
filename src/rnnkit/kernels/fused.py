"""The fused CPU path: `supports` says whether it can run a cell, `run_fused` runs it.

`run_fused` has `run_loop`'s signature and result. It hands the whole sequence — each step's
input and recurrent products, gates, masks and direction — to the compiled kernels in
`rnnkit.kernels.cpu` through a `torch.autograd.Function` whose backward runs the compiled
backward pass and then the weight gradients as long products over every row and step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnkit import activations
from rnnkit.kernels import buffers, cpu
from rnnkit.kernels.loop import zero_masked_steps
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
    return cpu.unavailable()


def _buffer(condition: bool, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A buffer of `shape` where the kernel fills it, else a one-element stand-in it ignores."""
    return buffers.numpy_empty(shape if condition else (1,) * len(shape), dtype)


def _scratch(condition: bool, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """As `_buffer`, for arrays that never leave this module: reused from call to call."""
    return buffers.POOL.empty(shape if condition else (1,) * len(shape), dtype)


def _contiguous(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous()


def _per_gate(mask: torch.Tensor | None, gates: int, like: torch.Tensor) -> torch.Tensor:
    """A dropout mask as (batch, gates, size) (a shared mask repeated), or a stand-in if None."""
    if mask is None:
        return like.new_ones(1, 1, 1)
    if mask.dim() == 2:
        mask = mask.unsqueeze(1).expand(-1, gates, -1)
    return mask.to(like.dtype).contiguous()


class _FusedRecurrence(torch.autograd.Function):
    """Autograd wrapper around the compiled forward and backward recurrences.

    The backward kernel fills the gradients of the inputs, the initial states and the
    pre-activations; the weight gradients are then long products over every row and step,
    `inputs^T @ d_pre` and `h_prev^T @ d_pre` (each row's dropout mask on its inputs and states).
    """

    @staticmethod
    def forward(ctx, inputs, kernel, input_bias, recurrent_kernel, recurrent_bias, h0, c0,
                keep, xmask, rmask, options):  # fmt: skip
        batch, timesteps, features = inputs.shape
        units, width = recurrent_kernel.shape
        n_gates = width // units
        dtype = inputs.dtype
        kernel_options = dict(options, batch=batch, timesteps=timesteps, features=features,
                              units=units, gates=n_gates)  # fmt: skip
        save, cell = kernel_options["save"], kernel_options["cell"]
        arrays = {
            "inputs": _contiguous(inputs),
            "kernel": _contiguous(kernel),
            "input_bias": _contiguous(input_bias),
            "xmask": xmask,
            "recurrent_kernel": _contiguous(recurrent_kernel),
            "recurrent_bias": _contiguous(recurrent_bias),
            "h0": _contiguous(h0),
            "c0": _contiguous(c0),
            "rmask": rmask,
            "keep": keep.contiguous(),
            "out": _buffer(True, (batch, timesteps if options["sequences"] else 1, units), dtype),
            "h_last": torch.empty(batch, units, dtype=dtype),
            "c_last": torch.empty(batch, units, dtype=dtype),
            # Saved for the backward pass, time-major (see cpu.py).
            "hs": _scratch(save, (timesteps, batch, units), dtype),
            "cs": _scratch(save and cell == cpu.LSTM, (timesteps, batch, units), dtype),
            "gate_values": _scratch(save, (timesteps, batch, n_gates, units), dtype),
            "pre": _scratch(
                save and options["keep_pre"], (timesteps, batch, n_gates, units), dtype
            ),
            "aux": _scratch(
                save and cell in (cpu.GRU_AFTER, cpu.GRU_BEFORE), (timesteps, batch, units), dtype
            ),
        }
        cpu.forward(kernel_options, arrays)
        ctx.save_for_backward(*(arrays[name] for name in _SAVED))
        ctx.kernel_options = kernel_options
        return arrays["out"], arrays["h_last"], arrays["c_last"]

    @staticmethod
    def backward(ctx, dout, dh_last, dc_last):
        arrays = dict(zip(_SAVED, ctx.saved_tensors))
        options = dict(ctx.kernel_options, input_gradient=ctx.needs_input_grad[0])
        batch, _, units = dout.shape
        dtype = dout.dtype
        arrays.update(
            kernel_t=arrays["kernel"].t().contiguous(),
            recurrent_kernel_t=arrays["recurrent_kernel"].t().contiguous(),
            dout=dout.contiguous(),
            dh_last=dh_last.contiguous(),
            dc_last=dc_last.contiguous(),
            dxproj=_scratch(True, arrays["gate_values"].shape, dtype),
            dinner=_scratch(options["cell"] == cpu.GRU_AFTER, arrays["hs"].shape, dtype),
            dinputs=_buffer(options["input_gradient"], arrays["inputs"].shape, dtype),
            dh0=torch.empty(batch, units, dtype=dtype),
            dc0=torch.empty(batch, units, dtype=dtype),
        )
        cpu.backward(options, arrays)
        gradients = _weight_gradients(options, arrays)
        dinputs = arrays["dinputs"] if options["input_gradient"] else None
        return (dinputs, *gradients, arrays["dh0"], arrays["dc0"], None, None, None, None)


# What the forward pass keeps for the backward pass.
_SAVED = ("inputs", "kernel", "xmask", "recurrent_kernel", "keep", "rmask", "hs", "cs",
          "c_last", "gate_values", "pre", "aux")  # fmt: skip


def _gate_products(
    states: torch.Tensor, mask: torch.Tensor, masked: bool, dpre: torch.Tensor,
    out: torch.Tensor, gates: int, sums: torch.Tensor | None = None,
) -> None:  # fmt: skip
    """out[:, :gates*U] = sum over rows and steps of (states * mask_g)^T @ dpre_g, g < gates
    (and `sums` the sums of dpre_g, if given)."""
    if not masked:
        cpu.states_t_times(states, None, dpre, out, 0, gates, sums)
        return
    for g in range(gates):
        cpu.states_t_times(states, mask, dpre, out, g, g + 1, sums)


def _weight_gradients(
    options: dict[str, int], arrays: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of the kernel (F, G*U), input bias (G*U,), recurrent kernel (U, G*U) and
    recurrent bias (G*U,) from the backward kernel's pre-activation gradients."""
    cell = options["cell"]
    dpre = arrays["dxproj"]  # (T, B, G, U) by time index, as every saved array
    n_gates, units = dpre.shape[2:]
    inputs = arrays["inputs"].transpose(0, 1)  # (T, B, F), read in place
    dkernel = torch.empty(inputs.shape[-1], n_gates * units, dtype=dpre.dtype)
    dinput_bias = torch.empty(n_gates * units, dtype=dpre.dtype)
    drecurrent = torch.empty(units, n_gates * units, dtype=dpre.dtype)
    drecurrent_bias = torch.zeros(n_gates * units, dtype=dpre.dtype)
    if cell in (cpu.SIMPLE, cpu.LSTM, cpu.GRU_AFTER) and not options["input_masked"]:
        # Both kernels' gradients from one pass over dpre (with recurrent dropout, each gate's
        # columns from the states times that gate's mask; GRU reset_after's h gate reaches the
        # recurrent kernel through inner_h = h @ R_h + b_h, so its columns read dinner).
        after = cell == cpu.GRU_AFTER
        cpu.states_t_times(inputs, None, dpre, dkernel, 0, n_gates, dinput_bias,
                           second=(arrays["hs"], drecurrent),
                           second_mask=arrays["rmask"] if options["masked"] else None,
                           second_gradients=(arrays["dinner"], 2) if after else None,
                           second_sums=drecurrent_bias if after else None)  # fmt: skip
        return dkernel, dinput_bias, drecurrent, drecurrent_bias
    _gate_products(inputs, arrays["xmask"], options["input_masked"], dpre, dkernel, n_gates,
                   dinput_bias)  # fmt: skip
    if cell == cpu.GRU_AFTER:  # the h-gate reaches R through inner_h = h @ R_h + b_h
        dpre[:, :, 2] = arrays["dinner"]
    product_gates = 2 if cell == cpu.GRU_BEFORE else n_gates
    _gate_products(arrays["hs"], arrays["rmask"], options["masked"], dpre, drecurrent,
                   product_gates, drecurrent_bias if cell == cpu.GRU_AFTER else None)  # fmt: skip
    if cell == cpu.GRU_BEFORE:  # inner_h = r * h * m_h already carries the h-gate's mask
        cpu.states_t_times(arrays["aux"], None, dpre, drecurrent, 2, 3)
    return dkernel, dinput_bias, drecurrent, drecurrent_bias


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
    dtype = cell.dtype
    input_mask = dropout_masks.inputs if dropout_masks is not None else None
    recurrent_mask = dropout_masks.recurrent if dropout_masks is not None else None
    zeros = torch.zeros(gates * units, dtype=dtype)
    input_bias = cell.input_bias()
    if input_bias is None:
        input_bias = zeros
    recurrent_bias = cell.bias[1] if code == cpu.GRU_AFTER and cell.bias is not None else zeros
    keep = mask if mask is not None else torch.ones(inputs.shape[:2], dtype=torch.bool)
    h0 = initial_states[0]
    c0 = initial_states[1] if code == cpu.LSTM else torch.zeros_like(h0)
    inputs = zero_masked_steps(inputs.to(dtype), mask)
    differentiable = (
        inputs,
        cell.kernel,
        input_bias,
        cell.recurrent_kernel,
        recurrent_bias,
        h0,
        c0,
    )
    activation = _ACTIVATIONS[id(cell.activation)]
    recurrent_activation = _ACTIVATIONS.get(
        id(getattr(cell, "recurrent_activation", None)), cpu.LINEAR
    )
    options = {
        "cell": code,
        "backwards": go_backwards,
        "zero_output": zero_output_for_mask,
        "zero_leading": unroll,
        "activation": activation,
        "recurrent_activation": recurrent_activation,
        "input_masked": input_mask is not None,
        "masked": recurrent_mask is not None,
        # What the backward pass reads is kept only when there will be one.
        "save": torch.is_grad_enabled() and any(t.requires_grad for t in differentiable),
        "keep_pre": cpu.SILU in (activation, recurrent_activation),
        # Without return_sequences only the last output is written (out is (B, 1, U)).
        "sequences": return_sequences,
    }
    xmask = _per_gate(input_mask, gates, zeros)
    rmask = _per_gate(recurrent_mask, gates, zeros)
    out, h, c = _FusedRecurrence.apply(*differentiable, keep, xmask, rmask, options)
    states = [h, c] if code == cpu.LSTM else [h]
    return (out if return_sequences else None), out[:, -1], states


def compile_kernels() -> None:
    """Compiles (or loads from the cache) the kernels and checks them on a tiny sequence,
    forward and backward, in float32 and float64; prints how long it took.

    Raises:
        KernelBuildError: when they cannot be built (the message has the compiler's output).
    """
    import time

    from rnnkit.layers import SimpleRNN

    start = time.perf_counter()
    cpu.library()
    for dtype in (torch.float32, torch.float64):
        layer = SimpleRNN(2, use_fused=True, dtype=dtype)
        layer(torch.ones(1, 2, 1, dtype=dtype)).sum().backward()
    print(f"rnnkit fused kernels ready ({time.perf_counter() - start:.1f} s)")
