"""The Embedding layer's lookup, `table[ids]`, with a faster gradient on the CPU.

`F.embedding`'s CPU backward (`embedding_dense_backward`) adds each id's gradient row into the
table's gradient one `add_` call at a time; `index_add_` does the same sums in one call, in the
same order (the ids' order, row by row), so the gradient is the same to the bit and several
times faster for a batch of thousands of ids. On other devices torch's own backward is kept: on
CUDA it sorts the ids and is deterministic, where `index_add_` uses atomic adds whose order
varies from run to run. For float16 and bfloat16 tables torch's path is kept as well: its sums
there round differently from `index_add_`'s, and only float32 and float64 were found equal to
the bit. Under tracing, scripting or compilation torch's path is kept too, so exporters and
`torch.compile` see a plain `embedding` op.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def embedding_lookup(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rows of `table` picked by `ids`: `table[ids]`, as `F.embedding(ids, table)`.

    Args:
        ids: integer ids of any shape and integer dtype, each in `[0, table.shape[0])` (the
            caller checks the range).
        table: `(input_dim, output_dim)` floating-point weights.

    Returns:
        `(*ids.shape, output_dim)`; its gradient with respect to `table` is dense, like
        `F.embedding`'s (every id, 0 included, receives its rows' gradient).
    """
    ids = ids.long()
    if _index_add_gradient_applies(table):
        return _IndexAddEmbedding.apply(ids, table)
    return F.embedding(ids, table)


def _index_add_gradient_applies(table: torch.Tensor) -> bool:
    """Whether the `index_add_` gradient may replace torch's: a float32 or float64 CPU table that
    needs a gradient, outside tracing, scripting and compilation."""
    return (
        table.requires_grad
        and torch.is_grad_enabled()
        and table.device.type == "cpu"
        and table.dtype in (torch.float32, torch.float64)
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
    )


class _IndexAddEmbedding(torch.autograd.Function):
    """`F.embedding` whose backward is one `index_add_` into a zero table."""

    @staticmethod
    def forward(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, table)  # (*ids.shape, output_dim)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, torch.Tensor], output: Any) -> None:
        ids, table = inputs
        ctx.save_for_backward(ids)
        ctx.input_dim = table.shape[0]

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[None, torch.Tensor]:
        (ids,) = ctx.saved_tensors
        output_dim = grad_output.shape[-1]
        rows = grad_output.reshape(-1, output_dim)  # (ids.numel(), output_dim)
        grad_table = grad_output.new_zeros(ctx.input_dim, output_dim)
        # In place on a fresh table (no copy); still recorded under create_graph=True, so a
        # double backward works as through F.embedding.
        return None, grad_table.index_add_(0, ids.reshape(-1), rows)
