"""Conversions of a layer into another library's module, looked up by name.

`rnnkit.io` registers its converters here when it is imported (as `import rnnkit` does), so that
`layer.to_torch()` reaches `rnnkit.io.to_torch` without the layers importing io: the layers sit
below io, which knows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_CONVERTERS: dict[str, Callable[[Any], Any]] = {}


def register(target: str, converter: Callable[[Any], Any]) -> None:
    """Makes `converter(layer)` the conversion of a layer into `target` (e.g. "torch")."""
    _CONVERTERS[target] = converter


def convert(layer: Any, target: str) -> Any:
    """`layer` converted into `target` by the registered converter.

    Raises:
        ValueError: no converter into `target` is registered (`rnnkit.io` was not imported).
    """
    converter = _CONVERTERS.get(target)
    if converter is None:
        raise ValueError(
            f"No converter into {target!r} is registered; import rnnkit.io (as `import rnnkit` "
            "does) to register them."
        )
    return converter(layer)
