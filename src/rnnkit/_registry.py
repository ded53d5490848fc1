"""Keras names in, objects out: the lookup shared by initializers, regularizers and constraints.

Each of those modules keeps one :class:`Registry` of its classes; its `get`, `deserialize` and
`serialize` are the registry's methods. Configs use Keras 3's format,
``{"class_name": ..., "config": {...}}`` (Keras's extra keys ``module`` and ``registered_name``
are ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def _with_article(word: str) -> str:
    return f"{'an' if word[0].lower() in 'aeiou' else 'a'} {word}"


class Registry:
    """Classes of one kind (e.g. "initializer") by their Keras names.

    Args:
        kind: what the objects are, as error messages name them (``"initializer"``).
        base: their base class; ``get`` instantiates subclasses of it with their defaults.
        classes: the classes, found by class name (``"GlorotUniform"``) and snake_case name
            (``"glorot_uniform"``).
        aliases: further names (Keras's ``"zero"`` for ``Zeros``, ...).
        name_defaults: constructor arguments a bare name gives where they differ from the
            class's defaults (Keras's ``"l1l2"`` means ``L1L2(l1=0.01, l2=0.01)``).
    """

    def __init__(
        self,
        kind: str,
        base: type,
        classes: Iterable[type],
        aliases: dict[str, type] | None = None,
        name_defaults: dict[type, dict[str, Any]] | None = None,
    ) -> None:
        classes = tuple(classes)
        self.kind, self.base = kind, base
        self.by_name: dict[str, type] = {
            **{cls.__name__: cls for cls in classes},
            **{re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower(): cls for cls in classes},
            **(aliases or {}),
        }
        self.name_defaults = name_defaults or {}

    def deserialize(
        self, config: str | dict[str, Any], custom_objects: dict[str, type] | None = None
    ) -> Any:
        """Builds an object from a name or from ``{"class_name": ..., "config": {...}}``.

        Raises:
            ValueError: an unknown name (the message lists the accepted ones).
            TypeError: ``config`` is neither a string nor such a dict.
        """
        table = {**self.by_name, **(custom_objects or {})}
        if isinstance(config, str):
            cls = self._find(config, table)
            return cls.from_config(dict(self.name_defaults.get(cls, {})))
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise TypeError(
                f"{_with_article(self.kind).capitalize()} config must be a name or a dict with "
                f"'class_name' and 'config', received {config!r}."
            )
        cls = self._find(config["class_name"], table)
        return cls.from_config(dict(config.get("config") or {}))

    def get(self, identifier: Any) -> Any:
        """Turns None (returned as is), a Keras name, a config dict, a class (instantiated with
        its defaults) or a callable (returned as is) into an object of this kind.

        Raises:
            ValueError: an unknown name.
            TypeError: anything else that is not callable.
        """
        if identifier is None:
            return None
        if isinstance(identifier, (str, dict)):
            return self.deserialize(identifier)
        if isinstance(identifier, type) and issubclass(identifier, self.base):
            return identifier()
        if callable(identifier):
            return identifier
        raise TypeError(
            f"Argument `{self.kind}` must be None, a name, a dict, "
            f"{_with_article(self.base.__name__)} or a callable, received {identifier!r}."
        )

    def serialize(self, instance: Any) -> dict[str, Any] | None:
        """Returns ``{"class_name": ..., "config": {...}}``, or None for None.

        Raises:
            TypeError: ``instance`` has no ``get_config()`` (a plain function cannot be saved).
        """
        if instance is None:
            return None
        if not callable(getattr(instance, "get_config", None)):
            raise TypeError(
                f"Cannot serialize the {self.kind} {instance!r}: it has no `get_config()`. "
                f"Subclass rnnkit.{self.kind}s.{self.base.__name__} to make it serializable."
            )
        return {"class_name": type(instance).__name__, "config": instance.get_config()}

    def _find(self, name: str, table: dict[str, type]) -> type:
        if name not in table:
            raise ValueError(f"Unknown {self.kind} {name!r}; accepted names: {sorted(table)}.")
        return table[name]
