"""The generic recurrent layer `RNN(cell)`, and `CellLayer`, the base of `SimpleRNN`, `LSTM` and
`GRU` (each in its module with its cell: `simple_rnn.py`, `lstm.py`, `gru.py`).

A recurrent layer runs a cell over time. One call:

    validate input → build once → initial states (given, carried if stateful, or zeros)
    → dropout masks (training only) → the cell's spec and the call's flags as a `Recurrence`
    → `kernels.select` → the kernel runs the sequence
    → shape the result (`return_sequences`, `return_state`) → carry states if stateful

Where a call qualifies (inference without an initial state: a stateful layer's one-step calls
in streaming or generation, `predict`'s batches, masked or not), the kernel's call is also
prepared as a `SmallCall` and the next calls of the same shape, weights and mode rerun it
without the steps above (`small_call.py`).

Inputs are batch-first `(batch, timesteps, features)`. The call takes `mask (batch, timesteps)`
(True marks real steps) and `initial_state` (one `(batch, size)` tensor per state). Training vs
inference follows `module.train()` / `module.eval()`, or an explicit `training=` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.kernels.select import check_use_fused, prepare_inference, select
from rnnkit.kernels.spec import CellSpec, KernelResult, Recurrence
from rnnkit.layers import converters, serialization
from rnnkit.layers.base import Layer
from rnnkit.layers.small_call import SmallCall, qualifies
from rnnkit.layers.stacked_rnn_cells import StackedRNNCells


class RNN(Layer):
    """Runs a recurrent cell over the timesteps of a sequence (Keras's `RNN`).

    Args:
        cell: a cell: a module with `forward(x_t, states) -> (output, new_states)` and
            `state_size` (an int, or a list with one int per state); or a list of cells, which
            are stacked (`StackedRNNCells`).
        return_sequences: return the output of every timestep `(batch, timesteps, units)`
            instead of the last one `(batch, units)` (default False).
        return_state: also return the final states: `(output, *states)` (default False).
        go_backwards: process the sequence last step first; outputs come back in processing
            (reversed) order (default False).
        stateful: the final states of a call are the initial states of the next; the batch size
            must stay the same; `reset_state()` zeroes them (default False).
        unroll: Keras's unrolled loop (default False). It changes one thing, as in Keras's JAX
            backend: with a mask, masked steps before a row's first real step output zeros
            instead of the initial state.
        zero_output_for_mask: masked steps output zeros instead of repeating the previous
            output (default False).
        use_fused: "auto" (a fused kernel where one supports the configuration, else the loop),
            True (fused or an error naming what blocks it), or False (always the loop).
        name, dtype, trainable, activity_regularizer: as `Layer`.

    Call arguments:
        inputs: `(batch, timesteps, features)` tensor or NumPy array.
        mask: optional `(batch, timesteps)` bool; True marks real steps.
        initial_state: optional list of `(batch, size)` tensors, one per state.
        training: optional bool overriding the module's mode (dropout is on in training only).

    Example:
        >>> layer = RNN(SimpleRNNCell(8), return_sequences=True)
        >>> layer(torch.randn(4, 10, 3)).shape
        torch.Size([4, 10, 8])
    """

    def __init__(
        self,
        cell: nn.Module | Sequence[nn.Module],
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        use_fused: str | bool = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        if not isinstance(cell, nn.Module):
            raise TypeError(
                f"{type(self).__name__}: argument `cell` must be a torch.nn.Module with a "
                f"one-step `forward`, received {type(cell).__name__}."
            )
        state_size = getattr(cell, "state_size", None)
        if not _is_state_size(state_size):
            raise ValueError(
                f"{type(self).__name__}: the cell needs a `state_size` attribute (an int, or a "
                f"list of ints, one per state), received {state_size!r}."
            )
        check_use_fused(type(self).__name__, use_fused)
        self.cell = cell
        owner = type(self).__name__
        self.return_sequences = _check_flag(owner, "return_sequences", return_sequences)
        self.return_state = _check_flag(owner, "return_state", return_state)
        self.go_backwards = _check_flag(owner, "go_backwards", go_backwards)
        self.stateful = _check_flag(owner, "stateful", stateful)
        self.unroll = _check_flag(owner, "unroll", unroll)
        self.zero_output_for_mask = _check_flag(owner, "zero_output_for_mask", zero_output_for_mask)
        self.use_fused = use_fused
        self.supports_masking = True
        self._input_features: int | None = None
        self._states: list[torch.Tensor] | None = None
        self._small_call: SmallCall | None = None

    # ------------------------------------------------------------------------------ shapes
    @property
    def state_size(self) -> list[int]:
        """One size per state (LSTM: [units, units])."""
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    @property
    def output_size(self) -> int:
        return getattr(self.cell, "output_size", self.state_size[0])

    @property
    def states(self) -> list[torch.Tensor] | None:
        """The carried states of a stateful layer (None before its first call)."""
        return self._states

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank 3 (batch, timesteps, features), "
                f"received shape {tuple(input_shape)}."
            )
        step_shape = (input_shape[0], input_shape[-1])
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell.build(step_shape)
            self.cell.built = True
        self._input_features = input_shape[-1]
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Any:
        batch, timesteps = input_shape[0], input_shape[1]
        if self.return_sequences:
            output_shape = (batch, timesteps, self.output_size)
        else:
            output_shape = (batch, self.output_size)
        if self.return_state:
            return (output_shape, *[(batch, size) for size in self.state_size])
        return output_shape

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> Any:
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    # ---------------------------------------------------------------------------- checks
    def _check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank 3 (batch, timesteps, features), "
                f"received shape {tuple(inputs.shape)}."
            )
        if self._input_features is not None and inputs.shape[-1] != self._input_features:
            raise ValueError(
                f"Layer '{self.name}' was built for inputs with {self._input_features} features "
                f"(last axis), received shape {tuple(inputs.shape)}."
            )
        if inputs.shape[1] == 0:
            raise ValueError(
                f"Layer '{self.name}' needs at least one timestep, received shape "
                f"{tuple(inputs.shape)}."
            )
        return inputs if inputs.is_floating_point() else inputs.to(self.dtype)

    def _check_mask(self, mask: Any, batch: int, timesteps: int) -> torch.Tensor | None:
        if mask is None:
            return None
        expected = f"`mask` of shape (batch, timesteps) = ({batch}, {timesteps})"
        if not isinstance(mask, torch.Tensor):
            try:
                mask = np.asarray(mask)
            except ValueError:  # NumPy's word for rows of different lengths
                raise ValueError(
                    f"Layer '{self.name}' expects {expected}, received ragged rows."
                ) from None
            if mask.dtype.kind not in "biuf":
                raise TypeError(
                    f"Layer '{self.name}' expects {expected} of bools, received {mask.dtype}."
                )
            mask = torch.from_numpy(mask)
        if tuple(mask.shape) != (batch, timesteps):
            raise ValueError(
                f"Layer '{self.name}' expects {expected}, received shape {tuple(mask.shape)}."
            )
        if mask.dtype != torch.bool and ((mask != 0) & (mask != 1)).any():
            raise ValueError(
                f"Layer '{self.name}' expects {expected} of bools (or 0/1), received values "
                "other than 0 and 1."
            )
        return mask.to(device=self.device, dtype=torch.bool)

    def _check_initial_state(self, initial_state: Any, batch: int) -> list[torch.Tensor]:
        if isinstance(initial_state, (torch.Tensor,)) or hasattr(initial_state, "__array__"):
            initial_state = [initial_state]
        if not isinstance(initial_state, (list, tuple)):
            raise TypeError(
                f"Layer '{self.name}' expects `initial_state` as a tensor or a list of tensors "
                f"(one per state), received {type(initial_state).__name__}."
            )
        states = list(initial_state)
        sizes = self.state_size
        if len(states) != len(sizes):
            raise ValueError(
                f"Layer '{self.name}' expects `initial_state` as a list of {len(sizes)} "
                f"tensor(s) (one per state), received {len(states)}."
            )
        checked = []
        for index, (state, size) in enumerate(zip(states, sizes)):
            state = self.convert_input(state, argument="initial_state")
            if tuple(state.shape) != (batch, size):
                raise ValueError(
                    f"Layer '{self.name}' expects `initial_state[{index}]` of shape "
                    f"(batch, {size}) = ({batch}, {size}), received {tuple(state.shape)}."
                )
            checked.append(state)
        return checked

    def _zero_states(self, batch: int) -> list[torch.Tensor]:
        return [
            torch.zeros(batch, size, dtype=self.dtype, device=self.device)
            for size in self.state_size
        ]

    def _starting_states(self, initial_state: Any, batch: int) -> list[torch.Tensor]:
        if initial_state is not None:
            return self._check_initial_state(initial_state, batch)
        if not self.stateful or self._states is None:
            return self._zero_states(batch)
        carried = self._states[0].shape[0]
        if carried != batch:
            raise ValueError(
                f"Stateful layer '{self.name}' keeps one state per sample, so every call needs "
                f"the same batch size: expected a batch of {carried}, received {batch}."
            )
        # `.to(dtype)` casts the weights, not the carried states: cast them here.
        return [state.to(self.device, self.dtype) for state in self._states]

    # ---------------------------------------------------------------------------- calling
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        small = self._small_call
        if (
            small is not None
            and not args
            and not kwargs
            and small.takes(inputs)
            and self.activity_regularizer is None
        ):
            # `Layer.__call__` would convert nothing and record no activity loss.
            if self._activity_losses:
                self._activity_losses = []
            return nn.Module.__call__(self, inputs)
        return super().__call__(inputs, *args, **kwargs)

    def forward(
        self,
        inputs: torch.Tensor,
        mask: Any = None,
        initial_state: Any = None,
        training: bool | None = None,
    ) -> Any:
        small = self._small_call
        if small is not None and initial_state is None:
            states = small.states(self._states, self.stateful)
            if small.accepts(inputs, states, self.is_training(training), mask):
                return self.finish_call(small(inputs, states, mask))
        inputs = self._check_inputs(inputs)
        recurrence, states = self.describe_call(
            inputs.shape[0], inputs.shape[1], mask, initial_state, training
        )
        kernel = select(recurrence, inputs, use_fused=self.use_fused)
        self._small_call = None
        if qualifies(recurrence, inputs, states, initial_state):
            run = prepare_inference(kernel, recurrence, inputs, states)
            if run is not None:  # it computes this call too, with the weights packed once
                training = self.is_training(training)
                self._small_call = SmallCall(run, self, recurrence, inputs, states, training)
                return self.finish_call(run(inputs, states, recurrence.mask))
        return self.finish_call(kernel(recurrence, inputs, states))

    def describe_call(
        self, batch: int, timesteps: int, mask: Any, initial_state: Any, training: bool | None
    ) -> tuple[Recurrence, list[torch.Tensor]]:
        """A call's `Recurrence` and initial states, for inputs of `batch` x `timesteps`: the
        mask and initial states checked, dropout masks drawn in training."""
        mask = self._check_mask(mask, batch, timesteps)
        states = self._starting_states(initial_state, batch)
        dropout_masks = None
        if self.is_training(training) and hasattr(self.cell, "make_dropout_masks"):
            dropout_masks = self.cell.make_dropout_masks(batch)
        recurrence = Recurrence(
            self.cell_spec(),
            mask=mask,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
            unroll=self.unroll,
            dropout_masks=dropout_masks,
        )
        return recurrence, states

    def finish_call(self, result: KernelResult) -> Any:
        """Carries the final states if stateful and shapes the kernel's result as the call's."""
        outputs, last_output, states = result
        if self.stateful:
            # Set past `Module.__setattr__`, which only looks for parameters, buffers and
            # modules, and detached only where they need it: microseconds of a one-step call.
            carried = [state.detach() if state.requires_grad else state for state in states]
            object.__setattr__(self, "_states", carried)
        output = outputs if self.return_sequences else last_output
        return (output, *states) if self.return_state else output

    def cell_spec(self) -> CellSpec:
        """The built cell as the kernels and exporters see it: its own description, or only
        itself (a cell that has no `spec`, such as a user's, runs in the loop)."""
        describe = getattr(self.cell, "spec", None)
        return describe() if describe is not None else CellSpec(self.cell)

    def _apply(self, fn: Any, recurse: bool = True) -> RNN:
        # `.to()`, `.double()`, `.cuda()`...: the prepared call packed the old weights (their new
        # addresses would send it the general way too; this drops it at once).
        self._small_call = None
        return super()._apply(fn, recurse)

    def to_torch(self) -> nn.Module:
        """The batch-first torch.nn.RNN/LSTM/GRU with this layer's weights (where the
        configuration exists in torch.nn; otherwise a ValueError names the option)."""
        return converters.convert(self, "torch")

    def reset_state(self) -> None:
        """Zeroes the carried states of a stateful layer (keeping their batch size)."""
        self._small_call = None
        if self._states is not None:
            self._states = [torch.zeros_like(state) for state in self._states]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
            use_fused=self.use_fused,
            cell=serialization.serialize(self.cell),
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RNN:
        config = dict(config)
        cell = serialization.deserialize(config.pop("cell"))
        return cls(cell, **config)

    def extra_repr(self) -> str:
        flags = [
            name
            for name in ("return_sequences", "return_state", "go_backwards", "stateful")
            if getattr(self, name)
        ]
        return ", ".join([f"name={self.name!r}", *flags])


def _check_flag(owner: str, argument: str, value: Any) -> bool:
    """`value` if it is a bool (NumPy's too), else a TypeError: a string such as "no" would
    silently count as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{owner}: argument `{argument}` must be True or False, received {value!r}."
        )
    return bool(value)


def _is_state_size(size: Any) -> bool:
    def positive(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    if isinstance(size, (list, tuple)):
        return len(size) > 0 and all(positive(value) for value in size)
    return positive(size)


_RNN_ARGUMENTS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
    "use_fused",
    "name",
    "dtype",
    "trainable",
    "activity_regularizer",
    "input_shape",
)


def cell_property(name: str) -> property:
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


class CellLayer(RNN):
    """The base of `SimpleRNN`, `LSTM` and `GRU`: a recurrent layer that builds its own cell
    (`cell_class`) from Keras-style arguments."""

    cell_class: type

    def __init__(self, units: int, **kwargs: Any) -> None:
        layer_kwargs = {key: kwargs.pop(key) for key in _RNN_ARGUMENTS if key in kwargs}
        cell = self.cell_class(units, dtype=layer_kwargs.get("dtype"), **kwargs)
        super().__init__(cell, **layer_kwargs)

    units = cell_property("units")
    activation = cell_property("activation")
    use_bias = cell_property("use_bias")
    dropout = cell_property("dropout")
    recurrent_dropout = cell_property("recurrent_dropout")
    kernel_initializer = cell_property("kernel_initializer")
    recurrent_initializer = cell_property("recurrent_initializer")
    bias_initializer = cell_property("bias_initializer")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RNN:
        return cls(**config)
