"""Optimizer updates in one pass over each variable, in the compiled CPU kernels.

Keras's RMSprop step, written as torch operations, is five elementwise passes over a variable's
weights, gradient and velocity plus a temporary the size of the variable. At the large LSTM
shape (half a million weights) those passes took about 1 ms of a 90 ms training step, once the
recurrence had pushed the arrays out of the caches; at the chapter's IMDB model they pass over
the whole 10,000-row embedding table each batch. `rmsprop_update` does the same arithmetic in
one pass (`rmsprop_update` in `cpu.cpp`): the velocity bit for bit as the torch operations
compute it, the weights' step within an ulp (the square root is the exact one, where torch's may
use MKL's).

It runs only where this process has loaded the kernels already (a fused recurrent layer ran):
an optimizer never starts their build, so a model without recurrent layers does not wait for a
compile it does not need.
"""

from __future__ import annotations

import torch

from rnnkit.kernels import cpu_library


def _fusable(*arrays: torch.Tensor) -> bool:
    """Whether the arrays are what the compiled update takes: contiguous CPU float32 or float64
    tensors of one dtype and size."""
    first = arrays[0]
    return first.dtype in (torch.float32, torch.float64) and all(
        array.device.type == "cpu"
        and array.dtype == first.dtype
        and array.is_contiguous()
        and array.numel() == first.numel()
        for array in arrays
    )


def rmsprop_update(
    parameter: torch.Tensor,
    gradient: torch.Tensor,
    velocity: torch.Tensor,
    learning_rate: float,
    rho: float,
    epsilon: float,
) -> bool:
    """Keras's RMSprop step without momentum or centering, in place, where the compiled kernels
    can run it: `velocity = rho * velocity + (1 - rho) * gradient**2`, then
    `parameter -= learning_rate * gradient / sqrt(velocity + epsilon)`.

    Args:
        parameter: the variable, any shape (updated in place; its version counter is bumped,
            as an in-place torch operation's would be, so that autograd and the layers'
            prepared calls see the change).
        gradient: its gradient, the same shape.
        velocity: the running average of squared gradients, the same shape (updated in place).
        learning_rate, rho, epsilon: as `rnnkit.optimizers.RMSprop`'s.

    Returns:
        Whether it ran the step; False (nothing changed) where the kernels are not loaded or
        the arrays are not contiguous CPU float32/float64 arrays of one dtype and size, and the
        caller then runs the torch operations.
    """
    if not (cpu_library.loaded() and _fusable(parameter, gradient, velocity)):
        return False
    cpu_library.library().rnnkit_rmsprop_update(
        parameter.data_ptr(),
        gradient.data_ptr(),
        velocity.data_ptr(),
        parameter.numel(),
        float(learning_rate),  # (a learning-rate schedule may hold a 0-d tensor)
        float(rho),
        float(epsilon),
        torch.get_num_threads(),
        parameter.dtype == torch.float64,
    )
    torch.autograd.graph.increment_version(parameter)
    return True
