"""Drawing the next character from a language model's prediction, reweighted by a temperature
the book's way (`p ** (1 / temperature)`, normalized), from probabilities (`draw`) or from a
softmax layer's logits (`draw_from_logits`). Both look one uniform number up in the cumulative
weights, as `numpy.random.Generator.choice(p=...)` does, so a seed gives the same characters.
"""

from __future__ import annotations

import numpy as np


def draw(probabilities: np.ndarray, temperature: float, generator: np.random.Generator) -> int:
    """Draws the next character's index from `probabilities` reweighted the book's way:
    `p ** (1 / temperature)`, normalized (a lower temperature: more predictable).

    It draws as `generator.choice(len(probabilities), p=reweighted)` does, one uniform number
    looked up in the cumulative weights (so a seed gives the same characters), without
    `choice`'s checks of `p` and in fewer array operations than the book's
    `exp(log(p) / temperature)`: a character costs tens of microseconds, and each operation on
    a small array about one.

    Args:
        probabilities: `(vocabulary_size,)`, the model's prediction (sums to 1).
        temperature: > 0.
        generator: the source of the uniform number.

    Returns:
        The drawn index.

    Raises:
        ValueError: `probabilities` hold a NaN or an infinity.
    """
    # Clipped as the book clips before its logarithm; a fresh float64 array, worked in place.
    # (`np.add.accumulate` is `np.cumsum`, the same sums, without cumsum's dispatch: about 1 µs
    # a character less.)
    weights = np.maximum(probabilities, 1e-12, dtype=np.float64)
    np.power(weights, 1.0 / temperature, out=weights)
    cumulative = np.add.accumulate(weights, out=weights)
    if not 1e-290 < cumulative[-1] < np.inf:
        if not np.isfinite(probabilities).all():
            raise ValueError(
                "The model predicted probabilities that are not finite (has it diverged?): "
                f"{probabilities!r}."
            )
        # At a low temperature every weight can underflow (or a value above 1 overflow): the
        # same weights divided by the largest, which becomes 1.
        weights = np.maximum(probabilities, 1e-12, dtype=np.float64)
        weights /= weights.max()
        np.power(weights, 1.0 / temperature, out=weights)
        cumulative = np.add.accumulate(weights, out=weights)
    return int(cumulative.searchsorted(generator.random() * cumulative[-1], side="right"))


def draw_from_logits(logits: np.ndarray, temperature: float, generator: np.random.Generator) -> int:
    """`draw` of `softmax(logits)`, from the logits: `softmax(z) ** (1 / temperature)`
    normalized is `softmax(z / temperature)`, so the weights are `exp((z - max z) /
    temperature)` (the largest is 1: none can overflow, nor all underflow).

    One uniform number looked up in the cumulative weights, as `draw` (a seed gives the same
    characters). It differs from `draw` of the probabilities in two ways only: rounding (the
    softmax is not computed first: a uniform number within about 1e-7 of a boundary between
    two characters may fall on the other side), and `draw`'s floor of 1e-12 on each
    probability, which gives a character less likely than that the weight of a 1e-12
    probability, where here it keeps its own, smaller weight. Either way such a character is
    drawn with a probability below `(vocabulary_size * 1e-12) ** (1 / temperature)` (the
    largest probability is at least `1 / vocabulary_size`): 1e-10 at temperature 1 with 93
    characters, 1e-20 at 0.5.

    Args:
        logits: `(vocabulary_size,)`, the Dense's output before its softmax.
        temperature: > 0.
        generator: the source of the uniform number.

    Returns:
        The drawn index.

    Raises:
        ValueError: `logits` hold a NaN or +inf, or are all -inf (a -inf is a weight of 0).
    """
    top = logits.max()  # NaN if any logit is
    if not -np.inf < top < np.inf:  # else every weight is finite and the largest is 1
        raise ValueError(
            "The model predicted logits that are NaN, infinite or all -inf (not finite: has it "
            f"diverged?): {logits!r}."
        )
    weights = np.subtract(logits, top, dtype=np.float64)
    weights *= 1.0 / temperature
    np.exp(weights, out=weights)
    cumulative = np.add.accumulate(weights, out=weights)
    return int(cumulative.searchsorted(generator.random() * cumulative[-1], side="right"))
