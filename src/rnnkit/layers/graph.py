"""Walks of a model's graph of layer calls, shared by everything that reads one.

A functional model records its layer calls as `Node`s (`rnnkit.layers.symbolic`). These are the
walks over them, each written once: `topological_nodes` (every call after the calls it depends
on), `replay` (run the calls on real values, masks passed along as Keras does) and
`keras_layer_order` (the order of Keras's `Model.layers`, which Keras weight files follow).
`rnnkit.Model` runs itself with them; saving, the Keras weight files and the ONNX exporter read
models with them. They live below `rnnkit.io` so that io reads models without importing them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from rnnkit.layers import symbolic
from rnnkit.layers.symbolic import Node, SymbolicTensor


def accepts(layer: nn.Module, argument: str) -> bool:
    """Whether `layer.forward` takes a keyword `argument` (e.g. "mask", "training")."""
    return argument in inspect.signature(layer.forward).parameters


def call_with_mask(
    layer: nn.Module, inputs: Any, mask: Any, args: tuple = (), kwargs: dict | None = None
) -> tuple[Any, Any]:
    """Calls `layer` passing `mask` where it takes one; returns `(outputs, output_mask)`."""
    kwargs = dict(kwargs or {})
    if mask is not None and "mask" not in kwargs and accepts(layer, "mask"):
        kwargs["mask"] = mask
    outputs = layer(inputs, *args, **kwargs)
    compute_mask = getattr(layer, "compute_mask", None)
    output_mask = compute_mask(inputs, kwargs.get("mask", mask)) if compute_mask else None
    return outputs, output_mask


def topological_nodes(outputs: Sequence[SymbolicTensor]) -> list[Node]:
    """The layer calls that produce `outputs`, each after the calls it depends on."""
    ordered: list[Node] = []
    seen: set[int] = set()

    def visit(tensor: SymbolicTensor) -> None:
        node = tensor.node
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.symbolic_inputs():
            visit(parent)
        ordered.append(node)

    for tensor in outputs:
        visit(tensor)
    return ordered


# How `replay` runs one call: `(node, args, kwargs, mask) -> (outputs, output mask)`, with the
# call's arguments already holding real values and `mask` the mask of its first input.
NodeCall = Callable[[Node, tuple, dict, Any], tuple[Any, Any]]


def replay(
    inputs: Sequence[SymbolicTensor],
    nodes: Sequence[Node],
    outputs: Sequence[SymbolicTensor],
    values: Sequence[Any],
    call: NodeCall,
) -> list[Any]:
    """Runs the recorded calls `nodes` on `values` (one per graph input) and returns the values
    of `outputs`. A call's output mask reaches every later call of its outputs, as in Keras.

    Args:
        inputs: the graph's input tensors.
        nodes: its calls, in `topological_nodes` order.
        outputs: the graph's output tensors.
        values: the real values of `inputs`, in order.
        call: runs one call (see `NodeCall`).

    Returns:
        The values of `outputs`, in order.
    """
    known: dict[int, Any] = {id(tensor): value for tensor, value in zip(inputs, values)}
    masks: dict[int, Any] = {}
    for node in nodes:
        args = symbolic.replace(node.args, known)
        kwargs = symbolic.replace(node.kwargs, known)
        results, output_mask = call(node, args, kwargs, masks.get(id(node.args[0])))
        results = list(results) if len(node.outputs) > 1 else [results]
        output_masks = output_mask if isinstance(output_mask, list) else [output_mask]
        output_masks = output_masks + [None] * (len(results) - len(output_masks))
        for tensor, value, mask in zip(node.outputs, results, output_masks):
            known[id(tensor)] = value
            masks[id(tensor)] = mask
    return [known[id(tensor)] for tensor in outputs]


def keras_layer_order(outputs: Sequence[SymbolicTensor]) -> list[nn.Module]:
    """The layers of the graph that computes `outputs`, in Keras's order (`keras.Model.layers`).

    Keras walks the graph depth-first from each output, noting when it first meets each layer,
    gives every call a depth (0 at the outputs, parents one deeper), and sorts the layers by
    decreasing depth, ties by first meeting. For a chain this is the call order.
    """
    post_order: list[Node] = []
    first_met: dict[int, int] = {}
    finished: set[int] = set()

    def visit(tensor: SymbolicTensor) -> None:
        node = tensor.node
        if node is None or id(node) in finished:
            return
        first_met.setdefault(id(node.layer), len(first_met))
        for parent in node.symbolic_inputs():
            visit(parent)
        finished.add(id(node))
        post_order.append(node)

    for tensor in outputs:
        visit(tensor)
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    layers: dict[int, nn.Module] = {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers[id(node.layer)] = node.layer
        for parent in node.symbolic_inputs():
            if parent.node is not None:
                node_depth[id(parent.node)] = max(depth + 1, node_depth.get(id(parent.node), 0))
    return sorted(
        layers.values(), key=lambda layer: (-layer_depth[id(layer)], first_met[id(layer)])
    )
