"""`StackedRNNCells`: several cells run as one, each feeding the next at every step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rnnkit.kernels.spec import DropoutMasks
from rnnkit.layers import serialization
from rnnkit.layers.base import Layer


class StackedRNNCells(Layer):
    """Several cells run as one: the output of each is the input of the next, at every step.

    States are flat: the states of the first cell, then those of the second, and so on.

    Args:
        cells: the cells, first to last.
    """

    def __init__(self, cells: Sequence[nn.Module], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not cells:
            raise ValueError("StackedRNNCells: argument `cells` must name at least one cell.")
        for cell in cells:
            if not hasattr(cell, "state_size"):
                raise ValueError(
                    f"StackedRNNCells: every cell needs a `state_size`, received {cell!r}."
                )
        self.cells = nn.ModuleList(cells)
        self.supports_masking = True

    @staticmethod
    def _sizes(cell: nn.Module) -> list[int]:
        size = cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    @property
    def state_size(self) -> list[int]:
        return [size for cell in self.cells for size in self._sizes(cell)]

    @property
    def output_size(self) -> int:
        last = self.cells[-1]
        return getattr(last, "output_size", self._sizes(last)[0])

    @property
    def output_state_index(self) -> int:
        """Index of the last cell's first state: the state that equals the output."""
        return sum(len(self._sizes(cell)) for cell in self.cells[:-1])

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = tuple(input_shape)
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell.build(shape)
                cell.built = True
            shape = (*shape[:-1], getattr(cell, "output_size", self._sizes(cell)[0]))
        self.built = True

    def get_initial_state(self, batch_size: int, *, dtype=None, device=None) -> list[torch.Tensor]:
        dtype = dtype or self.dtype
        device = device or self.device
        return [torch.zeros(batch_size, s, dtype=dtype, device=device) for s in self.state_size]

    def make_dropout_masks(self, batch_size: int) -> list[DropoutMasks | None] | None:
        masks = [
            cell.make_dropout_masks(batch_size) if hasattr(cell, "make_dropout_masks") else None
            for cell in self.cells
        ]
        return masks if any(m is not None for m in masks) else None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["cells"] = [serialization.serialize(cell) for cell in self.cells]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StackedRNNCells:
        config = dict(config)
        cells = [serialization.deserialize(cell) for cell in config.pop("cells")]
        return cls(cells, **config)

    def forward(self, inputs, states, masks=None):
        new_states: list[torch.Tensor] = []
        start = 0
        for index, cell in enumerate(self.cells):
            count = len(self._sizes(cell))
            cell_states = list(states[start : start + count])
            start += count
            cell_masks = masks[index] if masks is not None else None
            if cell_masks is None:
                inputs, cell_new = cell(inputs, cell_states)
            else:
                inputs, cell_new = cell(inputs, cell_states, cell_masks)
            new_states.extend(cell_new)
        return inputs, new_states
