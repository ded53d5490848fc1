"""Gradient flow through time: how much of the loss's gradient reaches each timestep.

A SimpleRNN "forgets" because the gradient of the loss with respect to an early hidden state is
a product of many step Jacobians, and shrinks geometrically with the distance from the loss.
`gradient_flow` measures that on your own model and batch:

    flow = rk.diagnostics.gradient_flow(model, x, y)
    flow["simple_rnn"]                  # (T,) array: ‖∂L/∂h_t‖ for t = 1..T
    flow.spectral_radius["simple_rnn"]  # {"h": 0.98}: of each recurrent weight block

How it measures: during one forward call, each recurrent cell's step is wrapped on the instance
so that it records the hidden state h_t it returns; `torch.autograd.grad` then gives ∂L/∂h_t,
the total derivative through every later use (the next step and the outputs). The plain loop
runs (fused kernels do not expose the steps), in inference mode (no dropout); the model's
modes, kernel choices and carried states are put back afterwards. Parameter gradients
(`.grad`) are not touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.layers.base import Layer
from rnnkit.layers.rnn import RNN
from rnnkit.layers.stacked_rnn_cells import StackedRNNCells


@dataclass(eq=False)
class GradientFlow(Mapping[str, np.ndarray]):
    """What `gradient_flow` measured; reads as a mapping `{name: norms (T,)}`.

    Attributes:
        norms: `{name: array (T,)}`, float64: entry `t - 1` is ‖∂L/∂h_t‖, the L2 norm over the
            units of the gradient of the batch loss with respect to the hidden state at input
            timestep t, averaged over the samples for which step t is real (not masked); NaN
            where every sample is masked. Always in input-time order, also for layers that run
            backwards (`go_backwards`, the backward half of `Bidirectional`).
        spectral_radius: `{name: {gate: radius}}`: the largest |eigenvalue| of each square
            block of the recurrent kernel (SimpleRNN: `{"h": ...}`; LSTM: `i, f, c, o`;
            GRU: `z, r, h`). Cells without a `recurrent_kernel` have no entry.
        go_backwards: `{name: bool}`: whether the layer processes the sequence last step first
            (its loss-nearest step is then t = 1).
        loss: the value of the loss on the batch.

    Names: the layer's name; inside a wrapper, `wrapper/layer` (e.g.
    `"bidirectional_lstm/forward_lstm"`); for `RNN(StackedRNNCells)`, one entry per cell,
    `layer/cell`; a layer called twice in one forward pass gets `"name (call 2)"`.
    """

    norms: dict[str, np.ndarray]
    spectral_radius: dict[str, dict[str, float]]
    go_backwards: dict[str, bool]
    loss: float

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.norms:
            raise KeyError(f"no recurrent layer named {name!r}; measured: {list(self.norms)}.")
        return self.norms[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.norms)

    def __len__(self) -> int:
        return len(self.norms)


class _Recorder:
    """Records, for one recurrent layer, the mask of each call and every cell's h_t."""

    def __init__(self, key: str, layer: RNN) -> None:
        self.layer = layer
        if isinstance(layer.cell, StackedRNNCells):
            self.cells = {
                f"{key}/{getattr(cell, 'name', index)}": cell
                for index, cell in enumerate(layer.cell.cells)
            }
        else:
            self.cells = {key: layer.cell}
        self.calls: list[tuple[torch.Tensor | None, dict[str, list[torch.Tensor]]]] = []

    def before_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("mask", args[1] if len(args) > 1 else None)
        if mask is not None:
            mask = torch.as_tensor(mask).bool().cpu()
        self.calls.append((mask, {name: [] for name in self.cells}))

    def record(self, name: str, new_states: Any) -> None:
        states = new_states if isinstance(new_states, (list, tuple)) else [new_states]
        self.calls[-1][1][name].append(states[0])  # h_t: the first state (LSTM: h, not c)


@contextlib.contextmanager
def _wrapped_step(cell: nn.Module, record: Callable[[Any], None]) -> Iterator[None]:
    """Wraps the method that computes `cell`'s step (built-in cells: `step`, used by the loop
    and by `forward`; any other cell: `forward`) so that it passes its new states to `record`."""
    attribute = "step" if hasattr(cell, "project_inputs") and hasattr(cell, "step") else "forward"
    original = getattr(cell, attribute)
    shadowed = attribute in cell.__dict__

    def recording_step(*args: Any, **kwargs: Any) -> Any:
        output, new_states = original(*args, **kwargs)
        record(new_states)
        return output, new_states

    setattr(cell, attribute, recording_step)
    try:
        yield
    finally:
        if shadowed:
            setattr(cell, attribute, original)
        else:
            delattr(cell, attribute)


@contextlib.contextmanager
def _recording(recorders: list[_Recorder]) -> Iterator[None]:
    """Records every step of every layer, forcing the loop; puts kernels and states back."""
    with contextlib.ExitStack() as stack:
        for recorder in recorders:
            layer = recorder.layer
            saved = (layer.use_fused, layer._states)
            stack.callback(_restore_layer, layer, *saved)
            layer.use_fused = False
            hook = layer.register_forward_pre_hook(recorder.before_call, with_kwargs=True)
            stack.callback(hook.remove)
            for name, cell in recorder.cells.items():
                record = _record_into(recorder, name)
                stack.enter_context(_wrapped_step(cell, record))
        yield


def _record_into(recorder: _Recorder, name: str) -> Callable[[Any], None]:
    return lambda new_states: recorder.record(name, new_states)


def _restore_layer(layer: RNN, use_fused: str | bool, states: Any) -> None:
    layer.use_fused = use_fused
    layer._states = states


@contextlib.contextmanager
def _inference_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode (no dropout); each one's own mode restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _recurrent_layers(module: nn.Module, prefix: tuple[str, ...] = ()) -> list[tuple[str, RNN]]:
    """`(name, layer)` for every recurrent layer under `module`, in registration order."""
    if isinstance(module, RNN):
        return [("/".join((*prefix, module.name)), module)]
    found = []
    for child in module.children():
        wrapper = isinstance(child, Layer) and not isinstance(child, RNN)
        found.extend(_recurrent_layers(child, (*prefix, child.name) if wrapper else prefix))
    return found


def _resolve_loss(model: nn.Module, loss: Any) -> Callable[[Any, Any], torch.Tensor]:
    from rnnkit.training import losses

    if loss is not None:
        return losses.get(loss)
    compiled = getattr(getattr(model, "compiled", None), "loss", None)
    if compiled is None:
        raise ValueError(
            "gradient_flow: argument `loss` is needed when the model is not compiled with a "
            "loss; expected a loss name such as 'mse' or a callable (y_true, y_pred) -> scalar "
            "tensor, received None."
        )
    return compiled


def _as_input(value: Any, dtype: torch.dtype) -> Any:
    """Arrays become tensors (floating ones in the model's float dtype); lists stay lists."""
    if isinstance(value, (list, tuple)):
        return [_as_input(item, dtype) for item in value]
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def _float_dtype(model: nn.Module) -> torch.dtype:
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    configured = getattr(model, "_configured_dtype", None)
    return (configured() if configured else None) or torch.get_default_dtype()


def _mean_over_real_samples(norms: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    """`norms (T, batch)` → `(T,)`: mean over the samples whose step t is real (NaN if none)."""
    if mask is None:
        return norms.mean(dim=1).numpy()
    real = mask.transpose(0, 1).to(norms.dtype)  # (T, batch)
    counts = real.sum(dim=1)
    means = (norms * real).sum(dim=1) / counts.clamp(min=1)
    return torch.where(counts > 0, means, torch.nan).numpy()


def _spectral_radius(cell: nn.Module) -> dict[str, float] | None:
    """Largest |eigenvalue| of each square `(units, units)` block of the recurrent kernel."""
    kernel = getattr(cell, "recurrent_kernel", None)
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2:
        return None
    units, width = kernel.shape
    if width % units:
        return None
    gates = width // units
    names = getattr(cell, "gate_names", ())
    names = names if len(names) == gates else [str(gate) for gate in range(gates)]
    kernel = kernel.detach().cpu().double()
    if not torch.isfinite(kernel).all():
        return dict.fromkeys(names, float("nan"))
    return {
        name: float(torch.linalg.eigvals(kernel[:, g * units : (g + 1) * units]).abs().max())
        for g, name in enumerate(names)
    }


def gradient_flow(model: nn.Module, x: Any, y: Any, loss: Any = None) -> GradientFlow:
    """Measures ‖∂L/∂h_t‖ at every timestep of every recurrent layer, for one batch.

    Works for `SimpleRNN`, `LSTM`, `GRU`, `RNN` with any cell (stacked cells: one entry per
    cell), layers inside `Bidirectional` (one entry per direction), several recurrent layers in
    one model, and masks (masked steps are left out of the batch mean). The model runs once, in
    inference mode, through the plain loop; nothing about it changes.

    Args:
        model: an rnnkit model or any `torch.nn.Module` containing recurrent layers.
        x: one batch of inputs `(batch, timesteps, ...)` (tensor, NumPy array, or a list of
            them for a model with several inputs).
        y: the targets for `x`.
        loss: a loss name ("mse", ...), loss object or callable `(y_true, y_pred) -> scalar
            tensor`; default None: the model's compiled loss.

    Returns:
        A `GradientFlow`: `flow[name]` is the `(T,)` float64 array of ‖∂L/∂h_t‖, t = 1..T in
        input-time order; `flow.spectral_radius[name]` the radius of each recurrent block.

    Raises:
        ValueError: no loss (uncompiled model and `loss=None`), no recurrent layer in `model`,
            or hidden states that do not depend on any trainable weight or input.

    Example:
        >>> x, y = rk.datasets.adding_problem(64, timesteps=100, seed=0)
        >>> model.compile(optimizer="adam", loss="mse")
        >>> flow = rk.diagnostics.gradient_flow(model, x, y)
        >>> flow["simple_rnn"][0] / flow["simple_rnn"][-1]   # tiny: the gradient vanished
    """
    loss_fn = _resolve_loss(model, loss)
    recorders = [_Recorder(key, layer) for key, layer in _recurrent_layers(model)]
    if not recorders:
        raise ValueError(
            "gradient_flow: argument `model` must contain a recurrent layer (SimpleRNN, LSTM, "
            f"GRU, RNN or Bidirectional), received {type(model).__name__} without one."
        )
    with torch.enable_grad(), _inference_mode(model), _recording(recorders):
        y_pred = model(_as_input(x, _float_dtype(model)))
        target = _as_input(y, y_pred.dtype if isinstance(y_pred, torch.Tensor) else torch.float32)
        value = loss_fn(target, y_pred)
    recorded = [
        (recorder, index, name, steps)
        for recorder in recorders
        for index, (_, cells) in enumerate(recorder.calls)
        for name, steps in cells.items()
    ]
    states = [h for *_, steps in recorded for h in steps]
    if not all(h.requires_grad for h in states) or not value.requires_grad:
        raise ValueError(
            "gradient_flow: the hidden states do not depend on any trainable weight or input, "
            "so there is no gradient to measure (are the recurrent layers trainable?)."
        )
    gradients = iter(torch.autograd.grad(value, states, materialize_grads=True))
    flow = GradientFlow(norms={}, spectral_radius={}, go_backwards={}, loss=float(value.detach()))
    for recorder, index, name, steps in recorded:
        norms = [next(gradients).detach().double().cpu().norm(dim=-1) for _ in steps]
        per_step = torch.stack(norms)  # (T, batch), processing order
        if recorder.layer.go_backwards:
            per_step = per_step.flip(0)  # input-time order
        key = name if index == 0 else f"{name} (call {index + 1})"
        flow.norms[key] = _mean_over_real_samples(per_step, recorder.calls[index][0])
        flow.go_backwards[key] = recorder.layer.go_backwards
        radius = _spectral_radius(recorder.cells[name])
        if radius is not None:
            flow.spectral_radius[key] = radius
    return flow
