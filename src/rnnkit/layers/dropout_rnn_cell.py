"""The base of the built-in recurrent cells: Keras's weights, dropout masks and the two-part step.

The cells themselves live with their layers (`simple_rnn.py`, `lstm.py`, `gru.py`). A cell owns
its weights and computes one step, `forward(x_t, states) -> (output, new_states)`;
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

Each built cell describes itself to the kernels once per call as a `CellSpec` (`spec()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.kernels.dropout import masked_matmul
from rnnkit.kernels.spec import CellKind, CellSpec, DropoutMasks
from rnnkit.layers.base import Layer, check_weight_size
from rnnkit.layers.validation import check_positive_int, check_rate


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
    def kind(self) -> CellKind | None:
        """Which recurrence the kernels implement for this cell, or None (a subclass may change
        the step, so only the built-in classes themselves name one)."""
        return None

    def input_bias(self) -> torch.Tensor | None:
        """The bias added to the input projection."""
        return self.bias

    def recurrent_bias(self) -> torch.Tensor | None:
        """The bias added to the recurrent product (GRU with `reset_after=True` only)."""
        return None

    def spec(self) -> CellSpec:
        """This built cell as the kernels see it; made on every call (the weights may have
        been replaced or moved since the last one)."""
        kernel = self.kernel
        activation = self.activation
        recurrent_activation = getattr(self, "recurrent_activation", None)
        return CellSpec(
            self,
            self.kind(),
            kernel,
            self.recurrent_kernel,
            self.input_bias(),
            self.recurrent_bias(),
            activation,
            recurrent_activation,
            activations.code_of(activation),
            activations.code_of(recurrent_activation or activations.linear),
            self.units,
            self.dropout,
            self.recurrent_dropout,
            kernel.dtype,
            kernel.device,
        )

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
