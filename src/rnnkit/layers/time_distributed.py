"""`TimeDistributed`: one layer applied to every timestep (Keras's
`keras.layers.TimeDistributed`)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from rnnkit.layers import serialization
from rnnkit.layers.base import Layer


class TimeDistributed(Layer):
    """Applies `layer` to every timestep, with the same weights (Keras's `TimeDistributed`).

    The time axis is folded into the batch, so the wrapped layer runs once:
    `(batch, timesteps, ...)` → `(batch*timesteps, ...)` → layer → `(batch, timesteps, ...)`.
    The wrapped layer is built from the per-step shape `(batch, ...)`; its weights are the
    wrapper's weights.

    Args:
        layer: the layer to apply (an rnnkit `Layer` returning one tensor).
        name, dtype, trainable, activity_regularizer: as `Layer` (dtype defaults to `layer`'s).

    Call arguments:
        inputs: `(batch, timesteps, ...)`.
        mask: optional `(batch, timesteps, ...)` bool, passed on (folded the same way) to a layer
            whose `forward` takes `mask`; the wrapper's output mask is this mask.
        training: optional bool, passed on to a layer whose `forward` takes `training`.

    Example:
        >>> layer = TimeDistributed(Dense(8))
        >>> layer(torch.randn(2, 10, 4)).shape
        torch.Size([2, 10, 8])
    """

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(
                "TimeDistributed: argument `layer` must be an rnnkit Layer, received "
                f"{type(layer).__name__}."
            )
        kwargs.setdefault("dtype", layer._layer_dtype)
        super().__init__(**kwargs)
        self.layer = layer
        self.supports_masking = True
        self._layer_arguments = set(inspect.signature(layer.forward).parameters)

    def _step_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        if len(input_shape) < 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank >= 3 (batch, timesteps, ...), "
                f"received shape {tuple(input_shape)}."
            )
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape: Sequence[int | None]) -> None:
        step_shape = self._step_shape(input_shape)
        if not self.layer.built:
            self.layer.build(step_shape)
            self.layer.built = True
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        step_output = self.layer.compute_output_shape(self._step_shape(input_shape))
        return (step_output[0], input_shape[1], *step_output[1:])

    def forward(
        self, inputs: torch.Tensor, mask: Any = None, training: bool | None = None
    ) -> torch.Tensor:
        self._step_shape(inputs.shape)
        batch, timesteps = inputs.shape[:2]
        kwargs: dict[str, Any] = {}
        if "training" in self._layer_arguments:
            kwargs["training"] = training
        if mask is not None and "mask" in self._layer_arguments:
            mask = torch.as_tensor(mask, device=inputs.device)
            if mask.dim() < 2 or tuple(mask.shape[:2]) != (batch, timesteps):
                raise ValueError(
                    f"Layer '{self.name}' expects `mask` of shape (batch, timesteps, ...) = "
                    f"({batch}, {timesteps}, ...), received shape {tuple(mask.shape)}."
                )
            kwargs["mask"] = mask.reshape(batch * timesteps, *mask.shape[2:])
        outputs = self.layer(inputs.reshape(batch * timesteps, *inputs.shape[2:]), **kwargs)
        if not isinstance(outputs, torch.Tensor):
            raise TypeError(
                f"Layer '{self.name}' needs the wrapped layer to return one tensor, received "
                f"{type(outputs).__name__}."
            )
        return outputs.reshape(batch, timesteps, *outputs.shape[1:])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(layer=serialization.serialize(self.layer))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TimeDistributed:
        config = dict(config)
        layer = serialization.deserialize(config.pop("layer"))
        return cls(layer, **config)
