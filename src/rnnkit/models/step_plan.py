"""A model's one step at batch 1, prepared once: the stateful sampler's character step.

A stateful model run one character per call (`rnnkit.tasks.charlm.StatefulPredictor`) pays
each call's general path around a few microseconds of arithmetic: Sequential's forward, each
layer's checks and conversions, torch's operator dispatch for the lookup, the product and the
softmax. A `StepPlan` does the same arithmetic with everything else settled once, for a
`Sequential` of

    Embedding → one or more forward recurrent layers (fused CPU kernels) → Dense

(softmax or linear) on the CPU: each step copies the character's embedding row into the first
layer's input buffer, runs each layer's compiled step on preallocated input, state and output
buffers (`rnnkit.kernels.inference_call.InferenceCall.bind`), and the Dense product into a
preallocated buffer. `blocker` names what keeps a model from having a plan (its caller then runs
the model itself).

The plan packs the weights once and reads the Embedding and Dense weights in place: it is for a
private copy of a model whose weights do not change while the plan lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rnnkit import activations, layers
from rnnkit.kernels import fused
from rnnkit.kernels.inference_call import InferenceCall
from rnnkit.kernels.spec import CellKind, Recurrence
from rnnkit.models.sequential import Sequential


def _recurrent_blocker(layer: Any, last: bool) -> str | None:
    if not isinstance(layer, layers.RNN):
        return f"layer '{layer.name}' is a {type(layer).__name__}, not a recurrent layer"
    if layer.go_backwards:
        return f"layer '{layer.name}' reads the sequence backwards"
    if layer.return_state:
        return f"layer '{layer.name}' returns its states"
    if layer.use_fused is False:
        return f"layer '{layer.name}' has use_fused=False"
    if layer.return_sequences == last:
        wanted = "without" if last else "with"
        return f"layer '{layer.name}' is not {wanted} return_sequences"
    return fused.blocker(Recurrence(layer.cell_spec()))


def blocker(model: Any) -> str | None:
    """None if `model` can run as a `StepPlan`, else why not.

    Args:
        model: a built model in eval mode (the plan computes what inference computes).
    """
    if not isinstance(model, Sequential) or model.input_tensor is not None:
        return "the model is not a Sequential without an Input"
    if model.training:
        return "the model is in training mode"
    stack = model.layers
    if len(stack) < 3:
        return "the model has fewer than three layers"
    embedding, *recurrent, dense = stack
    if not isinstance(embedding, layers.Embedding) or not embedding.built:
        return "the first layer is not a built Embedding"
    if embedding.mask_zero or embedding.input_length is not None:
        return f"Embedding '{embedding.name}' masks or checks its input length"
    for position, layer in enumerate(recurrent):
        reason = _recurrent_blocker(layer, last=position == len(recurrent) - 1)
        if reason is not None:
            return reason
    if not isinstance(dense, layers.Dense):
        return "the last layer is not a Dense"
    if dense.activation not in (activations.softmax, activations.linear):
        return f"Dense '{dense.name}' has an activation other than softmax or linear"
    dtypes = {weight.dtype for weight in model.parameters()}
    devices = {weight.device.type for weight in model.parameters()}
    if len(dtypes) > 1 or devices != {"cpu"}:
        return "the weights are not all of one dtype on the CPU"
    return None


class _LayerStep:
    """One recurrent layer's compiled step with its buffers: two sets of states, each read
    by one step while the other is written, so steps alternate between two bound runs."""

    def __init__(self, layer: Any, inputs: torch.Tensor) -> None:
        spec = layer.cell_spec()
        count = 2 if spec.kind == CellKind.LSTM else 1
        dtype = inputs.dtype
        self.states = [
            [torch.zeros(1, spec.units, dtype=dtype) for _ in range(count)] for _ in range(2)
        ]
        self.output = torch.zeros(1, spec.units, dtype=dtype)
        call = InferenceCall(Recurrence(spec, return_sequences=False), inputs, self.states[0])
        self.runs = [
            call.bind(inputs, self.states[0], self.output, self.states[1]),
            call.bind(inputs, self.states[1], self.output, self.states[0]),
        ]


class StepPlan:
    """A model's next-character step at batch 1 with every buffer preallocated (see the
    module doc); it carries the recurrent states from step to step, from zeros.

    Args:
        model: a model `blocker` accepts.

    Attributes:
        vocabulary_size: the Embedding's rows.
        softmax: whether the Dense's activation is softmax (else linear).
        logits: `(vocabulary_size,)` of the weights' dtype, the Dense's output before its
            activation after the last step; the plan rewrites it in place at every step.

    Raises:
        ValueError: `blocker` finds a reason.

    Example:
        >>> plan = StepPlan(charlm.stateful_copy(model))  # or None from `prepare(copy)`
        >>> probabilities = plan.feed([4, 8, 15])  # (vocabulary_size,) float64
        >>> plan.step(16)                          # plan.logits: the next character's
    """

    def __init__(self, model: Any) -> None:
        reason = blocker(model)
        if reason is not None:
            raise ValueError(f"Model '{model.name}' cannot run as a step plan: {reason}.")
        embedding, *recurrent, dense = model.layers
        self.vocabulary_size = embedding.input_dim
        self.softmax = dense.activation is activations.softmax
        dtype = embedding.embeddings.dtype
        with torch.no_grad():
            inputs = torch.zeros(1, 1, embedding.output_dim, dtype=dtype)
            self._table = embedding.embeddings.detach().numpy()
            self._row = inputs.numpy().reshape(-1)  # the first layer's input, written per step
            self._layers = []
            for layer in recurrent:
                step = _LayerStep(layer, inputs)
                self._layers.append(step)
                inputs = step.output.view(1, 1, -1)  # the next layer's input, the same memory
        self._runs = [[step.runs[parity] for step in self._layers] for parity in (0, 1)]
        self._parity = 0
        self._hidden = self._layers[-1].output.numpy()  # (1, units)
        self._kernel = dense.kernel.detach().numpy()
        self._bias = None if dense.bias is None else dense.bias.detach().numpy()
        self._logits = np.zeros((1, self.vocabulary_size), dtype=self._kernel.dtype)
        self.logits = self._logits[0]

    def reset(self) -> None:
        """Zeroes the states (as before the first step) and the logits."""
        for step in self._layers:
            for states in step.states:
                for state in states:
                    state.zero_()
        self._parity = 0
        self._logits.fill(0)

    def step(self, index: int) -> None:
        """Runs one character `index` (an int in `[0, vocabulary_size)`, unchecked: the
        sampler's own draws) through the model, updating the states and `logits`."""
        self._row[:] = self._table[index]
        parity = self._parity
        for run in self._runs[parity]:
            run()
        self._parity = 1 - parity
        np.matmul(self._hidden, self._kernel, out=self._logits)
        if self._bias is not None:
            self._logits += self._bias

    def feed(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Runs `ids` one step each, continuing from the steps before.

        Args:
            ids: at least one character id, each in `[0, vocabulary_size)`.

        Returns:
            `(vocabulary_size,)` float64: the model's output after the last id (the softmax of
            `logits`, or `logits` for a linear Dense).

        Raises:
            ValueError: `ids` is empty, not one-dimensional integers, or out of range.
        """
        array = np.asarray(ids)
        if array.ndim != 1 or not len(array) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                "`ids` must be a non-empty sequence of int character ids; received "
                f"{type(ids).__name__} of shape {array.shape} and dtype {array.dtype}."
            )
        if array.min() < 0 or array.max() >= self.vocabulary_size:
            raise ValueError(
                f"`ids` must lie in [0, {self.vocabulary_size}); received ids from "
                f"{array.min()} to {array.max()}."
            )
        for index in array.tolist():
            self.step(index)
        return self.outputs()

    def outputs(self) -> np.ndarray:
        """`(vocabulary_size,)` float64: the model's output after the last step."""
        logits = self.logits.astype(np.float64)
        if not self.softmax:
            return logits
        exponentials = np.exp(logits - logits.max())
        return exponentials / exponentials.sum()


def prepare(model: Any) -> StepPlan | None:
    """A `StepPlan` of `model`, or None where `blocker` finds a reason."""
    return StepPlan(model) if blocker(model) is None else None
