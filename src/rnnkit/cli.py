"""The command line: `rnnkit train TASK`, `rnnkit explain vanishing` and `rnnkit bench`
(also `python -m rnnkit ...`).

Every command that writes files takes `--out DIR` (created if missing) and prints where it
wrote. Bad options give a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from typing import Any

TASK_DEFAULTS = {
    # The charlm defaults train for about a minute on a 2-core CPU.
    "charlm": {"units": 128, "epochs": 4, "batch_size": 128, "maxlen": 40},
    "imdb": {"units": 32, "epochs": 10, "batch_size": 128, "maxlen": 500},
    # On the built-in CO2 series the forecast defaults train in well under a minute.
    "forecast": {"units": 16, "epochs": 10, "batch_size": 32},
}
# `explain vanishing` trains 16 models; these defaults take about 4 minutes on a 2-core CPU.
VANISHING_DEFAULTS = {"lengths": [25, 50, 100, 200], "steps": 1000, "units": 32, "batch_size": 64}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit code 2) instead of the usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text}")
    return value


def _sequence_length(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, received {text}")
    return value


def _add_explain(commands: Any) -> None:
    explain = commands.add_parser("explain", help="run an experiment and write a report")
    explain.add_argument("topic", choices=["vanishing"], help="what to explain")
    defaults = VANISHING_DEFAULTS
    explain.add_argument(
        "--lengths",
        type=_sequence_length,
        nargs="+",
        default=defaults["lengths"],
        help="sequence lengths T of the adding problem (default: 25 50 100 200)",
    )
    explain.add_argument(
        "--steps", type=_positive_int, default=defaults["steps"], help="Adam steps per model"
    )
    explain.add_argument("--units", type=_positive_int, default=defaults["units"])
    explain.add_argument(
        "--batch-size", type=_positive_int, default=defaults["batch_size"], help="per step"
    )
    explain.add_argument("--seed", type=int, default=0, help="weights and data")
    explain.add_argument("--out", default="out", help="output folder (created if missing)")


def _add_bench(commands: Any) -> None:
    from rnnkit import bench

    parser = commands.add_parser(
        "bench", help="time rnnkit against torch.nn and Keras (CPU) or cuDNN (--device cuda)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--cells", nargs="+", choices=sorted(bench.GATES), default=None)
    shapes = list(dict.fromkeys([*bench.SHAPES, *bench.CUDA_SHAPES]))
    parser.add_argument(
        "--shapes", nargs="+", choices=shapes, default=None, help="default: the device's own"
    )
    parser.add_argument("--no-options", action="store_true", help="skip the option variants")
    parser.add_argument("--repeats", type=_positive_int, default=None, help="CPU 5, CUDA 20")
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="CUDA only"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory runs (CPU)")
    parser.add_argument(
        "--quick", action="store_true", help="chapter shape, plain and options, 3 repeats"
    )
    parser.add_argument(
        "--data-path", action="store_true", help="fit on lazy windows against arrays, only"
    )
    parser.add_argument("--out", default="out", help="output folder (created if missing)")


def _bench_data_path(options: argparse.Namespace, stream: Any) -> None:
    """`rnnkit bench --data-path`: writes DIR/bench_data_path.json."""
    import json
    import os

    from rnnkit import bench_data

    result = bench_data.run(
        repeats=options.repeats or 3, memory=not options.no_memory, stream=stream
    )
    os.makedirs(options.out, exist_ok=True)
    path = os.path.join(options.out, "bench_data_path.json")
    with open(path, "w") as file:
        json.dump(result, file, indent=1)
    print(f"wrote results: {path}", file=stream)


def _bench(options: argparse.Namespace, stream: Any) -> None:
    """`rnnkit bench`: measures, prints the table, writes DIR/bench_cpu.json (or
    bench_cuda.json with `--device cuda`).

    Raises:
        ValueError: `--device cuda` where PyTorch sees no CUDA device, or a shape of the other
            device's workloads.
    """
    import json
    import os

    from rnnkit import bench

    if options.data_path:
        _bench_data_path(options, stream)
        return
    cuda = options.device == "cuda"
    if cuda:
        from rnnkit import bench_cuda as device_bench

        reason = device_bench.no_cuda_reason()
        if reason is not None:
            raise ValueError(f"bench --device cuda: {reason}.")
    cells = tuple(options.cells or sorted(bench.GATES))
    workloads = device_bench.default_workloads(cells) if cuda else bench.default_workloads(cells)
    own_shapes = list(bench.CUDA_SHAPES if cuda else bench.SHAPES)
    shapes = ["chapter"] if options.quick else (options.shapes or own_shapes)
    foreign = [shape for shape in shapes if shape not in own_shapes]
    if foreign:
        raise ValueError(
            f"bench --device {options.device}: --shapes {' '.join(foreign)} are not "
            f"{options.device} workloads (choose from {', '.join(own_shapes)})"
        )
    workloads = [w for w in workloads if w.shape_name in shapes]
    if options.no_options:
        workloads = [w for w in workloads if w.variant == "plain"]
    repeats = options.repeats or (20 if cuda else 5)
    if options.quick:
        repeats = min(repeats, 3)
    if cuda:
        import torch

        dtype = getattr(torch, options.dtype)
        results = device_bench.run(workloads, repeats=repeats, dtype=dtype, stream=stream)
    else:
        results = bench.run(
            workloads,
            repeats=repeats,
            memory=not (options.no_memory or options.quick),
            stream=stream,
        )
    os.makedirs(options.out, exist_ok=True)
    path = os.path.join(options.out, f"bench_{options.device}.json")
    with open(path, "w") as file:
        json.dump(results, file, indent=1)
    print(f"wrote results: {path}", file=stream)


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
    train.add_argument(
        "--data", help="local data file (imdb.npz, a text file for charlm, Jena's CSV/zip)"
    )
    train.add_argument("--num-words", type=_positive_int, default=10000, help="imdb vocabulary")
    train.add_argument("--max-chars", type=_positive_int, default=120_000, help="charlm text")
    train.add_argument("--sample-length", type=_positive_int, default=200, help="charlm sample")
    train.add_argument("--recurrent-dropout", type=_fraction, default=0.0, help="forecast")
    train.add_argument("--sequence-length", type=_positive_int, help="forecast window steps")
    train.add_argument("--sampling-rate", type=_positive_int, help="forecast: raw steps a step")
    train.add_argument("--delay", type=_positive_int, help="forecast: window start to target")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    train.add_argument("--out", default="out", help="output folder (created if missing)")
    _add_explain(commands)
    _add_bench(commands)
    return parser


def _explain(options: argparse.Namespace, stream: Any) -> None:
    """`rnnkit explain vanishing`: trains, prints progress, writes and reads the report."""
    from rnnkit.explain import LAYER_TYPES, reading, report_html, vanishing

    lengths = sorted(set(options.lengths))
    print(
        f"Training {', '.join(LAYER_TYPES)} on the adding problem at T = "
        f"{', '.join(map(str, lengths))} ({options.steps} steps each)",
        file=stream,
        flush=True,
    )
    results = vanishing.run_experiment(
        lengths,
        steps=options.steps,
        batch_size=options.batch_size,
        units=options.units,
        seed=options.seed,
        progress=lambda line: print(line, file=stream, flush=True),
    )
    paths = report_html.write_report(results, options.out)
    for sentence in reading.reading(results):
        print(f"- {sentence}", file=stream)
    print(f"finished in {results.seconds:.0f} s", file=stream)
    for label, path in paths.items():
        print(f"wrote {label}: {path}", file=stream)


def main(argv: Sequence[str] | None = None, stream: Any = None) -> int:
    """Runs the command line; returns the exit code."""
    stream = stream or sys.stdout
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.command in ("bench", "explain"):
        try:
            (_bench if options.command == "bench" else _explain)(options, stream)
        except (OSError, ValueError) as error:
            print(f"rnnkit: error: {error}", file=sys.stderr)
            return 2
        return 0
    from rnnkit.training import distributed

    if not distributed.is_primary():  # under torchrun, process 0 reports for every process
        stream = io.StringIO()
    for key, value in TASK_DEFAULTS[options.task].items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.task == "charlm":
        from rnnkit.tasks import charlm as task
    elif options.task == "forecast":
        from rnnkit.tasks import forecast as task
    else:
        from rnnkit.tasks import imdb as task
    try:
        task.run(options, stream)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        print(f"rnnkit: error: {error}", file=sys.stderr)
        return 2
    return 0
