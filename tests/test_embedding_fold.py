"""Tests of rnnkit.layers.embedding_fold: a Sequential runs an Embedding and the recurrent layer
it feeds as one folded call, with the outputs and gradients of the unfolded path (the same
model with a no-op hook on its Embedding, which keeps the layers apart); it does not fold where
it must not (input dropout in training, a hooked Embedding, fewer ids than the vocabulary), and
its inference table follows the weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import KINDS

import rnnkit as rk
from rnnkit import layers
from rnnkit.kernels import folded
from rnnkit.layers import embedding_fold

VOCABULARY = 40


@pytest.fixture
def folded_calls(monkeypatch):
    """The number of folded kernel calls so far, as a one-element list."""
    calls = [0]
    run = folded.run_folded

    def counting(*args):
        calls[0] += 1
        return run(*args)

    monkeypatch.setattr(folded, "run_folded", counting)
    return calls


def make_models(kind, dtype=torch.float32, mask_zero=True, vocabulary=VOCABULARY, **options):
    """Two Sequentials with the same weights, Embedding → recurrent layer → Dense; the second's
    Embedding has a no-op forward hook, so it runs the layers apart (unfolded)."""
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        recurrent = KINDS[kind].layer(5, dtype=dtype, **KINDS[kind].options, **options)
        model = rk.Sequential(
            [
                layers.Embedding(vocabulary, 6, mask_zero=mask_zero, dtype=dtype),
                recurrent,
                layers.Dense(3, dtype=dtype),
            ]
        )
        model.build((None, None))
        models.append(model)
    with torch.no_grad():  # nonzero biases, so that their gradients are compared too
        for weight in models[0].parameters():
            weight.add_(torch.rand(weight.shape, dtype=dtype) * 0.2)
    for weight, twin in zip(models[0].parameters(), models[1].parameters()):
        with torch.no_grad():
            twin.copy_(weight)
    run_apart(models[1].layers[0])
    return models


def run_apart(embedding):
    """A no-op forward hook on `embedding`: its model then runs the layers apart (unfolded)."""
    embedding.register_forward_pre_hook(lambda module, args: None)


def make_ids(batch=8, timesteps=128, seed=0, vocabulary=VOCABULARY):  # 1,024 ids: MIN_IDS
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocabulary, (batch, timesteps), generator=generator)
    ids[0, :4] = 0  # padding, masked with mask_zero
    ids[1, -2:] = 0
    return ids


def outputs_and_gradients(model, ids):
    """The model's output, its regularization terms' sum (0 without) and the gradients of a
    weighted sum of the output plus those terms with respect to every weight."""
    output = model(ids)
    weights = torch.linspace(-1, 1, output.numel(), dtype=output.dtype).view_as(output)
    regularization = sum(model.losses, torch.zeros((), dtype=output.dtype))
    loss = (output * weights).sum() + regularization
    gradients = torch.autograd.grad(loss, list(model.parameters()))
    return [output.detach(), regularization.detach(), *gradients]


def assert_all_close(got, want, dtype):
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def assert_folds_as_the_layers_apart(fold, apart, folded_calls, calls):
    """float32 twins on `make_ids()`: `apart` (unfolded) runs no folded call, `fold` the
    given number, and their outputs and gradients agree."""
    ids = make_ids()
    want = outputs_and_gradients(apart, ids)
    assert folded_calls[0] == 0
    assert_all_close(outputs_and_gradients(fold, ids), want, torch.float32)
    assert folded_calls[0] == calls


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"go_backwards": True},
        {"return_sequences": True},
        {"mask_zero": False},
        {"use_bias": False},
        {"unroll": True},
        {"activity_regularizer": "l2"},
    ],
    ids=["plain", "go_backwards", "return_sequences", "no_mask", "no_bias", "unroll", "activity"],
)
def test_folded_pair_matches_the_unfolded_layers(kind, options, folded_calls):
    dtype = torch.float32
    fold, apart = make_models(kind, dtype, **options)
    ids = make_ids()
    want = outputs_and_gradients(apart, ids)
    assert folded_calls[0] == 0
    got = outputs_and_gradients(fold, ids)
    assert folded_calls[0] == 1
    # Embeddings, kernel, recurrent kernel, bias(es), Dense: every gradient.
    assert len(got) == 2 + len(list(fold.parameters()))
    assert_all_close(got, want, dtype)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_folded_pair_matches_in_float64(kind, folded_calls):
    fold, apart = make_models(kind, torch.float64, go_backwards=True)
    ids = make_ids()
    assert_all_close(
        outputs_and_gradients(fold, ids), outputs_and_gradients(apart, ids), torch.float64
    )
    assert folded_calls[0] == 1


def test_stateful_folded_pair_carries_its_states_as_the_unfolded_one(folded_calls):
    fold, apart = make_models("lstm", stateful=True)
    for seed in range(3):  # each call starts from the states the last one left
        ids = make_ids(seed=seed)
        assert_all_close(
            outputs_and_gradients(fold, ids), outputs_and_gradients(apart, ids), torch.float32
        )
    assert folded_calls[0] == 3
    torch.testing.assert_close(fold.layers[1].states[1], apart.layers[1].states[1])


def test_input_dropout_folds_in_inference_only(folded_calls):
    fold, apart = make_models("gru_reset_after", dropout=0.5, recurrent_dropout=0.2)
    ids = make_ids()
    torch.manual_seed(3)
    want = outputs_and_gradients(apart, ids)
    torch.manual_seed(3)
    got = outputs_and_gradients(fold, ids)  # training: input dropout, not folded
    assert folded_calls[0] == 0
    assert_all_close(got, want, torch.float32)
    fold.eval()
    apart.eval()
    with torch.no_grad():
        torch.testing.assert_close(fold(ids), apart(ids))
    assert folded_calls[0] == 1


def test_recurrent_dropout_folds_with_the_same_masks(folded_calls):
    fold, apart = make_models("lstm", recurrent_dropout=0.4)
    ids = make_ids()
    torch.manual_seed(4)
    want = outputs_and_gradients(apart, ids)
    torch.manual_seed(4)  # the same random stream: the fold draws the masks as the layer does
    got = outputs_and_gradients(fold, ids)
    assert folded_calls[0] == 1
    assert_all_close(got, want, torch.float32)


def test_a_hooked_embedding_does_not_fold(folded_calls):
    fold, _ = make_models("simple_rnn")
    seen = []
    handle = fold.layers[0].register_forward_hook(lambda module, args, output: seen.append(output))
    fold(make_ids())
    assert folded_calls[0] == 0 and len(seen) == 1  # the hook saw the Embedding's output
    handle.remove()
    fold(make_ids())
    assert folded_calls[0] == 1 and len(seen) == 1


def test_calls_of_fewer_ids_than_min_ids_or_the_vocabulary_do_not_fold(folded_calls):
    assert embedding_fold.MIN_IDS == 1024
    fold, _ = make_models("lstm")
    fold(make_ids(batch=3, timesteps=341))  # 1,023 ids
    assert folded_calls[0] == 0
    fold(make_ids(batch=4, timesteps=256))
    assert folded_calls[0] == 1
    fold, _ = make_models("lstm", vocabulary=2000)
    fold(make_ids(batch=4, timesteps=256, vocabulary=2000))  # 1,024 ids
    assert folded_calls[0] == 1
    fold(make_ids(batch=8, timesteps=250, vocabulary=2000))
    assert folded_calls[0] == 2


def test_folded_call_rejects_ids_as_the_embedding_does(folded_calls):
    fold, _ = make_models("lstm")
    ids = make_ids()
    ids[2, 3] = VOCABULARY
    with pytest.raises(ValueError, match=r"expects ids in \[0, input_dim\)"):
        fold(ids)
    with pytest.raises(TypeError, match="integer ids"):
        fold(make_ids().double())


def test_a_fit_runs_folded_with_the_unfolded_history(folded_calls):
    fold, apart = make_models("lstm")
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY, size=(64, 64))  # batches of 16 x 64 = MIN_IDS ids
    y = rng.integers(0, 3, size=64)
    histories = []
    for model in (apart, fold):
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["acc"])
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
        histories.append(history.history)
    assert folded_calls[0] == 3 * 4
    assert histories[0].keys() == histories[1].keys()
    for name in histories[0]:
        np.testing.assert_allclose(histories[1][name], histories[0][name], rtol=1e-5, atol=1e-6)
    for weight, twin in zip(fold.parameters(), apart.parameters()):
        torch.testing.assert_close(weight, twin, rtol=1e-4, atol=1e-5)


def test_the_inference_table_follows_the_weights(folded_calls):
    fold, apart = make_models("gru_reset_before")
    fold.eval()
    apart.eval()
    ids = make_ids()

    def check():
        with torch.no_grad():
            torch.testing.assert_close(fold(ids), apart(ids))

    check()
    table = embedding_fold._tables[fold.layers[1]].table
    check()
    assert embedding_fold._tables[fold.layers[1]].table is table  # kept while unchanged
    for model in (fold, apart):  # set_weights on each layer the table reads
        recurrent = model.layers[1]
        recurrent.set_weights([w * 1.5 for w in recurrent.get_weights()])
    check()
    for model in (fold, apart):
        model.layers[0].set_weights([w - 0.1 for w in model.layers[0].get_weights()])
    check()
    for model in (fold, apart):  # an optimizer step
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for weight in model.parameters():
            weight.grad = torch.ones_like(weight)
        optimizer.step()
    check()
    for model in (fold, apart):  # new tensors of another dtype
        model.double()
    with torch.no_grad():
        torch.testing.assert_close(fold(ids), apart(ids))
    assert embedding_fold._tables[fold.layers[1]].table.dtype == torch.float64
    assert folded_calls[0] == 6


def functional_model(kind, share_embedding_output=False):
    """Input → Embedding → recurrent layer → Dense as a functional Model; with
    `share_embedding_output`, the Embedding's output is also a second model output."""
    torch.manual_seed(0)
    inputs = rk.Input(shape=(None,), dtype="int64")
    embedded = layers.Embedding(VOCABULARY, 6, mask_zero=True)(inputs)
    recurrent = KINDS[kind].layer(5, **KINDS[kind].options)(embedded)
    outputs = layers.Dense(3)(recurrent)
    return rk.Model(inputs, [outputs, embedded] if share_embedding_output else outputs)


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_before"])
@pytest.mark.parametrize("copied", [False, True])
def test_a_functional_model_runs_the_pair_folded(kind, copied, folded_calls):
    fold = functional_model(kind)
    if copied:  # the copy's own graph calls are deferred
        fold = copy.deepcopy(fold)
    apart = functional_model(kind)
    apart.load_state_dict(fold.state_dict())
    run_apart(apart.graph_layers[0])
    assert_folds_as_the_layers_apart(fold, apart, folded_calls, 1)


def test_a_functional_model_does_not_fold_an_embedding_output_read_elsewhere(folded_calls):
    model = functional_model("lstm", share_embedding_output=True)
    outputs, embedded = model(make_ids())
    assert folded_calls[0] == 0
    assert embedded.shape == (8, 128, 6) and outputs.shape == (8, 3)
    shared = rk.Input(shape=(None,), dtype="int64")
    embedded = layers.Embedding(VOCABULARY, 6)(shared)
    both = [layers.LSTM(4)(embedded), layers.GRU(4)(embedded)]
    rk.Model(shared, both)(make_ids())  # two recurrent layers read the Embedding's output
    assert folded_calls[0] == 0


@pytest.mark.parametrize(
    "kind, options",
    [("lstm", {}), ("gru_reset_after", {"merge_mode": "sum", "return_sequences": True})],
)
def test_a_bidirectional_layer_folds_each_direction(kind, options, folded_calls):
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        sequences = {"return_sequences": options.get("return_sequences", False)}
        recurrent = KINDS[kind].layer(5, **KINDS[kind].options, **sequences)
        merge_mode = options.get("merge_mode", "concat")
        model = rk.Sequential(
            [
                layers.Embedding(VOCABULARY, 6, mask_zero=True),
                layers.Bidirectional(recurrent, merge_mode=merge_mode),
                layers.Dense(3),
            ]
        )
        model.build((None, None))
        models.append(model)
    fold, apart = models
    apart.load_state_dict(fold.state_dict())
    run_apart(apart.layers[0])
    assert_folds_as_the_layers_apart(fold, apart, folded_calls, 2)
