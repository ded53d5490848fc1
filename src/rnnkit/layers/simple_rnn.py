"""SimpleRNN: the fully connected recurrent cell and its layer (Keras's `simple_rnn.py`)."""

from __future__ import annotations

from rnnkit.kernels.dropout import masked_matmul
from rnnkit.kernels.spec import GATE_NAMES, CellKind
from rnnkit.layers.dropout_rnn_cell import DropoutRNNCell
from rnnkit.layers.rnn import CellLayer


class SimpleRNNCell(DropoutRNNCell):
    """One step of a fully connected recurrent network (Keras's `SimpleRNNCell`).

        h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

    Args:
        units: size of the state and output.
        activation: default "tanh".
        use_bias, kernel/recurrent/bias_initializer ("glorot_uniform", "orthogonal", "zeros"),
        kernel/recurrent/bias_regularizer, kernel/recurrent/bias_constraint, dropout,
        recurrent_dropout, seed: as in Keras.

    Example:
        >>> cell = SimpleRNNCell(4)
        >>> out, (h,) = cell(torch.ones(2, 3), [torch.zeros(2, 4)])
        >>> out.shape
        torch.Size([2, 4])
    """

    gate_names = GATE_NAMES[CellKind.SIMPLE_RNN]

    def kind(self) -> CellKind | None:
        return CellKind.SIMPLE_RNN if type(self) is SimpleRNNCell else None

    def step(self, projected, states, recurrent_dropout_mask=None):
        h = self.activation(
            projected + masked_matmul(states[0], self.recurrent_kernel, recurrent_dropout_mask)
        )
        return h, [h]


class SimpleRNN(CellLayer):
    """Fully connected recurrent layer (Keras's `SimpleRNN`).

        h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

    Args:
        units: size of the output and state.
        activation: default "tanh".
        use_bias: default True.
        kernel_initializer: default "glorot_uniform"; weights `kernel (features, units)`.
        recurrent_initializer: default "orthogonal"; `recurrent_kernel (units, units)`.
        bias_initializer: default "zeros"; `bias (units,)`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer:
            default None.
        kernel_constraint, recurrent_constraint, bias_constraint: default None.
        dropout: fraction of the inputs to drop, in [0, 1) (default 0).
        recurrent_dropout: fraction of the recurrent state to drop, in [0, 1) (default 0).
        seed: seed of the dropout masks (default None: torch's global generator).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
        use_fused: as `RNN`.

    Example:
        >>> layer = SimpleRNN(16, return_sequences=True)
        >>> layer(np.random.random((2, 100, 32))).shape
        torch.Size([2, 100, 16])
    """

    cell_class = SimpleRNNCell
