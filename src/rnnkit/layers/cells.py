"""Recurrent cells: one timestep of SimpleRNN, LSTM and GRU with Keras's weights and equations.

A cell owns its weights and computes one step, `forward(x_t, states) -> (output, new_states)`;
`rnnkit.layers.RNN` runs any cell over time. The built-in cells split a step in two so that
loops and kernels can project every timestep's input at once:

    projected = cell.project_inputs(inputs, dropout_mask)     # (..., gates*units), bias included
    output, new_states = cell.step(projected_t, states, recurrent_dropout_mask)

Weights are stored as Keras stores them (gate order: LSTM i, f, c, o; GRU z, r, h):

    kernel            (input_dim, gates*units)
    recurrent_kernel  (units, gates*units)
    bias              (gates*units,)   or (2, 3*units) for GRU with reset_after=True

Dropout masks are drawn once per call by `make_dropout_masks` and reused at every timestep. As in
Keras 3, LSTM and GRU draw one independent mask per gate when `recurrent_dropout > 0` (Keras's
`implementation=1`), shape `(batch, gates, size)`; otherwise one mask shared by all gates,
shape `(batch, size)`. Masks hold 0 or 1/(1-rate).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers import serialization
from rnnkit.layers.base import Layer, check_weight_size


class DropoutMasks(NamedTuple):
    """The dropout masks of one call: `inputs` multiplies x_t, `recurrent` multiplies h_{t-1}.

    Each is None (no dropout), `(batch, size)` shared by all gates, or `(batch, gates, size)`.
    """

    inputs: torch.Tensor | None
    recurrent: torch.Tensor | None


def check_positive_int(owner: str, argument: str, value: Any) -> int:
    """Returns `value` as an int if it is a positive integer (NumPy's integers too, as in Keras;
    not a bool), else raises a ValueError naming `argument`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"{owner}: argument `{argument}` must be a positive integer, received {value!r}."
        )
    return int(value)


def check_rate(owner: str, argument: str, value: Any) -> float:
    """Returns `value` as a float if it lies in [0, 1), else raises a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"{owner}: argument `{argument}` must be a float in [0, 1), received {value!r}."
        )
    return float(value)


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


class DropoutRNNCell(Layer):
    """Base of the built-in cells: Keras-style weights, dropout masks, and the two-part step."""

    gate_names: tuple[str, ...] = ()

    def __init__(
        self,
        units: int,
        *,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_positive_int(owner, "units", units)
        # The recurrent kernel's size is known now: an absurd `units` fails here, not at the
        # first call with an allocator's error.
        check_weight_size(
            owner, "recurrent_kernel", (self.units, self.gates * self.units), self.dtype
        )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = check_rate(owner, "dropout", dropout)
        self.recurrent_dropout = check_rate(owner, "recurrent_dropout", recurrent_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{owner}: argument `seed` must be an int or None, received {seed!r}.")
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.kernel: nn.Parameter
        self.recurrent_kernel: nn.Parameter
        self.register_parameter("bias", None)  # stays None with use_bias=False

    @property
    def gates(self) -> int:
        return len(self.gate_names)

    @property
    def state_size(self) -> int | list[int]:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    @property
    def input_dim(self) -> int | None:
        """Features per timestep, known once the cell is built."""
        return self.kernel.shape[0] if self.built else None

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def bias_values_initializer(self) -> Any:
        """The initializer of the bias weight (LSTM's `unit_forget_bias` overrides it)."""
        return self.bias_initializer

    def build(self, input_shape: Sequence[int | None]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' needs a known feature size to build, "
                f"received input shape {tuple(input_shape)}."
            )
        width = self.gates * self.units
        self.kernel = self.add_weight(
            "kernel",
            (input_dim, width),
            self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel",
            (self.units, width),
            self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias",
                self.bias_shape(),
                self.bias_values_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.built = True

    def get_initial_state(
        self, batch_size: int, *, dtype: torch.dtype | None = None, device: Any = None
    ) -> list[torch.Tensor]:
        """Zero states, one `(batch_size, size)` tensor per entry of `state_size`."""
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        dtype = dtype or self.dtype
        device = device or self.device
        return [torch.zeros(batch_size, size, dtype=dtype, device=device) for size in sizes]

    # --------------------------------------------------------------------------- dropout
    def _draw_mask(self, shape: tuple[int, ...], rate: float) -> torch.Tensor:
        device = self.device
        if self.seed is not None and (self._generator is None or self._generator.device != device):
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        keep = torch.rand(shape, generator=self._generator, device=device) >= rate
        return keep.to(self.dtype) / (1.0 - rate)

    def make_dropout_masks(self, batch_size: int) -> DropoutMasks | None:
        """Draws this call's dropout masks (None when both rates are 0). Needs a built cell."""
        if self.dropout == 0 and self.recurrent_dropout == 0:
            return None
        per_gate = self.recurrent_dropout > 0 and self.gates > 1
        gate_axis = (self.gates,) if per_gate else ()
        inputs = recurrent = None
        if self.dropout > 0:
            inputs = self._draw_mask((batch_size, *gate_axis, self.input_dim), self.dropout)
        if self.recurrent_dropout > 0:
            shape = (batch_size, *gate_axis, self.units)
            recurrent = self._draw_mask(shape, self.recurrent_dropout)
        return DropoutMasks(inputs, recurrent)

    # ------------------------------------------------------------------------------ step
    def input_bias(self) -> torch.Tensor | None:
        """The bias added to the input projection."""
        return self.bias

    def project_inputs(
        self, inputs: torch.Tensor, dropout_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x @ kernel + input bias for one step `(batch, features)` or a whole sequence
        `(batch, timesteps, features)`; returns `(..., gates*units)`."""
        projected = masked_matmul(inputs, self.kernel, dropout_mask)
        bias = self.input_bias()
        return projected if bias is None else projected + bias

    def step(
        self,
        projected: torch.Tensor,
        states: Sequence[torch.Tensor],
        recurrent_dropout_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One timestep from the projected input `(batch, gates*units)`."""
        raise NotImplementedError

    def forward(
        self,
        inputs: torch.Tensor,
        states: Sequence[torch.Tensor],
        masks: DropoutMasks | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One timestep: `inputs (batch, features)`, `states` a list of `(batch, units)`.

        Returns:
            `(output (batch, units), new_states)`.
        """
        masks = masks or DropoutMasks(None, None)
        projected = self.project_inputs(inputs, masks.inputs)
        return self.step(projected, states, masks.recurrent)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=_serialize_optional(regularizers, self.kernel_regularizer),
            recurrent_regularizer=_serialize_optional(regularizers, self.recurrent_regularizer),
            bias_regularizer=_serialize_optional(regularizers, self.bias_regularizer),
            kernel_constraint=_serialize_optional(constraints, self.kernel_constraint),
            recurrent_constraint=_serialize_optional(constraints, self.recurrent_constraint),
            bias_constraint=_serialize_optional(constraints, self.bias_constraint),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            seed=self.seed,
        )
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"


def _serialize_optional(module: Any, obj: Any) -> Any:
    return None if obj is None else module.serialize(obj)


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

    gate_names = ("h",)

    def step(self, projected, states, recurrent_dropout_mask=None):
        h = self.activation(
            projected + masked_matmul(states[0], self.recurrent_kernel, recurrent_dropout_mask)
        )
        return h, [h]


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

    gate_names = ("i", "f", "c", "o")

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

    gate_names = ("z", "r", "h")

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

    def input_bias(self) -> torch.Tensor | None:
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def step(self, projected, states, recurrent_dropout_mask=None):
        h_prev = states[0]
        units = self.units
        x_z, x_r, x_h = projected.chunk(3, dim=-1)
        if self.reset_after:
            inner = masked_matmul(h_prev, self.recurrent_kernel, recurrent_dropout_mask)
            if self.bias is not None:
                inner = inner + self.bias[1]
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


class StackedRNNCells(Layer):
    """Several cells run as one: the output of each is the input of the next, at every step.

    States are flat: the states of the first cell, then those of the second, and so on.

    Args:
        cells: the cells, first to last.
    """

    def __init__(self, cells: Sequence[nn.Module], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not cells:
            raise ValueError("StackedRNNCells: argument `cells` must name at least one cell.")
        for cell in cells:
            if not hasattr(cell, "state_size"):
                raise ValueError(
                    f"StackedRNNCells: every cell needs a `state_size`, received {cell!r}."
                )
        self.cells = nn.ModuleList(cells)
        self.supports_masking = True

    @staticmethod
    def _sizes(cell: nn.Module) -> list[int]:
        size = cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    @property
    def state_size(self) -> list[int]:
        return [size for cell in self.cells for size in self._sizes(cell)]

    @property
    def output_size(self) -> int:
        last = self.cells[-1]
        return getattr(last, "output_size", self._sizes(last)[0])

    @property
    def output_state_index(self) -> int:
        """Index of the last cell's first state: the state that equals the output."""
        return sum(len(self._sizes(cell)) for cell in self.cells[:-1])

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = tuple(input_shape)
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell.build(shape)
                cell.built = True
            shape = (*shape[:-1], getattr(cell, "output_size", self._sizes(cell)[0]))
        self.built = True

    def get_initial_state(self, batch_size: int, *, dtype=None, device=None) -> list[torch.Tensor]:
        dtype = dtype or self.dtype
        device = device or self.device
        return [torch.zeros(batch_size, s, dtype=dtype, device=device) for s in self.state_size]

    def make_dropout_masks(self, batch_size: int) -> list[DropoutMasks | None] | None:
        masks = [
            cell.make_dropout_masks(batch_size) if hasattr(cell, "make_dropout_masks") else None
            for cell in self.cells
        ]
        return masks if any(m is not None for m in masks) else None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["cells"] = [serialization.serialize(cell) for cell in self.cells]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StackedRNNCells:
        config = dict(config)
        cells = [serialization.deserialize(cell) for cell in config.pop("cells")]
        return cls(cells, **config)

    def forward(self, inputs, states, masks=None):
        new_states: list[torch.Tensor] = []
        start = 0
        for index, cell in enumerate(self.cells):
            count = len(self._sizes(cell))
            cell_states = list(states[start : start + count])
            start += count
            cell_masks = masks[index] if masks is not None else None
            if cell_masks is None:
                inputs, cell_new = cell(inputs, cell_states)
            else:
                inputs, cell_new = cell(inputs, cell_states, cell_masks)
            new_states.extend(cell_new)
        return inputs, new_states
