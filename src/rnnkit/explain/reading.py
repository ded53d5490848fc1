"""The plain-language reading of a vanishing-gradient experiment, written from its numbers.

Nothing here is fixed prose about which layer wins: every sentence is chosen and filled in from
the measured test MSE and gradient flow, so a run where SimpleRNN learns says so.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.explain.vanishing import VanishingResults

LEARNED_MSE = 0.05
"""Test MSE below this counts as "learned the task" (under a third of the baseline)."""

NEAR_BASELINE = 0.8
"""Test MSE above this fraction of the baseline counts as "at the baseline"."""


def _mse(value: float) -> str:
    return "diverged (MSE not finite)" if not math.isfinite(value) else f"MSE {value:.3g}"


def _at_baseline(value: float, baseline: float) -> bool:
    return not math.isfinite(value) or value >= NEAR_BASELINE * baseline


def layer_sentence(name: str, lengths: list[int], mse: list[float], baseline: float) -> str:
    """One sentence on how `name`'s test MSE changes with T."""
    learned = [(t, m) for t, m in zip(lengths, mse) if m < LEARNED_MSE]
    failing_from = None
    for index in range(len(lengths)):
        if all(_at_baseline(m, baseline) for m in mse[index:]):
            failing_from = index
            break
    if failing_from == 0:
        span = f"T={lengths[0]}" if len(lengths) == 1 else f"T={lengths[0]} to T={lengths[-1]}"
        worst = next((m for m in mse if not math.isfinite(m)), max(mse))
        return f"{name} stays at the baseline at every length ({span}; worst {_mse(worst)})."
    parts = []
    if learned and len(learned) == len(lengths):
        t, m = learned[-1]
        parts.append(f"learns the task at every length, reaching {_mse(m)} at T={t}")
    elif learned and [t for t, _ in learned] == lengths[: len(learned)]:
        t, m = learned[-1]
        parts.append(f"learns the task up to T={t} ({_mse(m)})")
    elif learned:
        where = ", ".join(f"T={t} ({_mse(m)})" for t, m in learned)
        parts.append(f"learns the task only at {where}")
    else:
        best = int(np.nanargmin(mse))
        parts.append(
            f"never gets below MSE {LEARNED_MSE}; its best is {_mse(mse[best])} at "
            f"T={lengths[best]}"
        )
    if failing_from is not None:
        t, m = lengths[failing_from], mse[failing_from]
        parts.append(f"stays at the baseline from T={t} ({_mse(m)})")
    return f"{name} " + " but ".join(parts) + "."


def longest_sentence(results: VanishingResults) -> str:
    """Which layer type does best and worst at the longest length."""
    last = results.lengths[-1]
    scores = {name: values[-1] for name, values in results.mse.items()}
    ordered = sorted(scores, key=lambda name: (not math.isfinite(scores[name]), scores[name]))
    best, worst = ordered[0], ordered[-1]
    if len(ordered) == 1:
        return f"At T={last}, {best} scores {_mse(scores[best])}."
    return (
        f"At the longest length, T={last}, the best is {best} ({_mse(scores[best])}) and the "
        f"worst is {worst} ({_mse(scores[worst])}); the baseline is {results.baseline:.3f}."
    )


def decay(norms: np.ndarray) -> tuple[float, float | None]:
    """`(ratio, steps per factor of 10)`: ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖, and how many steps back the
    gradient loses a factor of 10 on average (None when it does not shrink)."""
    ratio = float(norms[0] / norms[-1]) if norms[-1] > 0 else float("nan")
    if not math.isfinite(ratio) or ratio <= 0 or ratio >= 1:
        return ratio, None
    return ratio, (len(norms) - 1) / -math.log10(ratio)


def flow_sentences(results: VanishingResults) -> list[str]:
    """How far the gradient reaches back after training, and what training changed."""
    timesteps = results.flow_timesteps
    sentences = []
    for name, flow in results.flows.items():
        norms = next(iter(flow.values()))
        ratio, per_decade = decay(norms)
        if not math.isfinite(ratio):
            sentences.append(
                f"After training, {name}'s gradient at T={timesteps} could not be measured: "
                "its weights or loss are no longer finite numbers."
            )
            continue
        if per_decade is None:
            sentences.append(
                f"After training, {name}'s gradient at T={timesteps} does not shrink towards "
                f"the first step (‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {ratio:.2g})."
            )
            continue
        if ratio >= 0.1:
            sentences.append(
                f"After training, {name}'s gradient fades by less than a factor of 10 over "
                f"all T={timesteps} steps: at the first step it is still {ratio:.2g} of its "
                "size at the last."
            )
        else:
            sentences.append(
                f"After training, {name}'s gradient loses a factor of 10 every "
                f"{per_decade:.0f} steps back in time: at the first of T={timesteps} steps it "
                f"is {ratio:.1e} of its size at the last."
            )
        initial = results.initial_flows.get(name)
        if initial is not None:
            before, _ = decay(next(iter(initial.values())))
            if before > 0 and ratio / before >= 100:
                sentences[-1] += (
                    f" At initialization it was {before:.1e}: training opened the path."
                )
            elif before > 0 and before / ratio >= 100:
                sentences[-1] += f" At initialization it was {before:.1e}: training closed it."
    return sentences


def reading(results: VanishingResults) -> list[str]:
    """The reading of `results` as a list of sentences, most important first."""
    sentences = [
        layer_sentence(name, results.lengths, mse, results.baseline)
        for name, mse in results.mse.items()
    ]
    sentences.append(longest_sentence(results))
    return sentences + flow_sentences(results)
