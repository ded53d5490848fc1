"""Side-by-side CPU timings of recurrent layers: rnnkit fused, rnnkit loop, torch.nn, Keras (JAX).

`rnnkit bench` (or `python benchmarks/bench_cpu.py`) measures, in one run, a training step
(forward + backward + RMSprop update) and an inference call for each workload and
implementation, reports medians and the ratio of each to the fastest peer (torch.nn or Keras),
the achieved GFLOP/s against a large-matmul peak measured in the same run, and the peak memory
of a training step (measured in a fresh process per case). Then the workloads of whole user
actions (`WORKFLOWS`, in `rnnkit.bench_workflow`): a `fit` epoch and `predict` of the chapter's
model, one stateful step at batch 1. Absolute times on shared machines are noisy; ratios from
one run are what to compare.

FLOPs counted per step: forward = 2·B·T·G·U·(F + U) (input and recurrent products, G gates);
a training step adds the backward pass's 2·B·T·G·U·(F + 2U): the state gradient through the
recurrent kernel and the two weight gradients. The benchmark's inputs need no gradient, so no
implementation computes one (autograd skips it), and none is counted.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
SHAPES = {  # (batch, timesteps, features, units)
    "chapter": (128, 500, 32, 32),
    "large": (64, 100, 256, 256),
    "long": (16, 2000, 64, 64),
}
CUDA_SHAPES = {  # `rnnkit bench --device cuda` (`rnnkit.bench_cuda`): issue 7's workloads
    "chapter": SHAPES["chapter"],
    "b16_t1024_u256": (16, 1024, 256, 256),
    "b16_t1024_u768": (16, 1024, 768, 768),
    "b256_t100_u512": (256, 100, 512, 512),
}
OPTIONS = {
    "recurrent_dropout": {"recurrent_dropout": 0.2},
    "mask": {"mask": True},
    "go_backwards": {"go_backwards": True},
    "relu": {"activation": "relu"},
}
IMPLEMENTATIONS = ("rnnkit_fused", "rnnkit_loop", "torch_nn", "keras_jax")
# Seconds between one implementation's timed call and the next's: the thread pools of the one
# before (JAX's, PyTorch's OpenMP) spin for a while after their work and would take the cores
# (benchmarks/README.md has the measurement).
PAUSE_BETWEEN_PEERS = 0.2
PEERS = ("torch_nn", "keras_jax")
# Workloads of whole user actions, run after the layer workloads (`run(workflows=...)`):
# name → "module:function", the function taking (repeats, stream) and returning table rows.
WORKFLOWS = {
    "fit": "rnnkit.bench_workflow:fit_rows",
    "small_call": "rnnkit.bench_workflow:small_call_rows",
}


@dataclass
class Workload:
    """One benchmark case: a cell, a shape, and options (Keras argument names)."""

    cell: str
    shape_name: str
    variant: str = "plain"

    @property
    def options(self) -> dict[str, Any]:
        return OPTIONS.get(self.variant, {})

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (
            SHAPES[self.shape_name] if self.shape_name in SHAPES else CUDA_SHAPES[self.shape_name]
        )

    @property
    def name(self) -> str:
        return f"{self.cell}/{self.shape_name}/{self.variant}"

    def forward_flops(self) -> float:
        batch, timesteps, features, units = self.shape
        return 2.0 * batch * timesteps * GATES[self.cell] * units * (features + units)

    def train_flops(self) -> float:
        """The FLOPs of a training step: the forward products, then the backward pass's for
        the state gradient (through the recurrent kernel) and the two weight gradients; no
        input gradient (the benchmark's inputs need none)."""
        batch, timesteps, features, units = self.shape
        backward = 2.0 * batch * timesteps * GATES[self.cell] * units * (features + 2 * units)
        return self.forward_flops() + backward


def default_workloads(cells: tuple[str, ...] = ("simple_rnn", "lstm", "gru")) -> list[Workload]:
    """Every cell at every shape, plus each option variant at the chapter shape."""
    cases = [Workload(cell, shape) for shape in SHAPES for cell in cells]
    cases += [Workload(cell, "chapter", variant) for variant in OPTIONS for cell in cells]
    return cases


def medians_in_turns(
    functions: dict[str, Callable[[], Any]], rounds: int, pause: float = 0.0
) -> dict[str, float]:
    """Each function's median seconds, called in turns (one call each per round, after a
    warm-up call each), so that the machine's drift falls on all of them alike. With a
    `pause`, each timed call comes after `pause` seconds of sleep and then one untimed call of
    the same function: the sleep lets the thread pools of the function before stop spinning,
    and the untimed call wakes the cores, so that the timed call sees what the next step of a
    training loop sees (on these VMs a core left idle for 0.2 s came back late; see
    benchmarks/README.md)."""
    for function in functions.values():
        function()  # warm-up (compilation, allocation)
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            if pause:
                time.sleep(pause)
                function()
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def _data(workload: Workload) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    batch, timesteps, features, units = workload.shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, timesteps, features)).astype(np.float32)
    y = rng.normal(size=(batch, units)).astype(np.float32)
    mask = None
    if workload.options.get("mask"):
        lengths = rng.integers(timesteps // 2, timesteps + 1, size=batch)
        mask = np.arange(timesteps)[None, :] < lengths[:, None]  # right-padded
    return x, y, mask


def _layer_options(workload: Workload) -> dict[str, Any]:
    return {key: value for key, value in workload.options.items() if key != "mask"}


def _rnnkit_steps(workload: Workload, use_fused: bool) -> tuple[Callable, Callable]:
    from rnnkit import layers
    from rnnkit.training.optimizers import RMSprop

    cls = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
    x, y, mask = _data(workload)
    layer = cls[workload.cell](workload.shape[3], use_fused=use_fused, **_layer_options(workload))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    mask = None if mask is None else torch.from_numpy(mask)
    layer(x[:1], mask=None if mask is None else mask[:1])
    optimizer = RMSprop().build(list(layer.parameters()))

    def train() -> None:
        layer.train()
        optimizer.zero_grad()
        loss = ((layer(x, mask=mask) - y) ** 2).mean()
        loss.backward()
        optimizer.step()

    def infer() -> None:
        layer.eval()
        with torch.no_grad():
            layer(x, mask=mask)

    return train, infer


def torch_module(workload: Workload) -> torch.nn.RNNBase | None:
    """The batch-first torch.nn module for `workload`, or None where torch.nn lacks an option."""
    options = _layer_options(workload)
    if workload.options.get("mask") or options.get("recurrent_dropout"):
        return None  # torch.nn has no masking and no recurrent dropout
    _, _, features, units = workload.shape
    if workload.cell == "simple_rnn":
        nonlinearity = options.get("activation", "tanh")
        return torch.nn.RNN(features, units, batch_first=True, nonlinearity=nonlinearity)
    if options.get("activation"):
        return None  # LSTM/GRU activations are fixed in torch.nn
    return {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[workload.cell](
        features, units, batch_first=True
    )


def torch_module_steps(
    module: torch.nn.RNNBase, workload: Workload, x: torch.Tensor, y: torch.Tensor
) -> tuple[Callable, Callable]:
    """(train_step, inference) for a torch.nn module on `x` (batch, timesteps, features) and
    targets `y` (batch, units), on their device; inference returns the last outputs."""
    if workload.options.get("go_backwards"):
        x = torch.flip(x, dims=[1])  # what a user of torch.nn has to do
    optimizer = torch.optim.RMSprop(module.parameters(), lr=0.001, alpha=0.9, eps=1e-7)

    def train() -> None:
        optimizer.zero_grad()
        loss = ((module(x)[0][:, -1] - y) ** 2).mean()
        loss.backward()
        optimizer.step()

    def infer() -> torch.Tensor:
        with torch.no_grad():
            return module(x)[0][:, -1]

    return train, infer


def _torch_steps(workload: Workload) -> tuple[Callable, Callable] | None:
    module = torch_module(workload)
    if module is None:
        return None
    x, y, _ = _data(workload)
    return torch_module_steps(module, workload, torch.from_numpy(x), torch.from_numpy(y))


def _keras_steps(workload: Workload) -> tuple[Callable, Callable] | None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "jax":
        return None
    batch, timesteps, features, units = workload.shape
    cls = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
           "gru": keras.layers.GRU}[workload.cell]  # fmt: skip
    x, y, mask = _data(workload)
    inputs = keras.Input((timesteps, features), batch_size=batch)
    if mask is not None:
        keras_mask = keras.Input((timesteps,), batch_size=batch, dtype="bool")
        outputs = cls(units, **_layer_options(workload))(inputs, mask=keras_mask)
        model = keras.Model([inputs, keras_mask], outputs)
        x = [x, mask]
    else:
        model = keras.Model(inputs, cls(units, **_layer_options(workload))(inputs))
    model.compile(optimizer="rmsprop", loss="mse")

    def train() -> None:
        model.train_on_batch(x, y)

    def infer() -> None:
        np.asarray(model.predict_on_batch(x))

    return train, infer


def steps(implementation: str, workload: Workload) -> tuple[Callable, Callable] | None:
    """(train_step, inference) callables, or None where the implementation has no such path."""
    if implementation == "rnnkit_fused":
        return _rnnkit_steps(workload, use_fused=True)
    if implementation == "rnnkit_loop":
        return _rnnkit_steps(workload, use_fused=False)
    if implementation == "torch_nn":
        return _torch_steps(workload)
    return _keras_steps(workload)


def cpu_description() -> dict[str, Any]:
    """The CPU's model name (Linux's /proc/cpuinfo; the platform's processor string
    elsewhere), the widest vector instructions PyTorch's kernels use on it, those rnnkit's
    fused kernels were compiled for (`$RNNKIT_CPU_ISA`; "unavailable" without a build) and
    its cores."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1] for line in file if line.startswith("model name")]
        model = names[0].strip() if names else model
    except OSError:
        pass  # not Linux: keep the platform's string
    capability = torch.backends.cpu.get_cpu_capability()
    from rnnkit.kernels import cpu_library

    kernel_isa = cpu_library.kernel_isa() if cpu_library.blocker() is None else "unavailable"
    return {"model": model, "capability": capability, "kernel_isa": kernel_isa,
            "count": os.cpu_count()}  # fmt: skip


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a large float32 matmul through MKL (`torch.mm`) and oneDNN (mkldnn linear)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    flops = 2.0 * size**3
    products = {"mkl": lambda: torch.mm(a, b)}
    if torch.backends.mkldnn.is_available():
        a_dnn, b_dnn = a.to_mkldnn(), b.to_mkldnn()
        products["onednn"] = lambda: torch._C._nn.mkldnn_linear(a_dnn, b_dnn, None)
    return {name: flops / s / 1e9 for name, s in medians_in_turns(products, repeats).items()}


def peak_train_memory_mb(implementation: str, workload: Workload) -> float | None:
    """Peak resident memory added by two training steps, measured in a fresh process (Linux:
    the peak is reset through /proc/self/clear_refs after set-up and read from VmHWM). Set-up
    includes a training step on a tiny batch, so loading and compiling code is not counted."""
    script = (
        "import json, sys\n"
        "from rnnkit import bench\n"
        f"workload = bench.Workload(**json.loads({json.dumps(json.dumps(asdict(workload)))}))\n"
        f"pair = bench.steps({implementation!r}, workload)\n"
        "if pair is None: print('null'); sys.exit()\n"
        "bench.SHAPES['warm-up'] = (2, 3, 4, 4)\n"
        "tiny = bench.Workload(workload.cell, 'warm-up', workload.variant)\n"
        f"bench.steps({implementation!r}, tiny)[0]()\n"
        "def status(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key): return int(line.split()[1])\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = status('VmRSS')\n"
        "pair[0](); pair[0]()\n"
        "print((status('VmHWM') - before) / 1024)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    lines = completed.stdout.strip().splitlines()
    return None if not lines or lines[-1] == "null" else float(lines[-1])


def run(
    workloads: list[Workload],
    implementations: tuple[str, ...] = IMPLEMENTATIONS,
    repeats: int = 5,
    memory: bool = True,
    stream: Any = sys.stdout,
    workflows: Sequence[str] = (),
) -> dict[str, Any]:
    """Measures every workload × implementation, then each of `workflows` (names of
    `WORKFLOWS`); prints a table; returns the results. Each workload's implementations are
    timed in turns (`medians_in_turns`), so that the ratios between them do not carry the
    machine's drift between one implementation's runs and the next's."""
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({cpu['capability']}), {cpu['count']} cores, "
          f"{torch.get_num_threads()} torch threads, rnnkit kernels for {cpu['kernel_isa']}",
          file=stream)  # fmt: skip
    peak = matmul_peak_gflops()
    best_peak = max(peak.values())
    print("matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()),
          file=stream)  # fmt: skip
    rows = []
    for workload in workloads:
        pairs = {name: steps(name, workload) for name in implementations}
        pairs = {name: pair for name, pair in pairs.items() if pair is not None}
        times: dict[str, dict[str, float]] = {name: {} for name in pairs}
        for index, mode in enumerate(("train", "infer")):
            functions = {name: pair[index] for name, pair in pairs.items()}
            medians = medians_in_turns(functions, repeats, pause=PAUSE_BETWEEN_PEERS)
            for name, seconds in medians.items():
                times[name][f"{mode}_ms"] = 1e3 * seconds
        del pairs  # the models of one workload, before the next one's are built
        row: dict[str, Any] = {"workload": workload.name, "times": times}
        add_ratios(row, PEERS)
        fused = times.get("rnnkit_fused")
        if fused:
            fused["train_gflops"] = workload.train_flops() / fused["train_ms"] / 1e6
            fused["infer_gflops"] = workload.forward_flops() / fused["infer_ms"] / 1e6
            fused["train_fraction_of_peak"] = fused["train_gflops"] / best_peak
        if memory:
            row["peak_train_memory_mb"] = {
                implementation: peak_train_memory_mb(implementation, workload)
                for implementation in ("rnnkit_fused", "torch_nn")
            }
        rows.append(row)
        _print_row(row, stream)
    optioned = sorted({(w.cell, w.shape_name) for w in workloads if w.variant != "plain"})
    ratios = {f"{c}/{shape}": option_ratios(c, shape, repeats, stream) for c, shape in optioned}
    for name in workflows:
        module, function = WORKFLOWS[name].split(":")
        rows += getattr(importlib.import_module(module), function)(repeats, stream)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "matmul_peak_gflops": peak,
        "results": rows,
        "option_ratios": ratios,
    }


def option_ratios(
    cell: str, shape_name: str, repeats: int, stream: Any = sys.stdout
) -> dict[str, dict]:
    """Each option variant's time over the plain run's, for rnnkit fused at one shape, timed
    in turns (plain, then each variant, `2 * repeats` rounds) so that the machine's drift
    falls on all alike: {mode: {variant: median time / median plain time}}."""
    variants = ("plain", *OPTIONS)
    pairs = {v: _rnnkit_steps(Workload(cell, shape_name, v), use_fused=True) for v in variants}
    result = {}
    for index, mode in enumerate(("train", "infer")):
        medians = medians_in_turns({v: pair[index] for v, pair in pairs.items()}, 2 * repeats)
        result[mode] = {v: medians[v] / medians["plain"] for v in OPTIONS}
    print(f"\n{cell}/{shape_name}: options / plain, timed in turns: " + "; ".join(
        f"{mode} " + ", ".join(f"{v} {r:.2f}" for v, r in ratios.items())
        for mode, ratios in result.items()), file=stream)  # fmt: skip
    return result


def add_ratios(row: dict[str, Any], peers: tuple[str, ...]) -> None:
    """Adds to `row` the fastest of `peers` for training and inference, and to each entry of
    `row["times"]` its ratio to that (`train_vs_fastest_peer`: > 1 is faster)."""
    times = row["times"]
    for mode in ("train_ms", "infer_ms"):
        measured = [times[peer][mode] for peer in peers if peer in times]
        fastest = min(measured) if measured else None
        row[f"fastest_peer_{mode}"] = fastest
        for entry in times.values():
            if fastest:
                entry[f"{mode[:-3]}_vs_fastest_peer"] = fastest / entry[mode]


def timing_text(implementation: str, entry: dict[str, float], decimals: int = 1) -> str:
    """One implementation's line of a row: its train and infer medians (ms, with `decimals`)
    and their ratios to the fastest peer where there is one."""
    text = f"  {implementation:<13} train {entry['train_ms']:{8 + decimals}.{decimals}f} ms"
    if "train_vs_fastest_peer" in entry:
        text += f" ({entry['train_vs_fastest_peer']:.2f}x)"
    text += f"   infer {entry['infer_ms']:{7 + decimals}.{decimals}f} ms"
    if "infer_vs_fastest_peer" in entry:
        text += f" ({entry['infer_vs_fastest_peer']:.2f}x)"
    return text


def _print_row(row: dict[str, Any], stream: Any) -> None:
    print(f"\n{row['workload']}", file=stream)
    for implementation, entry in row["times"].items():
        text = timing_text(implementation, entry)
        if "train_gflops" in entry:
            text += f"   {entry['train_gflops']:.1f} GFLOP/s train"
        print(text, file=stream)
    if "peak_train_memory_mb" in row:
        memory = ", ".join(
            f"{k} {v:.0f} MB" for k, v in row["peak_train_memory_mb"].items() if v is not None
        )
        print(f"  peak train memory: {memory}", file=stream)
