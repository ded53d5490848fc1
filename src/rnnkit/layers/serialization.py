"""Layer configs as plain data: `{"class_name": ..., "config": {...}}`, as Keras writes them.

Model classes register here too (`register_model_class`), so that `rnnkit.io`, which sits below
the models, builds and recognises models by name without importing them, as Keras's saving
does through its registry: the first lookup imports `rnnkit.models` by its path, which
registers them.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

_MODEL_CLASSES: dict[str, type] = {}


def register_model_class(cls: type) -> type:
    """Registers a model class under its name (a class decorator); returns it unchanged."""
    _MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_class(name: str) -> type:
    """The model class registered as `name` ("Model", "Sequential").

    Raises:
        ValueError: no model class has that name.
    """
    if name not in _MODEL_CLASSES:
        importlib.import_module("rnnkit.models")  # registers the model classes
    if name not in _MODEL_CLASSES:
        raise ValueError(f"No model class {name!r}; known: {sorted(_MODEL_CLASSES)}.")
    return _MODEL_CLASSES[name]


def serialize(layer: nn.Module) -> dict[str, Any]:
    """The class name and `get_config()` of `layer` (JSON-ready for built-in layers)."""
    get_config = getattr(layer, "get_config", None)
    if get_config is None:
        raise TypeError(
            f"Cannot serialize {type(layer).__name__}: it has no `get_config()` method."
        )
    return {"class_name": type(layer).__name__, "config": get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> nn.Module:
    """Recreates a layer (without its weights) from `serialize`'s output.

    Args:
        config: `{"class_name": name, "config": constructor arguments}`.
        custom_objects: extra classes by name, for user-defined layers and cells.
    """
    import rnnkit.layers as layers

    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"A layer config must be a dict with 'class_name' and 'config', received {config!r}."
        )
    name = config["class_name"]
    known = {key: getattr(layers, key) for key in layers.__all__}
    known.update(custom_objects or {})
    if name not in known:
        raise ValueError(
            f"Unknown layer class {name!r}; known: {sorted(known)}. Pass user-defined classes "
            "in `custom_objects`."
        )
    cls = known[name]
    inner = dict(config.get("config", {}))
    from_config = getattr(cls, "from_config", None)
    return from_config(inner) if from_config is not None else cls(**inner)
