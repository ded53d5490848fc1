"""Side-by-side CUDA timings of recurrent layers: rnnkit as a user runs it, rnnkit's Triton
kernels, and torch.nn (cuDNN).

`rnnkit bench --device cuda` measures, in one run, a training step (forward + backward + RMSprop
update) and an inference call for each workload and implementation, timed with CUDA events
(median of the repeats, after two warm-up calls that also compile the Triton kernels). It
reports the ratio of each to torch.nn's cuDNN (> 1 is faster), the achieved TFLOP/s, the peak
device memory of a training step, and the GPU's name. The implementations:

- `rnnkit_auto`: the layer, `use_fused="auto"` (`rnnkit.kernels.select`: cuDNN where it computes
  the call exactly, the Triton kernels for the rest, else the loop);
- `rnnkit_triton`: the same layer's cell through the Triton kernels directly
  (`rnnkit.kernels.gpu.run_gpu`), where `gpu.blocker` lets them run it;
- `torch_nn`: `torch.nn.RNN` / `LSTM` / `GRU`, where torch.nn has the option.

Keras is not measured on CUDA (no such runner here yet). FLOPs are counted as in `rnnkit.bench`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from rnnkit import bench
from rnnkit.kernels.spec import Recurrence

IMPLEMENTATIONS = ("rnnkit_auto", "rnnkit_triton", "torch_nn")
PEER = "torch_nn"


def default_workloads(
    cells: tuple[str, ...] = ("simple_rnn", "lstm", "gru"),
) -> list[bench.Workload]:
    """Every cell at every CUDA shape, plus each option variant at the chapter shape."""
    cases = [bench.Workload(cell, shape) for shape in bench.CUDA_SHAPES for cell in cells]
    cases += [
        bench.Workload(cell, "chapter", variant) for variant in bench.OPTIONS for cell in cells
    ]
    return cases


def no_cuda_reason() -> str | None:
    """None when PyTorch sees a CUDA device, else why `--device cuda` cannot run."""
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device here (torch.cuda.is_available() is False)"
    return None


def median_ms(function: Callable[[], Any], repeats: int) -> float:
    """Median milliseconds of `function` between two CUDA events, after two warm-up calls."""
    function()
    function()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peak_memory_mb(function: Callable[[], Any]) -> float:
    """Device memory a call of `function` allocates at its peak, beyond what was held before."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    function()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def _tensors(workload: bench.Workload, dtype: torch.dtype, device: str) -> tuple:
    x, y, mask = bench._data(workload)
    x = torch.from_numpy(x).to(device, dtype)
    y = torch.from_numpy(y).to(device, dtype)
    mask = None if mask is None else torch.from_numpy(mask).to(device)
    return x, y, mask


def _rnnkit_steps(
    workload: bench.Workload, dtype: torch.dtype, device: str, *, triton: bool
) -> tuple[Callable, Callable] | None:
    from rnnkit import layers
    from rnnkit.training.optimizers import RMSprop

    cls = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
    x, y, mask = _tensors(workload, dtype, device)
    layer = cls[workload.cell](workload.shape[3], dtype=dtype, **bench._layer_options(workload))
    layer.build((None, None, workload.shape[2]))
    layer.to(device)
    optimizer = RMSprop().build(list(layer.parameters()))
    run = layer
    if triton:
        from rnnkit.kernels import gpu

        if gpu.blocker(Recurrence(layer.cell_spec()), x) is not None:
            return None
        run = _through_triton(layer, gpu.run_gpu)

    def train() -> None:
        layer.train()
        optimizer.zero_grad()
        loss = ((run(x, mask=mask) - y) ** 2).mean()
        loss.backward()
        optimizer.step()

    def infer() -> torch.Tensor:
        layer.eval()
        with torch.no_grad():
            return run(x, mask=mask)

    return train, infer


def _through_triton(layer: Any, run_gpu: Callable) -> Callable:
    """`layer(x, mask=...)`'s last output, its sequence run by `run_gpu` whatever `select`
    would pick."""

    def call(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = x.shape[0]
        masks = layer.cell.make_dropout_masks(batch) if layer.training else None
        states = [x.new_zeros(batch, size) for size in layer.state_size]
        recurrence = Recurrence(layer.cell_spec(), mask=mask, go_backwards=layer.go_backwards,
                                return_sequences=False, dropout_masks=masks)  # fmt: skip
        _, last, _ = run_gpu(recurrence, x, states)
        return last

    return call


def _torch_steps(
    workload: bench.Workload, dtype: torch.dtype, device: str
) -> tuple[Callable, Callable] | None:
    module = bench.torch_module(workload)
    if module is None:
        return None
    module.to(device, dtype)
    x, y, _ = _tensors(workload, dtype, device)
    return bench.torch_module_steps(module, workload, x, y)


def steps(
    implementation: str, workload: bench.Workload, dtype: torch.dtype, device: str = "cuda"
) -> tuple[Callable, Callable] | None:
    """(train_step, inference) callables on `device` (inference returns the last outputs), or
    None where the implementation has no such path."""
    if implementation == "rnnkit_auto":
        return _rnnkit_steps(workload, dtype, device, triton=False)
    if implementation == "rnnkit_triton":
        return _rnnkit_steps(workload, dtype, device, triton=True)
    return _torch_steps(workload, dtype, device)


def run(
    workloads: list[bench.Workload],
    repeats: int = 20,
    dtype: torch.dtype = torch.float32,
    stream: Any = sys.stdout,
) -> dict[str, Any]:
    """Measures every workload × implementation on the current CUDA device; prints a table;
    returns the results."""
    name = torch.cuda.get_device_name()
    print(f"GPU: {name}; {dtype}; torch {torch.__version__}", file=stream)
    rows = []
    for workload in workloads:
        times: dict[str, dict[str, float]] = {}
        for implementation in IMPLEMENTATIONS:
            pair = steps(implementation, workload, dtype)
            if pair is None:
                continue
            train, infer = pair
            times[implementation] = {
                "train_ms": median_ms(train, repeats),
                "infer_ms": median_ms(infer, repeats),
                "peak_train_memory_mb": peak_memory_mb(train),
            }
            torch.cuda.empty_cache()
        row = {"workload": workload.name, "times": times}
        bench.add_ratios(row, (PEER,))
        for entry in times.values():
            entry["train_tflops"] = workload.train_flops() / entry["train_ms"] / 1e9
            entry["infer_tflops"] = workload.forward_flops() / entry["infer_ms"] / 1e9
        rows.append(row)
        _print_row(row, stream)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "gpu": name,
        "dtype": str(dtype),
        "torch": torch.__version__,
        "results": rows,
    }


def _print_row(row: dict[str, Any], stream: Any) -> None:
    print(f"\n{row['workload']}", file=stream)
    for implementation, entry in row["times"].items():
        text = bench.timing_text(implementation, entry, decimals=2)
        text += f"   {entry['train_tflops']:.2f} TFLOP/s train"
        text += f"   {entry['peak_train_memory_mb']:.0f} MB"
        print(text, file=stream)
