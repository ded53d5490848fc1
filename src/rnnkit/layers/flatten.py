"""`Flatten`: every axis but the batch axis into one (Keras's `keras.layers.Flatten`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rnnkit.layers.base import Layer


class Flatten(Layer):
    """Flattens every axis but the batch axis: `(batch, ...)` → `(batch, prod(...))`.

    As in Keras, `(batch,)` gives `(batch, 1)`.

    Args:
        name, dtype, trainable: as `Layer`.

    Example:
        >>> Flatten()(torch.zeros(2, 10, 64)).shape
        torch.Size([2, 640])
        >>> Flatten().compute_output_shape((None, None, 64))
        (None, None)
    """

    def _check_shape(self, shape: Sequence[int | None]) -> None:
        if len(shape) < 1:
            raise ValueError(
                f"Layer '{self.name}' expects inputs with a batch axis (rank >= 1), received "
                f"shape {tuple(shape)}."
            )

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        self._check_shape(input_shape)
        rest = input_shape[1:]
        return (input_shape[0], None if any(size is None for size in rest) else math.prod(rest))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check_shape(inputs.shape)
        return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))
