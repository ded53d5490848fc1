"""The textbook loop: SimpleRNN, LSTM and GRU as plain NumPy float64 `for` loops.

An RNN is a `for` loop over timesteps that reuses the state computed in the previous
iteration. This module writes that loop out as plainly as possible, so that a learner can read
it top to bottom, and so that every faster path in rnnkit has an oracle to be tested against.
It reproduces Keras 3 exactly (weight layout, gate order, masking, `go_backwards`, dropout
masks) and is itself checked against Keras 3 in `tests/test_reference.py`.

Layout, as Keras stores it (`k` = number of gates: SimpleRNN 1, LSTM 4, GRU 3):

- `inputs` `(batch, timesteps, features)`, or the textbook `(timesteps, features)`;
- `kernel` `(features, k*units)`, `recurrent_kernel` `(units, k*units)`, `bias` `(k*units,)`
  (GRU with `reset_after=True`: `(2, 3*units)`, input bias then recurrent bias);
- gate order: LSTM `i, f, c, o`; GRU `z, r, h`.

Everything runs in float64 and nothing here draws random numbers: dropout masks are passed in.
The activations by name and the checking of the arguments live in `_reference_support.py`, so
that this file is the loops alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit._reference_support import (
    ACTIVATIONS,
    Activation,
    Arguments,
    activation_named,
    prepare,
)

__all__ = ["ACTIVATIONS", "Activation", "gru", "lstm", "simple_rnn"]


def _dropped(vectors: np.ndarray, masks: np.ndarray | None, gates: int) -> list[np.ndarray]:
    """One copy of `vectors` `(batch, n)` per gate, each multiplied by its gate's dropout mask.

    `masks` is None (no dropout), one mask for all gates `(batch, n)`, or one per gate
    `(batch, gates, n)`, which is what Keras 3 uses whenever `recurrent_dropout > 0`.
    """
    if masks is None:
        return [vectors] * gates
    if masks.ndim == 2:
        return [vectors * masks] * gates
    return [vectors * masks[:, gate] for gate in range(gates)]


def _loop(step, args: Arguments, go_backwards: bool, zero_output_for_mask: bool):
    """Run `step(x_t, states) -> new_states` over time; `states[0]` is `h`, the step's output.

    At a masked step (mask False) every state keeps its previous value and the output repeats the
    previous `h` (zeros with `zero_output_for_mask`). Outputs come in processing order.
    Returns `(outputs, *final_states)`, unbatched again if `inputs` was.
    """
    inputs, states, mask = args.inputs, args.states, args.mask
    timesteps = inputs.shape[1]
    order = range(timesteps - 1, -1, -1) if go_backwards else range(timesteps)
    outputs = []
    for t in order:
        new_states = step(inputs[:, t], states)  # x_t: (batch, features)
        if mask is None:
            states = new_states
            output = states[0]
        else:
            keep = mask[:, t, np.newaxis]  # (batch, 1)
            masked_output = np.zeros_like(states[0]) if zero_output_for_mask else states[0]
            output = np.where(keep, new_states[0], masked_output)
            states = tuple(
                np.where(keep, new, old) for new, old in zip(new_states, states, strict=True)
            )
        outputs.append(output)
    outputs = np.stack(outputs, axis=1)  # (batch, timesteps, units)
    if args.unbatched:
        return (outputs[0], *(state[0] for state in states))
    return (outputs, *states)


def simple_rnn(
    inputs: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    activation: str | Activation | None = "tanh",
    mask: np.ndarray | None = None,
    initial_state: np.ndarray | Sequence[np.ndarray] | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    dropout_mask: np.ndarray | None = None,
    recurrent_dropout_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a Keras `SimpleRNN` over a sequence: `h_t = activation(x_t @ K + b + h_{t-1} @ R)`.

    Args:
        inputs: `(batch, timesteps, features)`, or `(timesteps, features)` (then every batch
            axis below disappears too).
        kernel: `(features, units)`.
        recurrent_kernel: `(units, units)`.
        bias: `(units,)`, or None for no bias.
        activation: a Keras activation name (see `ACTIVATIONS`), a callable, or None (linear).
            Defaults to "tanh".
        mask: `(batch, timesteps)` bool, True for real steps. A masked step keeps the state and
            repeats the previous output. Defaults to None (no masking).
        initial_state: `h0` `(batch, units)` (or a one-element list of it). Defaults to zeros.
        go_backwards: process the timesteps last to first; outputs come in that order.
        zero_output_for_mask: output zeros, not the previous output, at masked steps.
        dropout_mask: `(batch, features)` (or `(batch, 1, features)`), multiplies every `x_t`.
        recurrent_dropout_mask: `(batch, units)` (or `(batch, 1, units)`), multiplies `h_{t-1}`
            before the recurrent projection.

    Returns:
        `(outputs, h)`: outputs `(batch, timesteps, units)`, final state `(batch, units)`.

    Example:
        >>> x, k, r = np.ones((2, 5, 3)), np.full((3, 4), 0.1), np.full((4, 4), 0.2)
        >>> outputs, h = simple_rnn(x, k, r)
        >>> outputs.shape, h.shape
        ((2, 5, 4), (2, 4))
    """
    act = activation_named("activation", activation)
    args = prepare(
        inputs,
        kernel,
        recurrent_kernel,
        bias,
        gates=1,
        bias_shape=lambda units: (units,),
        state_names=("h0",),
        mask=mask,
        initial_state=initial_state,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
    )
    kernel, recurrent_kernel = args.kernel, args.recurrent_kernel  # (features, u), (u, u)
    bias = np.zeros(kernel.shape[1]) if args.bias is None else args.bias  # (units,)

    def step(x, states):
        (h_prev,) = states  # (batch, units)
        (x,) = _dropped(x, args.dropout_mask, 1)  # (batch, features)
        (h_rec,) = _dropped(h_prev, args.recurrent_dropout_mask, 1)  # (batch, units)
        h = act(x @ kernel + bias + h_rec @ recurrent_kernel)  # (batch, units)
        return (h,)

    return _loop(step, args, go_backwards, zero_output_for_mask)


def lstm(
    inputs: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    activation: str | Activation | None = "tanh",
    recurrent_activation: str | Activation | None = "sigmoid",
    mask: np.ndarray | None = None,
    initial_state: Sequence[np.ndarray] | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    dropout_mask: np.ndarray | None = None,
    recurrent_dropout_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run a Keras `LSTM` over a sequence (gate order i, f, c, o).

    With `act` = activation and `ra` = recurrent_activation, each step computes, gate by gate,
    `z_g = x_t @ K_g + h_{t-1} @ R_g + b_g` and then::

        i = ra(z_i);  f = ra(z_f);  o = ra(z_o)
        c_t = f * c_{t-1} + i * act(z_c)
        h_t = o * act(c_t)

    Args:
        inputs: `(batch, timesteps, features)`, or `(timesteps, features)` (then every batch
            axis below disappears too).
        kernel: `(features, 4*units)`.
        recurrent_kernel: `(units, 4*units)`.
        bias: `(4*units,)`, or None for no bias.
        activation: Keras name, callable or None (linear). Defaults to "tanh".
        recurrent_activation: Keras name, callable or None. Defaults to "sigmoid".
        mask: `(batch, timesteps)` bool, True for real steps. A masked step keeps `h` and `c`
            and repeats the previous output. Defaults to None.
        initial_state: a pair `(h0, c0)`, each `(batch, units)`. Defaults to zeros.
        go_backwards: process the timesteps last to first; outputs come in that order.
        zero_output_for_mask: output zeros, not the previous output, at masked steps.
        dropout_mask: `(batch, features)` shared by the gates, or `(batch, 4, features)` one per
            gate (Keras's implementation 1); gate g projects `x_t * dropout_mask[:, g]`.
        recurrent_dropout_mask: `(batch, units)` or `(batch, 4, units)`; gate g projects
            `h_{t-1} * recurrent_dropout_mask[:, g]`.

    Returns:
        `(outputs, h, c)`: outputs `(batch, timesteps, units)`, final states `(batch, units)`.

    Example:
        >>> x, k, r = np.ones((2, 5, 3)), np.full((3, 16), 0.1), np.full((4, 16), 0.2)
        >>> [a.shape for a in lstm(x, k, r, initial_state=(np.ones((2, 4)), np.zeros((2, 4))))]
        [(2, 5, 4), (2, 4), (2, 4)]
    """
    act = activation_named("activation", activation)
    rec_act = activation_named("recurrent_activation", recurrent_activation)
    args = prepare(
        inputs,
        kernel,
        recurrent_kernel,
        bias,
        gates=4,
        bias_shape=lambda units: (4 * units,),
        state_names=("h0", "c0"),
        mask=mask,
        initial_state=initial_state,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
    )
    bias = np.zeros(args.kernel.shape[1]) if args.bias is None else args.bias  # (4*units,)
    kernels = np.split(args.kernel, 4, axis=1)  # i, f, c, o: 4 x (features, units)
    recurrent_kernels = np.split(args.recurrent_kernel, 4, axis=1)  # 4 x (units, units)
    biases = np.split(bias, 4)  # 4 x (units,)

    def step(x, states):
        h_prev, c_prev = states  # (batch, units) each
        xs = _dropped(x, args.dropout_mask, 4)  # 4 x (batch, features)
        hs = _dropped(h_prev, args.recurrent_dropout_mask, 4)  # 4 x (batch, units)
        z_i, z_f, z_c, z_o = (
            xs[g] @ kernels[g] + hs[g] @ recurrent_kernels[g] + biases[g] for g in range(4)
        )  # 4 x (batch, units)
        i = rec_act(z_i)
        f = rec_act(z_f)
        c = f * c_prev + i * act(z_c)
        o = rec_act(z_o)
        h = o * act(c)
        return h, c

    return _loop(step, args, go_backwards, zero_output_for_mask)


def gru(
    inputs: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    activation: str | Activation | None = "tanh",
    recurrent_activation: str | Activation | None = "sigmoid",
    reset_after: bool = True,
    mask: np.ndarray | None = None,
    initial_state: np.ndarray | Sequence[np.ndarray] | None = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    dropout_mask: np.ndarray | None = None,
    recurrent_dropout_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a Keras `GRU` over a sequence (gate order z, r, h).

    With `act` = activation, `ra` = recurrent_activation and `x_g = x_t @ K_g + b_in_g`::

        reset_after=True  (bias (2, 3*units): b_in, b_rec):
            z = ra(x_z + h_{t-1} @ R_z + b_rec_z);  r = ra(x_r + h_{t-1} @ R_r + b_rec_r)
            hh = act(x_h + r * (h_{t-1} @ R_h + b_rec_h))
        reset_after=False (bias (3*units,), input side only):
            z = ra(x_z + h_{t-1} @ R_z);  r = ra(x_r + h_{t-1} @ R_r)
            hh = act(x_h + (r * h_{t-1}) @ R_h)
        h_t = z * h_{t-1} + (1 - z) * hh

    Args:
        inputs: `(batch, timesteps, features)`, or `(timesteps, features)` (then every batch
            axis below disappears too).
        kernel: `(features, 3*units)`.
        recurrent_kernel: `(units, 3*units)`.
        bias: `(2, 3*units)` if reset_after else `(3*units,)`; None for no bias.
        activation: Keras name, callable or None (linear). Defaults to "tanh".
        recurrent_activation: Keras name, callable or None. Defaults to "sigmoid".
        reset_after: apply the reset gate after the recurrent projection (Keras 3's default).
        mask: `(batch, timesteps)` bool, True for real steps. A masked step keeps `h` and repeats
            the previous output. Defaults to None.
        initial_state: `h0` `(batch, units)` (or a one-element list of it). Defaults to zeros.
        go_backwards: process the timesteps last to first; outputs come in that order.
        zero_output_for_mask: output zeros, not the previous output, at masked steps.
        dropout_mask: `(batch, features)` or `(batch, 3, features)` (one per gate).
        recurrent_dropout_mask: `(batch, units)` or `(batch, 3, units)`; it multiplies
            `h_{t-1}` inside the projections (`r * h_{t-1}` included), never in the final mix.

    Returns:
        `(outputs, h)`: outputs `(batch, timesteps, units)`, final state `(batch, units)`.

    Example:
        >>> x, k, r = np.ones((2, 5, 3)), np.full((3, 12), 0.1), np.full((4, 12), 0.2)
        >>> [a.shape for a in gru(x, k, r, np.zeros((2, 12)))]
        [(2, 5, 4), (2, 4)]
    """
    act = activation_named("activation", activation)
    rec_act = activation_named("recurrent_activation", recurrent_activation)
    bias_shape = (lambda u: (2, 3 * u)) if reset_after else (lambda u: (3 * u,))
    args = prepare(
        inputs,
        kernel,
        recurrent_kernel,
        bias,
        gates=3,
        bias_shape=bias_shape,
        state_names=("h0",),
        mask=mask,
        initial_state=initial_state,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
    )
    units = args.recurrent_kernel.shape[0]
    bias = np.zeros(bias_shape(units)) if args.bias is None else args.bias
    if reset_after:
        input_bias, recurrent_bias = bias  # (3*units,) each
    else:
        input_bias, recurrent_bias = bias, np.zeros(3 * units)
    kernels = np.split(args.kernel, 3, axis=1)  # z, r, h: 3 x (features, units)
    recurrent_kernels = np.split(args.recurrent_kernel, 3, axis=1)  # 3 x (units, units)
    input_biases, recurrent_biases = np.split(input_bias, 3), np.split(recurrent_bias, 3)

    def step(x, states):
        (h_prev,) = states  # (batch, units)
        xs = _dropped(x, args.dropout_mask, 3)  # 3 x (batch, features)
        hs = _dropped(h_prev, args.recurrent_dropout_mask, 3)  # 3 x (batch, units)
        x_z, x_r, x_h = (xs[g] @ kernels[g] + input_biases[g] for g in range(3))
        if reset_after:
            inner_z, inner_r, inner_h = (
                hs[g] @ recurrent_kernels[g] + recurrent_biases[g] for g in range(3)
            )  # 3 x (batch, units)
            z = rec_act(x_z + inner_z)
            r = rec_act(x_r + inner_r)
            hh = act(x_h + r * inner_h)
        else:
            z = rec_act(x_z + hs[0] @ recurrent_kernels[0])
            r = rec_act(x_r + hs[1] @ recurrent_kernels[1])
            hh = act(x_h + (r * hs[2]) @ recurrent_kernels[2])
        h = z * h_prev + (1 - z) * hh  # the unmasked h_prev
        return (h,)

    return _loop(step, args, go_backwards, zero_output_for_mask)
