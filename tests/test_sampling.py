"""The next character's draw (`rnnkit.tasks.sampling`): the book's reweighting given the same
uniform number, `choice`'s characters for a seed, the reweighted distribution, very low
temperatures, logits, and predictions that are not finite refused."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.tasks import sampling

CHARS = list(" abcdefgh")


class FixedUniforms:
    """Stands in for a NumPy generator: `random()` returns the given numbers in turn."""

    def __init__(self, numbers):
        self.numbers = iter(numbers)

    def random(self):
        return next(self.numbers)


def book_reweighting(probabilities, temperature):
    """The book's: `exp(log(p) / temperature)`, normalized (p clipped at 1e-12)."""
    weights = np.exp(np.log(np.maximum(probabilities, 1e-12)) / temperature)
    return weights / weights.sum()


def index_drawn(weights, uniform):
    """The index `uniform` picks in the cumulative sums of `weights` (normalized), or None
    within 1e-9 of a boundary between two indices, where rounding may pick either."""
    cumulative = np.cumsum(weights / weights.sum())
    if np.min(np.abs(cumulative - uniform)) < 1e-9:
        return None
    return int(np.searchsorted(cumulative, uniform, side="right"))


@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0, 1.7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_draw_is_the_books_given_the_same_uniform_number(temperature, dtype):
    rng = np.random.default_rng(0)
    checked = 0
    for concentration in (0.05, 1.0, 20.0):
        for _ in range(200):
            probabilities = rng.dirichlet(np.full(len(CHARS), concentration)).astype(dtype)
            uniform = rng.random()
            expected = index_drawn(book_reweighting(probabilities, temperature), uniform)
            if expected is None:
                continue
            assert sampling.draw(probabilities, temperature, FixedUniforms([uniform])) == expected
            checked += 1
    assert checked > 550


def test_seeded_draws_are_those_of_choice_with_the_books_weights():
    """Same seed, same characters as `generator.choice(p=...)`, the sampler used before."""
    rng = np.random.default_rng(1)
    mine, books = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(2000):
        probabilities = rng.dirichlet(np.full(len(CHARS), 0.3))
        expected = books.choice(len(CHARS), p=book_reweighting(probabilities, 0.6))
        assert sampling.draw(probabilities, 0.6, mine) == expected


def test_draws_follow_the_reweighted_distribution():
    probabilities = np.array([0.5, 0.25, 0.15, 0.07, 0.02, 0.01, 0.0, 0.0])
    temperature, draws = 0.7, 40_000
    generator = np.random.default_rng(3)
    counts = np.bincount(
        [sampling.draw(probabilities, temperature, generator) for _ in range(draws)],
        minlength=len(probabilities),
    )
    expected = draws * book_reweighting(probabilities, temperature)
    spread = np.sqrt(expected * (1 - expected / draws))
    assert np.all(np.abs(counts - expected) <= 5 * spread + 1), (counts, expected)
    assert counts[-2:].sum() == 0  # p = 0: weight (1e-12) ** (1 / 0.7), never drawn here


@pytest.mark.parametrize("temperature", [1e-3, 1e-5])
def test_a_very_low_temperature_draws_the_most_likely_character(temperature):
    """Every weight `p ** (1 / temperature)` underflows; scaled by the largest, one is left."""
    probabilities = np.random.default_rng(4).dirichlet(np.ones(len(CHARS)))
    generator = np.random.default_rng(5)
    draws = {sampling.draw(probabilities, temperature, generator) for _ in range(50)}
    assert draws == {int(np.argmax(probabilities))}


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_probabilities_that_are_not_finite_are_refused(bad):
    probabilities = np.full(len(CHARS), 1.0 / len(CHARS))
    probabilities[2] = bad
    with pytest.raises(ValueError, match="not finite"):
        sampling.draw(probabilities, 0.5, np.random.default_rng(0))


def softmax(logits):
    exponentials = np.exp(logits - logits.max())
    return exponentials / exponentials.sum()


@pytest.mark.parametrize("temperature", [1e-3, 0.2, 0.5, 1.0, 1.7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_draw_from_logits_is_the_books_draw_of_their_softmax(temperature, dtype):
    rng = np.random.default_rng(0)
    checked = 0
    for scale in (0.3, 3.0, 10.0):
        for _ in range(200):
            logits = (scale * rng.standard_normal(len(CHARS))).astype(dtype)
            uniform = rng.random()
            weights = np.exp((logits.astype(np.float64) - logits.max()) / temperature)
            expected = index_drawn(weights, uniform)
            if expected is None:
                continue
            probabilities = softmax(logits.astype(np.float64))
            if probabilities.min() > 1e-12:  # above the book's floor: the book's draw too
                assert (
                    sampling.draw(probabilities, temperature, FixedUniforms([uniform])) == expected
                )
            got = sampling.draw_from_logits(logits, temperature, FixedUniforms([uniform]))
            assert got == expected
            checked += 1
    assert checked > 550


@pytest.mark.parametrize("bad", [np.nan, np.inf, "all -inf"])
def test_logits_that_are_not_finite_are_refused(bad):
    logits = np.zeros(len(CHARS))
    if bad == "all -inf":
        logits[:] = -np.inf
    else:
        logits[2] = bad
    with pytest.raises(ValueError, match="not finite"):
        sampling.draw_from_logits(logits, 0.5, np.random.default_rng(0))


def test_a_logit_of_minus_infinity_is_never_drawn():
    logits = np.zeros(len(CHARS))
    logits[1:] = -np.inf
    logits[3] = 0.5
    generator = np.random.default_rng(0)
    draws = {sampling.draw_from_logits(logits, 0.5, generator) for _ in range(200)}
    assert draws == {0, 3}
