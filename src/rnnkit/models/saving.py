"""Saving whole models to one file and loading them back.

A model file is a zip archive with:

    metadata.json       format name and version
    config.json         the architecture: `{"class_name": "Sequential" | "Model", "config": ...}`
    model.safetensors   the weights, by `state_dict()` name
    compile.json        the `compile()` arguments, when the model was compiled with names/configs
    optimizer.pt        the optimizer's `state_dict()`, so training resumes where it stopped

Writes are atomic: the archive is written to a temporary file beside the target and moved over
it only when complete, so a crash mid-save never leaves a broken file in place of a good one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from rnnkit._files import atomic_write, decode_errors
from rnnkit.layers import serialization
from rnnkit.layers.symbolic import Input, SymbolicTensor

FORMAT = "rnnkit-model"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------ configs
def _input_config(tensor: SymbolicTensor) -> dict[str, Any]:
    return {"batch_shape": list(tensor.shape), "dtype": tensor.dtype, "name": tensor.name}


def _input_from_config(config: dict[str, Any]) -> SymbolicTensor:
    return Input(
        batch_shape=tuple(config["batch_shape"]), dtype=config["dtype"], name=config["name"]
    )


def sequential_config(model: Any) -> dict[str, Any]:
    """The config of a `Sequential` model: its input (if any) and its layers' configs."""
    shape = model.build_input_shape
    return {
        "name": model.name,
        "input": None if model.input_tensor is None else _input_config(model.input_tensor),
        "build_input_shape": None if shape is None else list(shape),
        "layers": [serialization.serialize(layer) for layer in model.layers],
    }


def functional_config(model: Any) -> dict[str, Any]:
    """The config of a functional `Model`: inputs, layers, recorded calls and outputs."""
    layer_index = {id(layer): i for i, layer in enumerate(model.layers)}
    node_index = {id(node): i for i, node in enumerate(model._nodes)}
    input_index = {id(tensor): i for i, tensor in enumerate(model._graph_inputs)}

    def encode(value: Any) -> Any:
        if isinstance(value, SymbolicTensor):
            if value.node is None:
                return {"tensor": ["input", input_index[id(value)]]}
            return {"tensor": ["node", node_index[id(value.node)], value.index]}
        if isinstance(value, (list, tuple)):
            return [encode(item) for item in value]
        if isinstance(value, dict):
            return {key: encode(item) for key, item in value.items()}
        return value

    return {
        "name": model.name,
        "inputs": [_input_config(tensor) for tensor in model._graph_inputs],
        "layers": [serialization.serialize(layer) for layer in model.layers],
        "nodes": [
            {
                "layer": layer_index[id(node.layer)],
                "args": encode(node.args),
                "kwargs": encode(node.kwargs),
            }
            for node in model._nodes
        ],
        "outputs": [encode(tensor) for tensor in model._graph_outputs],
        "single_output": model._single_output,
    }


def model_from_config(config: dict[str, Any], custom_objects: dict | None = None) -> Any:
    """Recreates a `Sequential` or functional `Model` (without weights) from its config."""
    Model = serialization.model_class("Model")  # noqa: N806 - the registered classes, by name
    Sequential = serialization.model_class("Sequential")  # noqa: N806
    kind, inner = config.get("class_name"), config.get("config", {})
    if kind == "Sequential":
        model = Sequential(name=inner["name"])
        if inner.get("input"):
            model.add(_input_from_config(inner["input"]))
        for layer in inner["layers"]:
            model.add(serialization.deserialize(layer, custom_objects))
        if inner.get("build_input_shape") and not model.built:
            model.build(tuple(inner["build_input_shape"]))
        return model
    if kind != "Model":
        raise ValueError(f"Unknown model class {kind!r} in config; expected Sequential or Model.")
    inputs = [_input_from_config(item) for item in inner["inputs"]]
    layers = [serialization.deserialize(item, custom_objects) for item in inner["layers"]]
    node_outputs: list[Any] = []

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"tensor"}:
            kind, *where = value["tensor"]
            if kind == "input":
                return inputs[where[0]]
            outputs = node_outputs[where[0]]
            return outputs[where[1]] if isinstance(outputs, tuple) else outputs
        if isinstance(value, list):
            return [decode(item) for item in value]
        if isinstance(value, dict):
            return {key: decode(item) for key, item in value.items()}
        return value

    for node in inner["nodes"]:
        args = decode(node["args"])
        node_outputs.append(layers[node["layer"]](*args, **decode(node["kwargs"])))
    outputs = [decode(item) for item in inner["outputs"]]
    return Model(
        inputs if len(inputs) > 1 else inputs[0],
        outputs[0] if inner["single_output"] else outputs,
        name=inner["name"],
    )


# ----------------------------------------------------------------------------- files
def save_model(model: Any, path: str | os.PathLike) -> None:
    """Saves `model` (architecture, weights, compile arguments, optimizer state) to `path`."""
    path = os.fspath(path)
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built yet, so it has no weights to save: give it an "
            "Input, or call it on data (or fit it) first."
        )
    config = {"class_name": type(model).__name__, "config": model.get_config()}
    weights = {name: value.detach().contiguous() for name, value in model.state_dict().items()}
    members = {
        "metadata.json": json.dumps({"format": FORMAT, "version": FORMAT_VERSION}),
        "config.json": json.dumps(config, indent=1),
        "model.safetensors": save_safetensors(weights),
    }
    compiled = getattr(model, "compiled", None)
    if compiled is not None:
        compile_config = compiled.get_config()
        members["compile.json"] = json.dumps(compile_config)
        if "optimizer" in compile_config:  # a custom optimizer cannot be recreated on load
            buffer = io.BytesIO()
            torch.save(compiled.optimizer.state_dict(), buffer)
            members["optimizer.pt"] = buffer.getvalue()

    with atomic_write(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)


def _read_members(path: str) -> dict[str, bytes]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    with decode_errors(path, "the model archive"):
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    metadata = _json_member(path, members, "metadata.json", default=b"{}")
    missing = {"config.json", "model.safetensors"} - set(members)
    if metadata.get("format") != FORMAT or missing:
        raise ValueError(
            f"{path!r} is not an rnnkit model file (format {metadata.get('format')!r}, "
            f"missing {sorted(missing)})."
        )
    version = metadata.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path!r}: metadata.json field 'version' must be an integer.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written by a newer rnnkit (format version {version}); "
            f"this version reads up to {FORMAT_VERSION}."
        )
    return members


def _json_member(path: str, members: dict[str, bytes], name: str, default: bytes) -> dict:
    """The JSON object in member `name` of the archive at `path`."""
    with decode_errors(path, name):
        value = json.loads(members.get(name, default))
    if not isinstance(value, dict):
        raise ValueError(f"{path!r}: {name} must hold a JSON object, it holds {value!r:.80}.")
    return value


def check_config(config: dict[str, Any]) -> None:
    """Checks the structure of a model config (`{"class_name", "config"}`) before it is used, so
    a hand-edited file fails with the name of the field that is wrong.

    Raises:
        ValueError: naming the field that is missing or of the wrong type.
    """
    kind = config.get("class_name")
    if kind not in ("Sequential", "Model"):
        raise ValueError(f"field 'class_name' must be 'Sequential' or 'Model', it is {kind!r}")
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise ValueError("field 'config' must be an object")
    fields = {"layers": list, "name": str}
    if kind == "Model":
        fields.update(inputs=list, nodes=list, outputs=list, single_output=bool)
    for field, expected in fields.items():
        if field not in inner:
            raise ValueError(f"field 'config.{field}' is missing")
        if not isinstance(inner[field], expected):
            raise ValueError(f"field 'config.{field}' must be a {expected.__name__}")
    for index, layer in enumerate(inner["layers"]):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            raise ValueError(f"field 'config.layers[{index}]' must be a layer config")
        if not isinstance(layer.get("config", {}), dict):
            raise ValueError(f"field 'config.layers[{index}].config' must be an object")


def load_model(path: str | os.PathLike, custom_objects: dict | None = None) -> Any:
    """Loads a model saved with `model.save(path)`: same architecture, weights and (if it was
    compiled) optimizer and optimizer state, so it predicts identically and training resumes.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is truncated, corrupt, hand-edited into something invalid, or not
            an rnnkit model file (the message names the file and what is wrong).
    """
    path = os.fspath(path)
    members = _read_members(path)
    config = _json_member(path, members, "config.json", default=b"")
    try:
        check_config(config)
        model = model_from_config(config, custom_objects)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as error:
        detail = f"field {error} is missing" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"{path!r}: config.json does not describe a model: {detail}") from None
    with decode_errors(path, "the weights (model.safetensors)"):
        weights = load_safetensors(members["model.safetensors"])
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{path!r}: the weights do not fit the architecture: {error}") from None
    if "compile.json" in members:
        compile_config = _json_member(path, members, "compile.json", default=b"")
        try:
            model.compile(**compile_config)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path!r}: compile.json is not valid: {error}") from None
        if "optimizer.pt" in members:
            with decode_errors(path, "the optimizer state (optimizer.pt)"):
                state = torch.load(io.BytesIO(members["optimizer.pt"]), weights_only=True)
            try:
                model.compiled.optimizer.load_state_dict(state)
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"{path!r}: optimizer.pt does not fit the model's optimizer: {error}"
                ) from None
    return model
