"""The base `Layer`: a `torch.nn.Module` that builds lazily and keeps Keras's weight order.

Every rnnkit layer (and cell) derives from `Layer`. What it adds to `torch.nn.Module`:

- **lazy build**: weights are created on the first call from the input's shape (or by an explicit
  `layer.build(input_shape)`), on the input's device, in the layer's dtype;
- **Keras weight order**: `weights`, `get_weights()` and `set_weights()` list the weights in the
  order Keras does (trainable first, each layer's own weights before its sublayers'), with
  Keras's shapes, so weights move between Keras and rnnkit unchanged;
- **regularization and constraints**: `losses` holds the weight and activity regularization terms
  of the last call; `apply_constraints()` projects weights after an optimizer step, as Keras does;
- **input conversion**: NumPy arrays are accepted and converted; floating inputs are cast to the
  layer's dtype (Keras's autocasting), so a float64 NumPy array runs through a float32 layer.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit import initializers, regularizers
from rnnkit._interrupts import uninterruptible
from rnnkit.layers import symbolic

_name_counts: dict[str, int] = {}
# The device of the input that triggered a lazy build; sublayers built inside inherit it.
_build_device: ContextVar[torch.device | None] = ContextVar("rnnkit_build_device", default=None)
# Set by `uninitialized_weights`: weights built meanwhile skip their initializers.
_skip_initializers: ContextVar[bool] = ContextVar("rnnkit_skip_initializers", default=False)


@contextlib.contextmanager
def uninitialized_weights() -> Iterator[None]:
    """Layers built in the block get uninitialized weights (`torch.empty`), for weights that
    are overwritten at once, as a copy's are by `load_state_dict`: the initializers (an
    orthogonal one takes a QR decomposition) cost milliseconds, and advance torch's random
    generator for nothing.

    Example:
        >>> with uninitialized_weights():
        ...     copy = Sequential.from_config(model.get_config())
        >>> copy.load_state_dict(model.state_dict())
    """
    token = _skip_initializers.set(True)
    try:
        yield
    finally:
        _skip_initializers.reset(token)


def _default_name(cls: type) -> str:
    """Keras-style unique names: `simple_rnn`, `simple_rnn_1`, ... per class."""
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _writable(array: Any) -> np.ndarray:
    """`array` as a NumPy array torch can wrap (read-only arrays, e.g. from JAX, are copied)."""
    array = np.asarray(array)
    return array if array.flags.writeable else array.copy()


def _first_parameter(module: nn.Module) -> nn.Parameter | None:
    """`next(module.parameters(), None)` without its generators (a layer reads it on every
    call): the module's own parameters first, then each submodule's, depth-first, in
    registration order, as `parameters()` lists them."""
    for parameter in module._parameters.values():
        if parameter is not None:
            return parameter
    for child in module._modules.values():
        if child is not None:
            parameter = _first_parameter(child)
            if parameter is not None:
                return parameter
    return None


def _to_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise TypeError(f"Argument `dtype` must be a torch.dtype or its name, received {dtype!r}.")


# No weight may hold more than 2**31 - 1 values (8 GiB in float32): past that, sizes no longer
# fit the 32-bit indices of many kernels, and such a size is nearly always a mistyped argument
# (`LSTM(10**6)` would need a 16 TB recurrent kernel).
MAX_WEIGHT_VALUES = 2**31 - 1


def check_weight_size(owner: str, name: str, shape: Sequence[int], dtype: torch.dtype) -> None:
    """Raises a ValueError naming `owner`'s weight `name` if `shape` holds more than
    `MAX_WEIGHT_VALUES` values."""
    count = math.prod(int(size) for size in shape)
    if count > MAX_WEIGHT_VALUES:
        size = count * torch.empty((), dtype=dtype).element_size()
        raise ValueError(
            f"{owner}: weight `{name}` of shape {tuple(int(s) for s in shape)} would hold "
            f"{count:,} values ({size / 2**30:,.0f} GiB); rnnkit allows at most "
            f"{MAX_WEIGHT_VALUES:,} values per weight. Is a size argument too large?"
        )


class Layer(nn.Module):
    """Base class of rnnkit layers: lazy build, Keras-ordered weights, regularization losses.

    Args:
        name: the layer's name (default: the snake-cased class name, made unique like Keras's).
        dtype: the dtype of the layer's weights (default: `torch.get_default_dtype()`).
        trainable: whether the weights receive gradients (default True).
        activity_regularizer: applied to every output tensor of each call; the result, divided by
            the batch size as in Keras, is added to `losses`.
        input_shape: the shape of one sample (no batch axis), for the first layer of a
            `Sequential` model, as in Keras 2 code; lets the model infer shapes before data.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        dtype: torch.dtype | str | None = None,
        trainable: bool = True,
        activity_regularizer: Any = None,
        input_shape: Sequence[int | None] | None = None,
    ) -> None:
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string, received {name!r}.")
        self.name = name or _default_name(type(self))
        self._layer_dtype = _to_dtype(dtype)
        self._trainable = bool(trainable)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.declared_input_shape = None if input_shape is None else (None, *tuple(input_shape))
        self.built = False
        self.supports_masking = False
        self._own_weight_names: list[str] = []
        self._weight_regularizers: dict[str, Any] = {}
        self._weight_constraints: dict[str, Any] = {}
        self._activity_losses: list[torch.Tensor] = []

    # ----------------------------------------------------------------------------- building
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights (after `.double()` etc. too), else the configured dtype."""
        parameter = _first_parameter(self)
        if parameter is not None:
            return parameter.dtype
        return self._configured_dtype() or torch.get_default_dtype()

    def _configured_dtype(self) -> torch.dtype | None:
        """The dtype asked for at construction, here or (for wrappers) in a sublayer."""
        if self._layer_dtype is not None:
            return self._layer_dtype
        for layer in self._sublayers():
            dtype = layer._configured_dtype()
            if dtype is not None:
                return dtype
        return None

    @property
    def device(self) -> torch.device:
        """The device of the weights (CPU before the layer is built)."""
        parameter = _first_parameter(self)
        return torch.device("cpu") if parameter is None else parameter.device

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Creates the weights for inputs of `input_shape` (batch axis first, may be None)."""
        self.built = True

    def add_weight(
        self,
        name: str,
        shape: Sequence[int],
        initializer: Any = "zeros",
        *,
        regularizer: Any = None,
        constraint: Any = None,
        trainable: bool = True,
        device: torch.device | str | None = None,
    ) -> nn.Parameter:
        """Creates, registers and returns a weight `name` of `shape` (Keras's `add_weight`).

        Raises:
            ValueError: the weight would hold more than `MAX_WEIGHT_VALUES` values (checked
                before anything is allocated).
        """
        check_weight_size(f"Layer '{self.name}'", name, shape, self.dtype)
        device = device or _build_device.get()
        if _skip_initializers.get():
            values = torch.empty(tuple(shape), dtype=self.dtype, device=device)
        else:
            values = initializers.get(initializer)(tuple(shape), dtype=self.dtype, device=device)
        parameter = nn.Parameter(values, requires_grad=trainable and self._trainable)
        self.register_parameter(name, parameter)
        self._own_weight_names.append(name)
        if regularizer is not None:
            self._weight_regularizers[name] = regularizer
        if constraint is not None:
            self._weight_constraints[name] = constraint
        return parameter

    def build_from_input(self, inputs: torch.Tensor) -> None:
        """Builds the layer for `inputs` on their device (called once, by the first call)."""
        token = _build_device.set(inputs.device)
        try:
            with uninterruptible():  # a Ctrl-C here would leave the layer half built
                self.build(tuple(inputs.shape))
        finally:
            _build_device.reset(token)
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Any:
        """The output shape for `input_shape` (None for unknown sizes). Default: unchanged."""
        return tuple(input_shape)

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """The mask this layer passes on: by default its input mask if it supports masking."""
        return mask if self.supports_masking else None

    # ------------------------------------------------------------------------------ calling
    def convert_input(self, inputs: Any, *, argument: str = "inputs") -> torch.Tensor:
        """NumPy arrays and Python numbers become tensors on the layer's device; floating
        inputs are cast to the layer's dtype, as Keras autocasts."""
        if not isinstance(inputs, torch.Tensor):
            if isinstance(inputs, np.ndarray) or np.isscalar(inputs):
                if np.asarray(inputs).dtype.kind not in "biufc":
                    raise TypeError(
                        f"Layer '{self.name}' expects `{argument}` of numbers, received an array "
                        f"of {np.asarray(inputs).dtype} (strings or objects): convert them to "
                        "numbers first (a tokenizer, `pad_sequences`)."
                    )
                inputs = torch.as_tensor(_writable(inputs))
            else:
                raise TypeError(
                    f"Layer '{self.name}' expects `{argument}` as a torch.Tensor or NumPy array, "
                    f"received {type(inputs).__name__}."
                )
        if inputs.is_complex():
            raise TypeError(
                f"Layer '{self.name}' expects real `{argument}`, received {inputs.dtype} (the "
                "imaginary part would be dropped): pass `x.real`, or `abs(x)`, as you intend."
            )
        if inputs.is_floating_point() and inputs.dtype != self.dtype:
            inputs = inputs.to(self.dtype)
        if self.built and inputs.device != self.device:
            inputs = inputs.to(self.device)
        return inputs

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        # A lone tensor or array, the common call, is not symbolic: no walk through the
        # arguments.
        lone_input = isinstance(inputs, (torch.Tensor, np.ndarray)) and not args and not kwargs
        if not lone_input and symbolic.is_symbolic(inputs, args, kwargs):
            return symbolic.call_symbolic(self, inputs, args, kwargs)
        inputs = self.convert_input(inputs)
        if not self.built:
            self.build_from_input(inputs)
        outputs = super().__call__(inputs, *args, **kwargs)
        self._record_activity_losses(outputs)
        return outputs

    def _record_activity_losses(self, outputs: Any) -> None:
        if self.activity_regularizer is None:
            if self._activity_losses:  # `Module.__setattr__` costs a few microseconds a call
                self._activity_losses = []
            return
        self._activity_losses = []
        tensors = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        for output in tensors:
            if isinstance(output, torch.Tensor):
                loss = self.activity_regularizer(output)
                if output.dim() > 0 and output.shape[0] > 0:
                    loss = loss / output.shape[0]
                self._activity_losses.append(loss)

    def is_training(self, training: bool | None) -> bool:
        """`training` when given, else the module's mode (`module.train()` / `.eval()`)."""
        return self.training if training is None else bool(training)

    # ------------------------------------------------------------------------------ weights
    def _sublayers(self) -> list[Layer]:
        """Direct sublayers in registration order (looking through containers)."""
        found: list[Layer] = []
        for module in self._modules.values():
            if isinstance(module, Layer):
                found.append(module)
            elif isinstance(module, (nn.ModuleList, nn.Sequential)):
                found.extend(m for m in module if isinstance(m, Layer))
        return found

    def _collect_weights(self, trainable: bool) -> list[nn.Parameter]:
        own = [getattr(self, name) for name in self._own_weight_names]
        weights = [w for w in own if w.requires_grad == trainable]
        for layer in self._sublayers():
            weights.extend(layer._collect_weights(trainable))
        return weights

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return self._collect_weights(trainable=True)

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return self._collect_weights(trainable=False)

    @property
    def weights(self) -> list[nn.Parameter]:
        """All weights in Keras's order: trainable, then non-trainable."""
        return self.trainable_weights + self.non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays, in Keras's order and shapes."""
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets the weights from arrays in Keras's order and shapes (as `get_weights` returns).

        Raises:
            ValueError: if the layer is not built, or the count or a shape does not match; the
                weights are left unchanged.
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' has no weights yet: call it on data or `build` it "
                "before `set_weights`."
            )
        targets = self.weights
        if len(weights) != len(targets):
            raise ValueError(
                f"Layer '{self.name}' expects {len(targets)} weight arrays in `set_weights`, "
                f"received {len(weights)}."
            )
        arrays = [np.asarray(w) for w in weights]
        for index, (array, target) in enumerate(zip(arrays, targets)):
            if tuple(array.shape) != tuple(target.shape):
                raise ValueError(
                    f"Layer '{self.name}': weight {index} of `set_weights` should have shape "
                    f"{tuple(target.shape)}, received {tuple(array.shape)}."
                )
        with torch.no_grad():
            for array, target in zip(arrays, targets):
                target.copy_(torch.as_tensor(_writable(array), dtype=target.dtype))

    # ------------------------------------------------------------------ losses, constraints
    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization terms: weight regularizers now, activity terms of the last call."""
        terms = [reg(getattr(self, name)) for name, reg in self._weight_regularizers.items()]
        terms.extend(self._activity_losses)
        for layer in self._sublayers():
            terms.extend(layer.losses)
        return terms

    def apply_constraints(self) -> None:
        """Projects each constrained weight in place (call after an optimizer step, as Keras)."""
        with torch.no_grad():
            for name, constraint in self._weight_constraints.items():
                weight = getattr(self, name)
                weight.copy_(constraint(weight))
        for layer in self._sublayers():
            layer.apply_constraints()

    def count_params(self) -> int:
        """The number of scalars in the layer's weights."""
        return sum(w.numel() for w in self.weights)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that recreate this layer (without its weights)."""
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable}
        if self._layer_dtype is not None:
            config["dtype"] = str(self._layer_dtype).removeprefix("torch.")
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape[1:])
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Recreates a layer from `get_config()`'s output."""
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
