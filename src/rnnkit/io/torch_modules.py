"""Convert between `torch.nn.RNN` / `LSTM` / `GRU` and rnnkit's recurrent layers.

The two hold the same numbers in different places: `rnnkit.kernels.torch_ops` (which runs
torch's recurrent operators on a cell's weights) gives the weight layouts and gate orders, and
defines the mapping used here. A torch layer's `bias_ih + bias_hh` is rnnkit's `bias`, except for
GRU, whose bias (2, 3*H) keeps both. `nn.RNN(nonlinearity="tanh" | "relu")` is
`SimpleRNN(activation=...)`.

A multi-layer or bidirectional torch module becomes a stack: each torch layer is one rnnkit
recurrent layer (wrapped in `Bidirectional(merge_mode="concat")` when bidirectional) returning
sequences, with a `Dropout` between layers where torch has `dropout > 0`. rnnkit layers are always
batch-first, whatever the torch module's `batch_first`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rnnkit import activations
from rnnkit.kernels.spec import CellSpec
from rnnkit.kernels.torch_ops import cell_blocker, keras_rows, torch_rows
from rnnkit.layers import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Dropout,
    GRUCell,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
    converters,
    serialization,
)

# Each torch class and its rnnkit layer; each rnnkit cell and its torch class.
_TORCH_TO_RNNKIT = {nn.RNN: SimpleRNN, nn.LSTM: LSTM, nn.GRU: GRU}
_CELL_TO_TORCH = {SimpleRNNCell: nn.RNN, LSTMCell: nn.LSTM, GRUCell: nn.GRU}


# ---------------------------------------------------------------------------- from torch
def _check_torch_module(module: Any) -> None:
    if type(module) not in _TORCH_TO_RNNKIT:
        raise TypeError(
            "from_torch: argument `module` must be a torch.nn.RNN, LSTM or GRU, received "
            f"{type(module).__name__}."
        )
    if getattr(module, "proj_size", 0):
        raise ValueError(
            f"from_torch: LSTM with proj_size={module.proj_size} has no rnnkit equivalent."
        )


def _set_cell_from_torch(cell: Any, module: nn.RNNBase, suffix: str) -> None:
    """Copies torch weights `weight_ih{suffix}`, ... (suffix e.g. `_l0_reverse`) into `cell`."""
    rows = keras_rows(cell.kind(), cell.units)
    weight_ih = getattr(module, f"weight_ih{suffix}").detach()
    weight_hh = getattr(module, f"weight_hh{suffix}").detach()
    with torch.no_grad():
        cell.kernel.copy_(weight_ih[rows].T)
        cell.recurrent_kernel.copy_(weight_hh[rows].T)
        if module.bias:
            bias_ih = getattr(module, f"bias_ih{suffix}").detach()[rows]
            bias_hh = getattr(module, f"bias_hh{suffix}").detach()[rows]
            if isinstance(cell, GRUCell):
                cell.bias.copy_(torch.stack([bias_ih, bias_hh]))
            else:
                cell.bias.copy_(bias_ih + bias_hh)


def from_torch(module: nn.RNNBase, *, return_sequences: bool = True) -> Any:
    """The rnnkit equivalent of a `torch.nn.RNN`, `LSTM` or `GRU`, with its weights.

    One layer gives a `SimpleRNN` / `LSTM` / `GRU` (GRU with `reset_after=True`), wrapped in
    `Bidirectional(merge_mode="concat")` when the module is bidirectional. Several layers give a
    `Sequential` of such layers (each returning sequences into the next), with
    `Dropout(module.dropout)` between them when torch has dropout. The result takes batch-first
    inputs `(batch, timesteps, input_size)` even for `batch_first=False` modules, and returns what
    torch returns as `output`, batch-first: `(batch, timesteps, D*hidden_size)` (D = 2 if
    bidirectional), or with `return_sequences=False` the last layer's final output
    `(batch, D*hidden_size)` (torch's `h_n` of the last layer, directions concatenated).

    Args:
        module: the torch module; `proj_size` must be 0.
        return_sequences: whether the last layer returns every step (default True).

    Raises:
        TypeError: `module` is not a torch.nn.RNN, LSTM or GRU.
        ValueError: an LSTM with `proj_size > 0`.

    Example:
        >>> lstm = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True)
        >>> stack = rnnkit.io.from_torch(lstm).eval()
        >>> x = torch.randn(4, 10, 8)
        >>> torch.allclose(stack(x), lstm(x)[0], atol=1e-5)
        True
    """
    _check_torch_module(module)
    layer_class = _TORCH_TO_RNNKIT[type(module)]
    options: dict[str, Any] = {"use_bias": module.bias, "dtype": module.weight_ih_l0.dtype}
    if isinstance(module, nn.RNN):
        options["activation"] = "relu" if module.nonlinearity == "relu" else "tanh"
    if isinstance(module, nn.GRU):
        options["reset_after"] = True
    directions = 2 if module.bidirectional else 1
    stack: list[Any] = []
    for index in range(module.num_layers):
        last = index == module.num_layers - 1
        layer = layer_class(
            module.hidden_size, return_sequences=return_sequences or not last, **options
        )
        if module.bidirectional:
            layer = Bidirectional(layer, merge_mode="concat")
        features = module.input_size if index == 0 else directions * module.hidden_size
        layer.build((None, None, features))
        layer.built = True
        if module.bidirectional:
            _set_cell_from_torch(layer.forward_layer.cell, module, f"_l{index}")
            _set_cell_from_torch(layer.backward_layer.cell, module, f"_l{index}_reverse")
        else:
            _set_cell_from_torch(layer.cell, module, f"_l{index}")
        if stack and module.dropout > 0:
            stack.append(Dropout(module.dropout))
        stack.append(layer)
    if len(stack) == 1:
        return stack[0]
    model = serialization.model_class("Sequential")(stack)
    model.build((None, None, module.input_size))
    return model


# ------------------------------------------------------------------------------ to torch
def check_cell(spec: CellSpec, owner: str) -> None:
    """Raises a ValueError naming the option of the cell that `torch.nn` cannot express.

    torch.nn runs tanh/relu SimpleRNN, and LSTM/GRU with tanh and sigmoid, GRU with the reset
    gate after the recurrent product only, and no dropout inside the recurrence.
    """
    name = f"{owner} ({spec.name})"
    blocker = cell_blocker(spec)
    if blocker is not None:
        raise ValueError(f"{name}: {blocker}.")
    for option in ("dropout", "recurrent_dropout"):
        if getattr(spec, option) > 0:
            raise ValueError(
                f"{name}: {option}={getattr(spec, option)} has no torch.nn equivalent (torch.nn "
                "applies dropout only between stacked layers)."
            )


def _check_recurrent(layer: Any, owner: str) -> None:
    if not isinstance(layer, RNN) or not layer.built:
        raise ValueError(f"{owner}: expected a built SimpleRNN, LSTM or GRU layer.")
    check_cell(layer.cell_spec(), f"{owner} '{layer.name}'")
    if layer.stateful:
        raise ValueError(
            f"{owner} '{layer.name}': stateful=True has no torch.nn equivalent (pass the "
            "states to the torch module yourself)."
        )


def _directions(layer: Any, owner: str) -> list[RNN]:
    """The recurrent layers of one torch layer: `[layer]`, or forward and backward."""
    if isinstance(layer, Bidirectional):
        if layer.merge_mode != "concat":
            raise ValueError(
                f"{owner} '{layer.name}': merge_mode={layer.merge_mode!r} has no torch.nn "
                "equivalent (torch concatenates the directions)."
            )
        pair = [layer.forward_layer, layer.backward_layer]
    else:
        if isinstance(layer, RNN) and layer.go_backwards:
            raise ValueError(
                f"{owner} '{layer.name}': go_backwards=True has no torch.nn equivalent for a "
                "one-directional layer (flip the time axis of the input instead)."
            )
        pair = [layer]
    for direction in pair:
        _check_recurrent(direction, owner)
    if len(pair) == 2 and (pair[0].go_backwards or kind(pair[0]) != kind(pair[1])):
        raise ValueError(
            f"{owner} '{layer.name}': torch.nn needs a forward layer and a backward copy of it "
            "(same class, units, use_bias and activation)."
        )
    return pair


def kind(layer: RNN) -> tuple:
    """What one torch.nn module shares between all its layers and directions."""
    cell = layer.cell
    return (type(cell), cell.units, cell.use_bias, cell.activation)


def _stack(layer: Any) -> tuple[list[list[RNN]], float]:
    """The torch layers (each a list of directions) of `layer`, and the dropout between them."""
    owner = "to_torch"
    if not isinstance(layer, serialization.model_class("Sequential")):
        return [_directions(layer, owner)], 0.0
    items = layer.layers
    has_dropout = any(isinstance(item, Dropout) for item in items)
    recurrent, between = (items[0::2], items[1::2]) if has_dropout else (items, [])
    rates = {item.rate for item in between if isinstance(item, Dropout)}
    stack = [_directions(item, owner) for item in recurrent if not isinstance(item, Dropout)]
    kinds = {(kind(directions[0]), len(directions)) for directions in stack}
    if (
        len(stack) != len(recurrent)
        or not all(isinstance(item, Dropout) for item in between)
        or len(rates) != (1 if between else 0)
        or len(between) not in (0, len(recurrent) - 1)
        or len(kinds) != 1
    ):
        raise ValueError(
            f"to_torch: Sequential '{layer.name}' must be a stack of recurrent layers of one "
            "kind (same class, units, use_bias, activation and directions), optionally with "
            "the same Dropout between each pair, as torch.nn's num_layers stacks them."
        )
    for directions in stack[:-1]:
        if not directions[0].return_sequences or directions[0].return_state:
            raise ValueError(
                f"to_torch: layer '{directions[0].name}' feeds the next layer, so it needs "
                "return_sequences=True and return_state=False."
            )
    return stack, rates.pop() if rates else 0.0


def torch_module_for(stack: Sequence[Sequence[RNN]], dropout: float = 0.0) -> nn.RNNBase:
    """A batch-first torch.nn module holding the weights of `stack` (from `_stack`)."""
    first = stack[0][0]
    cell = first.cell
    options: dict[str, Any] = {}
    if isinstance(cell, SimpleRNNCell):
        options["nonlinearity"] = "relu" if cell.activation is activations.relu else "tanh"
    module = _CELL_TO_TORCH[type(cell)](
        cell.input_dim,
        cell.units,
        num_layers=len(stack),
        bias=cell.use_bias,
        batch_first=True,
        dropout=dropout,
        bidirectional=len(stack[0]) == 2,
        dtype=cell.kernel.dtype,
        device=cell.kernel.device,
        **options,
    )
    with torch.no_grad():
        for index, directions in enumerate(stack):
            for direction, suffix in zip(directions, ("", "_reverse")):
                _set_torch_from_cell(module, direction.cell_spec(), f"_l{index}{suffix}")
    return module


def _set_torch_from_cell(module: nn.RNNBase, spec: CellSpec, suffix: str) -> None:
    rows = torch_rows(spec.kind, spec.units)
    getattr(module, f"weight_ih{suffix}").copy_(spec.kernel.detach().T[rows])
    getattr(module, f"weight_hh{suffix}").copy_(spec.recurrent_kernel.detach().T[rows])
    if spec.input_bias is not None:
        getattr(module, f"bias_ih{suffix}").copy_(spec.input_bias.detach()[rows])
        target = getattr(module, f"bias_hh{suffix}")
        recurrent_bias = spec.recurrent_bias
        target.copy_(torch.zeros_like(target) if recurrent_bias is None else recurrent_bias[rows])


def to_torch(layer: Any) -> nn.RNNBase:
    """The batch-first `torch.nn.RNN` / `LSTM` / `GRU` equivalent of a built rnnkit layer.

    Accepts a `SimpleRNN` (tanh or relu), `LSTM` or `GRU` (tanh and sigmoid; GRU with
    `reset_after=True`), a `Bidirectional(merge_mode="concat")` of one, or a `Sequential` stack
    of those as `from_torch` makes (one kind and size throughout, optionally the same `Dropout`
    between layers). The torch module returns torch's `(output, h_n)` (LSTM: `(output,
    (h_n, c_n))`): `output` equals the rnnkit output with `return_sequences=True`; with
    `return_sequences=False` the rnnkit output is `output[:, -1]` (one direction) or
    `h_n[-2:]` concatenated (bidirectional). Masks have no equivalent: the torch module
    processes every step.

    Args:
        layer: the rnnkit layer or stack; it must be built (called once, or built).

    Raises:
        ValueError: naming the option that torch.nn cannot express (e.g. GRU
            `reset_after=False`, `recurrent_activation='hard_sigmoid'`, `dropout > 0`,
            `go_backwards=True` on a one-directional layer, `stateful=True`, a merge_mode
            other than "concat").

    Example:
        >>> layer = rnnkit.layers.GRU(16, return_sequences=True)
        >>> layer.build((None, None, 8))
        >>> gru = rnnkit.io.to_torch(layer)   # torch.nn.GRU(8, 16, batch_first=True)
    """
    stack, dropout = _stack(layer)
    return torch_module_for(stack, dropout)


converters.register("torch", to_torch)
