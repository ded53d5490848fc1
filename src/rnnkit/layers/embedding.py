"""`Embedding`: integer ids to dense vectors (Keras's `keras.layers.Embedding`).

With `mask_zero=True` it creates the `(batch, timesteps)` mask (True marking real steps) that
the recurrent layers after it take; its gradient is `embedding_lookup`'s. A `Sequential` runs an
Embedding that feeds a recurrent layer folded into that layer's input product
(`embedding_fold`): the same model, with float sums in another order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import constraints, initializers, regularizers
from rnnkit.layers.base import Layer
from rnnkit.layers.embedding_lookup import embedding_lookup
from rnnkit.layers.validation import check_positive_int


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return dtype != torch.bool and not dtype.is_floating_point and not dtype.is_complex


class Embedding(Layer):
    """Turns integer ids into dense vectors: `outputs = embeddings[ids]` (Keras's `Embedding`).

    Args:
        input_dim: size of the vocabulary; ids must lie in `[0, input_dim)`.
        output_dim: size of each vector.
        embeddings_initializer: default "uniform" (`RandomUniform(-0.05, 0.05)`); weight
            `embeddings (input_dim, output_dim)`.
        embeddings_regularizer, activity_regularizer, embeddings_constraint: default None.
        mask_zero: id 0 is padding: `compute_mask` returns `ids != 0` (default False).
        input_length: the number of timesteps, or None (default: any). Keras 2 code gives it
            so that a first `Embedding` fixes the model's input shape, `(batch, input_length)`,
            and `Flatten` -> `Dense` can build before any data. Keras 3 ignores it with a
            deprecation warning (the model stays unbuilt until `fit`); rnnkit uses it, quietly,
            and then checks that inputs have `input_length` timesteps.
        name, dtype, trainable: as `Layer`.

    Call arguments:
        inputs: integer ids of any shape, e.g. `(batch, timesteps)`: a tensor, a NumPy array or
            a (nested) list of ints. Returns `(*inputs.shape, output_dim)`.

    Example:
        >>> layer = Embedding(10000, 32, mask_zero=True)
        >>> ids = np.array([[5, 42, 0, 0]])
        >>> layer(ids).shape, layer.compute_mask(ids)
        (torch.Size([1, 4, 32]), tensor([[ True,  True, False, False]]))
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        input_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_dim = check_positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = check_positive_int("Embedding", "output_dim", output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        if input_length is not None:
            check_positive_int("Embedding", "input_length", input_length)
        self.input_length = input_length
        self.supports_masking = self.mask_zero
        self.embeddings: nn.Parameter

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.embeddings = self.add_weight(
            "embeddings",
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
        )
        self.built = True

    def convert_input(self, inputs: Any, *, argument: str = "inputs") -> torch.Tensor:
        """Ids as an integer tensor (lists and NumPy arrays are converted); floats raise."""
        if not isinstance(inputs, torch.Tensor) and (
            isinstance(inputs, (list, tuple, np.ndarray)) or np.isscalar(inputs)
        ):
            inputs = torch.as_tensor(np.asarray(inputs))
        if isinstance(inputs, torch.Tensor) and not _is_integer_dtype(inputs.dtype):
            raise TypeError(
                f"Layer '{self.name}' expects integer ids as `{argument}`, received dtype "
                f"{inputs.dtype}."
            )
        return super().convert_input(inputs, argument=argument)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return (*input_shape, self.output_dim)

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        if not self.mask_zero:
            return None
        return self.convert_input(inputs) != 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check_length(inputs)
        if inputs.device.type == "cpu":
            # On the CPU the lookup itself refuses ids out of range (an IndexError), so the
            # range is read (two reductions, a sync on other devices) only to word the error.
            try:
                return embedding_lookup(inputs, self.embeddings)  # (*inputs.shape, output_dim)
            except IndexError:
                self._check_range(inputs)
                raise
        self._check_range(inputs)
        return embedding_lookup(inputs, self.embeddings)

    def check_ids(self, inputs: torch.Tensor) -> None:
        """Raises a ValueError unless the integer tensor `inputs` holds ids in
        `[0, input_dim)` (and `input_length` timesteps, where given): the checks of a call, for
        a caller that reads the table by id itself (`embedding_fold`)."""
        self._check_length(inputs)
        self._check_range(inputs)

    def _check_length(self, inputs: torch.Tensor) -> None:
        if self.input_length is not None and inputs.dim() >= 2:
            if inputs.shape[1] != self.input_length:
                raise ValueError(
                    f"Layer '{self.name}' was given input_length={self.input_length}, received "
                    f"inputs with {inputs.shape[1]} timesteps (shape {tuple(inputs.shape)}); pad "
                    "or cut them to input_length (`pad_sequences(..., maxlen=input_length)`)."
                )

    def _check_range(self, inputs: torch.Tensor) -> None:
        """Raises a ValueError naming the range of `inputs` when an id lies outside the table."""
        if inputs.numel() > 0:
            low, high = int(inputs.min()), int(inputs.max())
            if low < 0 or high >= self.input_dim:
                raise ValueError(
                    f"Layer '{self.name}' expects ids in [0, input_dim) = [0, {self.input_dim}), "
                    f"received ids from {low} (min) to {high} (max)."
                ) from None  # not torch's IndexError, which it words

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
            embeddings_constraint=constraints.serialize(self.embeddings_constraint),
            mask_zero=self.mask_zero,
            input_length=self.input_length,
        )
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_dim={self.input_dim}, output_dim={self.output_dim}"
