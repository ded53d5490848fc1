"""The Embedding lookup's `index_add_` gradient: equal to `F.embedding`'s to the bit (repeated
ids, any id dtype and shape, float32 and float64, any thread count), correct by gradcheck, and
torch's own path wherever the fast one does not apply."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from rnnkit.layers.embedding import Embedding
from rnnkit.layers.embedding_lookup import embedding_lookup


def table_gradients(ids: torch.Tensor, table: torch.Tensor, seed: int = 0):
    """The table's gradient through `F.embedding` and through `embedding_lookup`, for the same
    random output gradient."""
    generator = torch.Generator().manual_seed(seed)
    upstream = torch.randn((*ids.shape, table.shape[1]), generator=generator, dtype=table.dtype)
    (torch_gradient,) = torch.autograd.grad(F.embedding(ids.long(), table), table, upstream)
    (ours,) = torch.autograd.grad(embedding_lookup(ids, table), table, upstream)
    return torch_gradient, ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_gradient_equals_torchs_to_the_bit_with_repeated_ids(dtype, threads):
    """Each id repeated hundreds of times: the sums run in the same order as torch's, so not a
    bit differs, whatever the number of threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        table = torch.randn(5000, 32, dtype=dtype, requires_grad=True)
        ids = torch.randint(0, 60, (128, 500))  # about 1000 repeats of each id
        ids[:, -100:] = 0  # padding, as Embedding(mask_zero=True) sees it
        torch_gradient, ours = table_gradients(ids, table)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(ours, torch_gradient)
    assert ours[60:].abs().sum() == 0 and ours[0].abs().sum() > 0


@pytest.mark.parametrize("id_dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4), (0, 4)])
def test_any_integer_dtype_and_shape(id_dtype, shape):
    table = torch.randn(20, 3, requires_grad=True)
    ids = torch.randint(0, 20, shape, dtype=id_dtype)
    output = embedding_lookup(ids, table)
    assert output.shape == (*shape, 3)
    assert torch.equal(output, F.embedding(ids.long(), table))
    torch_gradient, ours = table_gradients(ids, table)
    assert torch.equal(ours, torch_gradient)


def test_gradcheck_in_float64():
    table = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 3, 3, 8], [3, 0, 1, 3]])
    assert embedding_lookup(ids, table).grad_fn.name() == "_IndexAddEmbeddingBackward"
    assert torch.autograd.gradcheck(lambda weights: embedding_lookup(ids, weights), (table,))
    assert torch.autograd.gradgradcheck(lambda weights: embedding_lookup(ids, weights), (table,))


def test_layer_gradient_equals_torchs_with_mask_zero():
    layer = Embedding(50, 6, mask_zero=True)
    ids = torch.tensor([[4, 9, 4, 0, 0], [9, 9, 1, 0, 0]])
    outputs = layer(ids)
    assert outputs.grad_fn.name() == "_IndexAddEmbeddingBackward"
    upstream = torch.randn(outputs.shape)
    (ours,) = torch.autograd.grad(outputs, layer.embeddings, upstream)
    expected = F.embedding(ids, layer.embeddings)
    (torch_gradient,) = torch.autograd.grad(expected, layer.embeddings, upstream)
    assert torch.equal(outputs, expected) and torch.equal(ours, torch_gradient)
    assert ours[0].abs().sum() > 0  # Keras's mask_zero masks later layers, not this gradient


def test_torchs_path_where_the_fast_one_does_not_apply():
    """No gradient needed, a bfloat16 table (torch's sums round differently there), a table on
    another device (CUDA's own backward is deterministic, index_add_ there is not), and tracing
    for exporters: a plain embedding op."""
    ids = torch.tensor([1, 2, 2])
    table = torch.randn(4, 2, requires_grad=True)
    with torch.no_grad():
        assert embedding_lookup(ids, table).grad_fn is None
    assert embedding_lookup(ids, table.detach()).grad_fn is None
    half_table = torch.randn(4, 2, dtype=torch.bfloat16, requires_grad=True)
    assert embedding_lookup(ids, half_table).grad_fn.name() == "EmbeddingBackward0"
    meta_table = torch.empty(4, 2, device="meta", requires_grad=True)
    assert embedding_lookup(ids.to("meta"), meta_table).grad_fn.name() == "EmbeddingBackward0"
    with warnings.catch_warnings():  # torch.jit.trace is deprecated, but ONNX export traces
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(lambda weights: embedding_lookup(ids, weights), (table,))
    assert "aten::embedding" in str(traced.graph)
    assert "PythonOp" not in str(traced.graph)
