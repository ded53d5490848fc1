"""GRU: the gated recurrent unit cell, both reset forms, and its layer (Keras's `gru.py`)."""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import activations
from rnnkit.kernels.dropout import gate_mask, masked_matmul
from rnnkit.kernels.spec import GATE_NAMES, CellKind
from rnnkit.layers.dropout_rnn_cell import DropoutRNNCell
from rnnkit.layers.rnn import CellLayer, cell_property


class GRUCell(DropoutRNNCell):
    """One step of a gated recurrent unit (Keras's `GRUCell`), gate order z, r, h.

    With `reset_after=True` (Keras 3's default, the cuDNN form; `bias` has shape (2, 3*units):
    input bias, then recurrent bias):

        x = x_t @ kernel + bias[0]              inner = h_{t-1} @ recurrent_kernel + bias[1]
        z = recurrent_activation(x_z + inner_z)  r = recurrent_activation(x_r + inner_r)
        hh = activation(x_h + r * inner_h)

    With `reset_after=False` (the original form; `bias (3*units,)` on the input side only):

        hh = activation(x_h + (r * h_{t-1}) @ recurrent_kernel_h)

    Both: h_t = z * h_{t-1} + (1 - z) * hh. Recurrent dropout multiplies h_{t-1} inside the
    matrix products only, never in the final mix.

    Args:
        units: size of h.
        recurrent_activation: default "sigmoid". reset_after: default True.
        Other arguments as `SimpleRNNCell`.
    """

    gate_names = GATE_NAMES[CellKind.GRU_RESET_AFTER]

    def __init__(
        self,
        units: int,
        *,
        recurrent_activation: Any = "sigmoid",
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def kind(self) -> CellKind | None:
        if type(self) is not GRUCell:
            return None
        return CellKind.GRU_RESET_AFTER if self.reset_after else CellKind.GRU_RESET_BEFORE

    # GRU's (2, 3*units) bias is split here only: row 0 the input bias, row 1 the recurrent one.
    def input_bias(self) -> torch.Tensor | None:
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def recurrent_bias(self) -> torch.Tensor | None:
        if self.bias is None or not self.reset_after:
            return None
        return self.bias[1]

    def step(self, projected, states, recurrent_dropout_mask=None):
        h_prev = states[0]
        units = self.units
        x_z, x_r, x_h = projected.chunk(3, dim=-1)
        if self.reset_after:
            inner = masked_matmul(h_prev, self.recurrent_kernel, recurrent_dropout_mask)
            if self.bias is not None:
                inner = inner + self.recurrent_bias()
            inner_z, inner_r, inner_h = inner.chunk(3, dim=-1)
            z = self.recurrent_activation(x_z + inner_z)
            r = self.recurrent_activation(x_r + inner_r)
            hh = self.activation(x_h + r * inner_h)
        else:
            kernel_zr = self.recurrent_kernel[:, : 2 * units]
            inner = masked_matmul(h_prev, kernel_zr, gate_mask(recurrent_dropout_mask, slice(0, 2)))
            inner_z, inner_r = inner.chunk(2, dim=-1)
            z = self.recurrent_activation(x_z + inner_z)
            r = self.recurrent_activation(x_r + inner_r)
            h_mask = gate_mask(recurrent_dropout_mask, slice(2, 3))
            hh = self.activation(
                x_h + masked_matmul(r * h_prev, self.recurrent_kernel[:, 2 * units :], h_mask)
            )
        h = z * h_prev + (1 - z) * hh
        return h, [h]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            reset_after=self.reset_after,
        )
        return config


class GRU(CellLayer):
    """Gated recurrent unit layer (Keras's `GRU`); gate order z, r, h.

    Args:
        units: size of the output and state.
        activation: default "tanh". recurrent_activation: default "sigmoid".
        reset_after: apply the reset gate after the recurrent matrix product (default True, as
            Keras 3 and cuDNN; `bias (2, 3*units)`), or before it (`bias (3*units,)`).
        Other arguments as `SimpleRNN`; weights `kernel (features, 3*units)`,
        `recurrent_kernel (units, 3*units)`.

    Example:
        >>> GRU(8)(torch.randn(2, 5, 3)).shape
        torch.Size([2, 8])
    """

    cell_class = GRUCell
    recurrent_activation = cell_property("recurrent_activation")
    reset_after = cell_property("reset_after")
