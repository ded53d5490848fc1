"""Dropout masks inside matrix products, shared by the cells' steps and the kernels.

A mask is None, `(batch, size)` shared by all gates, or `(batch, gates, size)` with one mask per
gate (Keras's LSTM and GRU with `recurrent_dropout > 0`); see `rnnkit.kernels.spec.DropoutMasks`.
"""

from __future__ import annotations

import torch


def masked_matmul(x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`x @ weight` with a dropout `mask` on `x`, shared or one per gate.

    Args:
        x: `(..., size)`; `(batch, size)` or `(batch, timesteps, size)`.
        weight: `(size, gates*units)`.
        mask: None, `(batch, size)` shared by all gates, or `(batch, gates, size)` where gate g's
            columns of the product use `x * mask[:, g]`.

    Returns:
        `(..., gates*units)`.
    """
    if mask is None:
        return x @ weight
    if x.dim() == 3:  # (batch, timesteps, size): the same mask at every timestep
        mask = mask.unsqueeze(1)
    if mask.dim() == x.dim():
        return (x * mask) @ weight
    gates = mask.shape[-2]
    size, width = weight.shape
    per_gate = x.unsqueeze(-2) * mask  # (..., gates, size)
    out = torch.einsum("...gs,sgu->...gu", per_gate, weight.reshape(size, gates, width // gates))
    return out.flatten(-2)  # (..., gates*units)


def gate_mask(mask: torch.Tensor | None, gates: slice) -> torch.Tensor | None:
    """The part of a dropout mask that serves `gates` (a shared mask serves every gate)."""
    if mask is None or mask.dim() == 2:
        return mask
    return mask[:, gates]
