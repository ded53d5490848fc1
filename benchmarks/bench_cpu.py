"""CPU benchmark: rnnkit fused vs rnnkit loop vs torch.nn vs Keras 3 (JAX), side by side.

Run: `python benchmarks/bench_cpu.py [--quick] [--out DIR]` (the same as `rnnkit bench`).
Results go to DIR/bench_cpu.json; benchmarks/README.md records a run.
"""

import sys

from rnnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
