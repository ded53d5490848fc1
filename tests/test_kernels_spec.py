"""What a kernel is given (`rnnkit.kernels.spec`): each built cell's description of itself, and
what `select` makes of a cell no fast kernel knows."""

from __future__ import annotations

import torch
from conftest import KINDS
from recurrences import recurrence_of

from rnnkit.activations import ActivationCode
from rnnkit.kernels import fused, select, torch_ops
from rnnkit.kernels.loop import run_loop
from rnnkit.kernels.spec import GATE_NAMES, CellKind
from rnnkit.layers import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells


def built(cell, features=3):
    cell.build((None, features))
    return cell


def test_each_cell_describes_its_kind_weights_and_activations():
    for name, kind in KINDS.items():
        cell = built(kind.cell(4, **kind.options))
        spec = cell.spec()
        assert spec.cell is cell
        assert spec.kind is CellKind[name.upper()]
        assert len(GATE_NAMES[spec.kind]) == kind.gates == spec.gates
        assert spec.kernel is cell.kernel and spec.recurrent_kernel is cell.recurrent_kernel
        assert (spec.units, spec.dtype, spec.device) == (4, cell.kernel.dtype, cell.kernel.device)
        assert spec.activation_code is ActivationCode.TANH
        expected = ActivationCode.LINEAR if kind.cell is SimpleRNNCell else ActivationCode.SIGMOID
        assert spec.recurrent_activation_code is expected


def test_grus_two_row_bias_is_split_into_input_and_recurrent_biases():
    after = built(GRUCell(4, reset_after=True, bias_initializer="random_normal")).spec()
    assert after.kind is CellKind.GRU_RESET_AFTER
    torch.testing.assert_close(after.input_bias, after.cell.bias[0])
    torch.testing.assert_close(after.recurrent_bias, after.cell.bias[1])
    before = built(GRUCell(4, reset_after=False)).spec()
    assert before.kind is CellKind.GRU_RESET_BEFORE
    assert before.input_bias is before.cell.bias and before.recurrent_bias is None
    no_bias = built(GRUCell(4, use_bias=False)).spec()
    assert no_bias.input_bias is None and no_bias.recurrent_bias is None


def test_a_subclass_or_an_unknown_activation_has_no_fast_kernel():
    class PeepholeLSTMCell(LSTMCell):
        """A subclass may change the step: the kernels must not assume LSTMCell's."""

    spec = built(PeepholeLSTMCell(4)).spec()
    assert spec.kind is None
    assert "PeepholeLSTMCell" in fused.blocker(recurrence_of(spec.cell))
    gelu = built(SimpleRNNCell(4, activation="gelu")).spec()
    assert gelu.activation_code is None
    assert "activation=gelu" in fused.blocker(recurrence_of(gelu.cell))
    assert "activation 'gelu'" in torch_ops.cell_blocker(gelu)


def test_a_cell_without_a_spec_runs_in_the_loop():
    stacked = StackedRNNCells([built(SimpleRNNCell(2)), built(SimpleRNNCell(2), features=2)])
    recurrence = recurrence_of(stacked)
    assert recurrence.cell.kind is None and recurrence.cell.cell is stacked
    assert select(recurrence, torch.ones(1, 2, 3), use_fused="auto") is run_loop
