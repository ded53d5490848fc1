"""torch's recurrent operators as a kernel (`rnnkit.kernels.torch_ops`), on the CPU here (the same
operators run cuDNN on CUDA): against the NumPy reference and the loop's gradients, what
`blocker` refuses, and how `select` routes CUDA calls between cuDNN and the Triton kernels."""

from __future__ import annotations

import types
from functools import partial

import numpy as np
import pytest
import torch
from recurrences import recurrence_of, run_on_cell
from sequence_masks import right_padded_mask

from rnnkit import reference
from rnnkit.kernels import DropoutMasks, torch_ops
from rnnkit.kernels.loop import run_loop
from rnnkit.kernels.select import select
from rnnkit.layers import GRU, LSTM, SimpleRNN

BATCH, TIMESTEPS, FEATURES, UNITS = 4, 6, 3, 5

KINDS = {
    "simple_rnn": (SimpleRNN, {}, reference.simple_rnn),
    "simple_rnn_relu": (
        SimpleRNN, {"activation": "relu"}, partial(reference.simple_rnn, activation="relu")
    ),
    "lstm": (LSTM, {}, reference.lstm),
    "gru": (GRU, {"reset_after": True}, partial(reference.gru, reset_after=True)),
}  # fmt: skip


def make_cell(kind, dtype=torch.float64, **kwargs):
    """A built cell of `kind` with random weights (biases too) and its reference function."""
    cls, defaults, ref = KINDS[kind]
    layer = cls(UNITS, dtype=dtype, **defaults, **kwargs)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    return layer.cell, ref


def data(kind, dtype=torch.float64):
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(BATCH, TIMESTEPS, FEATURES)), dtype=dtype)
    states = [torch.tensor(rng.normal(size=(BATCH, UNITS)), dtype=dtype)]
    if kind == "lstm":
        states.append(torch.tensor(rng.normal(size=(BATCH, UNITS)), dtype=dtype))
    return x, states


def input_dropout(dtype=torch.float64):
    keep = torch.rand(BATCH, FEATURES, generator=torch.Generator().manual_seed(3)) >= 0.3
    return DropoutMasks(keep.to(dtype) / 0.7, None)


OPTIONS = {
    "plain": {},
    "go_backwards": {"go_backwards": True},
    "input_dropout": {"dropout_masks": input_dropout()},
    "sequence_end_only": {"return_sequences": False},
}


def reference_of(cell, ref, x, states, options):
    weights = [w.detach().numpy() for w in (cell.kernel, cell.recurrent_kernel, cell.bias)]
    dropout_masks = options.get("dropout_masks")
    outputs = ref(
        x.numpy(), *weights,
        initial_state=[s.numpy() for s in states],
        go_backwards=options.get("go_backwards", False),
        dropout_mask=None if dropout_masks is None else dropout_masks.inputs.numpy(),
    )  # fmt: skip
    return outputs[0], outputs[1:]


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_reference_float64(kind, option):
    cell, ref = make_cell(kind)
    x, states = data(kind)
    options = OPTIONS[option]
    outputs, last, final = run_on_cell(torch_ops.run_torch, cell, x, states, **options)
    want_outputs, want_states = reference_of(cell, ref, x, states, options)
    if options.get("return_sequences", True):
        np.testing.assert_allclose(outputs.detach().numpy(), want_outputs, atol=1e-10, rtol=0)
    else:
        assert outputs is None
    np.testing.assert_allclose(last.detach().numpy(), want_outputs[:, -1], atol=1e-10, rtol=0)
    for got, want in zip(final, want_states, strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_reference_float32_without_bias(kind):
    cell, ref = make_cell(kind, dtype=torch.float32, use_bias=False)
    x, states = data(kind, torch.float32)
    outputs, _, final = run_on_cell(torch_ops.run_torch, cell, x, states, go_backwards=True)
    weights = [w.detach().numpy() for w in (cell.kernel, cell.recurrent_kernel)]
    expected = ref(x.numpy(), *weights, None, initial_state=[s.numpy() for s in states],
                   go_backwards=True)  # fmt: skip
    for got, want in zip([outputs, *final], expected, strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_match_the_loop(kind):
    options = {"go_backwards": True, "dropout_masks": input_dropout()}
    gradients = []
    for run in (torch_ops.run_torch, run_loop):
        cell, _ = make_cell(kind)
        x, states = data(kind)
        leaves = [x.requires_grad_(), *(s.requires_grad_() for s in states)]
        outputs, _, final = run_on_cell(run, cell, x, states, **options)
        weights = torch.linspace(-1, 1, outputs.numel(), dtype=torch.float64)
        loss = outputs.flatten() @ weights + sum(s.square().sum() for s in final)
        gradients.append(torch.autograd.grad(loss, [*leaves, *cell.parameters()]))
    for got, want in zip(*gradients, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-8)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradcheck(kind):
    cell, _ = make_cell(kind)
    x, states = data(kind)

    def outputs_and_states(inputs, *initial_states):
        outputs, _, final = run_on_cell(torch_ops.run_torch, cell, inputs, list(initial_states),
                                                go_backwards=True)  # fmt: skip
        return outputs, *final

    leaves = (x.requires_grad_(), *(s.requires_grad_() for s in states))
    assert torch.autograd.gradcheck(outputs_and_states, leaves)


@pytest.mark.parametrize(
    ("make", "call", "named"),
    [
        (lambda: GRU(UNITS, reset_after=False), {}, "reset_after=False"),
        (lambda: LSTM(UNITS, recurrent_activation="hard_sigmoid"), {}, "recurrent_activation"),
        (lambda: SimpleRNN(UNITS, activation="silu"), {}, "activation 'silu'"),
        (lambda: LSTM(UNITS), {"mask": torch.ones(BATCH, TIMESTEPS, dtype=torch.bool)}, "mask"),
        (
            lambda: GRU(UNITS, recurrent_dropout=0.2),
            {"dropout_masks": DropoutMasks(None, torch.ones(BATCH, 3, UNITS))},
            "recurrent_dropout=0.2",
        ),
        (
            lambda: LSTM(UNITS, dropout=0.2, recurrent_dropout=0.2),
            {"dropout_masks": DropoutMasks(torch.ones(BATCH, 4, FEATURES), None)},
            "input dropout masks differ by gate",
        ),
        (lambda: SimpleRNN(UNITS, dtype=torch.float16), {}, "float16"),
    ],
)
def test_blocker_names_what_torch_cannot_compute(make, call, named):
    layer = make()
    layer.build((None, None, FEATURES))
    x = torch.zeros(BATCH, TIMESTEPS, FEATURES, dtype=layer.dtype)
    blocker = torch_ops.blocker(recurrence_of(layer.cell, **call), x)
    assert blocker is not None and named in blocker


def cuda_inputs(dtype=torch.float32):
    """What `select` reads of CUDA inputs (their device and dtype), with no GPU at hand."""
    return types.SimpleNamespace(device=torch.device("cuda"), dtype=dtype)


def test_select_sends_cuda_calls_that_cudnn_computes_exactly_to_it():
    cell, _ = make_cell("lstm", dtype=torch.float32)
    recurrence = recurrence_of(cell, dropout_masks=input_dropout())
    kernel = select(recurrence, cuda_inputs(), use_fused="auto")
    assert kernel is torch_ops.run_torch
    assert select(recurrence_of(cell), cuda_inputs(), use_fused=False) is run_loop


def test_select_names_both_gpu_paths_when_neither_can_run():
    cell, _ = make_cell("gru", dtype=torch.float32)
    mask = torch.from_numpy(right_padded_mask())
    # The cell's weights are on the CPU, so the Triton kernels refuse these CUDA inputs too.
    with pytest.raises(ValueError, match="cuDNN cannot run it .a mask.*Triton"):
        select(recurrence_of(cell, mask=mask), cuda_inputs(), use_fused=True)
    assert select(recurrence_of(cell, mask=mask), cuda_inputs(), use_fused="auto") is run_loop
