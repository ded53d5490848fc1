"""Where the fused CPU kernels' threads run (`leave_master_cpu` in cpu.cpp): a worker thread
that starts its share of a call on the master thread's CPU moves off it, and keeps its own CPU
mask. Linux only, with at least two CPUs to run on."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import pytest
import torch

from rnnkit.kernels import cpu_library
from rnnkit.layers import SimpleRNN

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="thread placement is Linux's, and needs two CPUs",
)


def _thread_ids() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/task")]


def _stat_fields(thread: int) -> list[str]:
    """/proc's stat fields of `thread` after its name (the name may hold spaces)."""
    with open(f"/proc/self/task/{thread}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def _cpu_ticks(thread: int) -> int:
    fields = _stat_fields(thread)
    return int(fields[11]) + int(fields[12])  # utime + stime


def _last_cpu(thread: int) -> int:
    return int(_stat_fields(thread)[36])  # `processor`: the CPU it last ran on


@pytest.fixture
def two_threads():
    """Torch (and so the kernels) at two threads; every thread's CPU mask restored after."""
    if cpu_library.blocker() is not None:
        pytest.skip("the fused CPU kernels are unavailable")
    previous = torch.get_num_threads()
    masks = {thread: os.sched_getaffinity(thread) for thread in _thread_ids()}
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
    for thread in _thread_ids():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(thread, masks.get(thread, masks[threading.get_native_id()]))


def _openmp_worker(master: int) -> int:
    """The thread other than `master` that runs torch's parallel work."""
    a = torch.randn(1500, 1500)
    before = {thread: _cpu_ticks(thread) for thread in _thread_ids()}
    for _ in range(30):
        a @ a
    workers = [t for t in _thread_ids() if t != master and _cpu_ticks(t) > before.get(t, 0)]
    if len(workers) != 1:
        pytest.skip(f"expected one OpenMP worker thread, found {len(workers)}")
    return workers[0]


def test_a_worker_on_the_masters_cpu_moves_off_it_and_keeps_its_mask(two_threads):
    layer = SimpleRNN(8, use_fused=True)
    layer.eval()
    x = torch.randn(8, 20, 8)

    def call() -> None:
        with torch.no_grad():
            layer(x)

    call()
    master = threading.get_native_id()
    worker = _openmp_worker(master)
    allowed = os.sched_getaffinity(worker)
    first = min(os.sched_getaffinity(master) & allowed)
    os.sched_setaffinity(master, {first})
    left = 0
    for _ in range(20):
        call()  # afterwards the worker spins a while, waiting for the next region
        os.sched_setaffinity(worker, {first})  # moved onto the master's CPU now...
        os.sched_setaffinity(worker, allowed)  # ...and free again, but still there
        call()
        left += _last_cpu(worker) != first
        assert os.sched_getaffinity(worker) == allowed
    # Left alone, Linux moved it in 2-4 of 20 such calls on a 2-vCPU VM.
    assert left == 20
