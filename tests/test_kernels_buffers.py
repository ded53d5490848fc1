"""The fused kernels' buffer pool (rnnkit.kernels.buffers)."""

from __future__ import annotations

import torch

from rnnkit.kernels.buffers import BufferPool
from rnnkit.layers import LSTM


def test_a_buffer_is_reused_only_once_nothing_refers_to_it():
    pool = BufferPool()
    first = pool.empty((3, 4), torch.float32)
    pointer = first.data_ptr()
    second = pool.empty((3, 4), torch.float32)
    assert second.data_ptr() != pointer  # `first` is still alive
    view = first[1:]
    del first
    assert pool.empty((3, 4), torch.float32).data_ptr() not in (pointer, second.data_ptr())
    del view
    assert pool.empty((3, 4), torch.float32).data_ptr() == pointer
    assert pool.empty((4, 3), torch.float32).data_ptr() != pointer  # another shape
    assert pool.empty((3, 4), torch.float64).dtype == torch.float64


def test_idle_buffers_beyond_the_limit_are_dropped_oldest_first():
    pool = BufferPool(idle_limit_bytes=1000)
    kept = pool.empty((100,), torch.float32)  # in use: never dropped
    for size in (150, 200):  # idle at once: 600 + 800 bytes
        pool.empty((size,), torch.float32)
    assert pool.idle_bytes() == 4 * (150 + 200)  # within the limit when each was made
    pool.empty((50,), torch.float32)  # making it drops the oldest idle buffer (150)
    assert pool.idle_bytes() == 4 * (200 + 50)
    assert pool.empty((100,), torch.float32).data_ptr() != kept.data_ptr()


def test_gradients_are_right_when_the_graph_is_kept_and_other_calls_run_between():
    torch.manual_seed(0)
    layer = LSTM(4, use_fused=True, return_sequences=True)
    x = torch.randn(3, 6, 2)
    loss = layer(x).square().sum()
    loss.backward(retain_graph=True)
    first = [p.grad.clone() for p in layer.parameters()]
    for p in layer.parameters():
        p.grad = None
    layer(torch.randn(3, 6, 2)).sum().backward()  # would reuse freed buffers of the same shape
    for p in layer.parameters():
        p.grad = None
    loss.backward()
    for want, p in zip(first, layer.parameters()):
        torch.testing.assert_close(p.grad, want, rtol=0, atol=0)
