"""One stateful inference step at batch 1 (LSTM 64 → 128 units, 1 and 16 timesteps per call)
against `torch.nn.LSTMCell` and `torch.nn.LSTM` with carried `hx`: `rnnkit bench`'s small-call
workload alone, on a chosen number of threads.

    python benchmarks/small_call.py --threads 1 --repeats 15

Prints one line per implementation and timestep count: the median µs per call (each timing
runs `rnnkit.bench_workflow.CALLS_PER_TIMING` calls; implementations timed in turns).
"""

from __future__ import annotations

import argparse

import torch

from rnnkit import bench_workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=15, help="timings per implementation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    bench_workflow.small_call_rows(args.repeats)


if __name__ == "__main__":
    main()
