"""A model's prepared one-character step (`rnnkit.models.step_plan`): it predicts what the
stateful copy run one call per character predicts, for each fused cell and a stack of two,
resets to zero states, refuses bad ids, outlives the model it was built from, and is not built
for a model it does not compute (whose predictor then runs the copy, with the same results)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import layers
from rnnkit.models import step_plan
from rnnkit.tasks import charlm

VOCABULARY = 9


def charlm_model(
    *recurrent: torch.nn.Module, activation: str = "softmax", use_bias: bool = True, dtype=None
):
    """Embedding → `recurrent` → Dense, built, with weights large enough that the predictions
    are far from uniform."""
    torch.manual_seed(0)
    model = rk.Sequential(
        [
            layers.Embedding(VOCABULARY, 6),
            *recurrent,
            layers.Dense(VOCABULARY, activation=activation, use_bias=use_bias),
        ]
    )
    model(np.zeros((1, 3), dtype=np.int64))
    if dtype is not None:
        model = model.to(dtype)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
            if parameter.dim() == 1:  # biases start at zero: the ones of this model do not
                parameter.add_(torch.rand_like(parameter) - 0.5)
    return model


def text_ids(count: int = 50) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCABULARY, size=count)


def unplanned_predictions(model, ids: np.ndarray, first: int) -> list[np.ndarray]:
    """`StatefulPredictor.feed`'s predictions with the copy itself run: after `ids[:first]`,
    then after each further id."""
    predictor = charlm.StatefulPredictor(model)
    predictor.plan = None
    return [predictor.feed(ids[:first])] + [
        predictor.feed(ids[i : i + 1]) for i in range(first, len(ids))
    ]


def planned_predictions(plan: step_plan.StepPlan, ids: np.ndarray, first: int) -> list[np.ndarray]:
    return [plan.feed(ids[:first])] + [plan.feed(ids[i : i + 1]) for i in range(first, len(ids))]


MODELS = {
    "lstm": lambda: charlm_model(layers.LSTM(7)),
    "gru": lambda: charlm_model(layers.GRU(7)),
    "gru_reset_before": lambda: charlm_model(layers.GRU(7, reset_after=False)),
    "simple_rnn": lambda: charlm_model(layers.SimpleRNN(7)),
    "stacked": lambda: charlm_model(layers.LSTM(7, return_sequences=True), layers.GRU(5)),
    "linear_dense": lambda: charlm_model(layers.LSTM(7), activation="linear"),
    "float64": lambda: charlm_model(layers.GRU(7), dtype=torch.float64),
    "dense_without_bias": lambda: charlm_model(layers.LSTM(7), use_bias=False),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_plan_predicts_what_the_stateful_copy_predicts(name):
    model = MODELS[name]()
    ids = text_ids()
    expected = unplanned_predictions(model, ids, first=10)
    assert np.ptp(expected[-1]) > 0.1  # far from uniform: the comparison means something
    predictor = charlm.StatefulPredictor(model)
    assert predictor.plan is not None
    got = planned_predictions(predictor.plan, ids, first=10)
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=0, atol=1e-5)
    predictor.reset()  # zero states: the same predictions again, through feed
    again = [predictor.feed(ids[:10])] + [predictor.feed(ids[i : i + 1]) for i in range(10, 50)]
    np.testing.assert_allclose(np.stack(again), np.stack(expected), rtol=0, atol=1e-5)


def test_the_plan_outlives_the_model_it_was_built_from():
    ids = text_ids()
    expected = unplanned_predictions(MODELS["stacked"](), ids, first=5)
    plan = step_plan.StepPlan(charlm.stateful_copy(MODELS["stacked"]()))
    gc.collect()  # the copy is gone: the plan keeps what its compiled steps point into
    got = planned_predictions(plan, ids, first=5)
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "ids, message",
    [
        ([], "non-empty"),
        ([[1, 2]], "non-empty"),
        ([0.5], "int"),
        ([VOCABULARY], r"\[0, 9\)"),
        ([-1], r"\[0, 9\)"),
    ],  # fmt: skip
)
def test_bad_ids_are_refused(ids, message):
    plan = step_plan.StepPlan(charlm.stateful_copy(MODELS["lstm"]()))
    with pytest.raises(ValueError, match=message):
        plan.feed(ids)


UNPLANNED = {
    "relu_dense": (
        lambda: charlm_model(layers.LSTM(7), activation="relu"),
        "activation other than softmax",
    ),
    "mask_zero": (
        lambda: rk.Sequential(
            [
                layers.Embedding(VOCABULARY, 6, mask_zero=True),
                layers.LSTM(7),
                layers.Dense(VOCABULARY, activation="softmax"),
            ]
        ),
        "masks",
    ),
    "loop_only": (lambda: charlm_model(layers.GRU(7, use_fused=False)), "use_fused=False"),
    "no_recurrent_layer": (
        lambda: charlm_model(layers.Dense(7)),
        "not a recurrent layer",
    ),
    "returns_sequences": (
        lambda: charlm_model(
            layers.LSTM(7, return_sequences=True), layers.LSTM(7, return_sequences=True)
        ),
        "not without return_sequences",
    ),
}


@pytest.mark.parametrize("name", sorted(UNPLANNED))
def test_a_model_the_plan_does_not_compute_has_none_and_the_copy_runs(name):
    build, reason = UNPLANNED[name]
    model = build()
    if not model.built:
        model(np.zeros((1, 3), dtype=np.int64))
    copy = charlm.stateful_copy(model)
    assert reason in step_plan.blocker(copy)
    assert step_plan.prepare(copy) is None
    with pytest.raises(ValueError, match=reason):
        step_plan.StepPlan(copy)
    if name == "returns_sequences":
        return  # its output is a sequence: not a next-character model
    window = text_ids(12)
    predictor = charlm.StatefulPredictor(model)
    assert predictor.plan is None
    expected = charlm.windowed_probabilities(model, window[None])[0]
    np.testing.assert_allclose(predictor.feed(window), expected, rtol=0, atol=1e-5)


def test_a_bidirectional_model_or_one_in_training_mode_has_no_plan():
    model = rk.Sequential(
        [
            layers.Embedding(VOCABULARY, 6),
            layers.Bidirectional(layers.LSTM(4)),
            layers.Dense(VOCABULARY, activation="softmax"),
        ]
    )
    model(np.zeros((1, 3), dtype=np.int64))
    assert "Bidirectional, not a recurrent layer" in step_plan.blocker(model.eval())
    assert "training mode" in step_plan.blocker(MODELS["lstm"]().train())
