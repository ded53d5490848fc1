"""`Model`: a graph of layers built from symbolic tensors, with Keras's training methods.

    inputs = rk.Input(shape=(None, 14))
    outputs = layers.Dense(1)(layers.LSTM(16)(inputs))
    model = rk.Model(inputs, outputs)

A model replays the recorded layer calls on real tensors, passing masks along as Keras does
(a layer that produces a mask, such as `Embedding(mask_zero=True)` or `Masking`, feeds it to every
later layer that takes a `mask` argument). `Sequential` (a chain of layers) derives from it.
The training methods (`compile`, `fit`, `evaluate`, `predict`) and saving live here so both kinds
share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.layers import embedding_fold, graph, serialization, symbolic
from rnnkit.layers.base import Layer
from rnnkit.layers.symbolic import Node, SymbolicTensor
from rnnkit.models import summary as summary_module


def to_tensor(value: Any) -> Any:
    """NumPy arrays become tensors; lists/tuples of arrays become lists of tensors."""
    if isinstance(value, (list, tuple)):
        return [to_tensor(item) for item in value]
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    return value


@serialization.register_model_class
class Model(Layer):
    """A model made of layers: a graph from `Input`s to outputs (Keras's functional `Model`).

    Args:
        inputs: a symbolic tensor from `rnnkit.Input`, or a list of them.
        outputs: the symbolic tensor(s) computed from `inputs` by layer calls.
        name: the model's name.

    Call: `model(x)` with a tensor/array (or a list, one per input) runs the graph.

    Example:
        >>> inputs = Input(shape=(None, 14))
        >>> model = Model(inputs, layers.SimpleRNN(16)(inputs))
        >>> model(np.zeros((2, 5, 14))).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        inputs: SymbolicTensor | Sequence[SymbolicTensor] | None = None,
        outputs: SymbolicTensor | Sequence[SymbolicTensor] | None = None,
        *,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.compiled: Any = None
        self.stop_training = False
        self.supports_masking = True
        if inputs is None and outputs is None:
            return  # a subclass (Sequential) arranges its own layers
        self._graph_inputs = self._symbolic_list("inputs", inputs)
        self._graph_outputs = self._symbolic_list("outputs", outputs)
        self._single_output = isinstance(outputs, SymbolicTensor)
        self._nodes = graph.topological_nodes(self._graph_outputs)
        for node in self._nodes:
            for tensor in node.symbolic_inputs():
                if tensor.node is None and not any(tensor is i for i in self._graph_inputs):
                    raise ValueError(
                        f"Model '{self.name}': output depends on input {tensor.name!r}, which "
                        "is not in `inputs`."
                    )
        unique: list[nn.Module] = []
        for node in self._nodes:
            if not any(node.layer is layer for layer in unique):
                unique.append(node.layer)
        self.graph_layers = nn.ModuleList(unique)
        # Embedding calls that run with the recurrent layer they feed, folded (embedding_fold);
        # the calls themselves, not their ids, so that a copy of the model has its own.
        self._deferrable = embedding_fold.deferrable_calls(self._nodes, self._graph_outputs)
        self.built = True

    @staticmethod
    def _symbolic_list(argument: str, value: Any) -> list[SymbolicTensor]:
        if isinstance(value, SymbolicTensor):
            return [value]
        items = list(value) if isinstance(value, (list, tuple)) else []
        if not items or not all(isinstance(item, SymbolicTensor) for item in items):
            raise TypeError(
                f"Model: argument `{argument}` must be a symbolic tensor (from `rnnkit.Input` "
                f"and layer calls) or a list of them, received {value!r}."
            )
        return items

    # ---------------------------------------------------------------------------- structure
    @property
    def layers(self) -> list[nn.Module]:
        """The model's layers, in the order they are called."""
        return list(self.graph_layers)

    def get_layer(self, name: str) -> nn.Module:
        """The layer called `name`."""
        for layer in self.layers:
            if getattr(layer, "name", None) == name:
                return layer
        raise ValueError(
            f"Model '{self.name}' has no layer named {name!r}; layers: "
            f"{[getattr(layer, 'name', type(layer).__name__) for layer in self.layers]}."
        )

    def summary_rows(self) -> list[tuple[str, str, Any, int | None]]:
        """(name, class name, output shape, parameter count or None if unbuilt) per row."""
        rows = [(t.name, "InputLayer", t.shape, 0) for t in self._graph_inputs]
        for node in self._nodes:
            layer = node.layer
            shapes = [t.shape for t in node.outputs]
            shape = shapes[0] if len(shapes) == 1 else shapes
            rows.append(
                (layer.name, type(layer).__name__, shape, summary_module.param_count(layer))
            )
        return rows

    def summary(self, print_fn: Any = print, line_length: int | None = None) -> None:
        """Prints the Layer (type) / Output Shape / Param # table with totals, as Keras."""
        print_fn(summary_module.format_summary(self, line_length=line_length))

    # ------------------------------------------------------------------------------ calling
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        lone_input = isinstance(inputs, (torch.Tensor, np.ndarray)) and not args and not kwargs
        if not lone_input and symbolic.is_symbolic(inputs, args, kwargs):
            return super().__call__(inputs, *args, **kwargs)
        return nn.Module.__call__(self, to_tensor(inputs), *args, **kwargs)

    def forward(self, inputs: Any, training: bool | None = None) -> Any:
        values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(values) != len(self._graph_inputs):
            raise ValueError(
                f"Model '{self.name}' expects {len(self._graph_inputs)} input(s), received "
                f"{len(values)}."
            )

        deferrable = {id(node) for node in self._deferrable}

        def call(node: Node, args: tuple, kwargs: dict, mask: Any) -> tuple[Any, Any]:
            if training is not None and graph.accepts(node.layer, "training"):
                kwargs.setdefault("training", training)
            if id(node) in deferrable:
                return embedding_fold.Deferred(node.layer, args[0]), None
            if isinstance(args[0], embedding_fold.Deferred):
                return embedding_fold.call_deferred(args[0], node.layer, training, kwargs)
            return graph.call_with_mask(node.layer, args[0], mask, args[1:], kwargs)

        results = graph.replay(self._graph_inputs, self._nodes, self._graph_outputs, values, call)
        return results[0] if self._single_output else results

    def reset_state(self) -> None:
        """Zeroes the carried states of every stateful layer in the model."""
        for module in self.modules():
            if (
                module is not self
                and hasattr(module, "stateful")
                and hasattr(module, "reset_state")
            ):
                module.reset_state()

    # ----------------------------------------------------------------------------- training
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
    ) -> None:
        """Chooses the optimizer, loss and metrics, by Keras name or object.

        Args:
            optimizer: "rmsprop" (default), "adam", "sgd", ... or an optimizer object.
            loss: "binary_crossentropy", "categorical_crossentropy",
                "sparse_categorical_crossentropy", "mse", "mae", or a loss object/callable.
            metrics: list of metric names or objects, e.g. ["acc"]; history keys use these
                names.
            weighted_metrics: metrics weighted by `sample_weight` / `class_weight`.
        """
        from rnnkit.training import loop

        self.compiled = loop.compile(
            self,
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
        )

    def _require_compiled(self, method: str) -> None:
        if self.compiled is None:
            raise ValueError(
                f"Model '{self.name}' must be compiled before `{method}`: call "
                "model.compile(optimizer=..., loss=...) first."
            )

    def fit(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """Trains the model; returns a `History`. `x` may be arrays (with `y`), a torch
        Dataset or DataLoader, a PyDataset, or an iterable of `(x, y[, sample_weight])` batches.
        Keyword arguments as Keras's `fit`: `batch_size=32, epochs=1, verbose="auto",
        callbacks=None, validation_split=0.0, validation_data=None, shuffle=True,
        class_weight=None, sample_weight=None, initial_epoch=0, steps_per_epoch=None,
        validation_steps=None, validation_batch_size=None, validation_freq=1`; and rnnkit's
        `skip_nonfinite_batches=False` (see `rnnkit.training.loop.fit`)."""
        from rnnkit.training import loop

        self._require_compiled("fit")
        return loop.fit(self, x, y, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """Loss and metrics on `(x, y)` or a dataset: a list, or a dict with `return_dict=True`.
        Keyword arguments: `batch_size, verbose, sample_weight, steps, return_dict, callbacks`."""
        from rnnkit.training import loop

        self._require_compiled("evaluate")
        return loop.evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        """The model's outputs on `x` as NumPy, in inference mode, batch by batch."""
        from rnnkit.training import loop

        return loop.predict(self, x, **kwargs)

    # ------------------------------------------------------------------------------ saving
    def save(self, path: str) -> None:
        """Saves architecture, weights and optimizer state to one file, atomically: a Keras 3
        archive when `path` ends in `.keras` (Keras can load it), else rnnkit's own format."""
        from rnnkit.models import saving

        saving.save_model(self, path)

    def save_weights(self, path: str) -> None:
        """Writes the weights in Keras 3's `.weights.h5` layout (Keras can load them)."""
        from rnnkit.io import keras_weights

        keras_weights.save_weights(self, path)

    def load_weights(self, path: str) -> None:
        """Loads Keras 3 `.weights.h5` weights; nothing changes unless every weight fits."""
        from rnnkit.io import keras_weights

        keras_weights.load_weights(self, path)

    def get_config(self) -> dict[str, Any]:
        from rnnkit.models import saving

        return saving.functional_config(self)
