"""Read a Keras 3 `.keras` archive into an rnnkit model, without TensorFlow or Keras.

A `.keras` file is a zip archive:

    metadata.json       {"keras_version": "3.x.y", ...}
    config.json         {"class_name": "Sequential" | "Functional", "config": {...}}
    model.weights.h5    the weights in Keras's layout (see `keras_weights`)

Each Keras layer config is translated into rnnkit's constructor arguments (rnnkit keeps Keras's
argument names). Keras-only keys that change nothing rnnkit computes are dropped (`dtype` policies
become plain dtypes; `implementation`, `use_cudnn`); a layer class or option rnnkit lacks raises
a `ValueError` naming it. Functional configs are rebuilt by replaying their `inbound_nodes` on
`rnnkit.Input`s, as Keras does.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h5py

from rnnkit import layers
from rnnkit._files import decode_errors
from rnnkit.io import keras_weights
from rnnkit.layers import serialization
from rnnkit.layers.symbolic import Input, flatten

if TYPE_CHECKING:
    from rnnkit.models.model import Model
    from rnnkit.models.sequential import Sequential

_ANY = object()

_RECURRENT_CELL = (
    "units",
    "activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)
_RECURRENT_LAYER = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
)
_LSTM_EXTRA = ("recurrent_activation", "unit_forget_bias")
_GRU_EXTRA = ("recurrent_activation", "reset_after")

# The Keras arguments each supported class takes (besides name, trainable, dtype and
# activity_regularizer); rnnkit's constructors take them under the same names.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "SimpleRNN": _RECURRENT_CELL + _RECURRENT_LAYER,
    "LSTM": _RECURRENT_CELL + _LSTM_EXTRA + _RECURRENT_LAYER,
    "GRU": _RECURRENT_CELL + _GRU_EXTRA + _RECURRENT_LAYER,
    "RNN": ("cell",) + _RECURRENT_LAYER,
    "SimpleRNNCell": _RECURRENT_CELL,
    "LSTMCell": _RECURRENT_CELL + _LSTM_EXTRA,
    "GRUCell": _RECURRENT_CELL + _GRU_EXTRA,
    "StackedRNNCells": ("cells",),
    "Bidirectional": ("layer", "backward_layer", "merge_mode"),
    "Dense": (
        "units",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "kernel_constraint",
        "bias_constraint",
    ),
    "Embedding": (
        "input_dim",
        "output_dim",
        "embeddings_initializer",
        "embeddings_regularizer",
        "embeddings_constraint",
        "mask_zero",
        "input_length",
    ),
    "Dropout": ("rate", "noise_shape", "seed"),
    "Masking": ("mask_value",),
    "TimeDistributed": ("layer",),
    "Flatten": (),
}
_COMMON = ("name", "trainable", "activity_regularizer")
# Keras-only keys that change nothing rnnkit computes when they hold these values (_ANY: any).
_DROPPED = {
    "implementation": _ANY,
    "use_cudnn": _ANY,
    "quantization_config": None,
    "lora_rank": None,
    "data_format": "channels_last",
}
_NESTED = ("cell", "layer", "backward_layer")


def _dtype_name(owner: str, dtype: Any) -> str | None:
    """A Keras dtype policy (`{"class_name": "DTypePolicy", "config": {"name": ...}}`) or dtype
    name as a plain dtype name; mixed-precision policies are not supported."""
    if dtype is None or isinstance(dtype, str):
        name = dtype
    elif isinstance(dtype, dict):
        name = (dtype.get("config") or {}).get("name")
    else:
        name = None
    if name is None and dtype is not None:
        raise ValueError(f"{owner}: cannot read the dtype {dtype!r}.")
    if name is not None and name.startswith("mixed_"):
        raise ValueError(
            f"{owner}: option `dtype` = {name!r} (mixed precision) is not supported by rnnkit."
        )
    return name


def layer_from_config(config: dict[str, Any]) -> Any:
    """An rnnkit layer (or cell) from one Keras layer config `{"class_name", "config"}`.

    Raises:
        ValueError: the class or one of its options has no rnnkit equivalent (named).
    """
    class_name = config.get("class_name")
    inner = dict(config.get("config") or {})
    owner = f"Keras layer {inner.get('name', '?')!r} ({class_name})"
    if class_name not in ARGUMENTS:
        raise ValueError(
            f"{owner}: rnnkit has no layer {class_name!r}; supported: {sorted(ARGUMENTS)}."
        )
    allowed = set(ARGUMENTS[class_name]) | set(_COMMON)
    arguments: dict[str, Any] = {}
    for key, value in inner.items():
        if key == "dtype":
            arguments["dtype"] = _dtype_name(owner, value)
        elif key in _NESTED and key in allowed:
            arguments[key] = None if value is None else layer_from_config(value)
        elif key == "cells" and key in allowed:
            arguments[key] = [layer_from_config(cell) for cell in value]
        elif key in allowed:
            arguments[key] = value
        elif key in _DROPPED and _DROPPED[key] in (_ANY, value):
            continue
        else:
            raise ValueError(f"{owner}: option `{key}` = {value!r} is not supported by rnnkit.")
    cls = getattr(layers, class_name)
    positional = [arguments.pop(key) for key in ("cell", "cells", "layer") if key in arguments]
    try:
        return cls(*positional, **arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: {error}") from None


def _input_from_config(config: dict[str, Any]) -> Any:
    inner = config.get("config") or {}
    owner = f"Keras input {inner.get('name', '?')!r}"
    for key in ("sparse", "ragged", "optional"):
        if inner.get(key):
            raise ValueError(f"{owner}: option `{key}` = True is not supported by rnnkit.")
    shape = inner.get("batch_shape") or inner.get("batch_input_shape")
    if shape is None:
        raise ValueError(f"{owner}: the config has no `batch_shape`.")
    dtype = _dtype_name(owner, inner.get("dtype")) or "float32"
    return Input(batch_shape=tuple(shape), dtype=dtype, name=inner.get("name"))


# ------------------------------------------------------------------------------- models
def _sequential_from_config(config: dict[str, Any]) -> tuple[Sequential, list[Any]]:
    model = serialization.model_class("Sequential")(name=config.get("name"))
    model_layers = []
    for item in config["layers"]:
        if item.get("class_name") == "InputLayer":
            model.add(_input_from_config(item))
        else:
            layer = layer_from_config(item)
            model.add(layer)
            model_layers.append(layer)
    shape = config.get("build_input_shape")
    if shape and not model.built:
        model.build(tuple(shape))
    return model, model_layers


class _NotReady(Exception):
    """A node refers to a layer call that has not been replayed yet."""


@dataclass(frozen=True)
class _OpOutput:
    """The output of a Keras op node (`NotEqual`, `Any`, ...). Keras 3 records the mask
    computations of `Masking` and `Embedding(mask_zero=True)` as such nodes and passes their
    result as `mask=`; rnnkit propagates those masks itself, so these nodes are skipped. Any
    other use of an op's output has no rnnkit equivalent."""

    class_name: str
    name: str


def _is_keras_op(item: dict[str, Any]) -> bool:
    return str(item.get("module", "")).startswith("keras.src.ops")


def _reject_ops(value: Any, layer_name: str) -> None:
    for leaf in flatten(value):
        if isinstance(leaf, _OpOutput):
            raise ValueError(
                f"Keras layer {layer_name!r} takes the output of the Keras op {leaf.name!r} "
                f"({leaf.class_name}), which has no rnnkit equivalent."
            )


def _functional_from_config(config: dict[str, Any]) -> tuple[Model, list[Any]]:
    created: dict[str, Any] = {}
    ops: dict[str, _OpOutput] = {}
    calls: dict[str, list[tuple]] = {}  # layer name -> outputs of each replayed call
    pending: dict[str, list[dict]] = {}
    order: list[str] = []
    for item in config["layers"]:
        name = item.get("name") or (item.get("config") or {}).get("name")
        order.append(name)
        calls[name] = []
        pending[name] = list(item.get("inbound_nodes") or [])
        if item.get("class_name") == "InputLayer":
            calls[name] = [(_input_from_config(item),)]
        elif _is_keras_op(item):
            ops[name] = _OpOutput(item["class_name"], name)
        else:
            created[name] = layer_from_config(item)

    def tensor(history: list) -> Any:
        layer_name, node_index, tensor_index = history
        outputs = calls.get(layer_name)
        if outputs is None:
            raise ValueError(f"The Keras config refers to an unknown layer {layer_name!r}.")
        if node_index >= len(outputs):
            raise _NotReady
        return outputs[node_index][tensor_index]

    def decode(value: Any, owner: str) -> Any:
        """Node arguments with tensors resolved (raises _NotReady if one is not replayed yet);
        other Keras objects are an error in a layer's call, and left as they are in an op's."""
        if isinstance(value, list):
            return [decode(item, owner) for item in value]
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return tensor(value["config"]["keras_history"])
        if isinstance(value, dict) and value.get("class_name") == "__tuple__":
            return tuple(decode(item, owner) for item in value["config"]["value"])
        if isinstance(value, dict) and "class_name" in value and owner not in ops:
            raise ValueError(
                f"Keras layer {owner!r}: its call passes a {value['class_name']!r} object, "
                "which rnnkit cannot replay."
            )
        if isinstance(value, dict) and "class_name" not in value:
            return {key: decode(item, owner) for key, item in value.items()}
        return value

    while any(pending.values()):
        progressed = False
        for name in order:
            while pending.get(name):
                node = pending[name][0]
                try:
                    args = decode(node.get("args", []), name)
                    kwargs = decode(node.get("kwargs", {}), name)
                except _NotReady:
                    break
                if name in ops:
                    calls[name].append((ops[name],))
                    pending[name].pop(0)
                    progressed = True
                    continue
                # Keras records `training` and the propagated `mask` at each symbolic call;
                # rnnkit takes the mode from the model and propagates masks itself.
                kwargs.pop("training", None)
                if kwargs.get("mask") is None or isinstance(kwargs.get("mask"), _OpOutput):
                    kwargs.pop("mask", None)
                _reject_ops((args, kwargs), name)
                try:
                    outputs = created[name](*args, **kwargs)
                except TypeError as error:
                    raise ValueError(
                        f"Keras layer {name!r}: cannot replay its call: {error}"
                    ) from None
                calls[name].append(outputs if isinstance(outputs, tuple) else (outputs,))
                pending[name].pop(0)
                progressed = True
        if not progressed:
            raise ValueError("Invalid Keras functional config: some layer calls never resolve.")

    def structure(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return tensor(value)
        return [structure(item) for item in value]

    inputs, outputs = structure(config["input_layers"]), structure(config["output_layers"])
    _reject_ops(outputs, "(model outputs)")
    model = serialization.model_class("Model")(
        _single(inputs), _single(outputs), name=config.get("name")
    )
    return model, [created[name] for name in order if name in created]


def _single(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def model_from_config(config: dict[str, Any]) -> tuple[Model, list[Any]]:
    """The rnnkit model for a Keras model config, and its layers in Keras's `model.layers` order
    (which fixes where their weights sit in the weights file)."""
    class_name = config.get("class_name")
    inner = config.get("config") or {}
    if class_name == "Sequential":
        return _sequential_from_config(inner)
    if class_name in ("Functional", "Model") and "layers" in inner:
        return _functional_from_config(inner)
    raise ValueError(
        f"Cannot read a Keras model of class {class_name!r}: rnnkit reads Sequential and "
        "functional models (subclassed models have no config to rebuild them from)."
    )


def load_keras(path: str | os.PathLike) -> Model:
    """Reads a Keras 3 `.keras` file into an equivalent rnnkit model with the same weights.

    Sequential and functional models made of Embedding, SimpleRNN, LSTM, GRU, RNN (with those
    cells), Bidirectional, Dense, Dropout, Masking, TimeDistributed and Flatten layers are read;
    they predict what the Keras model predicts. Needs h5py, not Keras or TensorFlow. The
    optimizer state and compile arguments are not read.

    Args:
        path: a `.keras` archive written by Keras 3 (`model.save("model.keras")`).

    Returns:
        an rnnkit `Sequential` or `Model`.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a Keras 3 archive, or a layer or option has no rnnkit
            equivalent (the message names it).

    Example:
        >>> model = rnnkit.io.load_keras("sentiment.keras")
        >>> model.predict(x_test)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No Keras model file at {path!r}.")
    if not zipfile.is_zipfile(path):
        hint = " (a Keras 2 HDF5 model? re-save it with Keras 3 as .keras)"
        raise ValueError(
            f"{path!r} is not a Keras 3 `.keras` archive{hint if h5py.is_hdf5(path) else ''}."
        )
    with decode_errors(path, "the Keras archive"):
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    for name in ("metadata.json", "config.json"):
        if name not in members:
            raise ValueError(f"{path!r} is not a Keras 3 `.keras` archive: it has no {name}.")
    metadata = _json_object(path, members, "metadata.json")
    config = _json_object(path, members, "config.json")
    version = str(metadata.get("keras_version", "3."))
    if not version.startswith("3."):
        raise ValueError(f"{path!r} was written by Keras {version}; rnnkit reads Keras 3 files.")
    try:
        model, model_layers = model_from_config(config)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        detail = f"the field {error} is missing" if isinstance(error, KeyError) else str(error)
        raise ValueError(
            f"{path!r}: config.json is not a valid Keras model config: {detail}"
        ) from None
    groups = keras_weights.layers_groups(model_layers)
    if "model.weights.h5" not in members:
        if any(group.weights for group in groups):
            raise ValueError(f"{path!r} has no model.weights.h5 for the model's weights.")
        return model
    with decode_errors(path, "model.weights.h5 (HDF5)"):
        with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as file:
            values = keras_weights.read_groups(file, groups, repr(path))
    keras_weights.assign(groups, values)
    return model


def _json_object(path: str, members: dict[str, bytes], name: str) -> dict[str, Any]:
    """The JSON object in member `name` of the `.keras` archive at `path`."""
    with decode_errors(path, name):
        value = json.loads(members[name])
    if not isinstance(value, dict):
        raise ValueError(f"{path!r}: {name} must hold a JSON object, it holds {value!r:.80}.")
    return value
