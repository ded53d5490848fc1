"""The Triton kernels (`rnnkit.kernels.gpu`) on a CUDA GPU, or under Triton's interpreter.

Every cell x option runs at small sizes against the NumPy reference (float32, 1e-5) and against
the generic loop's values and gradients (float64, 1e-10); bfloat16 and float16 against the loop
in float32 at their precision. `DEVICE` picks the mode: where PyTorch sees a CUDA device, cells,
inputs, states and masks live on it and the kernels are compiled for it; elsewhere they are CPU
tensors and the kernels run in Triton's interpreter. Either way the module imports
`rnnkit.kernels.gpu` afresh with `TRITON_INTERPRET` set to match (`triton.jit` reads it when it
decorates the kernels) and restores the environment and the imported modules afterwards, so no
other test sees this module's kernels. Results move to the CPU only to be compared in NumPy.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch
from conftest import KINDS
from recurrences import recurrence_of, run_on_cell
from sequence_masks import left_padded_mask, right_padded_mask

from rnnkit import reference
from rnnkit.kernels import DropoutMasks
from rnnkit.kernels.loop import run_loop
from rnnkit.layers import SimpleRNNCell, StackedRNNCells

pytest.importorskip("triton", reason="Triton is not installed: the GPU kernels cannot be tested")

BATCH, TIMESTEPS, FEATURES, UNITS = 4, 6, 3, 5
# The one place that decides: compiled kernels on CUDA tensors, else the interpreter on CPU ones.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_MODULES = ("rnnkit.kernels.gpu", "rnnkit.kernels.triton_kernels")


def _forget_modules(package):
    """Removes `_MODULES` from `sys.modules` and from the package's attributes (where
    `from rnnkit.kernels import triton_kernels` would find them first); returns what it removed."""
    removed = {}
    for name in _MODULES:
        attribute = name.rsplit(".", 1)[1]
        module = sys.modules.pop(name, None)
        if hasattr(package, attribute):
            module = getattr(package, attribute)
            delattr(package, attribute)
        if module is not None:
            removed[name] = module
    return removed


@pytest.fixture(scope="module")
def gpu():
    """`rnnkit.kernels.gpu` imported afresh with its kernels built for `DEVICE` (Triton's
    interpreter on the CPU); the environment, `sys.modules` and the package are restored
    afterwards."""
    import rnnkit.kernels as package

    saved_modules = _forget_modules(package)
    saved_env = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if DEVICE == "cpu" else "0"
    try:
        module = importlib.import_module("rnnkit.kernels.gpu")
        if module.kernels is None:
            pytest.skip(f"the Triton kernels do not import: {module.IMPORT_ERROR}")
        yield module
    finally:
        if saved_env is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = saved_env
        _forget_modules(package)
        for name, module in saved_modules.items():
            sys.modules[name] = module
            setattr(package, name.rsplit(".", 1)[1], module)


def make_cell(kind, dtype=torch.float64, units=UNITS, scale=0.5, **kwargs):
    """A built cell of `kind` on `DEVICE` with random weights (biases too) of standard
    deviation `scale`."""
    cls, defaults = KINDS[kind].cell, KINDS[kind].options
    cell = cls(units, dtype=dtype, **{**defaults, **kwargs})
    cell.build((None, None, FEATURES))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for weight in cell.parameters():
            weight.copy_(torch.from_numpy(rng.normal(0, scale, tuple(weight.shape))))
    return cell.to(DEVICE)


def scattered_mask():
    mask = np.ones((BATCH, TIMESTEPS), dtype=bool)
    mask[0, [1, 4]] = False
    mask[2, [0, 2, 3]] = False
    mask[3, 5] = False
    return mask


# Each case: run options (`mask` as NumPy), and whether it draws initial states / dropout masks.
CASES = {
    "plain": {},
    "right_padded_mask": {"mask": right_padded_mask()},
    "left_padded_mask": {"mask": left_padded_mask()},
    "scattered_mask": {"mask": scattered_mask()},
    "go_backwards": {"go_backwards": True},
    "backwards_masked": {"go_backwards": True, "mask": right_padded_mask()},
    "zero_output_for_mask": {"zero_output_for_mask": True, "mask": left_padded_mask()},
    "zero_output_backwards": {
        "zero_output_for_mask": True,
        "go_backwards": True,
        "mask": scattered_mask(),
    },
    "unroll": {"unroll": True, "mask": left_padded_mask()},
    "unroll_backwards": {"unroll": True, "go_backwards": True, "mask": right_padded_mask()},
    "initial_state": {"initial_state": True, "mask": left_padded_mask()},
    "shared_dropout": {"dropout": "shared", "mask": right_padded_mask()},
    "per_gate_dropout": {"dropout": "per_gate", "go_backwards": True, "mask": scattered_mask()},
    "no_bias": {"use_bias": False},
}


def case_arguments(kind, case, dtype):
    """(cell kwargs, inputs, initial states, run_loop kwargs, reference kwargs) for a case; the
    tensors are on `DEVICE`, the reference's arrays in NumPy."""
    options = dict(CASES[case])
    gates = KINDS[kind].gates
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, TIMESTEPS, FEATURES))
    count = 2 if kind == "lstm" else 1
    states = [np.zeros((BATCH, UNITS)) for _ in range(count)]
    if options.pop("initial_state", False):
        states = [rng.normal(size=(BATCH, UNITS)) for _ in range(count)]
    cell_kwargs = {"use_bias": options.pop("use_bias")} if "use_bias" in options else {}
    run_kwargs, ref_kwargs = {}, {"initial_state": states}
    dropout = options.pop("dropout", None)
    if dropout is not None:
        gate_axis = (gates,) if dropout == "per_gate" else ()
        input_mask = (rng.random((BATCH, *gate_axis, FEATURES)) >= 0.3) / 0.7
        recurrent_mask = (rng.random((BATCH, *gate_axis, UNITS)) >= 0.4) / 0.6
        run_kwargs["dropout_masks"] = DropoutMasks(
            torch.tensor(input_mask, dtype=dtype, device=DEVICE),
            torch.tensor(recurrent_mask, dtype=dtype, device=DEVICE),
        )
        ref_kwargs.update(dropout_mask=input_mask, recurrent_dropout_mask=recurrent_mask)
    if "mask" in options:
        run_kwargs["mask"] = torch.from_numpy(options["mask"]).to(DEVICE)
        ref_kwargs["mask"] = options["mask"]
    for name in ("go_backwards", "zero_output_for_mask"):
        if name in options:
            run_kwargs[name] = ref_kwargs[name] = options[name]
    if "unroll" in options:
        run_kwargs["unroll"] = True
    inputs = torch.tensor(x, dtype=dtype, device=DEVICE)
    initial = [torch.tensor(state, dtype=dtype, device=DEVICE) for state in states]
    return cell_kwargs, inputs, initial, run_kwargs, ref_kwargs


def reference_outputs(kind, cell, inputs, ref_kwargs, unroll):
    """The reference's outputs and states; with `unroll`, masked steps before a row's first
    real step output zeros (Keras's unrolled loop; the reference has no such option)."""
    weights = [w.detach().double().cpu().numpy() for w in (cell.kernel, cell.recurrent_kernel)]
    bias = cell.bias.detach().double().cpu().numpy() if cell.bias is not None else None
    outputs, *states = KINDS[kind].reference(
        inputs.double().cpu().numpy(), *weights, bias, **ref_kwargs
    )
    if unroll:
        keep = ref_kwargs["mask"][:, ::-1] if ref_kwargs.get("go_backwards") else ref_kwargs["mask"]
        outputs = np.where((np.cumsum(keep, axis=1) == 0)[..., None], 0.0, outputs)
    return outputs, states


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_forward_matches_reference_float32(gpu, kind, case):
    cell_kwargs, inputs, initial, run_kwargs, ref_kwargs = case_arguments(kind, case, torch.float32)
    cell = make_cell(kind, torch.float32, **cell_kwargs)
    assert blocker(gpu, cell, inputs) is None
    with torch.no_grad():
        outputs, last, states = run_on_cell(gpu.run_gpu, cell, inputs, initial, **run_kwargs)
    want_outputs, want_states = reference_outputs(
        kind, cell, inputs, ref_kwargs, run_kwargs.get("unroll", False)
    )
    assert outputs.dtype == torch.float32 and outputs.shape == (BATCH, TIMESTEPS, UNITS)
    np.testing.assert_allclose(outputs.cpu().numpy(), want_outputs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(last.cpu().numpy(), want_outputs[:, -1], atol=1e-5, rtol=0)
    assert len(states) == len(want_states)
    for got, want in zip(states, want_states):
        np.testing.assert_allclose(got.cpu().numpy(), want, atol=1e-5, rtol=0)


def weighted_loss(outputs, last, states, seed=3):
    """A loss that reaches every output and state with a different weight (drawn on the CPU,
    so both modes draw the same)."""
    generator = torch.Generator().manual_seed(seed)
    total = 0
    for tensor in (outputs, last, *states):
        if tensor is not None:
            weights = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            total = total + (tensor * weights.to(tensor.device, tensor.dtype)).sum()
    return total


def values_and_gradients(kernel, cell, inputs, initial, run_kwargs, return_sequences=True):
    """The kernel's outputs, and the loss gradients w.r.t. inputs, weights and initial states."""
    inputs = inputs.clone().requires_grad_(True)
    initial = [state.clone().requires_grad_(True) for state in initial]
    result = run_on_cell(
        kernel, cell, inputs, initial, return_sequences=return_sequences, **run_kwargs
    )
    outputs, last, states = result
    differentiable = [inputs, *cell.parameters(), *initial]
    gradients = torch.autograd.grad(weighted_loss(outputs, last, states), differentiable)
    values = [t for t in (outputs, last, *states) if t is not None]
    return [t.detach() for t in values], list(gradients)


def assert_all_close(got, want, atol):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(
            a.double().cpu().numpy(), b.double().cpu().numpy(), atol=atol, rtol=0
        )


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_match_loop_float64(gpu, kind, case):
    cell_kwargs, inputs, initial, run_kwargs, _ = case_arguments(kind, case, torch.float64)
    cell = make_cell(kind, torch.float64, **cell_kwargs)
    got = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs)
    want = values_and_gradients(run_loop, cell, inputs, initial, run_kwargs)
    assert_all_close(got[0], want[0], 1e-12)
    assert_all_close(got[1], want[1], 1e-10)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_of_the_last_output_only(gpu, kind):
    cell_kwargs, inputs, initial, run_kwargs, _ = case_arguments(
        kind, "backwards_masked", torch.float64
    )
    cell = make_cell(kind, torch.float64, **cell_kwargs)
    got = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs, False)
    want = values_and_gradients(run_loop, cell, inputs, initial, run_kwargs, False)
    assert_all_close(got[0], want[0], 1e-12)
    assert_all_close(got[1], want[1], 1e-10)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_match_loop_float32(gpu, kind):
    cell_kwargs, inputs, initial, run_kwargs, _ = case_arguments(
        kind, "per_gate_dropout", torch.float32
    )
    cell = make_cell(kind, torch.float32, **cell_kwargs)
    got = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs)
    want = values_and_gradients(run_loop, cell, inputs, initial, run_kwargs)
    assert_all_close(got[0], want[0], 1e-5)
    assert_all_close(got[1], want[1], 1e-4)


ACTIVATION_PAIRS = {
    "simple_rnn": [
        (name, None)
        for name in (
            "linear",
            "relu",
            "hard_sigmoid",
            "softsign",
            "elu",
            "selu",
            "softplus",
            "exponential",
            "relu6",
            "sigmoid",
        )
    ],  # fmt: skip
    "lstm": [("softsign", "hard_sigmoid"), ("elu", "tanh")],
    "gru_reset_after": [("relu", "softsign"), ("selu", "hard_sigmoid")],
    "gru_reset_before": [("softplus", "relu6"), ("linear", "sigmoid")],
}


@pytest.mark.parametrize(
    "kind, activation, recurrent_activation",
    [(kind, *pair) for kind, pairs in ACTIVATION_PAIRS.items() for pair in pairs],
)
def test_activations_match_reference_and_loop_gradients(
    gpu, kind, activation, recurrent_activation
):
    cell_kwargs = {"activation": activation}
    ref_activations = {"activation": activation}
    if recurrent_activation is not None:
        cell_kwargs["recurrent_activation"] = recurrent_activation
        ref_activations["recurrent_activation"] = recurrent_activation
    _, inputs, initial, run_kwargs, ref_kwargs = case_arguments(
        kind, "scattered_mask", torch.float64
    )
    # exp(h @ R) compounds over the steps: small weights keep it finite.
    scale = 0.1 if activation == "exponential" else 0.5
    cell = make_cell(kind, torch.float64, scale=scale, **cell_kwargs)
    assert blocker(gpu, cell, inputs) is None
    got = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs)
    want_outputs, _ = reference_outputs(
        kind, cell, inputs, {**ref_kwargs, **ref_activations}, False
    )
    np.testing.assert_allclose(got[0][0].cpu().numpy(), want_outputs, atol=1e-10, rtol=0)
    want = values_and_gradients(run_loop, cell, inputs, initial, run_kwargs)
    assert_all_close(got[1], want[1], 1e-10)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_half_precision_matches_loop_in_float32(gpu, kind, dtype):
    """Half-precision inputs and weights, float32 states: within the half type's precision of
    the loop run in float32 on the same (rounded) numbers."""
    _, inputs, initial, run_kwargs, _ = case_arguments(kind, "shared_dropout", dtype)
    cell = make_cell(kind, dtype)
    wide = make_cell(kind, torch.float32)
    with torch.no_grad():
        for narrow_weight, wide_weight in zip(cell.parameters(), wide.parameters()):
            wide_weight.copy_(narrow_weight)
    got_values, got_gradients = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs)
    wide_kwargs = dict(run_kwargs)
    masks = run_kwargs["dropout_masks"]
    wide_kwargs["dropout_masks"] = DropoutMasks(masks.inputs.float(), masks.recurrent.float())
    want_values, want_gradients = values_and_gradients(
        run_loop, wide, inputs.float(), [s.float() for s in initial], wide_kwargs
    )
    tolerance = 4e-2 if dtype == torch.bfloat16 else 5e-3
    for got, want in zip(got_values + got_gradients, want_values + want_gradients):
        assert got.dtype == dtype
        scale = want.abs().max().item()
        np.testing.assert_allclose(
            got.float().cpu().numpy(), want.cpu().numpy(), atol=tolerance * scale
        )


def test_several_programs_and_padded_units(gpu):
    """Batch rows over two programs and units that do not fill a tile."""
    units, batch = 19, 21
    cell = make_cell("lstm", torch.float64, units=units, dropout=0.2, recurrent_dropout=0.5)
    rng = np.random.default_rng(5)
    inputs = torch.tensor(rng.normal(size=(batch, TIMESTEPS, FEATURES)), device=DEVICE)
    initial = [torch.tensor(rng.normal(size=(batch, units)), device=DEVICE) for _ in range(2)]
    keep = torch.from_numpy(rng.random((batch, TIMESTEPS)) > 0.3).to(DEVICE)
    # Per-gate masks, as the layers draw them (on the cell's device).
    run_kwargs = {"mask": keep, "dropout_masks": cell.make_dropout_masks(batch)}
    got = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs)
    want = values_and_gradients(run_loop, cell, inputs, initial, run_kwargs)
    assert run_kwargs["dropout_masks"].recurrent.shape == (batch, 4, units)
    assert_all_close(got[0], want[0], 1e-12)
    assert_all_close(got[1], want[1], 1e-10)


def test_inference_without_gradients_agrees_with_loop(gpu):
    cell = make_cell("gru_reset_after", torch.float32)
    _, inputs, initial, run_kwargs, _ = case_arguments(
        "gru_reset_after", "left_padded_mask", torch.float32
    )
    with torch.no_grad():
        outputs, last, states = run_on_cell(gpu.run_gpu, cell, inputs, initial, **run_kwargs)
    assert not outputs.requires_grad
    want = run_on_cell(run_loop, cell, inputs, initial, **run_kwargs)
    np.testing.assert_allclose(outputs.cpu().numpy(), want[0].detach().cpu().numpy(), atol=1e-6)
    np.testing.assert_allclose(
        states[0].cpu().numpy(), want[2][0].detach().cpu().numpy(), atol=1e-6
    )


def test_return_sequences_false_gives_no_outputs(gpu):
    cell = make_cell("simple_rnn", torch.float32)
    inputs = torch.ones(2, 3, FEATURES, device=DEVICE)
    outputs, last, states = run_on_cell(
        gpu.run_gpu, cell, inputs, [torch.zeros(2, UNITS, device=DEVICE)], return_sequences=False
    )
    assert outputs is None and last.shape == (2, UNITS) and len(states) == 1
    torch.testing.assert_close(last, states[0])


def blocker(gpu, cell, inputs):
    return gpu.blocker(recurrence_of(cell), inputs)


def test_blocker_names_what_blocks_the_kernels(gpu, monkeypatch):
    inputs = torch.ones(2, 3, FEATURES, device=DEVICE)
    assert blocker(gpu, make_cell("lstm", torch.float32), inputs) is None
    assert "activation=gelu" in blocker(
        gpu, make_cell("simple_rnn", torch.float32, activation="gelu"), inputs
    )
    reason = blocker(gpu, make_cell("lstm", torch.float32, recurrent_activation="silu"), inputs)
    assert "recurrent_activation=silu" in reason
    assert "units=200" in blocker(gpu, make_cell("lstm", torch.float32, units=200), inputs)
    assert "units=65" in blocker(gpu, make_cell("gru_reset_after", torch.float32, units=65), inputs)
    assert blocker(gpu, make_cell("gru_reset_after", torch.float32, units=64), inputs) is None
    wide = make_cell("simple_rnn", torch.bfloat16, units=256)
    assert blocker(gpu, wide, inputs.bfloat16()) is None
    stacked = StackedRNNCells([SimpleRNNCell(2), SimpleRNNCell(2)])
    assert "StackedRNNCells" in blocker(gpu, stacked, inputs)
    assert "float64" in blocker(gpu, make_cell("gru_reset_before", torch.float32), inputs.double())
    # Outside the interpreter (as on CUDA), CPU tensors are refused.
    monkeypatch.setattr(gpu, "INTERPRETING", False)
    assert "CUDA" in blocker(gpu, make_cell("lstm", torch.float32).cpu(), inputs.cpu())
    monkeypatch.setattr(gpu, "kernels", None)
    monkeypatch.setattr(gpu, "IMPORT_ERROR", "No module named 'triton'")
    assert "triton is not importable" in blocker(gpu, make_cell("lstm", torch.float32), inputs)


def test_run_gpu_refuses_what_it_cannot_run(gpu):
    cell = make_cell("simple_rnn", torch.float32, activation="gelu")
    with pytest.raises(ValueError, match="activation=gelu"):
        run_on_cell(
            gpu.run_gpu,
            cell,
            torch.ones(2, 3, FEATURES, device=DEVICE),
            [torch.zeros(2, UNITS, device=DEVICE)],
        )
    cell = make_cell("simple_rnn", torch.float32)
    with pytest.raises(ValueError, match="`mask`"):
        run_on_cell(
            gpu.run_gpu,
            cell,
            torch.ones(2, 3, FEATURES, device=DEVICE),
            [torch.zeros(2, UNITS, device=DEVICE)],
            mask=torch.ones(2, 4, dtype=torch.bool, device=DEVICE),
        )


def _compile_for_hopper(function, pointers, constants):
    """Compiles a kernel for an sm_90 GPU (H100/H200) with Triton's own compiler, whatever GPU
    is here, if any. Returns the compiled kernel."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {
        name: "constexpr" if name in constants else pointers.get(name, "i32")
        for name in function.arg_names
    }
    source = ASTSource(function, signature, constants)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})


@pytest.mark.parametrize("kind, dtype", [("lstm", "bf16"), ("gru_reset_before", "fp32")])
def test_kernels_compile_for_hopper(monkeypatch, kind, dtype):
    """The interpreter does not check what only the GPU compiler does (types carried through
    the time loop, tensor-core operands in bfloat16): compile both kernels for sm_90."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    path = os.path.join(os.path.dirname(reference.__file__), "kernels", "triton_kernels.py")
    spec = importlib.util.spec_from_file_location("rnnkit_triton_kernels_for_hopper", path)
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    try:
        from triton.backends.nvidia.compiler import CUDABackend  # noqa: F401
    except ImportError as error:
        pytest.skip(f"Triton's CUDA compiler backend does not load: {error}")
    cell = {"lstm": (kernels.LSTM, 4), "gru_reset_before": (kernels.GRU_RESET_BEFORE, 3)}[kind]
    constants = {
        "CELL": cell[0].value, "GATES": cell[1], "ACT": kernels.TANH.value,
        "RACT": kernels.HARD_SIGMOID.value, "BACKWARDS": True, "MASKED": True, "UPCAST": False,
        "ACC": kernels.tl.float32, "BLOCK_B": 16, "BLOCK_U": 16,
    }  # fmt: skip
    weights = f"*{dtype}"
    names = ("xproj", "R", "brec", "h0", "c0", "rmask", "out", "h_last", "c_last", "dout",
             "dh_last", "dc_last", "dxproj", "dinner", "dh0", "dc0")  # fmt: skip
    pointers = {name: weights for name in names}
    pointers.update({name: "*fp32" for name in ("hs", "cs", "gates", "aux")}, flags="*i8")
    forward = _compile_for_hopper(kernels.forward_kernel, pointers, {**constants, "SAVE": True})
    backward = _compile_for_hopper(kernels.backward_kernel, pointers, constants)
    for compiled in (forward, backward):
        # bfloat16 products run on tensor cores; float32 ones in exact (IEEE) FMAs, not TF32.
        assert ("mma" in compiled.asm["ptx"]) == (dtype == "bf16")
        assert compiled.metadata.shared <= 227 * 1024


@pytest.mark.parametrize("case", ["scattered_mask", "zero_output_backwards", "per_gate_dropout"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_nan_at_masked_steps_reaches_neither_outputs_nor_gradients(gpu, kind, case):
    """Masked steps are selected away, so NaN there changes no output and no gradient."""
    cell_kwargs, inputs, initial, run_kwargs, _ = case_arguments(kind, case, torch.float64)
    cell = make_cell(kind, torch.float64, **cell_kwargs)
    poisoned = inputs.masked_fill(~run_kwargs["mask"].unsqueeze(-1), float("nan"))
    got = values_and_gradients(gpu.run_gpu, cell, poisoned, initial, run_kwargs)
    want = values_and_gradients(gpu.run_gpu, cell, inputs, initial, run_kwargs)
    assert all(torch.isfinite(t).all() for t in got[0] + got[1])
    assert_all_close(got[0], want[0], 1e-12)
    assert_all_close(got[1], want[1], 1e-12)
