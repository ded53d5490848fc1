"""The fused CPU recurrence with an Embedding folded into its input product.

Where an `Embedding` feeds a recurrent layer, step t's input product of row b is

    x_t @ kernel + input_bias,   x_t = embeddings[ids[b, t]]
                              =  (embeddings @ kernel + input_bias)[ids[b, t]],

a row of the table `embeddings @ kernel + input_bias` (`input_table`, `(V, G*U)`). For a batch
with more tokens than the vocabulary has ids, forming the table once costs less than a product
per token: at the chapter's IMDB model (V = 10,000 ids of 32 values, LSTM 32), 41 million
multiply-adds against 262 million per batch of 128 x 500 ids. The backward pass gains more: the
table's gradient is each id's sum of the pre-activations' gradients, in place of the per-token
product for the kernel's gradient, the per-token product for the inputs' gradient and the
Embedding's own scatter; the gradients of the embeddings, the kernel and the input bias then
come from the table's one product (`input_table`, compiled like the recurrence).

The model is the same; only the order of float sums changes (so results agree with the
unfolded path to rounding, not to the bit). `run_folded` is `fused.run_fused` with `ids` and
the table in place of the inputs, kernel and input bias: the compiled forward pass starts each
step's pre-activations from the table's rows (`features` 0), the backward pass runs unchanged
and forms the table's gradient in its row groups where it forms the recurrent weights' (else
`cpu.scatter_rows` sums dxproj for it, and `fused.recurrent_gradients` forms the recurrent
weights'). Input dropout multiplies x_t before the kernel, so it cannot fold.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnkit.kernels import buffers, cpu, fused
from rnnkit.kernels.spec import KernelResult, Recurrence, input_dropout


def blocker(recurrence: Recurrence, ids: torch.Tensor) -> str | None:
    """None if `run_folded` can run the call on `ids`, else the reason it cannot."""
    if ids.device.type != "cpu":
        return f"the ids are on {ids.device} (the folded kernel runs on the CPU)"
    if input_dropout(recurrence) is not None:
        return "input dropout masks x_t before the kernel's product"
    return fused.blocker(recurrence)


def input_table(
    embeddings: torch.Tensor, kernel: torch.Tensor, input_bias: torch.Tensor | None
) -> torch.Tensor:
    """Every id's input product, `embeddings @ kernel + input_bias`, differentiable, in the
    buffer pool's memory (`_InputTable`).

    Args:
        embeddings: `(V, F)`, the Embedding's weights, float32 or float64 on the CPU.
        kernel: `(F, G*U)`, the recurrent layer's kernel.
        input_bias: `(G*U,)` or None.

    Returns:
        `(V, G*U)`.
    """
    return _InputTable.apply(embeddings, kernel, input_bias)


class _InputTable(torch.autograd.Function):
    """`embeddings @ kernel + input_bias` and its gradients (`cpu.table_product`,
    `cpu.table_gradients`), with the table and the embeddings' gradient in the buffer pool's
    memory.

    A training step forms the table, its gradient (`_FoldedRecurrence`) and the embeddings'
    gradient afresh: 5, 5 and 1.3 MB at the chapter's model, a few hundred MB an epoch. From
    the allocator, memory that large came fresh from the system at many of the steps, every
    page of it faulted in on first touch (5-40 thousand faults an epoch, measured); the pool's
    buffers serve step after step. The compiled kernels write the table in one pass and read
    its gradient in one, where torch's `addmm` and its backward took two and three
    (benchmarks/README.md, "The folded table's product in the kernels").
    """

    @staticmethod
    def forward(ctx, embeddings, kernel, input_bias):
        embeddings, kernel = embeddings.detach().contiguous(), kernel.detach().contiguous()
        ctx.save_for_backward(embeddings, kernel)
        ctx.has_bias = input_bias is not None
        table = buffers.POOL.empty((embeddings.shape[0], kernel.shape[1]), embeddings.dtype)
        bias = None if input_bias is None else input_bias.detach().contiguous()
        cpu.table_product(embeddings, kernel, bias, table)
        return table

    @staticmethod
    @once_differentiable
    def backward(ctx, dtable):
        embeddings, kernel = ctx.saved_tensors
        dembeddings = None
        if ctx.needs_input_grad[0]:
            dembeddings = buffers.POOL.empty(tuple(embeddings.shape), dtable.dtype)
        dkernel, dbias = torch.empty_like(kernel), dtable.new_empty(kernel.shape[1])
        cpu.table_gradients(dtable.contiguous(), embeddings, kernel, dembeddings, dkernel, dbias)
        return dembeddings, dkernel, dbias if ctx.has_bias else None


def run_folded(
    recurrence: Recurrence,
    ids: torch.Tensor,
    table: torch.Tensor,
    initial_states: list[torch.Tensor],
) -> KernelResult:
    """Runs a built-in cell over the inputs `table`'s rows stand for, as `fused.run_fused`
    runs it over the inputs (the kernel and input bias inside `table`), for the calls `blocker`
    accepts.

    Args:
        recurrence: the call (no input dropout).
        ids: `(batch, timesteps)` integer ids, each in `[0, V)` (the caller checks).
        table: `(V, G*U)`, `input_table` of the Embedding and the cell.
        initial_states: `(batch, units)` each.

    Returns:
        As `fused.run_fused`.
    """
    batch, timesteps = ids.shape
    no_inputs = table.new_empty(batch, timesteps, 0)
    differentiable, others, options = fused.operands(recurrence, no_inputs, initial_states)
    _, _, _, recurrent_kernel, recurrent_bias, h0, c0 = differentiable
    weights = (table, recurrent_kernel, recurrent_bias, h0, c0)
    # What the backward pass reads is kept only when there will be one.
    save = fused.will_run_backward(weights)
    out, h, c = _FoldedRecurrence.apply(
        ids.long().contiguous(), *weights, *others, dict(options, save=save)
    )
    return fused.kernel_result(recurrence, out, h, c)


class _FoldedRecurrence(torch.autograd.Function):
    """The compiled forward and backward recurrences on folded inputs.

    The backward kernel fills the pre-activations' gradients (and those of the initial
    states); the table's gradient is their sum per id, the recurrent weights' are formed as on
    the unfolded path (in the backward kernel's row groups where it can, else long products).
    """

    @staticmethod
    def forward(ctx, ids, table, recurrent_kernel, recurrent_bias, h0, c0,
                mask, input_dropout_mask, recurrent_dropout_mask, options):  # fmt: skip
        batch, timesteps = ids.shape
        width = table.shape[1]
        # No inputs, kernel or input bias: features 0, the input products in the table.
        kernel_options, arrays = fused.forward_arrays(
            table.new_empty(batch, timesteps, 0), table.new_empty(0, width),
            table.new_zeros(width), recurrent_kernel, recurrent_bias, h0, c0,
            mask, input_dropout_mask, recurrent_dropout_mask, options,
        )  # fmt: skip
        arrays.update(ids=ids, table=table.detach().contiguous())
        cpu.forward(kernel_options, arrays)
        ctx.save_for_backward(ids, *(arrays[name] for name in fused.SAVED))
        ctx.kernel_options = kernel_options
        ctx.table_rows = table.shape[0]
        return arrays["out"], arrays["h_last"], arrays["c_last"]

    @staticmethod
    def backward(ctx, dout, dh_last, dc_last):
        ids, *saved = ctx.saved_tensors
        arrays = dict(zip(fused.SAVED, saved))
        # The recurrent kernel's gradient in the kernel where it can (no inputs: the kernel's
        # and input bias's are the table's), and the table's gradient there too where it can,
        # else dxproj for it to sum.
        needs_table = ctx.needs_input_grad[1]
        options = dict(ctx.kernel_options, input_gradient=False, weight_gradients=True,
                       write_dxproj=needs_table, table_rows=ctx.table_rows)  # fmt: skip
        dtable = None
        if needs_table:
            width = arrays["recurrent_kernel"].shape[1]
            dtable = buffers.POOL.empty((ctx.table_rows, width), dout.dtype)  # see _InputTable
            arrays.update(ids=ids, dtable=dtable)
        formed = fused.run_backward(options, arrays, dout, dh_last, dc_last)
        dxproj = arrays["dxproj"]  # (T, B, G, U), time-major
        if needs_table and not formed.table:
            # Summed from dxproj before recurrent_gradients, which may overwrite a gate of it.
            timesteps, batch = dxproj.shape[:2]
            ids_by_time = ids.t().contiguous().view(-1)  # (T*B,), dxproj's row order
            cpu.scatter_rows(ids_by_time, dxproj.view(timesteps * batch, -1), dtable)
        if formed.weights:  # SimpleRNN and LSTM alone, which have no recurrent bias
            drecurrent = arrays["drecurrent"]
            drecurrent_bias = torch.zeros(drecurrent.shape[1], dtype=dout.dtype)
        else:
            drecurrent, drecurrent_bias = fused.recurrent_gradients(options, arrays)
        return (None, dtable, drecurrent, drecurrent_bias, arrays["dh0"], arrays["dc0"],
                None, None, None, None)  # fmt: skip
