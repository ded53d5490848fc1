"""Layers in Keras 3's serialization format, and the members of a `.keras` archive.

A `.keras` archive holds what Keras 3's own `model.save("m.keras")` writes (see `keras_config`
for the reader; `rnnkit.models.keras_saving` puts a model's config together):

    metadata.json       {"keras_version": ..., "date_saved": ..., "rnnkit_version": ...}
    config.json         the model in Keras's serialization format: every object as
                        {"module", "class_name", "config", "registered_name"}
    model.weights.h5    the weights in Keras's layout (`keras_weights`), and under
                        `optimizer/vars` the optimizer's variables

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
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
from torch import nn

from rnnkit.io import keras_weights
from rnnkit.io.keras_config import _COMMON, ARGUMENTS

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


def keras_object(module: str, class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """`{"module", "class_name", "config", "registered_name"}`: how Keras serializes an object."""
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def dtype_policy(dtype: Any) -> dict[str, Any]:
    """Keras's `DTypePolicy` for a torch dtype (or its name)."""
    return keras_object("keras", "DTypePolicy", {"name": str(dtype).removeprefix("torch.")})


def refuse(owner: str, what: str) -> ValueError:
    """The error for what a `.keras` file cannot hold: names it and points to `.rnnkit`."""
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
        raise refuse(f"layer '{name}' ({class_name})", _unwritable(class_name))
    return _keras_layer(class_name, layer.get_config(), layer.dtype)


def _unwritable(class_name: str) -> str:
    return (
        f"rnnkit writes no {class_name!r} layer in Keras's format (only "
        f"{', '.join(sorted(ARGUMENTS))})"
    )


def _keras_layer(class_name: str, config: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """Keras's form of an rnnkit layer config (`serialize`'s `class_name` and `config`)."""
    owner = f"layer '{config.get('name', '?')}' ({class_name})"
    if class_name not in ARGUMENTS:
        raise refuse(owner, _unwritable(class_name))
    allowed = set(ARGUMENTS[class_name]) | set(_COMMON)
    keras_config: dict[str, Any] = {}
    for key, value in config.items():
        if key == "dtype" or key in _KEPT_AS_INPUT_SHAPE:
            continue
        if key in RNNKIT_ONLY_DEFAULTS and key not in allowed:
            if value != RNNKIT_ONLY_DEFAULTS[key]:
                raise refuse(
                    owner,
                    f"option `{key}={value!r}` is rnnkit's own (Keras's files hold only its "
                    f"default, {RNNKIT_ONLY_DEFAULTS[key]!r})",
                )
            continue
        if key not in allowed:
            raise refuse(owner, f"Keras's {class_name} has no option `{key}` (= {value!r})")
        keras_config[key] = _keras_value(owner, key, value, dtype)
    keras_config["dtype"] = dtype_policy(dtype)
    return keras_object("keras.layers", class_name, keras_config)


def _keras_value(owner: str, key: str, value: Any, dtype: Any) -> Any:
    """A config value with Keras's module names on nested layers, cells and objects."""
    if key in _NESTED_LAYERS and value is not None:
        return _keras_layer(value["class_name"], value["config"], dtype)
    if key == "cells":
        return [_keras_layer(cell["class_name"], cell["config"], dtype) for cell in value]
    if isinstance(value, dict) and "class_name" in value:
        for ending, module in _OBJECT_MODULES.items():
            if key.endswith(ending):
                return keras_object(module, value["class_name"], value.get("config") or {})
        raise refuse(owner, f"option `{key}` = {value!r} has no form in Keras's format")
    return value


def input_layer_config(shape: Any, dtype: str, name: str) -> dict[str, Any]:
    """Keras's `InputLayer` for inputs of `shape` (batch axis first) and `dtype` named `name`."""
    config = {"batch_shape": list(shape), "dtype": dtype, "sparse": False, "ragged": False}
    return keras_object("keras.layers", "InputLayer", {**config, "name": name})


def with_build_config(config: dict[str, Any], input_shape: Any) -> dict[str, Any]:
    """A layer config with Keras's `build_config` (the input shape it was built for), if known."""
    if input_shape is not None:
        config["build_config"] = {"input_shape": _json_shape(input_shape)}
    return config


def _json_shape(shape: Any) -> Any:
    if isinstance(shape, (list, tuple)) and any(isinstance(s, (list, tuple)) for s in shape):
        return [_json_shape(item) for item in shape]
    return list(shape)


# ------------------------------------------------------------------------------ archive
def archive_members(
    config: dict[str, Any],
    model: nn.Module,
    optimizer_variables: tuple[str, Sequence[np.ndarray]] | None = None,
) -> dict[str, bytes]:
    """The members of a `.keras` archive: metadata, `config` and the weights of `model`.

    Args:
        config: the model's Keras config (`{"module", "class_name", "config", ...}`).
        model: the built rnnkit model whose weights go into `model.weights.h5`.
        optimizer_variables: the optimizer's name and its variables in Keras's order, written
            under `optimizer/vars`, or None.

    Returns:
        `{member name: content}` for `metadata.json`, `config.json` and `model.weights.h5`.
    """
    weights = io.BytesIO()
    with h5py.File(weights, "w", libver=keras_weights.HDF5_FORMAT) as file:
        keras_weights.write_weights(file, model)
        if optimizer_variables is not None:
            name, values = optimizer_variables
            group = file.require_group("optimizer/vars")
            group.attrs["name"] = name
            for index, value in enumerate(values):
                group.create_dataset(str(index), data=value)
    metadata = {
        "keras_version": KERAS_FORMAT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "rnnkit_version": _rnnkit_version(),
    }
    return {
        "metadata.json": json.dumps(metadata).encode(),
        "config.json": json.dumps(config).encode(),
        "model.weights.h5": weights.getvalue(),
    }


def read_optimizer_variables(weights: bytes) -> list[np.ndarray] | None:
    """The arrays under `optimizer/vars` of a `model.weights.h5` member, in Keras's order, or
    None when it holds none."""
    with h5py.File(io.BytesIO(weights), "r") as file:
        if "optimizer/vars" not in file:
            return None
        stored = file["optimizer/vars"]
        return [np.asarray(stored[str(index)][()]) for index in range(len(stored))]


def _rnnkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnnkit")
    except PackageNotFoundError:
        return "unknown"
