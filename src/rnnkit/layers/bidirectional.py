"""`Bidirectional`: run a recurrent layer forwards and a copy of it backwards, and merge."""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.layers import converters, serialization
from rnnkit.layers.base import Layer
from rnnkit.layers.rnn import RNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _copy_layer(layer: RNN, **overrides: Any) -> RNN:
    return type(layer).from_config({**layer.get_config(), **overrides})


class Bidirectional(Layer):
    """Bidirectional wrapper for recurrent layers (Keras's `Bidirectional`).

    Like Keras, the wrapper builds two new layers from `layer`'s config: `forward_layer`
    (named `forward_<name>`) and `backward_layer` (a copy with `go_backwards` flipped, named
    `backward_<name>`), unless `backward_layer` is given. Both output zeros at masked steps when
    they return sequences (`zero_output_for_mask = return_sequences`), and the backward output is
    flipped back to input order before merging.

    Args:
        layer: a recurrent layer (`SimpleRNN`, `LSTM`, `GRU` or `RNN`).
        merge_mode: "concat" (default; output size 2*units), "sum", "mul", "ave", or None (the
            two outputs are returned as a pair).
        backward_layer: optional layer for the backward direction; must have the opposite
            `go_backwards` and the same `return_sequences`, `return_state`, `stateful`.

    Call returns the merged output; with `return_state=True`, `(output, *forward_states,
    *backward_states)` (with merge_mode None: `(forward_output, backward_output, *states)`).

    Example:
        >>> layer = Bidirectional(LSTM(8, return_sequences=True))
        >>> layer(torch.randn(2, 5, 3)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        layer: RNN,
        merge_mode: str | None = "concat",
        *,
        backward_layer: RNN | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(layer, RNN):
            raise TypeError(
                "Bidirectional: argument `layer` must be a recurrent layer (SimpleRNN, LSTM, GRU "
                f"or RNN), received {type(layer).__name__}."
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"Bidirectional: argument `merge_mode` must be one of {MERGE_MODES}, "
                f"received {merge_mode!r}."
            )
        kwargs.setdefault("name", f"bidirectional_{layer.name}")
        super().__init__(**kwargs)
        sequences = layer.return_sequences
        self.forward_layer = _copy_layer(
            layer,
            name=f"forward_{layer.name.removeprefix('forward_')}",
            zero_output_for_mask=sequences,
        )
        if backward_layer is None:
            backward_layer = _copy_layer(
                layer,
                name=f"backward_{layer.name.removeprefix('backward_')}",
                go_backwards=not layer.go_backwards,
            )
        elif not isinstance(backward_layer, RNN):
            raise TypeError(
                "Bidirectional: argument `backward_layer` must be a recurrent layer, received "
                f"{type(backward_layer).__name__}."
            )
        backward_layer.zero_output_for_mask = backward_layer.return_sequences
        self.backward_layer = backward_layer
        self._check_directions()
        self.merge_mode = merge_mode
        self.return_sequences = sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self.supports_masking = True

    def _check_directions(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "Bidirectional: the forward and backward layers need different `go_backwards`, "
                f"received {forward.go_backwards} for both."
            )
        for attribute in ("return_sequences", "return_state", "stateful"):
            if getattr(forward, attribute) != getattr(backward, attribute):
                raise ValueError(
                    f"Bidirectional: the forward and backward layers need the same `{attribute}`"
                    f", received {getattr(forward, attribute)} and "
                    f"{getattr(backward, attribute)}."
                )

    def build(self, input_shape) -> None:
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(input_shape)
                layer.built = True
        self.built = True

    def forward(
        self,
        inputs: torch.Tensor,
        mask: Any = None,
        initial_state: Any = None,
        training: bool | None = None,
    ) -> Any:
        forward_state = backward_state = None
        if initial_state is not None:
            states = list(initial_state)
            half = len(states) // 2
            if len(states) % 2 or half != len(self.forward_layer.state_size):
                raise ValueError(
                    f"Layer '{self.name}' expects `initial_state` as "
                    f"{2 * len(self.forward_layer.state_size)} tensors (forward states, then "
                    f"backward states), received {len(states)}."
                )
            forward_state, backward_state = states[:half], states[half:]
        forward = self.forward_layer(
            inputs, mask=mask, initial_state=forward_state, training=training
        )
        backward = self.backward_layer(
            inputs, mask=mask, initial_state=backward_state, training=training
        )
        return self.combine(forward, backward)

    def combine(self, forward: Any, backward: Any) -> Any:
        """The layer's result from its two directions' results (each as its layer returns it:
        the output, or `(output, *states)` with `return_state`)."""
        states: tuple = ()
        if self.return_state:
            states = (*forward[1:], *backward[1:])
            forward, backward = forward[0], backward[0]
        if self.return_sequences:
            backward = torch.flip(backward, dims=[1])
        output = merge(forward, backward, self.merge_mode)
        if not self.return_state:
            return output
        return (*output, *states) if self.merge_mode is None else (output, *states)

    def compute_output_shape(self, input_shape) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        state_shapes: tuple = ()
        if self.return_state:
            shape, state_shapes = shape[0], tuple(shape[1:])
        if self.merge_mode == "concat":
            shape = (*shape[:-1], 2 * shape[-1])
        if self.merge_mode is None:
            outputs = (shape, shape)
            return (*outputs, *state_shapes, *state_shapes) if self.return_state else outputs
        return (shape, *state_shapes, *state_shapes) if self.return_state else shape

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> Any:
        output_mask = mask if self.return_sequences else None
        if self.merge_mode is None:
            output_mask = [output_mask, output_mask]
        else:
            output_mask = [output_mask]
        if self.return_state:
            return output_mask + [None] * (2 * len(self.forward_layer.state_size))
        return output_mask if self.merge_mode is None else output_mask[0]

    def to_torch(self) -> torch.nn.Module:
        """The bidirectional batch-first torch.nn module with these weights (concat only)."""
        return converters.convert(self, "torch")

    def reset_state(self) -> None:
        """Zeroes the carried states of both directions (stateful layers)."""
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            layer=serialization.serialize(self.forward_layer),
            backward_layer=serialization.serialize(self.backward_layer),
            merge_mode=self.merge_mode,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Bidirectional:
        config = dict(config)
        layer = serialization.deserialize(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        if backward is not None:
            backward = serialization.deserialize(backward)
        return cls(layer, backward_layer=backward, **config)


def merge(forward: torch.Tensor, backward: torch.Tensor, merge_mode: str | None) -> Any:
    """The two directions' outputs merged as `merge_mode` says (both in input order): one tensor,
    or the pair itself with `merge_mode=None`."""
    if merge_mode == "concat":
        return torch.cat([forward, backward], dim=-1)
    if merge_mode == "sum":
        return forward + backward
    if merge_mode == "mul":
        return forward * backward
    if merge_mode == "ave":
        return (forward + backward) / 2
    return forward, backward
