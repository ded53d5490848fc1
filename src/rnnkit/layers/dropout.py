"""`Dropout`, inverted dropout on a layer's inputs (Keras's `keras.layers.Dropout`).

The recurrent layers' own `dropout`/`recurrent_dropout` live in `dropout_rnn_cell.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rnnkit.layers.base import Layer
from rnnkit.layers.validation import check_rate


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_noise_shape(noise_shape: Any) -> tuple[int | None, ...] | None:
    if noise_shape is None:
        return None
    if isinstance(noise_shape, Sequence) and not isinstance(noise_shape, str):
        sizes = tuple(noise_shape)
        if all(size is None or (_is_int(size) and size > 0) for size in sizes):
            return sizes
    raise ValueError(
        "Dropout: argument `noise_shape` must be None or a sequence of positive ints or None, "
        f"received {noise_shape!r}."
    )


class Dropout(Layer):
    """Sets a fraction `rate` of the inputs to zero in training and scales the rest by
    `1 / (1 - rate)` (inverted dropout, Keras's `Dropout`); the identity in inference.

    Training vs inference follows `module.train()` / `module.eval()` (a new module is in
    training mode), or an explicit `training=` argument.

    Args:
        rate: fraction of the inputs to drop, in [0, 1).
        noise_shape: shape of the keep/drop mask, broadcast over the inputs; each entry is 1,
            the input's size on that axis, or None for the input's size. E.g.
            `(None, 1, None)` drops the same features at every timestep (default None: the
            input's shape).
        seed: seed of the masks: two layers with the same seed draw the same sequence of masks
            (default None: torch's global generator).
        name, dtype, trainable: as `Layer`.

    Call arguments:
        inputs: a tensor of any shape; the output has the same shape and the mask passes through.
        training: optional bool overriding the module's mode.

    Example:
        >>> layer = Dropout(0.5, seed=0)
        >>> layer(torch.ones(2, 3), training=False)
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
        >>> layer(torch.ones(1000), training=True).unique()
        tensor([0., 2.])
    """

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rate = check_rate("Dropout", "rate", rate)
        if seed is not None and not _is_int(seed):
            raise TypeError(f"Dropout: argument `seed` must be an int or None, received {seed!r}.")
        self.noise_shape = _check_noise_shape(noise_shape)
        self.seed = seed
        self.supports_masking = True
        self._generator: torch.Generator | None = None

    def _mask_shape(self, shape: torch.Size) -> tuple[int, ...]:
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) == len(shape):
            pairs = list(zip(self.noise_shape, shape, strict=True))
            concrete = tuple(size if noise is None else noise for noise, size in pairs)
            if all(noise in (None, 1, size) for noise, size in pairs):
                return concrete
        raise ValueError(
            f"Layer '{self.name}': `noise_shape` {self.noise_shape} does not broadcast to the "
            f"input shape {tuple(shape)}; it needs one entry per axis, each 1, None or the "
            "input's size on that axis."
        )

    def forward(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        if not self.is_training(training) or self.rate == 0:
            return inputs
        device = inputs.device
        if self.seed is not None and (self._generator is None or self._generator.device != device):
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        noise = torch.rand(self._mask_shape(inputs.shape), generator=self._generator, device=device)
        return torch.where(noise >= self.rate, inputs / (1.0 - self.rate), 0.0)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, rate={self.rate}"
