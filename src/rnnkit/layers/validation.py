"""Checks of constructor arguments shared by the layers: each returns the value or raises a
ValueError that names the argument, what was expected and what was received."""

from __future__ import annotations

import numbers
from typing import Any


def check_positive_int(owner: str, argument: str, value: Any) -> int:
    """Returns `value` as an int if it is a positive integer (NumPy's integers too, as in Keras;
    not a bool), else raises a ValueError naming `argument`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"{owner}: argument `{argument}` must be a positive integer, received {value!r}."
        )
    return int(value)


def check_rate(owner: str, argument: str, value: Any) -> float:
    """Returns `value` as a float if it lies in [0, 1), else raises a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"{owner}: argument `{argument}` must be a float in [0, 1), received {value!r}."
        )
    return float(value)
