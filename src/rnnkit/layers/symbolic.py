"""Symbolic tensors: `Input(shape=...)` and layer calls that record a graph instead of computing.

`Input` returns a `SymbolicTensor` whose `.shape` is known (`None` for unknown sizes). Calling a
layer on symbolic tensors builds the layer from the shape, infers the output shape with
`compute_output_shape`, and returns new symbolic tensors that remember the call (`Node`), so
`rnnkit.Model(inputs, outputs)` can replay the graph on real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

_input_count = 0


@dataclass(eq=False)
class Node:
    """One recorded layer call: `outputs = layer(inputs, *args, **kwargs)`."""

    layer: Any
    args: tuple
    kwargs: dict
    outputs: list[SymbolicTensor] = field(default_factory=list)

    def symbolic_inputs(self) -> list[SymbolicTensor]:
        """Every symbolic tensor the call consumed (positional and keyword), in order."""
        return [t for t in flatten((self.args, self.kwargs)) if isinstance(t, SymbolicTensor)]


@dataclass(eq=False)
class SymbolicTensor:
    """A placeholder with a known shape (None = unknown size) and dtype, and its producer.

    `node` is the layer call that produced it (None for an `Input`); `index` is its position
    among that call's outputs.
    """

    shape: tuple[int | None, ...]
    dtype: str = "float32"
    name: str | None = None
    node: Node | None = None
    index: int = 0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def Input(  # noqa: N802 - named like Keras's `Input`
    shape: Sequence[int | None] | None = None,
    *,
    batch_size: int | None = None,
    dtype: str = "float32",
    name: str | None = None,
    batch_shape: Sequence[int | None] | None = None,
) -> SymbolicTensor:
    """A symbolic model input (Keras's `Input`).

    Args:
        shape: the shape of one sample, without the batch axis; None for unknown sizes, e.g.
            `(None, 14)` for sequences of any length with 14 features.
        batch_size: fixed batch size, or None.
        dtype: "float32" (default), "int32", "int64", ...
        name: the input's name.
        batch_shape: the full shape including the batch axis, instead of `shape`.

    Example:
        >>> inputs = Input(shape=(None, 14))
        >>> inputs.shape
        (None, None, 14)
    """
    global _input_count
    if (shape is None) == (batch_shape is None):
        raise ValueError(
            f"Input: give exactly one of `shape` and `batch_shape`, received shape={shape!r}, "
            f"batch_shape={batch_shape!r}."
        )
    full = tuple(batch_shape) if batch_shape is not None else (batch_size, *tuple(shape))
    for size in full:
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ValueError(f"Input: sizes must be non-negative ints or None, received {full}.")
    if getattr(torch, str(dtype), None) is None:
        raise ValueError(f"Input: unknown `dtype` {dtype!r}.")
    if name is None:
        name = "input_layer" if _input_count == 0 else f"input_layer_{_input_count}"
        _input_count += 1
    return SymbolicTensor(full, str(dtype), name)


def flatten(structure: Any) -> list[Any]:
    """The leaves of nested lists, tuples and dicts, in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for value in structure.values() for leaf in flatten(value)]
    return [structure]


def replace(structure: Any, values: dict[int, Any]) -> Any:
    """`structure` with each symbolic tensor replaced by `values[id(tensor)]`."""
    if isinstance(structure, SymbolicTensor):
        return values[id(structure)]
    if isinstance(structure, list):
        return [replace(item, values) for item in structure]
    if isinstance(structure, tuple):
        return tuple(replace(item, values) for item in structure)
    if isinstance(structure, dict):
        return {key: replace(value, values) for key, value in structure.items()}
    return structure


def is_symbolic(*structures: Any) -> bool:
    return any(isinstance(leaf, SymbolicTensor) for leaf in flatten(structures))


def _is_shape_list(shape: Any) -> bool:
    return (
        isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(shape[0], (list, tuple))
    )


def call_symbolic(layer: Any, inputs: Any, args: tuple, kwargs: dict) -> Any:
    """Records `layer(inputs, *args, **kwargs)` on symbolic tensors; returns symbolic outputs."""
    if not isinstance(inputs, SymbolicTensor):
        raise TypeError(
            f"Layer '{layer.name}' expects one symbolic tensor as its first argument, received "
            f"{type(inputs).__name__}."
        )
    if not layer.built:
        layer.build(inputs.shape)
        layer.built = True
    output_shape = layer.compute_output_shape(inputs.shape)
    node = Node(layer, (inputs, *args), dict(kwargs))
    shapes = output_shape if _is_shape_list(output_shape) else [output_shape]
    dtype = str(layer.dtype).removeprefix("torch.")
    node.outputs = [
        SymbolicTensor(tuple(shape), dtype, f"{layer.name}_output_{i}", node, i)
        for i, shape in enumerate(shapes)
    ]
    return tuple(node.outputs) if _is_shape_list(output_shape) else node.outputs[0]
