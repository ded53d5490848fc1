"""The command line: `rnnkit train TASK`, `rnnkit explain vanishing` and `rnnkit bench`
(also `python -m rnnkit ...`).

Every command that writes files takes `--out DIR` (created if missing) and prints where it
wrote. Every bad option or path is one line on stderr, naming the option as typed, and exit
code 2. Building the parser imports nothing heavy: a task's module (and PyTorch) is imported
only when the command runs, so `--help`, `--version` and option errors answer at once. A new
`train` task is one entry in `TASKS`.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rnnkit import __version__
from rnnkit.cli_options import (
    Parser,
    data_file,
    fraction,
    integer,
    one_line,
    output_folder,
    positive_float,
    positive_int,
    sequence_length,
)

# The recurrent layers by their command-line names (`train --layer`, `bench --cells`).
CELLS = ("simple_rnn", "lstm", "gru")


@dataclass(frozen=True)
class Task:
    """One `rnnkit train TASK`.

    Args:
        module: the module whose `run(options, stream)` trains it; imported only when the task
            runs, so `--help` and option errors answer without loading PyTorch.
        summary: one line for `rnnkit train --help`.
        defaults: the task's own defaults of the shared options (`--units`, `--maxlen`, ...).
    """

    module: str
    summary: str
    defaults: dict[str, int]


TASKS = {
    # The charlm defaults train for about a minute on a 2-core CPU.
    "charlm": Task(
        "rnnkit.tasks.charlm",
        "next-character language model on Python's own source (no download)",
        {"units": 128, "epochs": 4, "batch_size": 128, "maxlen": 40},
    ),
    "imdb": Task(
        "rnnkit.tasks.imdb",
        "IMDB review sentiment (downloads imdb.npz once, or reads --data)",
        {"units": 32, "epochs": 10, "batch_size": 128, "maxlen": 500},
    ),
    # On the built-in CO2 series the forecast defaults train in under a minute.
    "forecast": Task(
        "rnnkit.tasks.forecast",
        "temperature (Jena, --data) or CO2 (built in) forecasting, against the naive baseline",
        {"units": 16, "epochs": 10, "batch_size": 32},
    ),
}
# `explain vanishing` trains 16 models; these defaults take about 4 minutes on a 2-core CPU.
VANISHING_DEFAULTS = {"lengths": [25, 50, 100, 200], "steps": 1000, "units": 32, "batch_size": 64}


def _per_task(key: str) -> str:
    return "default: " + ", ".join(
        f"{name} {task.defaults[key]}" for name, task in TASKS.items() if key in task.defaults
    )


def _add_train(commands: Any) -> None:
    train = commands.add_parser("train", help="train a model on a task and save it")
    train.add_argument(
        "task",
        choices=sorted(TASKS),
        help="what to train: " + "; ".join(f"{name}: {t.summary}" for name, t in TASKS.items()),
    )
    train.add_argument("--layer", choices=CELLS, default="lstm", help="the recurrent layer")
    train.add_argument(
        "--units", type=positive_int, help=f"units of the recurrent layer ({_per_task('units')})"
    )
    train.add_argument(
        "--epochs", type=positive_int, help=f"passes over the data ({_per_task('epochs')})"
    )
    train.add_argument(
        "--batch-size", type=positive_int, help=f"samples per step ({_per_task('batch_size')})"
    )
    train.add_argument(
        "--maxlen", type=positive_int, help=f"timesteps per sample ({_per_task('maxlen')})"
    )
    train.add_argument(
        "--data",
        type=data_file,
        help="local data file: imdb.npz in Keras's format for imdb, any text file for charlm, "
        "Jena's jena_climate_2009_2016.csv (or its zip) for forecast (default: imdb downloads "
        "its file once; charlm reads Python's standard library; forecast uses the built-in "
        "Mauna Loa CO2 series)",
    )
    train.add_argument("--num-words", type=positive_int, default=10000, help="imdb vocabulary")
    train.add_argument(
        "--max-chars", type=positive_int, default=120_000, help="charlm: characters of text"
    )
    train.add_argument(
        "--sample-length", type=positive_int, default=200, help="charlm: characters generated"
    )
    train.add_argument(
        "--sampler",
        choices=["stateful", "windowed"],
        default="stateful",
        help="charlm: generate one character per step (default), or the book's way, re-running "
        "the last --maxlen characters for each new one",
    )
    train.add_argument(
        "--temperature", type=positive_float, default=0.5, help="charlm: sampling temperature"
    )
    train.add_argument(
        "--recurrent-dropout", type=fraction, default=0.0, help="forecast: the layer's"
    )
    train.add_argument(
        "--sequence-length", type=positive_int, help="forecast: steps a window (Jena 120, CO2 52)"
    )
    train.add_argument(
        "--sampling-rate", type=positive_int, help="forecast: raw steps a step (Jena 6, CO2 1)"
    )
    train.add_argument(
        "--delay",
        type=positive_int,
        help="forecast: raw steps from a window's start to its target (default: 24 sampled "
        "steps after the window for Jena, 4 for CO2)",
    )
    train.add_argument("--seed", type=integer, default=0, help="weights and data order")
    train.add_argument(
        "--verbose", type=int, choices=[0, 1, 2], default=1, help="0 silent, 1 bar, 2 one line"
    )
    train.add_argument(
        "--out", type=output_folder, default="out", help="output folder (created if missing)"
    )


def _add_explain(commands: Any) -> None:
    explain = commands.add_parser("explain", help="run an experiment and write a report")
    explain.add_argument(
        "topic", choices=["vanishing"], help="what to explain: vanishing gradients in SimpleRNN"
    )
    defaults = VANISHING_DEFAULTS
    explain.add_argument(
        "--lengths",
        type=sequence_length,
        nargs="+",
        default=defaults["lengths"],
        help="sequence lengths T of the adding problem",
    )
    explain.add_argument(
        "--steps",
        type=positive_int,
        default=defaults["steps"],
        help="Adam steps per model (more: models that can learn have time to)",
    )
    explain.add_argument(
        "--units", type=positive_int, default=defaults["units"], help="units of each layer"
    )
    explain.add_argument(
        "--batch-size", type=positive_int, default=defaults["batch_size"], help="samples per step"
    )
    explain.add_argument("--seed", type=integer, default=0, help="weights and data")
    explain.add_argument(
        "--out", type=output_folder, default="out", help="output folder (created if missing)"
    )


def _add_bench(commands: Any) -> None:
    parser = commands.add_parser(
        "bench", help="time rnnkit against torch.nn and Keras (CPU) or cuDNN (--device cuda)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run")
    parser.add_argument("--cells", nargs="+", choices=CELLS, help="(default: all)")
    # No `choices` here: the shape names live in rnnkit.bench, which imports PyTorch; `_bench`
    # checks them and lists the device's own.
    parser.add_argument(
        "--shapes", nargs="+", help="workload shapes by name, e.g. chapter (default: the device's)"
    )
    parser.add_argument("--no-options", action="store_true", help="skip the option variants")
    parser.add_argument(
        "--repeats", type=positive_int, help="timed repeats (default: CPU 5, CUDA 20)"
    )
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="CUDA only"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory runs (CPU)")
    parser.add_argument(
        "--no-workflows", action="store_true", help="skip the fit-epoch and small-call runs (CPU)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="chapter shape, plain and options, 3 repeats"
    )
    parser.add_argument(
        "--data-path", action="store_true", help="only: fit on lazy windows against arrays"
    )
    parser.add_argument(
        "--out", type=output_folder, default="out", help="output folder (created if missing)"
    )


def _bench_data_path(options: argparse.Namespace, stream: Any) -> None:
    """`rnnkit bench --data-path`: writes DIR/bench_data_path.json."""
    import json

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
            workflows=() if options.no_workflows else tuple(bench.WORKFLOWS),
        )
    os.makedirs(options.out, exist_ok=True)
    path = os.path.join(options.out, f"bench_{options.device}.json")
    with open(path, "w") as file:
        json.dump(results, file, indent=1)
    print(f"wrote results: {path}", file=stream)


def build_parser() -> argparse.ArgumentParser:
    """The `rnnkit` parser; building it imports nothing heavy."""
    parser = Parser(prog="rnnkit", description="Recurrent networks, Keras-style, on PyTorch.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_train(commands)
    _add_explain(commands)
    _add_bench(commands)
    return parser


def _explain(options: argparse.Namespace, stream: Any) -> None:
    """`rnnkit explain vanishing`: trains, prints progress, writes and reads the report."""
    from rnnkit.explain import LAYER_TYPES, reading, report_html, vanishing

    lengths = sorted(set(options.lengths))
    print(
        f"Training {', '.join(LAYER_TYPES)} on the adding problem at T = "
        f"{', '.join(map(str, lengths))} ({options.steps} steps each; IRNN: a ReLU SimpleRNN "
        "whose recurrent kernel starts as the identity)",
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
    print(reading.baseline_rule(results.baseline), file=stream)
    for sentence in reading.reading(results):
        print(f"- {sentence}", file=stream)
    print(f"finished in {results.seconds:.0f} s", file=stream)
    for label, path in paths.items():
        print(f"wrote {label}: {path}", file=stream)


def main(argv: Sequence[str] | None = None, stream: Any = None) -> int:
    """Runs the command line.

    Args:
        argv: the arguments after `rnnkit` (default: `sys.argv[1:]`).
        stream: where reports go (default: standard output). Errors go to standard error as one
            line: `rnnkit: error: ...`.

    Returns:
        The exit code: 0 done, 2 a bad option, path or data file.
    """
    stream = stream or sys.stdout
    try:
        options = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a one-line option error
        return exit_.code if isinstance(exit_.code, int) else 2
    if options.command in ("bench", "explain"):
        try:
            (_bench if options.command == "bench" else _explain)(options, stream)
        except (OSError, ValueError) as error:
            return _fail(error)
        return 0
    return _train(options, stream)


def _train(options: argparse.Namespace, stream: Any) -> int:
    """`rnnkit train TASK`: fills in the task's defaults, imports the task and runs it."""
    from rnnkit.data.download import DownloadError
    from rnnkit.training import distributed

    if not distributed.is_primary():  # under torchrun, process 0 reports for every process
        stream = io.StringIO()
    task = TASKS[options.task]
    for key, value in task.defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    try:
        importlib.import_module(task.module).run(options, stream)
    except DownloadError as error:
        return _fail(
            f"could not download {error.origin} ({error.reason}); pass a local copy with "
            f"--data FILE, or put it at {error.target}"
        )
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        return _fail(error)
    return 0


def _fail(message: object) -> int:
    print(f"rnnkit: error: {one_line(message)}", file=sys.stderr)
    return 2
