"""The plain-language reading of a vanishing-gradient experiment, written from its numbers.

Nothing here is fixed prose about which layer wins: every sentence is chosen and filled in from
the measured test MSE and gradient flow, so a run where SimpleRNN learns says so. One rule
decides "at the baseline" everywhere (`at_baseline`, stated by `baseline_rule`), and the
sentences on gradient decay come from straight lines fitted to the curve as Figure 2 draws it
(`fit_segments`), so they describe what the reader sees.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from rnnkit.explain.vanishing import VanishingResults

LEARNED_MSE = 0.05
"""Test MSE below this counts as "learned the task" (under a third of the baseline)."""

NEAR_BASELINE = 0.8
"""Test MSE at or above this fraction of the baseline counts as "at the baseline"."""

FIT_TOLERANCE_DECADES = 0.5
"""A fitted line matches the curve when every point lies within this many factors of 10 of it
(0.5: a factor of about 3), on the log scale of Figure 2."""

FLAT_DECADES = math.log10(2)
"""A stretch of the curve that changes by less than a factor of 2 is described as flat."""

MAX_SEGMENTS = 3


def at_baseline(value: float, baseline: float) -> bool:
    """The one rule for "at the baseline": a test MSE of at least `NEAR_BASELINE` of the
    baseline (or one that is not finite)."""
    return not math.isfinite(value) or value >= NEAR_BASELINE * baseline


def baseline_rule(baseline: float) -> str:
    """The baseline and the two thresholds the reading uses, in words."""
    return (
        f"The baseline is the test MSE of always answering 1.0, {baseline:.3f}: a model there "
        "has learned nothing that spans the sequence. A model counts as at the baseline when "
        f"its test MSE is at least {NEAR_BASELINE:.0%} of it ({NEAR_BASELINE * baseline:.3f}), "
        f"and as having learned the task below MSE {LEARNED_MSE}."
    )


def _mse(value: float) -> str:
    return "diverged (MSE not finite)" if not math.isfinite(value) else f"MSE {value:.3g}"


def _share(value: float, baseline: float) -> str:
    """The MSE with its share of the baseline, as the at-the-baseline rule reads it."""
    if not math.isfinite(value):
        return _mse(value)
    return f"{_mse(value)}, {_share_only(value, baseline)}"


def _share_only(value: float, baseline: float) -> str:
    return f"{value / baseline:.0%} of the baseline"


def layer_sentence(name: str, lengths: list[int], mse: list[float], baseline: float) -> str:
    """One sentence on how `name`'s test MSE changes with T."""
    learned = [(t, m) for t, m in zip(lengths, mse) if m < LEARNED_MSE]
    failing_from = None
    for index in range(len(lengths)):
        if all(at_baseline(m, baseline) for m in mse[index:]):
            failing_from = index
            break
    if failing_from == 0:
        span = f"T={lengths[0]}" if len(lengths) == 1 else f"T={lengths[0]} to T={lengths[-1]}"
        best = min(mse, key=lambda m: m if math.isfinite(m) else math.inf)
        return (
            f"{name} stays at the baseline at every length ({span}; best {_share(best, baseline)})."
        )
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
            f"T={lengths[best]} ({_share_only(mse[best], baseline)})"
        )
    if failing_from is not None:
        t, m = lengths[failing_from], mse[failing_from]
        parts.append(f"stays at the baseline from T={t} ({_share(m, baseline)})")
    elif learned and mse[-1] >= LEARNED_MSE:  # neither learned nor at the baseline at the end
        parts.append(
            f"reaches only {_mse(mse[-1])} at T={lengths[-1]} ({_share_only(mse[-1], baseline)})"
        )
    return f"{name} " + " but ".join(parts) + "."


def too_short_sentence(results: VanishingResults) -> str | None:
    """When no model learned the task at any length: says so, and how to train longer."""
    if any(m < LEARNED_MSE for values in results.mse.values() for m in values):
        return None
    steps = results.settings.get("steps")
    trained = f"{steps} training steps per model" if steps else "this training"
    more = f"above {steps}" if steps else "larger"
    return (
        f"No model learned the task at any length (none got below MSE {LEARNED_MSE}): with "
        f"{trained}, the run is too short to tell the layer types apart. Train longer with "
        f"`rnnkit explain vanishing --steps N`, N {more} (the default is 1000; `steps=` in "
        "`run_experiment`), or try shorter lengths with `--lengths`."
    )


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


def end_to_end_ratio(norms: np.ndarray) -> float:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖: how much of the gradient at the last step reaches the first."""
    return float(norms[0] / norms[-1]) if norms[-1] > 0 else float("nan")


@dataclass(frozen=True)
class Segment:
    """One straight stretch of a gradient-flow curve on the log scale.

    Attributes:
        start: the distance from the loss (timesteps) where the stretch begins.
        steps: how many steps back it covers (to the next stretch's start, or the curve's end).
        decades: the change of log10 ‖∂L/∂h‖ over those steps along the fit (negative: the
            gradient shrinks going back in time).
    """

    start: int
    steps: int
    decades: float


def _by_distance(norms: np.ndarray) -> np.ndarray:
    """log10 of the norms ordered by distance from the loss (entry 0: the last step), as
    Figure 2 draws them for the experiment's layers, which all run forwards."""
    return np.log10(np.maximum(np.asarray(norms, dtype=float)[::-1], 1e-300))


_BREAK_CANDIDATES = 100  # break points tried per fit (every step on curves up to this long)


def _hinge_fit(values: np.ndarray, breaks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares continuous line with a change of slope at each of `breaks`: returns
    the slope of each stretch and the fitted values."""
    x = np.arange(len(values), dtype=float)
    design = np.stack([np.ones_like(x), x, *(np.maximum(x - b, 0.0) for b in breaks)], axis=1)
    coefficients = np.linalg.lstsq(design, values, rcond=None)[0]
    return np.cumsum(coefficients[1:]), design @ coefficients


def fit_segments(norms: np.ndarray) -> list[Segment]:
    """The fewest straight stretches (up to `MAX_SEGMENTS`, joined end to end) that follow the
    gradient-flow curve on Figure 2's axes (log10 ‖∂L/∂h‖ against the distance from the loss)
    within `FIT_TOLERANCE_DECADES` at every point; the best `MAX_SEGMENTS` when none do.

    Args:
        norms: ‖∂L/∂h_t‖ by input timestep t (shape (T,), finite, T >= 2).

    Returns:
        The stretches, nearest the loss first.
    """
    values = _by_distance(norms)
    last = len(values) - 1
    # Every step near the loss (where a gradient often drops at once), evenly spread beyond.
    spread = np.linspace(1, last - 1, min(_BREAK_CANDIDATES, max(last - 1, 0)))
    candidates = sorted({*range(1, min(11, last)), *(int(round(c)) for c in spread)})
    best = None
    for pieces in range(1, MAX_SEGMENTS + 1):
        options = [()] if pieces == 1 else itertools.combinations(candidates, pieces - 1)
        fits = []
        for breaks in options:
            slopes, fitted = _hinge_fit(values, breaks)
            fits.append((float(np.sum((fitted - values) ** 2)), breaks, slopes, fitted))
        if not fits:
            break
        best = min(fits, key=lambda fit: fit[0])
        if np.max(np.abs(best[3] - values)) <= FIT_TOLERANCE_DECADES:
            break
    _, breaks, slopes, _ = best
    edges = [0, *breaks, last]
    return [
        Segment(start, stop - start, float(slope * (stop - start)))
        for start, stop, slope in zip(edges[:-1], edges[1:], slopes)
    ]


def _every(steps: float) -> str:
    return "every step" if round(steps) <= 1 else f"every {steps:.0f} steps"


def _segment_phrase(segment: Segment, first: bool) -> str:
    where = f"over the {segment.steps} steps nearest the loss" if first else "over the next"
    count = "" if first else f" {segment.steps}"
    if abs(segment.decades) < FLAT_DECADES:
        return f"stays within a factor of 2 {where}{count}"
    factor = 10 ** abs(segment.decades)
    if segment.decades > 0:
        return f"grows by a factor of {factor:.2g} {where}{count}"
    if abs(segment.decades) < 1 or segment.steps <= 5:
        return f"falls by a factor of {factor:.2g} {where}{count}"
    per_decade = segment.steps / -segment.decades
    return f"loses a factor of 10 {_every(per_decade)} {where}{count}"


def decay_sentence(name: str, norms: np.ndarray) -> str:
    """How `name`'s gradient shrinks going back in time, read from the fitted stretches."""
    timesteps = len(norms)
    ratio = end_to_end_ratio(norms)
    if not math.isfinite(ratio) or not np.all(np.isfinite(norms)):
        return (
            f"After training, {name}'s gradient at T={timesteps} could not be measured: "
            "its weights or loss are no longer finite numbers."
        )
    at_first = f"at the first of T={timesteps} steps it is {ratio:.2g} of its size at the last"
    if ratio >= 1:
        return (
            f"After training, {name}'s gradient at T={timesteps} does not shrink towards the "
            f"first step: {at_first}."
        )
    segments = fit_segments(norms)
    if len(segments) == 1 and ratio < 0.1:
        per_decade = segments[0].steps / -segments[0].decades
        return (
            f"After training, {name}'s gradient loses a factor of 10 {_every(per_decade)} "
            f"back in time (a straight line on Figure 2's log scale): at the first of "
            f"T={timesteps} steps it is {ratio:.1e} of its size at the last."
        )
    if len(segments) == 1:
        return (
            f"After training, {name}'s gradient fades by less than a factor of 10 over all "
            f"T={timesteps} steps: at the first step it is still {ratio:.2g} of its size at "
            "the last."
        )
    phrases = [_segment_phrase(segment, index == 0) for index, segment in enumerate(segments)]
    return f"After training, {name}'s gradient " + ", then ".join(phrases) + f": {at_first}."


def flow_sentences(results: VanishingResults) -> list[str]:
    """How far the gradient reaches back after training, and what training changed."""
    sentences = []
    for name, flow in results.flows.items():
        norms = next(iter(flow.values()))
        sentence = decay_sentence(name, norms)
        ratio = end_to_end_ratio(norms)
        initial = results.initial_flows.get(name)
        if initial is not None and math.isfinite(ratio):
            before = end_to_end_ratio(next(iter(initial.values())))
            if before > 0 and ratio / before >= 100:
                sentence += f" At initialization it was {before:.1e}: training opened the path."
            elif before > 0 and before / ratio >= 100:
                sentence += f" At initialization it was {before:.1e}: training closed it."
        sentences.append(sentence)
    return sentences


def reading(results: VanishingResults) -> list[str]:
    """The reading of `results` as a list of sentences, most important first."""
    too_short = too_short_sentence(results)
    sentences = [] if too_short is None else [too_short]
    sentences += [
        layer_sentence(name, results.lengths, mse, results.baseline)
        for name, mse in results.mse.items()
    ]
    sentences.append(longest_sentence(results))
    return sentences + flow_sentences(results)
