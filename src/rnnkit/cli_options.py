"""The command line's argparse pieces: a parser whose errors are one line (exit code 2), a
help formatter that shows defaults, and the option types that check a value as it is typed
(`--units`, `--out`, `--data`, ...), so a bad option fails before any task is imported.

It imports nothing heavy: `rnnkit --help` and option errors answer without loading PyTorch.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default (lists as typed on the command line); flags
    and options whose default depends on the task say so in their own help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, argparse.SUPPRESS) or action.nargs == 0 or not action.help:
            return action.help
        default = action.default
        if isinstance(default, list):
            default = " ".join(map(str, default))
        return f"{action.help} (default: {str(default).replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit code 2) instead of the usage dump, and the
    defaults in `--help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def one_line(text: object) -> str:
    """`text` with its whitespace runs (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def integer(text: str) -> int:
    """An int option (`--seed`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None


def positive_int(text: str) -> int:
    """An int option > 0 (`--units`, `--epochs`, ...)."""
    value = integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def _number(text: str) -> float:
    """A number option's value, or argparse's error naming what was typed."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}") from None


def positive_float(text: str) -> float:
    """A number option > 0 (`--temperature`)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, received {text}")
    return value


def sequence_length(text: str) -> int:
    """A sequence length >= 2 (`explain --lengths`: the adding problem needs two steps)."""
    value = integer(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, received {text}")
    return value


def output_folder(text: str) -> str:
    """`--out`: a folder, created when the command writes; a file in its place (or on the way
    to it), or a folder the user cannot write in, is an error now, before any training."""
    wanted = os.path.abspath(os.path.expanduser(text))
    existing = wanted
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is" if existing == wanted else f"lies under {existing!r}, which is"
        raise argparse.ArgumentTypeError(
            f"{text!r} {where} a file; --out takes a folder (created if missing)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {existing!r} (received {text!r})")
    return text


def data_file(text: str) -> str:
    """`--data`: an existing file."""
    path = os.path.expanduser(text)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; --data takes a file")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no file at {text!r}")
    return path


def fraction(text: str) -> float:
    """A rate in [0, 1) (`--recurrent-dropout`)."""
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text}")
    return value
