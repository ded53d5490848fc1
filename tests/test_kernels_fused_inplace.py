"""Tests of the fused backward pass writing the pre-activations' gradient (dxproj) over the saved
gate values, and GRU reset_after's inner_h gradient over inner_h (rnnkit.kernels.fused
.run_backward): where the graph is not kept for another
backward pass, every gradient equals, to the bit, the one computed with dxproj in a buffer of its
own (each cell, masks, go_backwards, dropout, silu's saved pre-activations, float64, the folded
path and the backward's row groups); where it is kept (`retain_graph=True`, gradcheck), a second
backward pass gives the same gradients again."""

from __future__ import annotations

import pytest
import torch
from conftest import KINDS

from rnnkit.kernels import cpu, folded, fused
from rnnkit.kernels.spec import CellKind, DropoutMasks, Recurrence

# Sizes off the vector widths: 13 rows (six-row, four-row blocks and a last row), 13 units and
# 11 inputs (two-vector strips, one-vector strips and single columns).
BATCH, TIMESTEPS, FEATURES, UNITS, VOCABULARY = 13, 7, 11, 13, 29
CASES = {
    "plain": {},
    "masked_go_backwards": {"masked": True, "go_backwards": True},
    "recurrent_dropout": {"masked": True, "recurrent_dropout": True},
    "input_dropout": {"input_dropout": True, "recurrent_dropout": True},
    "silu": {"masked": True, "activation": "silu"},
    "last_output_only": {"masked": True, "return_sequences": False},
    "float64": {"masked": True, "go_backwards": True, "dtype": torch.float64},
}


def make_call(kind, *, dtype=torch.float32, masked=False, go_backwards=False,
              recurrent_dropout=False, input_dropout=False, activation=None,
              return_sequences=True, batch=BATCH, units=UNITS, seed=0):  # fmt: skip
    """A built layer's recurrence with random weights, masks and initial states."""
    generator = torch.Generator().manual_seed(seed)
    options = dict(KINDS[kind].options, return_sequences=return_sequences, dtype=dtype)
    if activation is not None:
        options["activation"] = activation
    layer = KINDS[kind].layer(units, **options)
    layer.build((None, TIMESTEPS, FEATURES))
    with torch.no_grad():
        for weight in layer.parameters():
            weight.copy_(torch.randn(weight.shape, generator=generator, dtype=dtype) * 0.5)
    mask = torch.rand(batch, TIMESTEPS, generator=generator) > 0.3 if masked else None

    def dropout_mask(size):
        keep = torch.rand(batch, KINDS[kind].gates, size, generator=generator) > 0.4
        return keep.to(dtype) / 0.6

    masks = None
    if recurrent_dropout or input_dropout:
        masks = DropoutMasks(
            dropout_mask(FEATURES) if input_dropout else None,
            dropout_mask(units) if recurrent_dropout else None,
        )
    recurrence = Recurrence(
        layer.cell_spec(),
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        dropout_masks=masks,
    )
    states = [
        torch.randn(batch, units, generator=generator, dtype=dtype).requires_grad_(True)
        for _ in range(KINDS[kind].states)
    ]
    return layer, recurrence, states, generator


def loss_of(results, generator):
    """A weighted sum of the call's outputs and final states (weights drawn from `generator`)."""
    return sum(
        (r * torch.randn(r.shape, generator=generator, dtype=r.dtype)).sum()
        for r in results
        if r is not None
    )


def loss_and_leaves(kind, fold, **options):
    """A fused call's loss (or a folded one's) and what it is differentiated with respect to:
    the inputs (folded: the embeddings), every weight and the initial states."""
    layer, recurrence, states, generator = make_call(kind, **options)
    dtype = options.get("dtype", torch.float32)
    batch = options.get("batch", BATCH)
    if fold:
        ids = torch.randint(0, VOCABULARY, (batch, TIMESTEPS), generator=generator)
        inputs = torch.randn(VOCABULARY, FEATURES, generator=generator, dtype=dtype)
        inputs.requires_grad_(True)
        spec = recurrence.cell
        table = folded.input_table(inputs, spec.kernel, spec.input_bias)
        outputs, last, final = folded.run_folded(recurrence, ids, table, states)
    else:
        inputs = torch.randn(batch, TIMESTEPS, FEATURES, generator=generator, dtype=dtype)
        inputs.requires_grad_(True)
        outputs, last, final = fused.run_fused(recurrence, inputs, states)
    return loss_of([outputs, last, *final], generator), [inputs, *layer.parameters(), *states]


def gradients(kind, fold, **options):
    """The gradients of `loss_and_leaves`'s loss (one backward pass, the graph not kept)."""
    return torch.autograd.grad(*loss_and_leaves(kind, fold, **options))


@pytest.fixture
def dxproj_over_gates(monkeypatch):
    """Records, for each backward kernel call, whether dxproj was the saved gate values (and
    GRU reset_after's dinner inner_h): True, False, or "mixed" where only one was."""
    aliased = []
    backward = cpu.backward

    def recording(options, arrays):
        over = [arrays["dxproj"].data_ptr() == arrays["gate_values"].data_ptr()]
        if options["cell"] == CellKind.GRU_RESET_AFTER:
            over.append(arrays["dinner"].data_ptr() == arrays["inner_h"].data_ptr())
        aliased.append(over[0] if len(set(over)) == 1 else "mixed")
        return backward(options, arrays)

    monkeypatch.setattr(cpu, "backward", recording)
    return aliased


def assert_in_place_equals_separate(kind, fold, options, monkeypatch, aliased):
    """The gradients with dxproj over the gate values equal those with a buffer of its own."""
    in_place = gradients(kind, fold, **options)
    assert aliased == [True]
    with monkeypatch.context() as patch:
        patch.setattr(fused, "backward_keeps_graph", lambda: True)
        separate = gradients(kind, fold, **options)
    assert aliased == [True, False]
    assert len(in_place) == len(separate)
    for got, want in zip(in_place, separate):
        assert torch.equal(got, want)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_dxproj_over_the_gate_values_gives_the_same_gradients_to_the_bit(
    kind, case, monkeypatch, dxproj_over_gates
):
    assert_in_place_equals_separate(kind, False, CASES[case], monkeypatch, dxproj_over_gates)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    "options",
    [
        {"masked": True, "go_backwards": True},
        {"masked": True, "recurrent_dropout": True, "dtype": torch.float64},
        # SimpleRNN and LSTM: the backward's row groups (of 8 and 64 rows) also write dxproj.
        {"masked": True, "batch": 16, "units": 16},
        {"masked": True, "batch": 128, "units": 8, "recurrent_dropout": True},
    ],
    ids=["masked_go_backwards", "recurrent_dropout_float64", "groups_of_8", "groups_of_64"],
)
def test_the_folded_table_gradient_is_the_same_from_dxproj_over_the_gate_values(
    kind, options, monkeypatch, dxproj_over_gates
):
    assert_in_place_equals_separate(kind, True, options, monkeypatch, dxproj_over_gates)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("fold", [False, True], ids=["fused", "folded"])
def test_a_kept_graph_gives_the_same_gradients_twice(kind, fold, dxproj_over_gates):
    """A backward pass that keeps the graph leaves the gate values for the next one, which (not
    keeping it) may then write over them."""
    loss, wrt = loss_and_leaves(kind, fold, masked=True, recurrent_dropout=True)
    first = torch.autograd.grad(loss, wrt, retain_graph=True)
    second = torch.autograd.grad(loss, wrt)
    assert dxproj_over_gates == [False, True]
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradcheck_passes_on_the_fused_recurrence(kind):
    """gradcheck runs one backward pass per output over a kept graph."""
    layer, recurrence, states, generator = make_call(
        kind, dtype=torch.float64, masked=True, recurrent_dropout=True, batch=3, units=4
    )
    spec = recurrence.cell
    inputs = torch.randn(3, TIMESTEPS, FEATURES, generator=generator, dtype=torch.float64)

    def run(inputs, kernel, recurrent_kernel, *states):
        cell = spec._replace(kernel=kernel, recurrent_kernel=recurrent_kernel)
        outputs, _, final = fused.run_fused(recurrence._replace(cell=cell), inputs, list(states))
        return outputs, *final

    leaves = [inputs, spec.kernel.detach(), spec.recurrent_kernel.detach(), *states]
    assert torch.autograd.gradcheck(run, [t.clone().requires_grad_(True) for t in leaves])
