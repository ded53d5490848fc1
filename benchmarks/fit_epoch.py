"""Times `fit` epochs of the chapter's IMDB model on the rnnkit that `PYTHONPATH` finds, for
before/after comparisons of the fit loop's own cost (two source trees run in turns).

One warm-up epoch over 512 samples (kernel build, first allocations), then `--epochs` timed
epochs of `rnnkit.bench_workflow`'s chapter workload (4,096 × 500 random ids, batch 128,
rmsprop, acc, `verbose=0`). Prints one line per epoch: wall seconds and the process's CPU
seconds (steadier than wall time on a shared machine); with `--predict`, also those of a
`predict` over the same data after each epoch.

Example (old and new trees in turns, one thread):
    for round in 1 2 3; do for tree in /tmp/old /tmp/new; do
        OMP_NUM_THREADS=1 PYTHONPATH=$tree/src python benchmarks/fit_epoch.py --label $tree
    done; done
"""

from __future__ import annotations

import argparse
import time

from rnnkit.bench_workflow import CHAPTER_MODEL, chapter_data, rnnkit_chapter_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (default: 2)")
    parser.add_argument("--label", default="", help="printed before each line")
    parser.add_argument("--predict", action="store_true", help="also time `predict`")
    args = parser.parse_args()
    x, y = chapter_data()
    model = rnnkit_chapter_model()
    batch_size = CHAPTER_MODEL["batch_size"]
    model.fit(x[:512], y[:512], batch_size=batch_size, epochs=1, verbose=0)
    model.predict(x[:512], batch_size=batch_size, verbose=0)
    for _ in range(args.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        line = f"{args.label} fit epoch: {wall:.2f} s wall, {cpu:.2f} s CPU"
        if args.predict:
            wall, cpu = time.perf_counter(), time.process_time()
            model.predict(x, batch_size=batch_size, verbose=0)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            line += f"; predict: {wall:.3f} s wall, {cpu:.3f} s CPU"
        print(line, flush=True)


if __name__ == "__main__":
    main()
