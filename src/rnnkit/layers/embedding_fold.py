"""An `Embedding` feeding a recurrent layer directly, run as one folded call.

Step t's input product of the recurrent layer, `x_t @ kernel + bias` with `x_t` the Embedding's
row of id `ids[b, t]`, is that id's row of the table `embeddings @ kernel + bias`: a model
that runs the pair folded (`Sequential` and `Model` do) forms the table once per batch and the fused
kernel reads its rows (`rnnkit.kernels.folded`, which says what that saves). It is an
execution strategy only: the model, its weights, configs and files are those of the two
layers; results differ from the unfolded path's in the last bits (float sums in another
order).

`call_folded` runs the pair folded where that computes the same thing faster, and otherwise
returns None (the caller then calls the layers one after the other). A functional `Model`
defers the Embedding's calls that `deferrable_calls` finds (`Deferred`) to the recurrent layer
that reads them (`call_deferred`). The pair folds where:

- the layers are a plain `Embedding` and a built-in recurrent layer (`SimpleRNN`, `LSTM`,
  `GRU`, or `RNN` of one of their cells; or a `Bidirectional` of those, each direction folded
  on its own), both built, of one dtype, with no module hooks
  (which would miss the call) and no activity regularizer on the Embedding (whose output the
  fold never forms);
- the ids are an integer `(batch, timesteps)` tensor of at least `MIN_IDS` ids and at least as
  many as the vocabulary (below the one, the fold's fixed cost per call outweighs what it
  saves, and small calls keep the recurrent layer's small-call path; below the other, the table
  costs more than the products it saves);
- the recurrent layer would take the fused CPU path, with no input dropout in this call
  (dropout masks x_t before the kernel's product).

The Embedding's checks of the ids and its mask (`mask_zero`) are the same as in its own call.
Without autograd (inference, frozen weights) the table is kept from call to call while the
embeddings, the kernel and the bias are unchanged (the same tensors, none changed in place:
`set_weights`, `load_weights` and optimizer steps bump a tensor's version), as
`rnnkit.layers.small_call` watches weights.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import torch

from rnnkit.kernels.folded import input_table
from rnnkit.kernels.select import select_folded
from rnnkit.kernels.spec import Recurrence
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.embedding import Embedding
from rnnkit.layers.graph import call_with_mask
from rnnkit.layers.rnn import RNN
from rnnkit.layers.symbolic import Node, SymbolicTensor

# The fewest ids a folded call takes (see the module's docstring; measured in
# benchmarks/README.md, "An Embedding folded into the recurrent layer").
MIN_IDS = 1024


def call_folded(
    embedding: Any, recurrent: Any, ids: Any, training: bool | None
) -> tuple[Any, Any] | None:
    """`recurrent(embedding(ids))` run folded, with its output mask, or None where the pair
    does not fold for this call (see the module's docstring).

    Args:
        embedding: the first layer (any module: only an `Embedding` folds).
        recurrent: the layer it feeds.
        ids: the first layer's inputs.
        training: the call's training flag (None: each layer's mode).

    Returns:
        `(output, output_mask)` as calling the two layers in turn gives them, or None.

    Raises:
        ValueError: ids the Embedding rejects (out of range, wrong `input_length`), a mask or
            carried states the recurrent layer rejects, as their own calls raise.
    """
    # First what rules out small calls (a generated character's), in a few hundred ns.
    shape = getattr(ids, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] * shape[1] < MIN_IDS:
        return None
    if isinstance(recurrent, Bidirectional):
        return _call_folded_bidirectional(embedding, recurrent, ids, training)
    if not _pair_folds(embedding, recurrent):
        return None
    ids = embedding.convert_input(ids)  # raises as the Embedding's own call does
    batch, timesteps = ids.shape
    if batch * timesteps < embedding.input_dim:
        return None
    spec = recurrent.cell_spec()
    if spec.kind is None or spec.dtype != embedding.embeddings.dtype:
        return None
    if recurrent.is_training(training) and getattr(recurrent.cell, "dropout", 0.0) > 0:
        return None
    # Whether the folded kernel runs the call is known before its dropout masks are drawn (the
    # call draws them once, folded or not: the random stream stays that of the unfolded path).
    if select_folded(Recurrence(spec), ids, use_fused=recurrent.use_fused) is None:
        return None
    embedding.check_ids(ids)
    mask = embedding.compute_mask(ids)
    recurrence, states = recurrent.describe_call(batch, timesteps, mask, None, training)
    kernel = select_folded(recurrence, ids, use_fused=recurrent.use_fused)
    table = _input_table(embedding, recurrent, recurrence)
    output = recurrent.finish_call(kernel(recurrence, ids, table, states))
    embedding._record_activity_losses(None)  # none: checked above; clears the last call's
    recurrent._record_activity_losses(output)
    return output, recurrent.compute_mask(ids, mask)


def _call_folded_bidirectional(
    embedding: Any, bidirectional: Bidirectional, ids: Any, training: bool | None
) -> tuple[Any, Any] | None:
    """`call_folded` for a `Bidirectional` layer: each direction's layer folded with the
    Embedding, then merged as the layer merges them."""
    if type(bidirectional) is not Bidirectional or _has_hooks(bidirectional):
        return None
    forward = call_folded(embedding, bidirectional.forward_layer, ids, training)
    if forward is None:
        return None
    # The directions' dropout masks are drawn in the layer's order: the forward one first.
    backward = call_folded(embedding, bidirectional.backward_layer, ids, training)
    if backward is None:  # a backward layer configured apart (`backward_layer=`) may not fold
        embedded, mask = call_with_mask(embedding, ids, None)
        backward = call_with_mask(
            bidirectional.backward_layer, embedded, mask, kwargs={"training": training}
        )
    output = bidirectional.combine(forward[0], backward[0])
    bidirectional._record_activity_losses(output)
    return output, bidirectional.compute_mask(ids, embedding.compute_mask(ids))


class Deferred(NamedTuple):
    """An Embedding's call in a graph, left for the recurrent layer that reads its output."""

    embedding: Embedding
    ids: Any


def deferrable_calls(nodes: list[Node], outputs: list[SymbolicTensor]) -> list[Node]:
    """The calls in a graph of an `Embedding` whose output is no graph output and is read by
    one call only: a recurrent layer's, as its one argument (no mask or initial state). A
    model may run those as `Deferred` and `call_deferred`.

    Args:
        nodes: the graph's calls.
        outputs: the graph's outputs.
    """
    readers: dict[int, list[Node]] = {}
    for node in nodes:
        for tensor in node.symbolic_inputs():
            readers.setdefault(id(tensor), []).append(node)
    graph_outputs = {id(tensor) for tensor in outputs}
    deferrable = []
    for node in nodes:
        if type(node.layer) is not Embedding or len(node.outputs) != 1:
            continue
        output = node.outputs[0]
        reading = readers.get(id(output), [])
        if id(output) in graph_outputs or len(reading) != 1:
            continue
        reader = reading[0]
        recurrent = isinstance(reader.layer, (RNN, Bidirectional))
        if recurrent and reader.args == (output,) and not reader.kwargs:
            deferrable.append(node)
    return deferrable


def call_deferred(
    deferred: Deferred, recurrent: Any, training: bool | None, kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    """`recurrent(deferred.embedding(deferred.ids), **kwargs)` with its output mask: folded
    where `call_folded` runs the pair, else the two calls in turn.

    Args:
        deferred: the Embedding's call.
        recurrent: the recurrent layer that reads its output.
        training: the call's training flag (None: each layer's mode).
        kwargs: the recurrent layer's call arguments (`training` at most).
    """
    folded = call_folded(deferred.embedding, recurrent, deferred.ids, training)
    if folded is not None:
        return folded
    embedded, mask = call_with_mask(deferred.embedding, deferred.ids, None)
    return call_with_mask(recurrent, embedded, mask, kwargs=kwargs)


def _pair_folds(embedding: Any, recurrent: Any) -> bool:
    """Whether the two layers can run folded at all (the call's conditions aside)."""
    return (
        type(embedding) is Embedding
        and isinstance(recurrent, RNN)
        # A subclass's own call would be skipped.
        and type(recurrent).forward is RNN.forward
        and embedding.built
        and recurrent.built
        and embedding.activity_regularizer is None
        and recurrent._input_features == embedding.output_dim
        and not _has_hooks(embedding)
        and not _has_hooks(recurrent)
    )


def _has_hooks(module: torch.nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


class _CachedTable(NamedTuple):
    key: tuple[Any, ...]
    table: torch.Tensor
    weights: tuple[torch.Tensor, ...]  # referenced, so that their addresses stay theirs


# Each recurrent layer's last table formed without autograd, and what it was formed from.
_tables: weakref.WeakKeyDictionary[RNN, _CachedTable] = weakref.WeakKeyDictionary()


def _input_table(embedding: Embedding, recurrent: RNN, recurrence: Recurrence) -> torch.Tensor:
    """The table of every id's input product: formed with autograd where a weight needs a
    gradient, else kept from call to call while its weights are unchanged."""
    spec = recurrence.cell
    weights = tuple(
        w for w in (embedding.embeddings, spec.kernel, spec.input_bias) if w is not None
    )
    if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
        return input_table(embedding.embeddings, spec.kernel, spec.input_bias)
    key = tuple((w.data_ptr(), w._version, w.dtype, w.device, w.shape) for w in weights)
    cached = _tables.get(recurrent)
    if cached is None or cached.key != key:
        with torch.no_grad():
            table = input_table(embedding.embeddings, spec.kernel, spec.input_bias)
        cached = _CachedTable(key, table, weights)
        _tables[recurrent] = cached
    return cached.table
