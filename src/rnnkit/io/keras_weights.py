"""Keras 3's `.weights.h5` layout: read it into rnnkit models and write it from them.

Keras 3 stores weights by *position in the model*, not by name. For a model the file holds

    vars                                   the model's own weights (none), attribute `name`
    layers/<key>/vars/<i>                  layer <key>'s own weights, in creation order (Keras
                                           puts trainable ones first; all built-in ones are)
    layers/<key>/cell/vars/<i>             a recurrent layer's cell (kernel, recurrent_kernel, bias)
    layers/<key>/cell/cells/<key>/vars/<i> the cells of a `StackedRNNCells`
    layers/<key>/forward_layer/...         `Bidirectional`'s two layers (and `backward_layer`)
    layers/<key>/layer/...                 the layer inside `TimeDistributed`

where a key is the snake-cased class name made unique within its container, in order: the first
LSTM is `lstm`, the second `lstm_1`. rnnkit layers keep Keras's class names, attribute names and
weight order, so the layout follows from walking the model. Layers are listed in `model.layers`
order for a `Sequential`, and in Keras's order for a functional `Model` (by depth from the
outputs, ties in the order a walk from the outputs first meets them), which `keras_layer_order`
reproduces. Every `vars` group carries the layer's `name` as an attribute, as Keras writes it.

Loading validates every weight (present, no extra ones, same shape) before assigning any, so a
bad file leaves the model unchanged. Saving writes a temporary file and moves it over the target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch
from torch import nn

from rnnkit._files import atomic_write, decode_errors
from rnnkit.layers import graph, serialization
from rnnkit.layers.base import Layer

if TYPE_CHECKING:
    from rnnkit.models.model import Model


@dataclass
class WeightGroup:
    """One `vars` group: the layer that owns it and its weights, `(name, parameter)` in order."""

    path: str
    layer: nn.Module
    weights: list[tuple[str, nn.Parameter]] = field(default_factory=list)

    @property
    def vars_path(self) -> str:
        return _join(self.path, "vars")


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def snake_case(class_name: str) -> str:
    """Keras's `to_snake_case`: `SimpleRNN` -> `simple_rnn`, `StackedRNNCells` ->
    `stacked_rnn_cells`."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_keys(modules: Sequence[nn.Module]) -> list[str]:
    """Keras's container keys: `lstm`, `dense`, `lstm_1`, ... (one counter per class name)."""
    used: dict[str, int] = {}
    keys = []
    for module in modules:
        name = snake_case(type(module).__name__)
        if name in used:
            used[name] += 1
            keys.append(f"{name}_{used[name]}")
        else:
            used[name] = 0
            keys.append(name)
    return keys


def keras_layer_order(model: Model) -> list[nn.Module]:
    """The layers of `model` in Keras's order (`keras.Model.layers`): a `Sequential`'s in order;
    a functional model's by `rnnkit.layers.graph.keras_layer_order`."""
    if isinstance(model, serialization.model_class("Sequential")):
        return model.layers
    return graph.keras_layer_order(model._graph_outputs)


def _layer_groups(layer: nn.Module, path: str) -> list[WeightGroup]:
    """The groups of `layer` at `path` and of its sublayers below it."""
    if isinstance(layer, serialization.model_class("Model")):
        return [
            WeightGroup(path, layer),
            *layers_groups(keras_layer_order(layer), _join(path, "layers")),
        ]
    if not isinstance(layer, Layer):
        raise ValueError(
            f"Cannot map {type(layer).__name__} onto Keras's weight layout: only rnnkit layers "
            "have a Keras equivalent."
        )
    group = WeightGroup(path, layer, [(n, getattr(layer, n)) for n in layer._own_weight_names])
    groups = [group]
    for attribute, module in layer._modules.items():
        if isinstance(module, Layer):
            groups.extend(_layer_groups(module, _join(path, attribute)))
        elif isinstance(module, (nn.ModuleList, nn.Sequential)):
            groups.extend(layers_groups(list(module), _join(path, attribute)))
        elif module is not None and any(True for _ in module.parameters()):
            raise ValueError(
                f"Layer '{layer.name}' holds a plain torch module `{attribute}` "
                f"({type(module).__name__}) with weights, which Keras's layout cannot place."
            )
    return groups


def layers_groups(layers: Sequence[nn.Module], path: str = "layers") -> list[WeightGroup]:
    """The groups of `layers` listed in a Keras container at `path` (e.g. a model's `layers`)."""
    groups: list[WeightGroup] = []
    for key, layer in zip(_unique_keys(layers), layers):
        groups.extend(_layer_groups(layer, _join(path, key)))
    return groups


def model_groups(model: nn.Module) -> list[WeightGroup]:
    """Every `vars` group Keras writes for `model` (a model or a single layer), in order."""
    return _layer_groups(model, "")


# ------------------------------------------------------------------------------- reading
def _open(path: str | os.PathLike) -> h5py.File:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No weights file at {path!r}.")
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{path!r} is not an HDF5 file; expected Keras 3 weights (`.weights.h5`, written by "
            "`model.save_weights`)."
        )
    return h5py.File(path, "r")


def _datasets_below(file: h5py.File, root: str) -> set[str]:
    found: set[str] = set()
    if root in file:
        file[root].visititems(
            lambda name, item: (
                found.add(f"{root}/{name}") if isinstance(item, h5py.Dataset) else None
            )
        )
    return found


def _converted(item: h5py.Dataset, parameter: nn.Parameter, where: str) -> torch.Tensor:
    """The dataset `item` as a tensor of `parameter`'s dtype, or a ValueError saying why not."""
    array = np.asarray(item[()])
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{where} holds {array.dtype} values, expected numbers (floats).")
    return torch.as_tensor(array, dtype=parameter.dtype)


def read_groups(file: h5py.File, groups: Sequence[WeightGroup], source: str) -> list[torch.Tensor]:
    """The values for every weight of `groups`, in order, each read, converted to its weight's
    dtype and checked before any is assigned.

    Raises:
        ValueError: naming the layer and weight, when a weight is missing, has another shape or
            a non-numeric dtype, or the file holds weights (under `layers/`) that the model has
            no place for.
    """
    values: list[torch.Tensor] = []
    used: set[str] = set()
    for group in groups:
        name = getattr(group.layer, "name", type(group.layer).__name__)
        for index, (weight_name, parameter) in enumerate(group.weights):
            key = f"{group.vars_path}/{index}"
            item = file.get(key)
            if not isinstance(item, h5py.Dataset):
                raise ValueError(
                    f"{source}: layer '{name}' needs weight {index} (`{weight_name}`, shape "
                    f"{tuple(parameter.shape)}) at '{key}', but the file has none there."
                )
            if tuple(item.shape) != tuple(parameter.shape):
                raise ValueError(
                    f"{source}: layer '{name}' weight `{weight_name}` ('{key}') should have shape "
                    f"{tuple(parameter.shape)}, the file has {tuple(item.shape)}."
                )
            where = f"{source}: layer '{name}' weight `{weight_name}` ('{key}')"
            values.append(_converted(item, parameter, where))
            used.add(key)
    extra = sorted(_datasets_below(file, "layers") - used)
    if extra:
        shown = ", ".join(repr(key) for key in extra[:5])
        raise ValueError(
            f"{source}: the file holds {len(extra)} weight(s) the model has no place for "
            f"({shown}{', ...' if len(extra) > 5 else ''}); was it saved from another model?"
        )
    return values


def assign(groups: Sequence[WeightGroup], values: Sequence[torch.Tensor]) -> None:
    """Copies `values` (from `read_groups`, already checked and converted) into the weights of
    `groups`."""
    parameters = [parameter for group in groups for _, parameter in group.weights]
    with torch.no_grad():
        for parameter, value in zip(parameters, values):
            parameter.copy_(value)


def _require_built(model: nn.Module) -> None:
    if not getattr(model, "built", True):
        name = getattr(model, "name", type(model).__name__)
        raise ValueError(
            f"Model '{name}' is not built yet, so it has no weights: give it an Input, or call "
            "it on data, first."
        )


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Loads Keras 3 weights (`keras_model.save_weights(path)`) into a matching rnnkit model.

    The model must have the same layers as the Keras model that wrote the file (same classes in
    the same order, same shapes); names do not matter. Nothing is assigned unless every weight
    fits.

    Args:
        model: a built rnnkit `Sequential`, functional `Model`, or a single layer.
        path: a `.weights.h5` file in Keras 3's layout.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not HDF5, or a weight is missing, extra or of another shape (the
            message names the layer and the weight); the model's weights are left unchanged.

    Example:
        >>> rnnkit.io.load_weights(model, "model.weights.h5")
    """
    _require_built(model)
    groups = model_groups(model)
    path = os.fspath(path)
    with decode_errors(path, "the weights (HDF5)"), _open(path) as file:
        values = read_groups(file, groups, repr(path))
    assign(groups, values)


def _write_input_groups(file: h5py.File, model: nn.Module) -> None:
    """The empty groups Keras writes for a functional model's `InputLayer`s."""
    if not isinstance(model, serialization.model_class("Model")) or isinstance(
        model, serialization.model_class("Sequential")
    ):
        return
    for index, tensor in enumerate(model._graph_inputs):
        key = "input_layer" if index == 0 else f"input_layer_{index}"
        file.require_group(f"layers/{key}/vars").attrs["name"] = tensor.name or key


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Writes the weights of `model` in Keras 3's layout, so `keras_model.load_weights(path)`
    loads them into the same architecture built with Keras.

    The file is written to a temporary file beside `path` and moved over it when complete;
    its structure and each weight carry checksums, so damage is detected on loading.

    Args:
        model: a built rnnkit `Sequential`, functional `Model`, or a single layer.
        path: the file to write; Keras requires the name to end in `.weights.h5`.

    Example:
        >>> rnnkit.io.save_weights(model, "model.weights.h5")
        >>> keras_model.load_weights("model.weights.h5")
    """
    _require_built(model)
    path = os.fspath(path)
    groups = model_groups(model)
    # HDF5 1.10's format checksums the file's structure, and Fletcher-32 (on chunked data)
    # each weight's values, so a damaged file fails to load instead of loading other weights.
    # Keras (any h5py on HDF5 >= 1.10) reads both.
    with (
        atomic_write(path) as temporary,
        h5py.File(temporary, "w", libver=("v110", "v110")) as file,
    ):
        _write_input_groups(file, model)
        for group in groups:
            entry = file.require_group(group.vars_path)
            entry.attrs["name"] = getattr(group.layer, "name", type(group.layer).__name__)
            for index, (_, parameter) in enumerate(group.weights):
                values = parameter.detach().cpu().numpy()
                entry.create_dataset(
                    str(index), data=values, chunks=values.shape or None, fletcher32=True
                )
