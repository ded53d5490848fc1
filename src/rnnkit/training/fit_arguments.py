"""`fit`'s counting arguments, checked before any work: integers as Keras takes them (NumPy's
integers too; a bool is not an integer), in their ranges, with a message that names the
argument, what it must be and what it was.

Without these checks `epochs=-1` or `initial_epoch > epochs` return an empty History,
`steps_per_epoch=0` runs a whole pass, and `epochs=2.5` fails deep inside `range`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from rnnkit.training.callbacks import Callback


def check_integer(argument: str, value: Any, *, minimum: int, allow_none: bool = False) -> Any:
    """`value` as an int (None passes where `allow_none`), or a TypeError/ValueError naming
    `argument` when it is not an integer or is below `minimum`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "an integer or None" if allow_none else "an integer"
        raise TypeError(f"fit: `{argument}` must be {kind}, received {value!r}.")
    if value < minimum:
        rule = "a positive integer" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"fit: `{argument}` must be {rule}, received {value!r}.")
    return int(value)


def check_fit_arguments(
    *,
    epochs: Any,
    initial_epoch: Any,
    steps_per_epoch: Any,
    validation_split: Any,
    callbacks: Any,
) -> tuple[int, int, int | None, float, list[Callback]]:
    """The checked `(epochs, initial_epoch, steps_per_epoch, validation_split, callbacks)`.

    A single callback is taken as a list of one, as Keras 3 takes it.

    Raises:
        TypeError: an argument of the wrong type (the message names it).
        ValueError: an argument out of its range, or `initial_epoch` past `epochs`.
    """
    epochs = check_integer("epochs", epochs, minimum=0)
    initial_epoch = check_integer("initial_epoch", initial_epoch, minimum=0)
    if initial_epoch > epochs:
        raise ValueError(
            f"fit: `initial_epoch` ({initial_epoch}) is past `epochs` ({epochs}): `epochs` is "
            "the index of the last epoch to train, counted from 0 (not how many more to run)."
        )
    steps_per_epoch = check_integer("steps_per_epoch", steps_per_epoch, minimum=1, allow_none=True)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
        raise TypeError(
            f"fit: `validation_split` must be a float in [0, 1), received {validation_split!r}."
        )
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if callbacks is not None and not isinstance(callbacks, Sequence):
        raise TypeError(
            "fit: `callbacks` must be a list of Callback objects, received "
            f"{type(callbacks).__name__}."
        )
    return epochs, initial_epoch, steps_per_epoch, float(validation_split), list(callbacks or [])
