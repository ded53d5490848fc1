"""What a kernel is given: a cell described as tensors and codes, and one call's flags.

A built-in cell describes itself once per call as a `CellSpec` (its kind, its weights in Keras's
layout with the input and recurrent biases apart, its activations and their codes); the
recurrent layer adds the call's flags under the names its users know and hands the resulting
`Recurrence` to `rnnkit.kernels.select`. Every kernel reads these two values and nothing else of
the layer, so no kernel imports `rnnkit.layers`.

Both are `NamedTuple`s: frozen, and cheap enough to build on every call (a one-step call of a
stateful layer builds them too).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import torch

from rnnkit.activations import ActivationCode


class CellKind(enum.IntEnum):
    """The recurrences the fast kernels implement (the values are the kernels' cell codes)."""

    SIMPLE_RNN = 0
    LSTM = 1
    GRU_RESET_AFTER = 2
    GRU_RESET_BEFORE = 3


# Keras's gate order, the one place it is written: each weight's columns hold these gate blocks.
GATE_NAMES: dict[CellKind, tuple[str, ...]] = {
    CellKind.SIMPLE_RNN: ("h",),
    CellKind.LSTM: ("i", "f", "c", "o"),
    CellKind.GRU_RESET_AFTER: ("z", "r", "h"),
    CellKind.GRU_RESET_BEFORE: ("z", "r", "h"),
}


class DropoutMasks(NamedTuple):
    """The dropout masks of one call: `inputs` multiplies x_t, `recurrent` multiplies h_{t-1}.

    Each is None (no dropout), `(batch, size)` shared by all gates, or `(batch, gates, size)`
    (one mask per gate: Keras's LSTM and GRU with `recurrent_dropout > 0`). Masks hold 0 or
    1/(1-rate) and are the same at every timestep.
    """

    inputs: torch.Tensor | None
    recurrent: torch.Tensor | None


class StepCell(Protocol):
    """What the plain loop calls: a cell's one step, `cell(x_t, states[, dropout_masks])`.

    The built-in cells also split a step in two, `project_inputs(inputs, input_mask)` (every
    timestep's input product at once) and `step(projected_t, states, recurrent_mask)`.
    """

    def __call__(self, inputs: torch.Tensor, states: Sequence[torch.Tensor], *masks: Any) -> Any:
        """One timestep: `(output (batch, output_size), new_states)`."""


class CellSpec(NamedTuple):
    """A cell as the kernels see it: kind, weights, activations and sizes.

    Weights keep Keras's layout and gate order (`GATE_NAMES`); GRU's `(2, 3*units)` bias
    arrives split into its input and recurrent rows (by `GRUCell`, the one place that reads its
    layout), and no kernel or exporter splits it again. A cell no fast kernel knows (a custom
    cell, stacked cells) has `kind=None` and only `cell`: the loop runs it.

    Attributes:
        cell: the cell module itself; the loop calls its step (see `StepCell`). None only
            where no loop will run (the kernels' own self-check).
        kind: which recurrence, or None for a cell only the loop runs.
        kernel: `(features, gates*units)`.
        recurrent_kernel: `(units, gates*units)`.
        input_bias: `(gates*units,)` added to the input product, or None without a bias.
        recurrent_bias: `(gates*units,)` added to the recurrent product (GRU with
            `reset_after=True` only), else None.
        activation: the cell's `activation` function.
        recurrent_activation: its `recurrent_activation` (LSTM, GRU), else None.
        activation_code: `activation`'s code, or None where the kernels implement none.
        recurrent_activation_code: the same for `recurrent_activation` (LINEAR when absent).
        units: size of each state.
        dropout: the input dropout rate (for messages: the masks come with the call).
        recurrent_dropout: the recurrent dropout rate (likewise).
        dtype: the weights' dtype.
        device: the weights' device.
    """

    cell: StepCell | None
    kind: CellKind | None = None
    kernel: torch.Tensor | None = None
    recurrent_kernel: torch.Tensor | None = None
    input_bias: torch.Tensor | None = None
    recurrent_bias: torch.Tensor | None = None
    activation: Callable | None = None
    recurrent_activation: Callable | None = None
    activation_code: ActivationCode | None = None
    recurrent_activation_code: ActivationCode | None = ActivationCode.LINEAR
    units: int = 0
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    dtype: torch.dtype | None = None
    device: torch.device | None = None

    @property
    def gates(self) -> int:
        """Gate blocks per weight (1, 3 or 4)."""
        return len(GATE_NAMES[self.kind])

    @property
    def name(self) -> str:
        """The cell's class name, for messages."""
        return type(self.cell).__name__


class Recurrence(NamedTuple):
    """One call of a recurrent layer: the cell and the call's flags, as the layer names them.

    Attributes:
        cell: the cell's `CellSpec`.
        mask: `(batch, timesteps)` bool, True for real steps, or None.
        go_backwards: process the timesteps last to first.
        zero_output_for_mask: masked steps output zeros instead of repeating.
        return_sequences: keep every output (else only the last).
        unroll: Keras's unrolled loop: masked steps before a row's first real step output
            zeros (not the initial state).
        dropout_masks: this call's `DropoutMasks` (a list of them, one per cell, for stacked
            cells), or None outside training or without dropout.
    """

    cell: CellSpec
    mask: torch.Tensor | None = None
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    return_sequences: bool = True
    unroll: bool = False
    dropout_masks: DropoutMasks | Sequence[DropoutMasks | None] | None = None


# What every kernel returns: `(outputs (batch, timesteps, units) or None without
# return_sequences, last_output (batch, units), final_states)`, outputs in processing order.
KernelResult = tuple[torch.Tensor | None, torch.Tensor, list[torch.Tensor]]
Kernel = Callable[[Recurrence, torch.Tensor, list[torch.Tensor]], KernelResult]


def input_dropout(recurrence: Recurrence) -> torch.Tensor | None:
    """The call's input dropout mask of a built-in cell, or None."""
    masks = recurrence.dropout_masks
    return masks.inputs if masks is not None else None


def recurrent_dropout(recurrence: Recurrence) -> torch.Tensor | None:
    """The call's recurrent dropout mask of a built-in cell, or None."""
    masks = recurrence.dropout_masks
    return masks.recurrent if masks is not None else None
