"""Tests of the folded recurrence (rnnkit.kernels.folded): an Embedding's lookup folded into the
fused kernel's input product computes what the fused kernel computes on the looked-up vectors,
values and every gradient (embeddings, kernel, biases, recurrent kernel, initial states), also
where the backward kernel forms the recurrent kernel's and the table's gradients itself; the
table's gradient (the kernel's, or `cpu.scatter_rows`', which equals `index_add_`'s to the bit)
does not depend on the threads; the table's product and its gradients (`cpu.table_product`,
`cpu.table_gradients`) are addmm's, and do not depend on the threads either."""

from __future__ import annotations

import pytest
import torch
from conftest import KINDS

from rnnkit.kernels import cpu, folded, fused
from rnnkit.kernels.spec import DropoutMasks, Recurrence

TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-5}
VOCABULARY, FEATURES, UNITS, BATCH, TIMESTEPS = 23, 5, 4, 6, 7


def make_call(kind, dtype, seed, *, return_sequences=True, go_backwards=False, masked=True,
              recurrent_dropout=False, batch=BATCH):  # fmt: skip
    """A built layer's recurrence with its call's flags, ids, embeddings and initial states."""
    generator = torch.Generator().manual_seed(seed)
    options = dict(KINDS[kind].options, return_sequences=return_sequences, dtype=dtype)
    layer = KINDS[kind].layer(UNITS, **options)
    layer.build((None, TIMESTEPS, FEATURES))
    with torch.no_grad():
        for weight in layer.parameters():
            weight.copy_(torch.randn(weight.shape, generator=generator, dtype=dtype) * 0.5)
    ids = torch.randint(0, VOCABULARY, (batch, TIMESTEPS), generator=generator)
    mask = torch.rand(batch, TIMESTEPS, generator=generator) > 0.3 if masked else None
    masks = None
    if recurrent_dropout:
        keep = torch.rand(batch, KINDS[kind].gates, UNITS, generator=generator) > 0.4
        masks = DropoutMasks(None, keep.to(dtype) / 0.6)
    recurrence = Recurrence(
        layer.cell_spec(),
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        dropout_masks=masks,
    )
    embeddings = torch.randn(VOCABULARY, FEATURES, generator=generator, dtype=dtype)
    embeddings.requires_grad_(True)
    states = [
        torch.randn(batch, UNITS, generator=generator, dtype=dtype).requires_grad_(True)
        for _ in range(KINDS[kind].states)
    ]
    return layer, recurrence, ids, embeddings, states


def outputs_and_gradients(layer, recurrence, ids, embeddings, states, fold):
    """The call's outputs and final states, and the gradients of a weighted sum of them with
    respect to the embeddings, every weight of the layer and the initial states."""
    spec = recurrence.cell
    if fold:
        table = folded.input_table(embeddings, spec.kernel, spec.input_bias)
        outputs, last, final = folded.run_folded(recurrence, ids, table, states)
    else:
        outputs, last, final = fused.run_fused(recurrence, embeddings[ids], states)
    results = [last, *final] if outputs is None else [outputs, last, *final]
    generator = torch.Generator().manual_seed(1)
    loss = sum(
        (r * torch.randn(r.shape, generator=generator, dtype=r.dtype)).sum() for r in results
    )
    wrt = [embeddings, *layer.parameters(), *states]
    return [r.detach() for r in results], list(torch.autograd.grad(loss, wrt))


def assert_folded_matches_unfolded(dtype, *args, **kwargs):
    unfolded = outputs_and_gradients(*make_call(*args, dtype, **kwargs), fold=False)
    fold = outputs_and_gradients(*make_call(*args, dtype, **kwargs), fold=True)
    for want, got in zip([*unfolded[0], *unfolded[1]], [*fold[0], *fold[1]]):
        torch.testing.assert_close(got, want, rtol=TOLERANCES[dtype], atol=TOLERANCES[dtype])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_folded_recurrence_matches_the_fused_kernel_on_the_looked_up_inputs(kind, dtype):
    assert_folded_matches_unfolded(dtype, kind, seed=3)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    "flags",
    [
        {"go_backwards": True},
        {"return_sequences": False},
        {"masked": False},
        {"recurrent_dropout": True},
    ],
    ids=lambda flags: next(iter(flags)),
)
def test_folded_recurrence_matches_with_each_call_flag(kind, flags):
    assert_folded_matches_unfolded(torch.float64, kind, seed=5, **flags)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
@pytest.mark.parametrize("batch", [16, 128])  # row groups of 8 (several steps a product), of 64
@pytest.mark.parametrize("recurrent_dropout", [False, True])
def test_the_backward_kernel_forms_the_folded_recurrent_kernels_gradient(
    kind, batch, recurrent_dropout, monkeypatch
):
    def long_products(*args):
        raise AssertionError("the backward kernel should have formed the gradient itself")

    monkeypatch.setattr(fused, "recurrent_gradients", long_products)
    assert_folded_matches_unfolded(
        torch.float32, kind, seed=9, batch=batch, recurrent_dropout=recurrent_dropout
    )


def at_each_thread_count(run):
    """run()'s results at one, two and three threads (the count restored after)."""
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            results.append(run())
        return results
    finally:
        torch.set_num_threads(threads)


def _scatter_rows_unwanted(*args):
    raise AssertionError("the backward kernel should have formed the table's gradient")


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_the_backward_kernel_forms_the_folded_tables_gradient(
    kind, dtype, go_backwards, monkeypatch
):
    """Where the backward kernel forms the recurrent kernel's gradient in row groups, it sums the
    table's gradient there too (no dxproj to scatter)."""
    monkeypatch.setattr(cpu, "scatter_rows", _scatter_rows_unwanted)
    assert_folded_matches_unfolded(dtype, kind, seed=11, batch=16, go_backwards=go_backwards)


def test_the_folded_tables_gradient_does_not_depend_on_the_threads(monkeypatch):
    """The backward kernel's table gradient, summed in row groups fixed by the batch size, has
    the same bits on one, two or three threads (one thread runs both groups in one chunk)."""
    monkeypatch.setattr(cpu, "scatter_rows", _scatter_rows_unwanted)
    _, recurrence, ids, embeddings, states = make_call("lstm", torch.float32, 13, batch=32)
    spec = recurrence.cell
    table = folded.input_table(embeddings, spec.kernel, spec.input_bias).detach()
    table.requires_grad_(True)

    def table_gradient():
        outputs, _, _ = folded.run_folded(recurrence, ids, table, states)
        weights = torch.linspace(-1, 1, outputs.numel()).view_as(outputs)
        return torch.autograd.grad((outputs * weights).sum(), table)[0]

    gradients = at_each_thread_count(table_gradient)
    assert all(torch.equal(gradient, gradients[0]) for gradient in gradients[1:])


def test_folded_recurrence_passes_gradcheck():
    layer, recurrence, ids, embeddings, states = make_call("gru_reset_after", torch.float64, 7)
    spec = recurrence.cell

    def run(table, recurrent_kernel, h0):
        call = recurrence._replace(cell=spec._replace(recurrent_kernel=recurrent_kernel))
        outputs, _, final = folded.run_folded(call, ids, table, [h0])
        return outputs, final[0]

    table = folded.input_table(embeddings, spec.kernel, spec.input_bias).detach()
    recurrent_kernel = spec.recurrent_kernel.detach().clone()
    inputs = (table.requires_grad_(True), recurrent_kernel.requires_grad_(True), states[0])
    assert torch.autograd.gradcheck(run, inputs)


def test_blocker_names_input_dropout_and_other_devices():
    _, recurrence, ids, _, _ = make_call("lstm", torch.float32, 0)
    assert folded.blocker(recurrence, ids) is None
    with_dropout = recurrence._replace(
        dropout_masks=DropoutMasks(torch.ones(BATCH, FEATURES), None)
    )
    assert "input dropout" in folded.blocker(with_dropout, ids)
    assert "meta" in folded.blocker(recurrence, ids.to("meta"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scatter_rows_equals_index_add_to_the_bit_whatever_the_threads(dtype):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (5000,), generator=generator)
    rows = torch.randn(5000, 40, generator=generator, dtype=dtype)  # 40: not a whole vector
    want = torch.zeros(300, 40, dtype=dtype).index_add_(0, ids, rows)

    def scattered():
        out = torch.full((300, 40), float("nan"), dtype=dtype)  # every entry written
        cpu.scatter_rows(ids, rows, out)
        return out

    assert all(torch.equal(out, want) for out in at_each_thread_count(scattered))


def _table_operands(rows, features, width, dtype, bias, seed=0):
    generator = torch.Generator().manual_seed(seed)
    operands = [torch.randn(rows, features, generator=generator, dtype=dtype),
                torch.randn(features, width, generator=generator, dtype=dtype),
                torch.randn(width, generator=generator, dtype=dtype) if bias else None]  # fmt: skip
    return [None if operand is None else operand.requires_grad_(True) for operand in operands]


# Rows over several of the kernels' 256-row blocks and a part of one; widths and features that
# are not whole vectors.
TABLE_SHAPES = [(1000, 32, 128), (513, 17, 33), (7, 3, 12)]


@pytest.mark.parametrize("shape", TABLE_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_the_input_table_and_its_gradients_are_addmms(shape, dtype, bias):
    """Within rounding of addmm's and its gradients' values in float64 (a float32 sum over a
    thousand rows differs from torch's own by more than elementwise tolerances allow)."""
    embeddings, kernel, input_bias = _table_operands(*shape, dtype, bias)
    weights = [w for w in (embeddings, kernel, input_bias) if w is not None]
    table = folded.input_table(embeddings, kernel, input_bias)
    dtable = torch.randn(table.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    got = [table, *torch.autograd.grad(table, weights, dtable)]
    exact = [w.detach().double().requires_grad_(True) for w in weights]
    want = exact[0] @ exact[1] if input_bias is None else torch.addmm(exact[2], *exact[:2])
    wanted = [want, *torch.autograd.grad(want, exact, dtable.double())]
    rounding = 1e-6 if dtype == torch.float32 else 1e-14
    for value, expected in zip(got, wanted):
        bound = rounding * float(expected.detach().abs().max())
        torch.testing.assert_close(value.detach().double(), expected.detach(), rtol=0, atol=bound)


def test_the_input_tables_gradients_skip_frozen_embeddings(monkeypatch):
    """Frozen embeddings (a pretrained table) get no gradient product; the others are right."""
    asked = []
    table_gradients = cpu.table_gradients

    def spy(dtable, embeddings, kernel, dembeddings, *rest):
        asked.append(dembeddings)
        table_gradients(dtable, embeddings, kernel, dembeddings, *rest)

    monkeypatch.setattr(cpu, "table_gradients", spy)
    embeddings, kernel, input_bias = _table_operands(300, 5, 20, torch.float64, True)
    embeddings.requires_grad_(False)
    table = folded.input_table(embeddings, kernel, input_bias)
    dkernel, dbias = torch.autograd.grad(table.sum(), [kernel, input_bias])
    assert asked == [None]
    torch.testing.assert_close(dkernel, embeddings.sum(0)[:, None].expand_as(kernel))
    torch.testing.assert_close(dbias, torch.full_like(dbias, 300.0))


def test_the_input_table_passes_gradcheck():
    operands = _table_operands(300, 5, 20, torch.float64, True)
    assert torch.autograd.gradcheck(folded.input_table, operands)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_input_table_and_its_gradients_do_not_depend_on_the_threads(dtype):
    embeddings, kernel, input_bias = _table_operands(1000, 32, 128, dtype, True)
    dtable = torch.randn(1000, 128, generator=torch.Generator().manual_seed(1), dtype=dtype)

    def table_and_gradients():
        table = folded.input_table(embeddings, kernel, input_bias)
        gradients = torch.autograd.grad(table, [embeddings, kernel, input_bias], dtable)
        return [table.detach().clone(), *gradients]  # the table's buffer serves the next call

    results = at_each_thread_count(table_and_gradients)
    for result in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(result, results[0]))
