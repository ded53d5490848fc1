"""Text generation two ways, on a model trained by `rnnkit train charlm` (40-character windows):
bits per character on the held-out text, and characters generated per second.

Run: `rnnkit train charlm --out out/charlm` then
`python benchmarks/charlm_generation.py out/charlm/model.rnnkit [--max-chars N] [--chars N]`
(`--max-chars`: the same value as the training run's, default 120,000, so that the held-out
text is the same). benchmarks/README.md records a run.

- stateful (`charlm.generate`'s default): each character predicted from the whole held-out
  text before it, one step of the recurrent layer per character;
- windowed (the book's): each character predicted from the 40 characters before it, a fresh
  model call over the window per character (as in training).
"""

import argparse
import statistics
import time

import rnnkit as rk
from rnnkit import bench
from rnnkit.data import text_corpus
from rnnkit.tasks import charlm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model file written by `rnnkit train charlm`")
    parser.add_argument("--max-chars", type=int, default=120_000, help="as when training")
    parser.add_argument("--window", type=int, default=40, help="the training windows' length")
    parser.add_argument("--chars", type=int, default=200, help="characters per timed sample")
    parser.add_argument("--repeats", type=int, default=5, help="timed samples per sampler")
    options = parser.parse_args()

    cpu = bench.cpu_description()
    print(f"CPU: {cpu['model']} ({cpu['capability']}), {cpu['count']} cores")
    model = rk.load_model(options.model)
    text = text_corpus.load_text(max_chars=options.max_chars)
    _, held_out = text_corpus.train_val_split(text, 0.1)
    chars, _ = text_corpus.char_vocabulary(text)
    for stateful in (True, False):
        start = time.perf_counter()
        bits = charlm.bits_per_character(
            model, held_out, vocabulary=chars, window=options.window, stateful=stateful
        )
        print(
            f"{'stateful' if stateful else 'windowed'}: {bits:.4f} bits per character over "
            f"{len(held_out) - options.window:,} held-out characters "
            f"({time.perf_counter() - start:.1f} s)"
        )
    seed_text = held_out[: options.window]
    samplers = {
        name: lambda stateful=stateful: charlm.generate(
            model, seed_text, options.chars, vocabulary=chars, stateful=stateful
        )
        for name, stateful in (("stateful", True), ("windowed", False))
    }
    # Timed in turns; wall-clock and CPU time (this process's), medians: on a loaded machine the
    # CPU time moves less (run with OMP_NUM_THREADS=1 there, so no thread spins waiting).
    seconds: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in samplers}
    for _ in range(options.repeats + 1):  # the first round warms up
        for name, sampler in samplers.items():
            wall, cpu_time = time.perf_counter(), time.process_time()
            sampler()
            seconds[name]["wall"].append(time.perf_counter() - wall)
            seconds[name]["cpu"].append(time.process_time() - cpu_time)
    rates = {
        name: {clock: options.chars / statistics.median(times[1:]) for clock, times in t.items()}
        for name, t in seconds.items()
    }
    for name, rate in rates.items():
        print(
            f"{name}: {rate['wall']:,.0f} characters per second wall-clock, {rate['cpu']:,.0f} "
            f"per CPU-second (window {options.window})"
        )
    print(
        f"stateful / windowed: {rates['stateful']['wall'] / rates['windowed']['wall']:.1f}x "
        f"wall-clock, {rates['stateful']['cpu'] / rates['windowed']['cpu']:.1f}x CPU time"
    )
    print(f"stateful sample after {seed_text!r}: {samplers['stateful']()!r}")


if __name__ == "__main__":
    main()
