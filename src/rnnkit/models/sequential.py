"""`Sequential`: a plain stack of layers, each feeding the next (Keras's `Sequential`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from rnnkit.layers import serialization
from rnnkit.layers.base import Layer
from rnnkit.layers.embedding_fold import call_folded
from rnnkit.layers.graph import accepts, call_with_mask
from rnnkit.layers.symbolic import SymbolicTensor
from rnnkit.models import summary as summary_module
from rnnkit.models.model import Model


def _is_several_shapes(shape: Any) -> bool:
    """Whether `shape` (from `compute_output_shape`) lists the shapes of several outputs."""
    return isinstance(shape, (tuple, list)) and any(
        isinstance(item, (tuple, list)) for item in shape
    )


@serialization.register_model_class
class Sequential(Model):
    """A linear stack of layers.

    Shapes are inferred as soon as they are known: from an `rnnkit.Input` given first, from an
    `input_shape=` on the first layer, or from an `Embedding` first layer (which takes sequences
    of any length, or of its `input_length`); otherwise from the first batch of data.
    `summary()` then shows every layer's output shape and parameter count before any data has
    been seen. Each layer must return one tensor, which the next layer takes.

    Args:
        layers: the layers in order (optionally starting with an `rnnkit.Input(...)`).
        name: the model's name.

    Example:
        >>> model = Sequential([layers.Embedding(10000, 32), layers.SimpleRNN(32)])
        >>> model.summary()   # (None, None, 32) 320,000 ; (None, 32) 2,080
    """

    def __init__(self, layers: Sequence[Any] | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.stack = nn.ModuleList()
        self.input_tensor: SymbolicTensor | None = None
        self._output_shapes: list[Any] | None = None
        self.build_input_shape: tuple | None = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[nn.Module]:
        return list(self.stack)

    def add(self, layer: Any) -> None:
        """Appends a layer (or, first of all, an `rnnkit.Input`)."""
        if isinstance(layer, SymbolicTensor):
            if self.input_tensor is not None or len(self.stack):
                raise ValueError(
                    f"Sequential '{self.name}': an Input can only come first, received {layer}."
                )
            self.input_tensor = layer
            return
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"Sequential '{self.name}': `add` expects a layer (torch.nn.Module) or an Input, "
                f"received {type(layer).__name__}."
            )
        self.stack.append(layer)
        self._infer_shapes()

    def _input_shape(self) -> tuple | None:
        if self.build_input_shape is not None:
            return self.build_input_shape
        if self.input_tensor is not None:
            return self.input_tensor.shape
        first = self.stack[0]
        declared = getattr(first, "declared_input_shape", None)
        if declared is not None:
            return declared
        if type(first).__name__ == "Embedding":
            return (None, first.input_length)
        return None

    def build(self, input_shape: Any) -> None:
        """Builds every layer for inputs of `input_shape` (batch axis first, may be None)."""
        self.build_input_shape = tuple(input_shape)
        self._infer_shapes()

    def _infer_shapes(self) -> None:
        """Builds the layers and records their output shapes when the input shape is known."""
        shape = self._input_shape()
        if shape is None:
            return
        shapes = []
        for index, layer in enumerate(self.stack):
            if index:
                self._check_single_output(self.stack[index - 1], _is_several_shapes(shape))
            if isinstance(layer, Layer) and not layer.built:
                layer.build(shape)
                layer.built = True
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        self._output_shapes = shapes
        self.built = True

    def _check_single_output(self, layer: nn.Module, several: bool) -> None:
        """Raises when `layer` returns several tensors: a Sequential hands one to the next layer.

        Raises:
            ValueError: naming the layer and, for `return_state=True`, the functional API to use.
        """
        if not several:
            return
        name = getattr(layer, "name", type(layer).__name__)
        if getattr(layer, "return_state", False):
            reason = (
                "return_state=True makes it return (output, *states). Use the functional API "
                "to take the states apart: `inputs = rk.Input(shape=...)`, "
                f"`output, *states = {type(layer).__name__}(..., return_state=True)(inputs)`, "
                "then `rk.Model(inputs, ...)`"
            )
        else:
            reason = "it returns several tensors. Use the functional API (rk.Input, rk.Model)"
        raise ValueError(
            f"Sequential '{self.name}': layer '{name}' ({type(layer).__name__}) cannot feed the "
            f"next layer: a Sequential passes one tensor from layer to layer, and {reason}."
        )

    def summary_rows(self) -> list[tuple[str, str, Any, int | None]]:
        shapes = self._output_shapes or [None] * len(self.stack)
        return [
            (layer.name, type(layer).__name__, shape, summary_module.param_count(layer))
            for layer, shape in zip(self.stack, shapes)
        ]

    def forward(self, inputs: Any, training: bool | None = None) -> Any:
        if not len(self.stack):
            raise ValueError(f"Sequential '{self.name}' has no layers; `add` some first.")
        x, mask = inputs, None
        first_call = self._output_shapes is None
        shapes = []
        previous = None
        ran_folded = -1  # the index of a layer that ran folded with the one before it
        for index, layer in enumerate(self.stack):
            if index == ran_folded:
                continue
            if previous is not None and isinstance(x, (tuple, list)):
                self._check_single_output(previous, several=True)
            if not first_call and index + 1 < len(self.stack):
                # An Embedding and the recurrent layer it feeds, as one call (embedding_fold).
                folded = call_folded(layer, self.stack[index + 1], x, training)
                if folded is not None:
                    (x, mask), previous, ran_folded = folded, self.stack[index + 1], index + 1
                    continue
            kwargs = {}
            if training is not None and accepts(layer, "training"):
                kwargs["training"] = training
            x, mask = call_with_mask(layer, x, mask, kwargs=kwargs)
            previous = layer
            if first_call:  # the output shapes, recorded once
                outputs = x if isinstance(x, (tuple, list)) else [x]
                batchless = [(None, *tuple(output.shape[1:])) for output in outputs]
                shapes.append(batchless if outputs is x else batchless[0])
        if first_call:
            self.build_input_shape = (None, *tuple(inputs.shape[1:]))
            self._output_shapes = shapes
            self.built = True
        return x

    def get_config(self) -> dict[str, Any]:
        from rnnkit.models import saving

        return saving.sequential_config(self)
