"""Text generation of the character-level task (`rnnkit.tasks.charlm`): the stateful sampler
predicts what one windowed call predicts, carries everything it has read, both samplers are
reproducible with a seed, bits per character are measured both ways, bad arguments are refused."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import cli, layers
from rnnkit.tasks import charlm

CHARS = list(" abcdefgh")


def trained_looking_model(layer: str = "lstm", units: int = 16) -> rk.Sequential:
    """A charlm model with weights large enough that its predictions are far from uniform."""
    torch.manual_seed(0)
    model = charlm.build_model(len(CHARS), layer, units)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return model


def ids(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, len(CHARS), size=count)


@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru"])
def test_fed_a_window_from_zero_states_the_stateful_predictor_gives_one_windowed_call(layer):
    model = trained_looking_model(layer)
    window = ids(40)
    expected = charlm.windowed_probabilities(model, window[None])[0]
    assert expected.max() > 2.0 / len(CHARS)  # not uniform: the comparison means something
    predictor = charlm.StatefulPredictor(model)
    np.testing.assert_allclose(predictor.feed(window), expected, rtol=0, atol=1e-5)
    predictor.reset()
    for position in range(len(window)):  # one character per call, from zero states again
        probabilities = predictor.feed(window[position : position + 1])
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)


def test_the_stateful_copy_has_the_weights_and_leaves_the_model_alone():
    model = trained_looking_model()
    random_state = torch.get_rng_state()
    copy = charlm.stateful_copy(model)
    assert torch.equal(torch.get_rng_state(), random_state)  # no initializer ran
    assert copy.layers[1].stateful and not model.layers[1].stateful
    for (name, original), (_, copied) in zip(model.state_dict().items(),
                                             copy.state_dict().items()):  # fmt: skip
        assert torch.equal(original, copied), name
        assert original.data_ptr() != copied.data_ptr()


def test_stateful_generation_samples_from_the_whole_text_so_far():
    """Each stateful step's distribution is the model's over the seed and everything generated
    since, computed here the slow way: the whole text through the model each time."""
    model = trained_looking_model()
    seed_text, temperature = "abc", 0.8
    generated = charlm.generate(
        model, seed_text, 12, vocabulary=CHARS, temperature=temperature, seed=3
    )
    generator = np.random.default_rng(3)
    text = seed_text
    for _ in range(12):
        window = np.array([[CHARS.index(char) for char in text]])
        probabilities = charlm.windowed_probabilities(model, window)[0] ** (1 / temperature)
        choice = generator.choice(len(CHARS), p=probabilities / probabilities.sum())
        text += CHARS[choice]
    assert generated == text[len(seed_text) :]


@pytest.mark.parametrize("stateful", [True, False])
def test_both_samplers_are_reproducible_with_a_seed(stateful):
    model = trained_looking_model()

    def generate(seed):
        return charlm.generate(model, "abcdefgh" * 5, 60, vocabulary=CHARS, temperature=1.0,
                               stateful=stateful, seed=seed)  # fmt: skip

    first = generate(1)
    assert len(first) == 60 and set(first) <= set(CHARS)
    assert generate(1) == first
    assert generate(2) != first


def test_bits_per_character_both_ways():
    model = trained_looking_model()
    text = "".join(CHARS[i] for i in ids(60, seed=1))
    window = 10
    indices = [CHARS.index(char) for char in text]
    windows = np.array([indices[i - window : i] for i in range(window, len(text))])
    probabilities = charlm.windowed_probabilities(model, windows)
    expected = -np.mean(np.log2(probabilities[np.arange(len(windows)), indices[window:]]))
    windowed = charlm.bits_per_character(model, text, vocabulary=CHARS, window=window,
                                         stateful=False)  # fmt: skip
    assert windowed == pytest.approx(expected, rel=1e-9)
    stateful = charlm.bits_per_character(model, text, vocabulary=CHARS, window=window,
                                         stateful=True)  # fmt: skip
    full = [charlm.windowed_probabilities(model, np.array([indices[:i]]))[0] for i in
            range(window, len(text))]  # fmt: skip
    chosen = [row[target] for row, target in zip(full, indices[window:])]
    assert stateful == pytest.approx(-np.mean(np.log2(chosen)), rel=1e-5)
    assert not math.isclose(stateful, windowed, rel_tol=1e-3)  # the contexts differ


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"seed_text": ""}, "`seed_text` must be a non-empty str"),
        ({"seed_text": "abz"}, "outside `vocabulary`: 'z'"),
        ({"length": -1}, "`length` must be an int >= 0"),
        ({"temperature": 0.0}, "`temperature` must be > 0"),
    ],
)
@pytest.mark.parametrize("stateful", [True, False])
def test_bad_generation_arguments_are_refused(arguments, message, stateful):
    model = trained_looking_model()
    call = {"seed_text": "abc", "length": 5, "temperature": 0.5, **arguments}
    with pytest.raises(ValueError, match=message):
        charlm.generate(model, call.pop("seed_text"), call.pop("length"), vocabulary=CHARS,
                        stateful=stateful, **call)  # fmt: skip


def test_a_vocabulary_that_is_one_string_is_refused():
    with pytest.raises(TypeError, match="`vocabulary` must be a sequence of characters"):
        charlm.generate(trained_looking_model(), "abc", 5, vocabulary="".join(CHARS))


def test_a_model_that_reads_backwards_cannot_generate_statefully():
    model = rk.Sequential(
        [
            layers.Embedding(len(CHARS), 4),
            layers.Bidirectional(layers.LSTM(4)),
            layers.Dense(len(CHARS), activation="softmax"),
        ]
    )
    with pytest.raises(ValueError, match="reads the sequence backwards"):
        charlm.generate(model, "abc", 5, vocabulary=CHARS)
    assert len(charlm.generate(model, "abc", 5, vocabulary=CHARS, stateful=False)) == 5


@pytest.mark.parametrize("sampler", ["stateful", "windowed"])
def test_train_charlm_samples_with_the_chosen_sampler(sampler, tmp_path, monkeypatch):
    calls = []
    generate = charlm.generate
    monkeypatch.setattr(charlm, "generate", lambda *a, **k: calls.append(k) or generate(*a, **k))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    stream = io.StringIO()
    code = cli.main(
        ["train", "charlm", "--data", str(corpus), "--sampler", sampler, "--temperature", "1.5",
         "--sample-length", "25", "--epochs", "1", "--units", "8", "--maxlen", "10",
         "--verbose", "0", "--out", str(tmp_path / "run")],
        stream=stream,
    )  # fmt: skip
    assert code == 0
    lines = stream.getvalue().splitlines()
    heading = next(i for i, line in enumerate(lines) if "sample after" in line)
    assert lines[heading].startswith(f"{sampler} sample after")
    model = rk.load_model(tmp_path / "run" / "model.rnnkit")
    seed_text = lines[heading + 1][:10]  # the first window of the held-out text
    expected = charlm.generate(model, seed_text, 25, vocabulary=sorted(set(corpus.read_text())),
                               temperature=1.5, stateful=sampler == "stateful")  # fmt: skip
    assert lines[heading + 1] == seed_text + expected
    assert calls[0]["stateful"] == (sampler == "stateful")


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_temperature_that_is_not_positive_exits_2(value, capsys):
    assert cli.main(["train", "charlm", "--temperature", value]) == 2
    assert "--temperature" in capsys.readouterr().err


def test_a_float64_model_generates_in_float64():
    model = trained_looking_model().double()
    window = ids(20)
    expected = charlm.windowed_probabilities(model, window[None])[0]
    predictor = charlm.StatefulPredictor(model)
    assert next(predictor.model.parameters()).dtype == torch.float64
    np.testing.assert_allclose(predictor.feed(window), expected, rtol=0, atol=1e-12)


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


@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0, 1.7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_draw_is_the_books_given_the_same_uniform_number(temperature, dtype):
    rng = np.random.default_rng(0)
    checked = 0
    for concentration in (0.05, 1.0, 20.0):
        for _ in range(200):
            probabilities = rng.dirichlet(np.full(len(CHARS), concentration)).astype(dtype)
            uniform = rng.random()
            cumulative = np.cumsum(book_reweighting(probabilities, temperature))
            if np.min(np.abs(cumulative - uniform)) < 1e-9:  # on a boundary: either side
                continue
            expected = int(np.searchsorted(cumulative, uniform, side="right"))
            assert charlm._draw(probabilities, temperature, FixedUniforms([uniform])) == expected
            checked += 1
    assert checked > 550


def test_seeded_draws_are_those_of_choice_with_the_books_weights():
    """Same seed, same characters as `generator.choice(p=...)`, the sampler used before."""
    rng = np.random.default_rng(1)
    mine, books = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(2000):
        probabilities = rng.dirichlet(np.full(len(CHARS), 0.3))
        expected = books.choice(len(CHARS), p=book_reweighting(probabilities, 0.6))
        assert charlm._draw(probabilities, 0.6, mine) == expected


def test_draws_follow_the_reweighted_distribution():
    probabilities = np.array([0.5, 0.25, 0.15, 0.07, 0.02, 0.01, 0.0, 0.0])
    temperature, draws = 0.7, 40_000
    generator = np.random.default_rng(3)
    counts = np.bincount(
        [charlm._draw(probabilities, temperature, generator) for _ in range(draws)],
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
    draws = {charlm._draw(probabilities, temperature, generator) for _ in range(50)}
    assert draws == {int(np.argmax(probabilities))}


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_probabilities_that_are_not_finite_are_refused(bad):
    probabilities = np.full(len(CHARS), 1.0 / len(CHARS))
    probabilities[2] = bad
    with pytest.raises(ValueError, match="not finite"):
        charlm._draw(probabilities, 0.5, np.random.default_rng(0))


def test_stateful_generation_runs_on_one_thread_and_restores_the_count(monkeypatch):
    model = trained_looking_model()
    threads = torch.get_num_threads()
    seen = []
    draw, from_logits, copy = charlm._draw, charlm._draw_from_logits, charlm.stateful_copy
    monkeypatch.setattr(
        charlm, "_draw", lambda *a: seen.append(torch.get_num_threads()) or draw(*a)
    )
    monkeypatch.setattr(  # the step plan's draw
        charlm,
        "_draw_from_logits",
        lambda *a: seen.append(torch.get_num_threads()) or from_logits(*a),
    )
    monkeypatch.setattr(  # the copy too: threads it used would spin on through the loop
        charlm, "stateful_copy", lambda m: seen.append(torch.get_num_threads()) or copy(m)
    )
    torch.set_num_threads(2)
    try:
        charlm.generate(model, "abc", 5, vocabulary=CHARS)
        assert seen == [1] * 6 and torch.get_num_threads() == 2
        with torch.no_grad():
            model.layers[-1].bias.fill_(float("nan"))
        with pytest.raises(ValueError, match="not finite"):
            charlm.generate(model, "abc", 5, vocabulary=CHARS)
        assert torch.get_num_threads() == 2  # restored after an error too
    finally:
        torch.set_num_threads(threads)


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
            cumulative = np.cumsum(weights / weights.sum())
            if np.min(np.abs(cumulative - uniform)) < 1e-9:  # on a boundary: either side
                continue
            expected = int(np.searchsorted(cumulative, uniform, side="right"))
            probabilities = softmax(logits.astype(np.float64))
            if probabilities.min() > 1e-12:  # above the book's floor: the book's draw too
                assert (
                    charlm._draw(probabilities, temperature, FixedUniforms([uniform])) == expected
                )
            got = charlm._draw_from_logits(logits, temperature, FixedUniforms([uniform]))
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
        charlm._draw_from_logits(logits, 0.5, np.random.default_rng(0))


def test_a_logit_of_minus_infinity_is_never_drawn():
    logits = np.zeros(len(CHARS))
    logits[1:] = -np.inf
    logits[3] = 0.5
    generator = np.random.default_rng(0)
    draws = {charlm._draw_from_logits(logits, 0.5, generator) for _ in range(200)}
    assert draws == {0, 3}


@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru", "linear_lstm"])
def test_generation_with_and_without_the_step_plan_gives_the_same_text(layer, monkeypatch):
    """The plan draws from the logits and the copy from its probabilities: the same uniform
    numbers give the same characters unless one falls within rounding (about 1e-7) of a
    boundary between two characters' cumulative weights, or a character has a probability
    below the copy's floor of 1e-12 (`charlm._draw_from_logits`): neither happens here."""
    linear = layer == "linear_lstm"  # outputs drawn from as probabilities, as the copy's are
    model = trained_looking_model("lstm" if linear else layer)
    if linear:
        model.layers[-1].activation = rk.activations.linear
    predictor = charlm.StatefulPredictor(model)
    assert predictor.plan is not None and predictor.plan.softmax != linear

    def generate(seed):
        return charlm.generate(model, "abcdefgh" * 5, 300, vocabulary=CHARS, temperature=0.7,
                               seed=seed)  # fmt: skip

    planned = [generate(seed) for seed in (1, 2)]
    monkeypatch.setattr(charlm.step_plan, "prepare", lambda model: None)
    assert charlm.StatefulPredictor(model).plan is None
    assert [generate(seed) for seed in (1, 2)] == planned
    assert planned[0] != planned[1]
