"""LSTM: the long short-term memory cell and its layer (Keras's `lstm.py`)."""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import activations
from rnnkit.kernels.dropout import masked_matmul
from rnnkit.kernels.spec import GATE_NAMES, CellKind
from rnnkit.layers.dropout_rnn_cell import DropoutRNNCell
from rnnkit.layers.rnn import CellLayer, cell_property


class LSTMCell(DropoutRNNCell):
    """One step of a long short-term memory cell (Keras's `LSTMCell`), gate order i, f, c, o.

        z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias          # (batch, 4*units)
        i = recurrent_activation(z_i)     f = recurrent_activation(z_f)
        c_t = f * c_{t-1} + i * activation(z_c)
        o = recurrent_activation(z_o)     h_t = o * activation(c_t)

    Args:
        units: size of h and c.
        activation: default "tanh". recurrent_activation: default "sigmoid".
        unit_forget_bias: add 1 to the forget gate's bias at initialization (default True).
        Other arguments as `SimpleRNNCell`.

    Example:
        >>> cell = LSTMCell(4)
        >>> out, (h, c) = cell(torch.ones(2, 3), cell.get_initial_state(2))
    """

    gate_names = GATE_NAMES[CellKind.LSTM]

    def __init__(
        self,
        units: int,
        *,
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    def kind(self) -> CellKind | None:
        return CellKind.LSTM if type(self) is LSTMCell else None

    def bias_values_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _UnitForgetBias(self.bias_initializer, self.units)

    def step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states
        z = projected + masked_matmul(h_prev, self.recurrent_kernel, recurrent_dropout_mask)
        z_i, z_f, z_c, z_o = z.chunk(4, dim=-1)  # (batch, units) each
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_prev + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            unit_forget_bias=self.unit_forget_bias,
        )
        return config


class _UnitForgetBias:
    """LSTM bias initializer: `bias_initializer` everywhere except ones on the forget gate."""

    def __init__(self, bias_initializer: Any, units: int) -> None:
        self.bias_initializer = bias_initializer
        self.units = units

    def __call__(self, shape, dtype=None, device=None) -> torch.Tensor:
        units = self.units
        return torch.cat(
            [
                self.bias_initializer((units,), dtype=dtype, device=device),
                torch.ones(units, dtype=dtype, device=device),
                self.bias_initializer((2 * units,), dtype=dtype, device=device),
            ]
        )


class LSTM(CellLayer):
    """Long short-term memory layer (Keras's `LSTM`); states `[h, c]`, gate order i, f, c, o.

    Args:
        units: size of the output and of both states.
        activation: default "tanh". recurrent_activation: default "sigmoid".
        unit_forget_bias: add 1 to the forget gate's bias at initialization (default True).
        Other arguments as `SimpleRNN`; weights `kernel (features, 4*units)`,
        `recurrent_kernel (units, 4*units)`, `bias (4*units,)`.

    With `return_state=True` the call returns `(output, h, c)`.

    Example:
        >>> output, h, c = LSTM(8, return_state=True)(torch.randn(2, 5, 3))
    """

    cell_class = LSTMCell
    recurrent_activation = cell_property("recurrent_activation")
    unit_forget_bias = cell_property("unit_forget_bias")
