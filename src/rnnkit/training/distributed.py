"""Data-parallel `fit` on torch.distributed: what changes when a script runs under `torchrun`.

Launch an unchanged training script once per process, the standard way:

    torchrun --standalone --nproc-per-node 2 train.py
    torchrun --standalone --nproc-per-node 2 -m rnnkit train charlm --out out/charlm

`fit` sees the launcher's environment (`WORLD_SIZE` > 1, with `RANK`, `LOCAL_RANK`,
`MASTER_ADDR`, `MASTER_PORT`) and, unless the script has done it already, starts the process
group: gloo for CPU tensors, and NCCL for CUDA tensors where there is a GPU per process (each
process then uses GPU `LOCAL_RANK`; a model on another GPU is moved there). Every process runs
the same script on the same, whole data set; then, in every process:

- `batch_size` stays the *global* batch, as in Keras's distribution strategies: every step
  each process takes its contiguous part of the same batch (`batch_size / N` samples; the
  parts of an uneven batch differ by one), so every process runs the same number of steps. The
  shuffled order comes from one seed, drawn on process 0 and shared, so it is the same
  everywhere. Nothing is dropped: a process whose part of a (last, small) batch would be empty
  repeats one sample with weight zero, so it still joins the gradient exchange.
- Data given as a torch `Dataset` or a `PyDataset` is split the same way (each process reads
  only its part of a Dataset's batch). A `DataLoader` or a generator instead gives each process
  its own batches, as in plain PyTorch: give each process different data and the same number
  of batches, e.g. `DataLoader(dataset, batch_size, sampler=DistributedSampler(dataset))`
  (`batch_size` is then per process). The processes check at every step that all of them have
  a batch, or none has, and raise a `ValueError` otherwise instead of waiting for each other;
  each weighs its batch loss by its share of the samples of the step.
- The model is wrapped in `DistributedDataParallel`, which copies process 0's weights to the
  others and averages the gradients. Each process weights its batch loss by its share of the
  batch, so one epoch gives the weights of a single-process run with the same data and
  `batch_size` (up to float32 summation order). Weight regularization terms are the same
  everywhere and enter once; activity regularization (a mean over each process's part) is
  averaged over the processes. Lazily built layers are built first, by a forward call in eval
  mode on the process's first batch.
- Loss, metrics and validation results are sums over samples, added up across processes before
  they are logged, so every process logs the global values and callbacks such as
  `EarlyStopping` decide the same everywhere; `stop_training` is also agreed on after each
  step. Validation is split between the processes like training.
- Only process 0 prints the progress bar and callback messages and writes files
  (`ModelCheckpoint`, `CSVLogger`); `fit` returns once its files are written. A script writes
  its own files (`model.save(...)`) under `if distributed.is_primary():`.
- Stateful layers keep one state per sample of the process's part of the batch: with
  `shuffle=False` and a batch that divides evenly, row `i` continues from row `i` of the same
  process's previous batch, as in a single process. `reset_state()` resets the local states.
- `evaluate` and `predict` are not split: each process computes the whole result, with no
  communication, so calling them on process 0 only is safe.

Data that differs between the processes in a way they detect together (different numbers of
samples, a DataLoader that runs out on some processes only) raises the same `ValueError` on every
process at the same exchange; the processes are still in step, so the process group is kept and
a script may catch the error, mend its data and call `fit` again.

Any other failure on one process (an exception, Ctrl-C, a killed process) ends the others: the
failing process prints which process stopped and why, and shuts the process group down, which the
others see at once as a lost connection; a process that hangs is given up on after
`RNNKIT_DIST_TIMEOUT` seconds (default 600). Each process then raises, so the run exits non-zero.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from rnnkit.training.metrics import Metric

TIMEOUT_VARIABLE = "RNNKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 600.0
RELEASE_WAIT_SECONDS = 5.0  # the most `_exchange` waits for a worker thread to let go of a tensor


class DataDisagreement(ValueError):
    """The processes' data differ; raised on every process at the same exchange, from its
    result, so the processes stay in step and the process group stays usable."""


def _exchange(collective: Callable[..., Any], tensor: torch.Tensor, **options: Any) -> torch.Tensor:
    """Runs `collective(tensor, **options)`, a blocking torch.distributed call, then waits until
    the process group's worker thread has let go of `tensor` too; returns `tensor`.

    Why: while C++ code holds a tensor that Python holds as well, the tensor keeps a reference
    to its Python object, and dropping it takes the GIL. gloo's worker thread drops its
    reference just after the call returns (still held on 6-14% of the calls when measured on
    two processes), and a thread that needs the GIL while the interpreter shuts down aborts the
    process ("terminate called without an active exception"), e.g. when the script ends right
    after `fit`. Waiting here, with the GIL released, leaves no exchange unfinished when the
    script goes on.
    """
    references = sys.getrefcount(tensor)
    collective(tensor, **options)
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while sys.getrefcount(tensor) > references and time.monotonic() < deadline:
        time.sleep(0)  # releases the GIL, which the worker thread needs to let go
    return tensor


def _environment_world_size() -> int:
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"The environment variable WORLD_SIZE must be an integer; received {text!r}."
        ) from None


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in a distributed run (0 when there is one process)."""
    if _initialized():
        return dist.get_rank()
    if _environment_world_size() > 1:
        return int(os.environ.get("RANK", "0"))
    return 0


def is_primary() -> bool:
    """Whether this process prints and writes files: rank 0, or the only process."""
    return rank() == 0


def timeout() -> timedelta:
    """How long a process waits for the others: `RNNKIT_DIST_TIMEOUT` seconds (default 600).

    Raises:
        ValueError: the variable is not a positive number.
    """
    text = os.environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(
            f"The environment variable {TIMEOUT_VARIABLE} must be a positive number of "
            f"seconds; received {text!r}."
        )
    return timedelta(seconds=seconds)


def _slice_part(index: slice | torch.Tensor, start: int, stop: int) -> slice | torch.Tensor:
    if isinstance(index, slice):
        return slice(index.start + start, index.start + stop)
    return index[start:stop]


class Group:
    """The processes that train one model together; one process alone is a group of one.

    `fit` runs the same code in both cases: for a single process every method below is the
    identity (or does nothing), and nothing is communicated.

    Args:
        rank: this process's rank (default 0).
        world_size: the number of processes (default 1).
        local_rank: this process's rank on its machine, its GPU index (default 0).
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"`rank` must be in [0, world_size); received rank={rank}, world_size={world_size}."
            )
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, index: slice | torch.Tensor) -> tuple[slice | torch.Tensor, float]:
        """This process's contiguous part of one global batch, and its share of the batch loss.

        Args:
            index: the batch, a `slice` (`step` None) or a 1-D tensor of sample indices.

        Returns:
            `(part, share)` with `share = len(part) * world_size / len(index)`: the weight of
            this process's mean batch loss that makes the gradient averaged over processes that
            of the whole batch. An empty part is replaced by the batch's first sample with share
            0.0 (it only joins the gradient exchange).
        """
        if not self.distributed:
            return index, 1.0
        size = index.stop - index.start if isinstance(index, slice) else len(index)
        start = size * self.rank // self.world_size
        stop = size * (self.rank + 1) // self.world_size
        if stop == start:
            return _slice_part(index, 0, 1), 0.0
        return _slice_part(index, start, stop), (stop - start) * self.world_size / size

    def _collective_device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def broadcast(self, value: int) -> int:
        """Process 0's `value`, on every process."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self._collective_device())
        return int(_exchange(dist.broadcast, tensor, src=0).item())

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on at least one."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([float(flag)], device=self._collective_device())
        return bool(_exchange(dist.all_reduce, tensor, op=dist.ReduceOp.MAX).item())

    def means(self, trackers: Sequence[Metric]) -> list[float]:
        """Each tracker's mean over the samples of every process (0.0 before any sample)."""
        if not self.distributed:
            return [tracker.result() for tracker in trackers]
        sums = torch.tensor(
            [[tracker.total, tracker.count] for tracker in trackers],
            dtype=torch.float64,
            device=self._collective_device(),
        )
        _exchange(dist.all_reduce, sums)
        return [total / count if count else 0.0 for total, count in sums.tolist()]

    def require_same(self, values: dict[str, int]) -> None:
        """Checks that every process has the same `values` (e.g. sample counts).

        Raises:
            DataDisagreement: a ValueError, on every process, naming the values that differ and
                their range.
        """
        if not self.distributed:
            return
        numbers = torch.tensor(list(values.values()), dtype=torch.int64)
        bounds = torch.cat([numbers, -numbers]).to(self._collective_device())
        _exchange(dist.all_reduce, bounds, op=dist.ReduceOp.MAX)
        highest, lowest = bounds.cpu().view(2, -1)
        differing = [
            f"{name} ranges from {-low} to {high}"
            for name, high, low in zip(values, highest.tolist(), lowest.tolist())
            if high != -low
        ]
        if differing:
            raise DataDisagreement(
                f"The {self.world_size} processes of this distributed run called fit with "
                f"different data: {'; '.join(differing)}. Pass every process the same, whole "
                "data set: fit splits each batch between them."
            )

    def agree_on_batch(self, size: int | None, argument: str = "x") -> int:
        """Checks that every process has a batch at this step, or none has; for data that gives
        each process its own batches (a DataLoader, a generator).

        Args:
            size: this process's batch size, or None when its data has run out.
            argument: the data's argument name, for the message.

        Returns:
            The global batch size (the sum over processes; 0 when every process has run out).

        Raises:
            DataDisagreement: a ValueError, on every process, when some have a batch and others
                have run out.
        """
        if not self.distributed:
            return size or 0
        counts = torch.tensor(
            [0 if size is None else 1, size or 0],
            dtype=torch.int64,
            device=self._collective_device(),
        )
        _exchange(dist.all_reduce, counts)
        having, total = counts.tolist()
        if 0 < having < self.world_size:
            this = "has a batch" if size is not None else "has run out of data"
            raise DataDisagreement(
                f"The processes of this distributed run have different numbers of batches in "
                f"`{argument}`: {having} of {self.world_size} still have a batch at this step "
                f"(process {self.rank} {this}). A DataLoader or generator gives each process its "
                "own batches: give every process the same number of them, e.g. with "
                "DataLoader(dataset, sampler=DistributedSampler(dataset, drop_last=True)), or "
                "pass `x` as a Dataset or arrays, which fit splits between the processes."
            )
        return total

    def barrier(self) -> None:
        """Waits until every process gets here."""
        if self.distributed:
            dist.barrier()

    def replicate(self, model: torch.nn.Module, x_batch: Any) -> torch.nn.Module:
        """What a training step calls: `model` itself, or its `DistributedDataParallel` wrapper.

        A model without weights yet is built first by a forward call in eval mode on
        `x_batch`, after which its stateful layers are reset (they have seen no data).
        """
        if not self.distributed:
            return model
        parameters = list(model.parameters())
        unbuilt = not parameters or any(
            isinstance(p, torch.nn.parameter.UninitializedParameter) for p in parameters
        )
        if unbuilt or getattr(model, "built", True) is False:
            was_training = model.training
            model.eval()
            with torch.no_grad():
                model(x_batch)
            model.train(was_training)
            reset_state = getattr(model, "reset_state", None)
            if reset_state is not None:
                reset_state()
        device = next(model.parameters()).device
        if device.type != "cuda" or self.local_rank >= torch.cuda.device_count():
            return torch.nn.parallel.DistributedDataParallel(model)
        if device.index != self.local_rank:  # e.g. `model.to("cuda")` before fit: GPU 0
            model.to(torch.device("cuda", self.local_rank))
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank], output_device=self.local_rank
        )

    @contextlib.contextmanager
    def failing_together(self) -> Iterator[None]:
        """Turns an exception on this process into the end of the run on every process.

        The exception is reported on stderr with this process's rank, the process group is
        shut down (the other processes' next exchange then fails at once), and the exception
        is raised again.
        """
        try:
            yield
        except DataDisagreement:
            raise  # raised on every process at the same exchange: the group is still in step
        except BaseException as error:
            if not self.distributed:
                raise
            print(
                f"rnnkit: training stopped on process {self.rank} of {self.world_size}: "
                f"{type(error).__name__}: {error}\nrnnkit: shutting down the process group so "
                "that the other processes stop too. A lost connection or a timeout here means "
                "that another process stopped first: its output says why.",
                file=sys.stderr,
                flush=True,
            )
            if _initialized():
                with contextlib.suppress(Exception):
                    dist.destroy_process_group()
            raise


SINGLE_PROCESS = Group()


def _destroy_at_exit() -> None:
    if _initialized():
        dist.destroy_process_group()


def setup() -> Group:
    """The group of processes `fit` trains with, starting the process group when needed.

    A process group the script started already is used as it is. Otherwise, when the launcher
    set `WORLD_SIZE` > 1, the group starts from the environment (`env://`: `RANK`,
    `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`) with the timeout of `timeout()`: gloo, plus NCCL
    for CUDA tensors where there is a GPU per process (this process then uses GPU `LOCAL_RANK`).

    Returns:
        The `Group`; `SINGLE_PROCESS` when there is one process.

    Raises:
        RuntimeError: several processes were launched, but this torch has no torch.distributed.
        ValueError: a malformed `WORLD_SIZE` or `RNNKIT_DIST_TIMEOUT`.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if _initialized():
        if dist.get_world_size() == 1:
            return SINGLE_PROCESS
        return Group(dist.get_rank(), dist.get_world_size(), local_rank)
    if _environment_world_size() <= 1:
        return SINGLE_PROCESS
    if not dist.is_available():
        raise RuntimeError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for a distributed run, but this build "
            "of torch has no torch.distributed."
        )
    backend = "gloo"
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout())
    atexit.register(_destroy_at_exit)
    return Group(dist.get_rank(), dist.get_world_size(), local_rank)
