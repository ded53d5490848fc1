"""The fused CPU path: `blocker` says whether it can run a call, `run_fused` runs it.

`run_fused` is a `Kernel` (`rnnkit.kernels.spec`). It hands the whole sequence — each step's
input and recurrent products, gates, masks and direction — to the compiled kernels in
`rnnkit.kernels.cpu` through a `torch.autograd.Function` whose backward runs the compiled
backward pass and then the weight gradients as long products over every row and step.

It reproduces every rule of `rnnkit.kernels.loop.run_loop`: (projection) each step's input
product `x_t @ kernel + input_bias`, with input dropout per gate, inside the step loop instead of
before it; (order) through the `go_backwards` option; (step) the cell's equations in C++ for
each `CellKind`, recurrent dropout per gate; (mask), (unroll) and (last) through the `mask`,
`zero_output_for_mask`, `unroll` and `return_sequences` options.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnkit.activations import ActivationCode
from rnnkit.kernels import buffers, cpu, cpu_library
from rnnkit.kernels.loop import zero_nonfinite_masked_steps
from rnnkit.kernels.spec import (
    CellKind,
    CellSpec,
    KernelResult,
    Recurrence,
    input_dropout,
    recurrent_dropout,
)


def blocker(recurrence: Recurrence) -> str | None:
    """None if the fused kernel can run the call, else the reason it cannot (names the option)."""
    spec = recurrence.cell
    if spec.kind is None:
        return (
            f"the cell is a {spec.name} (fused kernels exist for SimpleRNNCell, LSTMCell and "
            "GRUCell)"
        )
    if spec.activation_code is None:
        return f"`activation={_name(spec.activation)}` has no fused implementation"
    if spec.recurrent_activation_code is None:
        name = _name(spec.recurrent_activation)
        return f"`recurrent_activation={name}` has no fused implementation"
    if spec.dtype not in (torch.float32, torch.float64):
        return f"the weights are {spec.dtype} (fused kernels run float32 and float64)"
    if spec.device.type != "cpu":
        return f"the weights are on {spec.device} (the fused kernels run on the CPU)"
    return cpu_library.blocker()


def _name(function: object) -> str:
    return getattr(function, "__name__", repr(function))


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


def forward_arrays(inputs, kernel, input_bias, recurrent_kernel, recurrent_bias, h0, c0,
                    mask, input_dropout_mask, recurrent_dropout_mask, options):  # fmt: skip
    """The kernels' options and arrays for one forward call (the outputs freshly allocated)."""
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
        "input_dropout_mask": input_dropout_mask,
        "recurrent_kernel": _contiguous(recurrent_kernel),
        "recurrent_bias": _contiguous(recurrent_bias),
        "h0": _contiguous(h0),
        "c0": _contiguous(c0),
        "recurrent_dropout_mask": recurrent_dropout_mask,
        "mask": mask.contiguous(),
        "out": _buffer(
            True, (batch, timesteps if options["return_sequences"] else 1, units), dtype
        ),
        "h_last": torch.empty(batch, units, dtype=dtype),
        "c_last": torch.empty(batch, units, dtype=dtype),
        # Saved for the backward pass, time-major (see cpu.py).
        "hs": _scratch(save, (timesteps, batch, units), dtype),
        "cs": _scratch(save and cell == CellKind.LSTM, (timesteps, batch, units), dtype),
        "gate_values": _scratch(save, (timesteps, batch, n_gates, units), dtype),
        "pre": _scratch(
            save and options["save_preactivations"], (timesteps, batch, n_gates, units), dtype
        ),
        "inner_h": _scratch(save and cell in _GRU, (timesteps, batch, units), dtype),
    }
    return kernel_options, arrays


class _FusedRecurrence(torch.autograd.Function):
    """Autograd wrapper around the compiled forward and backward recurrences.

    The backward kernel fills the gradients of the inputs, the initial states and the
    pre-activations; the weight gradients are then long products over every row and step,
    `inputs^T @ d_pre` and `h_prev^T @ d_pre` (each row's dropout mask on its inputs and states),
    unless the backward kernel formed them itself (`cpu.backward` says so).
    """

    @staticmethod
    def forward(ctx, inputs, kernel, input_bias, recurrent_kernel, recurrent_bias, h0, c0,
                mask, input_dropout_mask, recurrent_dropout_mask, options):  # fmt: skip
        kernel_options, arrays = forward_arrays(
            inputs, kernel, input_bias, recurrent_kernel, recurrent_bias, h0, c0,
            mask, input_dropout_mask, recurrent_dropout_mask, options,
        )  # fmt: skip
        cpu.forward(kernel_options, arrays)
        ctx.save_for_backward(*(arrays[name] for name in SAVED))
        ctx.kernel_options = kernel_options
        return arrays["out"], arrays["h_last"], arrays["c_last"]

    @staticmethod
    def backward(ctx, dout, dh_last, dc_last):
        arrays = dict(zip(SAVED, ctx.saved_tensors))
        options = dict(
            ctx.kernel_options, input_gradient=ctx.needs_input_grad[0], weight_gradients=True
        )
        if run_backward(options, arrays, dout, dh_last, dc_last).weights:  # formed in the kernel
            width = arrays["kernel"].shape[1]  # (no recurrent bias there)
            gradients = (arrays["dkernel"], arrays["dbias"], arrays["drecurrent"],
                         torch.zeros(width, dtype=dout.dtype))  # fmt: skip
        else:
            gradients = _weight_gradients(options, arrays)
        dinputs = arrays["dinputs"] if options["input_gradient"] else None
        return (dinputs, *gradients, arrays["dh0"], arrays["dc0"], None, None, None, None)


def run_backward(
    options: dict[str, int],
    arrays: dict[str, torch.Tensor],
    dout: torch.Tensor,
    dh_last: torch.Tensor,
    dc_last: torch.Tensor,
) -> cpu.Formed:
    """Runs the compiled backward pass over what a forward call saved (`arrays`, by the names
    of `SAVED`), adding the gradients it fills to `arrays` (dinner, dinputs, dh0, dc0, and
    dxproj or, where `options["weight_gradients"]` asks and the kernel can, dkernel, drecurrent
    and dbias, then dxproj too where `options["write_dxproj"]` asks); where `arrays` holds
    folded inputs' `ids` and a `dtable`, the table's gradient too where the kernel can, in
    reused scratch. Returns `cpu.backward`'s answer: what it formed itself. Where the graph
    is not kept for another backward pass, dxproj is `arrays["gate_values"]` itself,
    overwritten, and dinner `arrays["inner_h"]`.
    """
    batch, _, units = dout.shape
    dtype = dout.dtype
    features, width = arrays["kernel"].shape
    # dxproj goes over the saved gate values, and GRU reset_after's dinner over inner_h, where no
    # second backward pass can come: the kernel reads a row's saved values at one step alone,
    # before it writes their gradients (cpu.cpp, `backward_chunk`), so a fresh buffer's memory
    # and first writes are saved. A graph kept for another pass (`retain_graph`, `create_graph`,
    # as gradcheck runs) still needs them.
    in_place = not backward_keeps_graph()
    after = options["cell"] == CellKind.GRU_RESET_AFTER
    gates = arrays["gate_values"]
    dxproj = gates if in_place else _scratch(True, gates.shape, dtype)
    dinner = arrays["inner_h"] if in_place and after else _scratch(after, arrays["hs"].shape, dtype)
    arrays.update(
        dout=dout.contiguous(),
        dh_last=dh_last.contiguous(),
        dc_last=dc_last.contiguous(),
        dxproj=dxproj,
        dinner=dinner,
        dinputs=_buffer(options["input_gradient"], arrays["inputs"].shape, dtype),
        dh0=torch.empty(batch, units, dtype=dtype),
        dc0=torch.empty(batch, units, dtype=dtype),
        dkernel=torch.empty(features, width, dtype=dtype),
        drecurrent=torch.empty(units, width, dtype=dtype),
        dbias=torch.empty(width, dtype=dtype),
    )
    if "dtable" in arrays:
        size = cpu.table_sums_size(options, arrays)
        if size:
            arrays["table_sums"] = _scratch(True, (size,), dtype)
    return cpu.backward(options, arrays)


def backward_keeps_graph() -> bool:
    """Whether the running backward pass keeps the graph for another one (`retain_graph` or
    `create_graph`; True outside a backward pass), as PyTorch's own reuse of saved buffers asks
    (`torch._functorch._aot_autograd`); a PyTorch without that private query counts as keeping
    it."""
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return query is None or bool(query())


# What the forward pass keeps for the backward pass.
SAVED = ("inputs", "kernel", "input_dropout_mask", "recurrent_kernel", "mask",
          "recurrent_dropout_mask", "hs", "cs", "c_last", "gate_values", "pre",
          "inner_h")  # fmt: skip
_GRU = (CellKind.GRU_RESET_AFTER, CellKind.GRU_RESET_BEFORE)


def _gate_products(
    states: torch.Tensor, mask: torch.Tensor, dropout: bool, dpre: torch.Tensor,
    out: torch.Tensor, gates: int, sums: torch.Tensor | None = None,
) -> None:  # fmt: skip
    """out[:, :gates*U] = sum over rows and steps of (states * mask_g)^T @ dpre_g, g < gates
    (and `sums` the sums of dpre_g, if given); `mask` is read only with `dropout`."""
    if not dropout:
        cpu.weight_gradient(states, None, dpre, out, 0, gates, sums)
        return
    for g in range(gates):
        cpu.weight_gradient(states, mask, dpre, out, g, g + 1, sums)


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
    if cell != CellKind.GRU_RESET_BEFORE and not options["input_dropout"]:
        drecurrent = torch.empty(units, n_gates * units, dtype=dpre.dtype)
        drecurrent_bias = torch.zeros(n_gates * units, dtype=dpre.dtype)
        # Both kernels' gradients from one pass over dpre (with recurrent dropout, each gate's
        # columns from the states times that gate's mask; GRU reset_after's h gate reaches the
        # recurrent kernel through inner_h = h @ R_h + b_h, so its columns read dinner).
        after = cell == CellKind.GRU_RESET_AFTER
        rmask = arrays["recurrent_dropout_mask"] if options["recurrent_dropout"] else None
        recurrent = cpu.SecondProduct(
            arrays["hs"],
            drecurrent,
            mask=rmask,
            gate_gradients=arrays["dinner"] if after else None,
            gate=2,
            sums=drecurrent_bias if after else None,
        )
        cpu.weight_gradient(inputs, None, dpre, dkernel, 0, n_gates, dinput_bias, recurrent)
        return dkernel, dinput_bias, drecurrent, drecurrent_bias
    _gate_products(inputs, arrays["input_dropout_mask"], options["input_dropout"], dpre,
                   dkernel, n_gates, dinput_bias)  # fmt: skip
    return (dkernel, dinput_bias, *recurrent_gradients(options, arrays))


def recurrent_gradients(
    options: dict[str, int], arrays: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of the recurrent kernel (U, G*U) and recurrent bias (G*U,) alone, from the
    backward kernel's pre-activation gradients (GRU reset_after: overwrites their h gate)."""
    cell = options["cell"]
    dpre = arrays["dxproj"]  # (T, B, G, U)
    n_gates, units = dpre.shape[2:]
    drecurrent = torch.empty(units, n_gates * units, dtype=dpre.dtype)
    drecurrent_bias = torch.zeros(n_gates * units, dtype=dpre.dtype)
    after = cell == CellKind.GRU_RESET_AFTER
    if after:  # the h-gate reaches R through inner_h = h @ R_h + b_h
        dpre[:, :, 2] = arrays["dinner"]
    product_gates = 2 if cell == CellKind.GRU_RESET_BEFORE else n_gates
    _gate_products(arrays["hs"], arrays["recurrent_dropout_mask"], options["recurrent_dropout"],
                   dpre, drecurrent, product_gates, drecurrent_bias if after else None)  # fmt: skip
    if cell == CellKind.GRU_RESET_BEFORE:  # inner_h = r * h * m_h carries the h-gate's mask
        cpu.weight_gradient(arrays["inner_h"], None, dpre, drecurrent, 2, 3)
    return drecurrent, drecurrent_bias


def will_run_backward(differentiable: Sequence[torch.Tensor]) -> bool:
    """Whether autograd will call the backward pass of a call on these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in differentiable)


def operands(
    recurrence: Recurrence, inputs: torch.Tensor, initial_states: list[torch.Tensor]
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], dict[str, int]]:
    """`_FusedRecurrence`'s arguments for a call: the differentiable ones, the others (mask
    and the dropout masks per gate) and the options (all but `save`)."""
    spec = recurrence.cell
    kind, gates, units, dtype = spec.kind, spec.gates, spec.units, spec.dtype
    input_mask = input_dropout(recurrence)
    recurrent_mask = recurrent_dropout(recurrence)
    zeros = torch.zeros(gates * units, dtype=dtype)
    input_bias = spec.input_bias if spec.input_bias is not None else zeros
    recurrent_bias = spec.recurrent_bias if spec.recurrent_bias is not None else zeros
    mask = recurrence.mask
    if mask is None:
        mask = torch.ones(inputs.shape[:2], dtype=torch.bool)
    h0 = initial_states[0]
    c0 = initial_states[1] if kind == CellKind.LSTM else torch.zeros_like(h0)
    inputs = inputs.to(dtype)
    differentiable = [
        inputs,
        spec.kernel,
        input_bias,
        spec.recurrent_kernel,
        recurrent_bias,
        h0,
        c0,
    ]
    if will_run_backward(differentiable):
        # The forward pass keeps the states of a padded step (a selection: whatever the step
        # held, NaN or inf, reaches no output), but the backward pass's weight gradients
        # multiply every step's inputs by its gradients, zeros there: NaN * 0 is NaN, so masked
        # steps holding one are zeroed first. Without a backward pass the inputs are passed as
        # they are.
        differentiable[0] = zero_nonfinite_masked_steps(inputs, recurrence.mask)
    differentiable = tuple(differentiable)
    activation, recurrent_activation = spec.activation_code, spec.recurrent_activation_code
    options = {
        "cell": kind,
        "go_backwards": recurrence.go_backwards,
        "zero_output_for_mask": recurrence.zero_output_for_mask,
        "unroll": recurrence.unroll,
        "activation": activation,
        "recurrent_activation": recurrent_activation,
        "input_dropout": input_mask is not None,
        "recurrent_dropout": recurrent_mask is not None,
        "save_preactivations": ActivationCode.SILU in (activation, recurrent_activation),
        # Without return_sequences only the last output is written (out is (B, 1, U)).
        "return_sequences": recurrence.return_sequences,
    }
    others = (mask, _per_gate(input_mask, gates, zeros), _per_gate(recurrent_mask, gates, zeros))
    return differentiable, others, options


def kernel_result(
    recurrence: Recurrence, out: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> KernelResult:
    states = [h, c] if recurrence.cell.kind == CellKind.LSTM else [h]
    return (out if recurrence.return_sequences else None), out.select(1, -1), states


def run_fused(
    recurrence: Recurrence, inputs: torch.Tensor, initial_states: list[torch.Tensor]
) -> KernelResult:
    """Runs a built-in cell over `inputs` with the compiled kernels, for the calls `blocker`
    accepts; same contract as `rnnkit.kernels.loop.run_loop`."""
    differentiable, others, options = operands(recurrence, inputs, initial_states)
    # What the backward pass reads is kept only when there will be one.
    save = will_run_backward(differentiable)
    out, h, c = _FusedRecurrence.apply(*differentiable, *others, dict(options, save=save))
    return kernel_result(recurrence, out, h, c)


def compile_kernels() -> None:
    """Compiles (or loads from the cache) the kernels and checks them on a tiny sequence,
    forward and backward, in float32 and float64; prints how long it took.

    Raises:
        KernelBuildError: when they cannot be built (the message has the compiler's output).
    """
    import time

    start = time.perf_counter()
    cpu_library.library()
    for dtype in (torch.float32, torch.float64):
        kernel = torch.ones(1, 2, dtype=dtype, requires_grad=True)  # a SimpleRNN of 2 units
        spec = CellSpec(
            cell=None,
            kind=CellKind.SIMPLE_RNN,
            kernel=kernel,
            recurrent_kernel=torch.eye(2, dtype=dtype),
            activation_code=ActivationCode.TANH,
            units=2,
            dtype=dtype,
            device=kernel.device,
        )
        inputs = torch.ones(1, 2, 1, dtype=dtype)
        _, last_output, _ = run_fused(Recurrence(spec), inputs, [torch.zeros(1, 2, dtype=dtype)])
        last_output.sum().backward()
    print(f"rnnkit fused kernels ready ({time.perf_counter() - start:.1f} s)")
