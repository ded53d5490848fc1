"""Core layers around the recurrent ones: `Dense`, `Embedding`, `Dropout`, `Masking`,
`TimeDistributed` and `Flatten`, with Keras 3's arguments, weights, masks and numerics.

A typical chapter model chains them with a recurrent layer:

    ids (batch, timesteps) int → Embedding → (batch, timesteps, output_dim)
    → LSTM → (batch, units) → Dropout → Dense → (batch, 1)

Masks follow Keras's convention: a `(batch, timesteps)` bool tensor, True marking real steps.
`Embedding(mask_zero=True)` and `Masking` create one (`compute_mask`); `Dense`, `Dropout` and
`TimeDistributed` pass the mask they receive on unchanged.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers import serialization
from rnnkit.layers.base import Layer
from rnnkit.layers.embedding_lookup import embedding_lookup
from rnnkit.layers.validation import check_positive_int, check_rate


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


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return dtype != torch.bool and not dtype.is_floating_point and not dtype.is_complex


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Embedding(Layer):
    """Turns integer ids into dense vectors: `outputs = embeddings[ids]` (Keras's `Embedding`).

    Args:
        input_dim: size of the vocabulary; ids must lie in `[0, input_dim)`.
        output_dim: size of each vector.
        embeddings_initializer: default "uniform" (`RandomUniform(-0.05, 0.05)`); weight
            `embeddings (input_dim, output_dim)`.
        embeddings_regularizer, activity_regularizer, embeddings_constraint: default None.
        mask_zero: id 0 is padding: `compute_mask` returns `ids != 0` (default False).
        input_length: accepted for Keras 2 code; kept in the config, it changes nothing.
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
        if isinstance(inputs, (list, tuple, np.ndarray)) or np.isscalar(inputs):
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
        if inputs.numel() > 0:
            low, high = int(inputs.min()), int(inputs.max())
            if low < 0 or high >= self.input_dim:
                raise ValueError(
                    f"Layer '{self.name}' expects ids in [0, input_dim) = [0, {self.input_dim}), "
                    f"received ids from {low} (min) to {high} (max)."
                )
        return embedding_lookup(inputs, self.embeddings)  # (*inputs.shape, output_dim)

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
