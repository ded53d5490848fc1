"""Conversions of a layer into another library's module, looked up by name.

The converters live in `rnnkit.io`, which sits above the layers: the layers name each
converter's module by its path and import it on first use (as Keras's serialization finds
classes by module path), and the module registers its converter here when it loads. So
`layer.to_torch()` reaches `rnnkit.io.to_torch` while the layers import io neither at load
time nor by name in their imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# Target -> the module that registers its converter when imported.
_MODULES = {"torch": "rnnkit.io.torch_modules"}
_CONVERTERS: dict[str, Callable[[Any], Any]] = {}


def register(target: str, converter: Callable[[Any], Any]) -> None:
    """Makes `converter(layer)` the conversion of a layer into `target` (e.g. "torch")."""
    _CONVERTERS[target] = converter


def convert(layer: Any, target: str) -> Any:
    """`layer` converted into `target` ("torch") by its registered converter.

    Raises:
        ValueError: no converter into `target` exists.
    """
    if target not in _CONVERTERS and target in _MODULES:
        importlib.import_module(_MODULES[target])
    if target not in _CONVERTERS:
        raise ValueError(f"No converter into {target!r}; known: {sorted(_MODULES)}.")
    return _CONVERTERS[target](layer)
