"""Write an rnnkit model as a Keras 3 `.keras` archive that `keras.saving.load_model` reads.

The archive holds what Keras 3's own `model.save("m.keras")` writes (see `keras_config` for
the reader):

    metadata.json       {"keras_version": ..., "date_saved": ..., "rnnkit_version": ...}
    config.json         the model in Keras's serialization format: every object as
                        {"module", "class_name", "config", "registered_name"}
    model.weights.h5    the weights in Keras's layout (`keras_weights`), and under
                        `optimizer/vars` the optimizer's state (`keras_compile`)

rnnkit layers keep Keras's class names and argument names, so a layer's `get_config()` is
Keras's config once its nested objects (initializers, regularizers, constraints, inner layers
and cells) carry Keras's module names. rnnkit-only options are left out where they hold their
default (`use_fused="auto"`); any other value, and any layer or option Keras lacks, raises a
`ValueError` that names it and points to rnnkit's own format (`.rnnkit`), which keeps everything.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from typing import Any

import h5py
from torch import nn

from rnnkit.io import keras_compile, keras_weights
from rnnkit.io.keras_config import _COMMON, ARGUMENTS
from rnnkit.layers.symbolic import SymbolicTensor
from rnnkit.models.model import Model
from rnnkit.models.sequential import Sequential

# The Keras 3 version whose format this writer follows (Keras reads its own files from 3.0 on).
KERAS_FORMAT_VERSION = "3.15.1"

# rnnkit-only options Keras has no argument for, and the value that makes them leave nothing out.
RNNKIT_ONLY_DEFAULTS: dict[str, Any] = {"use_fused": "auto"}
# Options whose meaning the archive keeps elsewhere: the first layer's declared input shape and
# `Embedding(input_length=)` become the model's `InputLayer` (Keras 3 warns about both).
_KEPT_AS_INPUT_SHAPE = ("input_shape", "input_length")
# Config keys that hold a nested layer or cell (or a list of them).
_NESTED_LAYERS = ("layer", "backward_layer", "cell")
# Keras's module for an object-valued config key, by the key's ending.
_OBJECT_MODULES = {
    "_initializer": "keras.initializers",
    "_regularizer": "keras.regularizers",
    "_constraint": "keras.constraints",
}


def _keras_object(module: str, class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _dtype_policy(dtype: Any) -> dict[str, Any]:
    return _keras_object("keras", "DTypePolicy", {"name": str(dtype).removeprefix("torch.")})


def _refuse(owner: str, what: str) -> ValueError:
    return ValueError(
        f"Cannot save {owner} as a Keras `.keras` file: {what}. Save it under another name "
        "(e.g. `model.save('model.rnnkit')`): rnnkit's own format keeps every rnnkit option."
    )


def layer_config(layer: nn.Module) -> dict[str, Any]:
    """Keras's serialized form of one rnnkit layer or cell (without `build_config`).

    Raises:
        ValueError: the layer's class or one of its options has no Keras equivalent (named).
    """
    class_name = type(layer).__name__
    if not callable(getattr(layer, "get_config", None)):
        name = getattr(layer, "name", class_name)
        raise _refuse(f"layer '{name}' ({class_name})", f"Keras has no layer {class_name!r}")
    return _keras_layer(class_name, layer.get_config(), layer.dtype)


def _keras_layer(class_name: str, config: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """Keras's form of an rnnkit layer config (`serialize`'s `class_name` and `config`)."""
    owner = f"layer '{config.get('name', '?')}' ({class_name})"
    if class_name not in ARGUMENTS:
        raise _refuse(owner, f"Keras has no layer {class_name!r}")
    allowed = set(ARGUMENTS[class_name]) | set(_COMMON)
    keras_config: dict[str, Any] = {}
    for key, value in config.items():
        if key == "dtype" or key in _KEPT_AS_INPUT_SHAPE:
            continue
        if key in RNNKIT_ONLY_DEFAULTS and key not in allowed:
            if value != RNNKIT_ONLY_DEFAULTS[key]:
                raise _refuse(
                    owner,
                    f"option `{key}={value!r}` is rnnkit's own (Keras's files hold only its "
                    f"default, {RNNKIT_ONLY_DEFAULTS[key]!r})",
                )
            continue
        if key not in allowed:
            raise _refuse(owner, f"Keras's {class_name} has no option `{key}` (= {value!r})")
        keras_config[key] = _keras_value(key, value, dtype)
    keras_config["dtype"] = _dtype_policy(dtype)
    return _keras_object("keras.layers", class_name, keras_config)


def _keras_value(key: str, value: Any, dtype: Any) -> Any:
    """A config value with Keras's module names on nested layers, cells and objects."""
    if key in _NESTED_LAYERS and value is not None:
        return _keras_layer(value["class_name"], value["config"], dtype)
    if key == "cells":
        return [_keras_layer(cell["class_name"], cell["config"], dtype) for cell in value]
    if isinstance(value, dict) and "class_name" in value:
        for ending, module in _OBJECT_MODULES.items():
            if key.endswith(ending):
                return _keras_object(module, value["class_name"], value.get("config") or {})
        raise ValueError(f"Cannot write option `{key}` = {value!r} in Keras's format.")
    return value


def _input_layer(shape: Any, dtype: str, name: str) -> dict[str, Any]:
    config = {"batch_shape": list(shape), "dtype": dtype, "sparse": False, "ragged": False}
    return _keras_object("keras.layers", "InputLayer", {**config, "name": name})


def _with_build_config(config: dict[str, Any], input_shape: Any) -> dict[str, Any]:
    if input_shape is not None:
        config["build_config"] = {"input_shape": _json_shape(input_shape)}
    return config


def _json_shape(shape: Any) -> Any:
    if isinstance(shape, (list, tuple)) and any(isinstance(s, (list, tuple)) for s in shape):
        return [_json_shape(item) for item in shape]
    return list(shape)


# ------------------------------------------------------------------------------- models
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
    layers = [_input_layer(shape, dtype, name)]
    input_shapes = [shape, *(model._output_shapes or [])]
    for layer, input_shape in zip(model.layers, input_shapes):
        layers.append(_with_build_config(layer_config(layer), input_shape))
    config = {
        "name": model.name,
        "trainable": True,
        "dtype": _dtype_policy(model.dtype),
        "layers": layers,
        "build_input_shape": list(shape),
    }
    build_config = {"input_shape": list(shape)}
    return {**_keras_object("keras", "Sequential", config), "build_config": build_config}


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
        entry = _input_layer(tensor.shape, tensor.dtype, name)
        layers.append({**entry, "name": name, "inbound_nodes": []})
    # Keras lists a functional model's layers in its `model.layers` order, which also places
    # their weights in the weights file (readers take the order from this list).
    for layer in keras_weights.keras_layer_order(model):
        nodes = calls[id(layer)]
        first_input = nodes[0].symbolic_inputs()[0].shape if nodes else None
        entry = _with_build_config(layer_config(layer), first_input)
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
    keras_model = _keras_object("keras.src.models.functional", "Functional", config)
    return {**keras_model, "registered_name": "Functional"}


def model_config(model: Model) -> dict[str, Any]:
    """Keras's `config.json` content for `model` (with `compile_config` when compiled)."""
    if isinstance(model, Sequential):
        config = sequential_config(model)
    elif type(model) is Model and hasattr(model, "_graph_outputs"):
        config = functional_config(model)
    else:
        raise _refuse(
            f"model '{model.name}' ({type(model).__name__})",
            "Keras's files hold Sequential and functional models",
        )
    compile_config = (
        None if model.compiled is None else keras_compile.compile_config(model.compiled)
    )
    if compile_config is not None:
        config["compile_config"] = compile_config
    return config


def save_keras(model: Model, path: str | os.PathLike) -> None:
    """Writes `model` as a Keras 3 `.keras` file (atomically), so `keras.saving.load_model`
    rebuilds it with the same weights, compile arguments and, where Keras's format can hold it,
    optimizer state.

    Args:
        model: a built rnnkit `Sequential` or functional `Model` whose layers all exist in Keras
            (Embedding, SimpleRNN, LSTM, GRU, RNN with those cells, Bidirectional, Dense,
            Dropout, Flatten, Masking, TimeDistributed).
        path: the file to write, normally named `*.keras`.

    Raises:
        ValueError: the model is not built, or holds a layer or an option Keras lacks (named);
            nothing is written.

    Example:
        >>> model.save("sentiment.keras")          # calls save_keras
        >>> keras.saving.load_model("sentiment.keras").predict(x)
    """
    from rnnkit.models import saving

    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built yet, so it has no weights to save: give it an "
            "Input, or call it on data (or fit it) first."
        )
    config = model_config(model)
    weights = io.BytesIO()
    with h5py.File(weights, "w") as file:
        keras_weights.write_weights(file, model)
        if "compile_config" in config:
            keras_compile.write_optimizer_state(file, model)
    metadata = {
        "keras_version": KERAS_FORMAT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "rnnkit_version": _rnnkit_version(),
    }
    members = {
        "metadata.json": json.dumps(metadata),
        "config.json": json.dumps(config),
        "model.weights.h5": weights.getvalue(),
    }

    def write(file: Any) -> None:
        with zipfile.ZipFile(file, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)

    saving._atomic_write(os.fspath(path), write)


def _rnnkit_version() -> str:
    import rnnkit

    return rnnkit.__version__
