"""`Dense`, the fully connected layer (Keras's `keras.layers.Dense`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers.base import Layer
from rnnkit.layers.validation import check_positive_int


class Dense(Layer):
    """Fully connected layer: `outputs = activation(inputs @ kernel + bias)` (Keras's `Dense`).

    Applies to the last axis, so any leading axes are kept: `(batch, features)` gives
    `(batch, units)` and `(batch, timesteps, features)` gives `(batch, timesteps, units)`.

    Args:
        units: size of the output's last axis (a positive int).
        activation: activation name, function or None for linear (default None).
        use_bias: whether to add `bias` (default True).
        kernel_initializer: default "glorot_uniform"; weight `kernel (features, units)`.
        bias_initializer: default "zeros"; weight `bias (units,)`.
        kernel_regularizer, bias_regularizer, activity_regularizer: default None.
        kernel_constraint, bias_constraint: default None.
        name, dtype, trainable: as `Layer`.

    Call arguments:
        inputs: `(batch, ..., features)`; the mask, if any, passes through unchanged.

    Example:
        >>> layer = Dense(16, activation="relu")
        >>> layer(torch.randn(2, 10, 8)).shape
        torch.Size([2, 10, 16])
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = check_positive_int("Dense", "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.supports_masking = True
        self.kernel: nn.Parameter
        self.register_parameter("bias", None)  # stays None with use_bias=False

    def _check_shape(self, shape: Sequence[int | None]) -> None:
        if len(shape) < 2:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank >= 2 (batch, ..., features), "
                f"received shape {tuple(shape)}."
            )
        if self.built and shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Layer '{self.name}' was built for inputs with {self.kernel.shape[0]} features "
                f"(last axis), received shape {tuple(shape)}."
            )

    def build(self, input_shape: Sequence[int | None]) -> None:
        self._check_shape(input_shape)
        if input_shape[-1] is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known feature size (last axis) to build, "
                f"received input shape {tuple(input_shape)}."
            )
        self.kernel = self.add_weight(
            "kernel",
            (input_shape[-1], self.units),
            self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias",
                (self.units,),
                self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        self._check_shape(input_shape)
        return (*input_shape[:-1], self.units)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check_shape(inputs.shape)
        if not inputs.is_floating_point():
            inputs = inputs.to(self.dtype)
        outputs = inputs @ self.kernel  # (..., units)
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
        )
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"
