"""The command line: `rnnkit train TASK [options]` (also `python -m rnnkit ...`).

Every command that writes files takes `--out DIR` (created if missing) and prints where it
wrote. Bad options give a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

TASK_DEFAULTS = {
    # The charlm defaults train for about a minute on a 2-core CPU.
    "charlm": {"units": 128, "epochs": 2, "batch_size": 128, "maxlen": 40},
    "imdb": {"units": 32, "epochs": 10, "batch_size": 128, "maxlen": 500},
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit code 2) instead of the usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Recurrent networks, Keras-style, on PyTorch.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train a model on a task and save it")
    train.add_argument("task", choices=sorted(TASK_DEFAULTS), help="what to train")
    train.add_argument("--layer", choices=["simple_rnn", "lstm", "gru"], default="lstm")
    train.add_argument("--units", type=_positive_int, help="units of the recurrent layer")
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--maxlen", type=_positive_int, help="timesteps per sample")
    train.add_argument("--data", help="local data file (imdb.npz, or a text file for charlm)")
    train.add_argument("--num-words", type=_positive_int, default=10000, help="imdb vocabulary")
    train.add_argument("--max-chars", type=_positive_int, default=300_000, help="charlm text")
    train.add_argument("--sample-length", type=_positive_int, default=200, help="charlm sample")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    train.add_argument("--out", default="out", help="output folder (created if missing)")
    return parser


def main(argv: Sequence[str] | None = None, stream: Any = None) -> int:
    """Runs the command line; returns the exit code."""
    stream = stream or sys.stdout
    parser = build_parser()
    options = parser.parse_args(argv)
    for key, value in TASK_DEFAULTS[options.task].items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.task == "charlm":
        from rnnkit.tasks import charlm as task
    else:
        from rnnkit.tasks import imdb as task
    try:
        task.run(options, stream)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        print(f"rnnkit: error: {error}", file=sys.stderr)
        return 2
    return 0
