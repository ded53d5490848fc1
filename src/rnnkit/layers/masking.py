"""`Masking`: a mask from padding values (Keras's `keras.layers.Masking`)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from rnnkit.layers.base import Layer


class Masking(Layer):
    """Masks the timesteps whose features all equal `mask_value` (Keras's `Masking`).

        mask = any(inputs != mask_value, axis=-1)          # (batch, timesteps)
        outputs = where(mask[..., None], inputs, 0)

    Args:
        mask_value: the padding value (default 0.0).
        name, dtype, trainable: as `Layer`.

    Call arguments:
        inputs: `(batch, timesteps, features)`. `compute_mask(inputs)` gives the mask that the
            following layers (a recurrent layer) take.

    Example:
        >>> x = np.ones((1, 3, 2)); x[0, 2] = 0.0
        >>> Masking().compute_mask(x)
        tensor([[ True,  True, False]])
    """

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise TypeError(
                f"Masking: argument `mask_value` must be a number, received {mask_value!r}."
            )
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        return (self.convert_input(inputs) != self.mask_value).any(dim=-1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        keep = (inputs != self.mask_value).any(dim=-1, keepdim=True)  # (batch, timesteps, 1)
        return torch.where(keep, inputs, 0)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mask_value=self.mask_value)
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, mask_value={self.mask_value}"
