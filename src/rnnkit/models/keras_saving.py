"""Models in Keras 3's `.keras` format: the config Keras rebuilds a model from.

`model.save("m.keras")` comes here (through `saving.save_model`): a `Sequential` becomes Keras's
`Sequential` config with an `InputLayer`, a functional `Model` becomes Keras's `Functional`
config, each layer call an `inbound_node` that Keras replays on load. The layers' own configs
come from `rnnkit.io.keras_save`; the compile arguments and optimizer variables from
`rnnkit.training.keras_compile`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rnnkit.io import keras_save, keras_weights
from rnnkit.io.keras_save import (
    dtype_policy,
    input_layer_config,
    keras_object,
    layer_config,
    refuse,
    with_build_config,
)
from rnnkit.layers import serialization
from rnnkit.layers.symbolic import SymbolicTensor
from rnnkit.training import keras_compile

# `Model.save` imports this module: importing the model classes back would circle (the registry
# in `serialization` finds them by name).
if TYPE_CHECKING:
    from rnnkit.models.model import Model
    from rnnkit.models.sequential import Sequential


def sequential_config(model: Sequential) -> dict[str, Any]:
    """Keras's config of a built `Sequential`, with an `InputLayer` for its input shape."""
    shape = model._input_shape()
    if model.input_tensor is not None:
        dtype, name = model.input_tensor.dtype, model.input_tensor.name or "input_layer"
    else:
        first = model.layers[0]
        is_embedding = type(first).__name__ == "Embedding"
        dtype = "int32" if is_embedding else str(first.dtype).removeprefix("torch.")
        name = "input_layer"
    layers = [input_layer_config(shape, dtype, name)]
    input_shapes = [shape, *(model._output_shapes or [])]
    for layer, input_shape in zip(model.layers, input_shapes):
        layers.append(with_build_config(layer_config(layer), input_shape))
    config = {
        "name": model.name,
        "trainable": True,
        "dtype": dtype_policy(model.dtype),
        "layers": layers,
        "build_input_shape": list(shape),
    }
    build_config = {"input_shape": list(shape)}
    return {**keras_object("keras", "Sequential", config), "build_config": build_config}


def functional_config(model: Model) -> dict[str, Any]:
    """Keras's config of a functional `Model`: its layers, each with the calls (`inbound_nodes`)
    that Keras replays on load, and where its inputs and outputs come from."""
    input_names = {
        id(tensor): tensor.name or ("input_layer" if i == 0 else f"input_layer_{i}")
        for i, tensor in enumerate(model._graph_inputs)
    }
    node_index: dict[int, int] = {}
    calls: dict[int, list] = {id(layer): [] for layer in model.layers}
    for node in model._nodes:
        node_index[id(node)] = len(calls[id(node.layer)])
        calls[id(node.layer)].append(node)

    def history(tensor: SymbolicTensor) -> list:
        if tensor.node is None:
            return [input_names[id(tensor)], 0, 0]
        return [tensor.node.layer.name, node_index[id(tensor.node)], tensor.index]

    def encode(value: Any) -> Any:
        if isinstance(value, SymbolicTensor):
            tensor_config = {"shape": list(value.shape), "dtype": value.dtype}
            return {
                "class_name": "__keras_tensor__",
                "config": {**tensor_config, "keras_history": history(value)},
            }
        if isinstance(value, tuple):
            return {"class_name": "__tuple__", "config": {"value": [encode(v) for v in value]}}
        if isinstance(value, list):
            return [encode(item) for item in value]
        if isinstance(value, dict):
            return {key: encode(item) for key, item in value.items()}
        return value

    layers = []
    for tensor in model._graph_inputs:
        name = input_names[id(tensor)]
        entry = input_layer_config(tensor.shape, tensor.dtype, name)
        layers.append({**entry, "name": name, "inbound_nodes": []})
    # Keras lists a functional model's layers in its `model.layers` order, which also places
    # their weights in the weights file (readers take the order from this list).
    for layer in keras_weights.keras_layer_order(model):
        nodes = calls[id(layer)]
        first_input = nodes[0].symbolic_inputs()[0].shape if nodes else None
        entry = with_build_config(layer_config(layer), first_input)
        inbound = [{"args": encode(list(n.args)), "kwargs": encode(n.kwargs)} for n in nodes]
        layers.append({**entry, "name": layer.name, "inbound_nodes": inbound})
    inputs = [history(tensor) for tensor in model._graph_inputs]
    outputs = [history(tensor) for tensor in model._graph_outputs]
    config = {
        "name": model.name,
        "trainable": True,
        "layers": layers,
        "input_layers": inputs[0] if len(inputs) == 1 else inputs,
        "output_layers": outputs[0] if model._single_output else outputs,
    }
    keras_model = keras_object("keras.src.models.functional", "Functional", config)
    return {**keras_model, "registered_name": "Functional"}


def model_config(model: Model) -> dict[str, Any]:
    """Keras's `config.json` content for `model` (with `compile_config` when compiled)."""
    if isinstance(model, serialization.model_class("Sequential")):
        config = sequential_config(model)
    elif type(model) is serialization.model_class("Model") and hasattr(model, "_graph_outputs"):
        config = functional_config(model)
    else:
        raise refuse(
            f"model '{model.name}' ({type(model).__name__})",
            "Keras's files hold Sequential and functional models",
        )
    compile_config = (
        None if model.compiled is None else keras_compile.compile_config(model.compiled)
    )
    if compile_config is not None:
        config["compile_config"] = compile_config
    return config


def keras_members(model: Model) -> dict[str, bytes]:
    """The members of the `.keras` archive for `model`: config (with compile arguments when
    Keras has names for them), weights and optimizer variables.

    Raises:
        ValueError: the model is not built, or holds a layer or an option Keras lacks (named).
    """
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built yet, so it has no weights to save: give it an "
            "Input, or call it on data (or fit it) first."
        )
    config = model_config(model)
    variables = None
    if "compile_config" in config:
        variables = keras_compile.optimizer_variables(model)
    return keras_save.archive_members(config, model, variables)
