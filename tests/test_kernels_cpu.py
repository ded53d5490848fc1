"""The fused CPU kernels: their build (rnnkit.kernels.cpu_library) and their weight-gradient
product (rnnkit.kernels.cpu).

The kernels' numerics are tested through the layers in test_rnn.py (every cell and option
against the reference, gradients against the loop and by gradcheck, thread-count independence).
"""

from __future__ import annotations

import os
import platform
import shutil
from functools import partial

import pytest
import torch
from conftest import KINDS
from recurrences import recurrence_of

from rnnkit.kernels import cpu, cpu_library, fused
from rnnkit.layers import GRU, LSTM


@pytest.fixture
def fresh_library():
    """Forget the loaded kernels around a test, so that it builds (or fails to) anew."""
    cpu_library.library.cache_clear()
    cpu_library.blocker.cache_clear()
    yield
    cpu_library.library.cache_clear()
    cpu_library.blocker.cache_clear()


def test_kernels_are_compiled_once_into_the_cache(fresh_library, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    compiled = []
    compile_ = cpu_library._compile
    monkeypatch.setattr(
        cpu_library, "_compile", lambda *args: (compiled.append(args), compile_(*args))
    )
    cpu_library.library()
    # The user is told once, on stderr, why the first call takes seconds.
    assert capsys.readouterr().err == "compiling rnnkit's CPU kernels (once, about 15 s)...\n"
    built = list((tmp_path / "kernels").glob("rnnkit_cpu_*.so"))
    assert len(built) == 1
    long_ago = built[0].stat().st_mtime - 86400
    os.utime(built[0], (long_ago, long_ago))
    cpu_library.library.cache_clear()
    cpu_library.library()
    assert len(compiled) == 1
    assert list((tmp_path / "kernels").glob("*")) == built  # no temporary files left behind
    assert built[0].stat().st_mtime > long_ago  # loading it marked it as used
    assert capsys.readouterr().err == ""  # loading a cached build says nothing


def test_without_a_compiler_the_fused_path_says_why_and_auto_falls_back(
    fresh_library, tmp_path, monkeypatch
):
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    x = torch.randn(3, 4, 2)
    with (
        pytest.warns(RuntimeWarning, match="kernels are unavailable.*no C\\+\\+ compiler"),
        pytest.raises(ValueError, match="use_fused=True.*no C\\+\\+ compiler.*no-such-compiler"),
    ):
        LSTM(3, use_fused=True)(x)
    auto = LSTM(3, use_fused="auto")
    loop = LSTM(3, use_fused=False)
    auto.build(x.shape)
    loop.build(x.shape)
    loop.set_weights(auto.get_weights())
    torch.testing.assert_close(auto(x), loop(x), rtol=0, atol=0)
    assert fused.blocker(recurrence_of(auto.cell)).startswith("no C++ compiler")


def test_a_failed_build_reports_the_compiler_error(fresh_library, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.raises(
        cpu_library.KernelBuildError, match="compiling the fused CPU kernels failed"
    ):
        cpu_library.library()
    assert not list((tmp_path / "kernels").glob("*.so"))


def _cpu_has(*flags: str) -> bool:
    return set(flags) <= set(cpu_library._cpu_features().split())


@pytest.mark.skipif(not _cpu_has("avx2", "fma"), reason="this CPU has no AVX2 and FMA")
def test_the_avx2_build_is_cached_apart_and_agrees_with_the_loop(fresh_library, monkeypatch):
    """`RNNKIT_CPU_ISA=avx2` builds the AVX2 code path (on an AVX-512 machine too) into a build
    of its own, and its products and gate arithmetic agree with the loop."""
    native = cpu_library.library()._name
    monkeypatch.setenv(cpu_library.ISA_ENV_VAR, "avx2")
    cpu_library.library.cache_clear()
    assert cpu_library.kernel_isa() == "avx2"
    assert cpu_library.library()._name != native
    for kind in ("lstm", "gru_reset_after"):
        for dtype in (torch.float32, torch.float64):
            _assert_the_fused_layer_agrees_with_the_loop(kind, dtype, dropout=False)


def test_the_baseline_build_compiles_and_agrees_with_the_loop(fresh_library, monkeypatch):
    """`RNNKIT_CPU_ISA=baseline` builds with no target flags (SSE2 on x86-64, 16-byte vectors:
    the portable build, as on a compiler without -march=native), into a build of its own that
    agrees with the loop."""
    native = cpu_library.library()._name
    monkeypatch.setenv(cpu_library.ISA_ENV_VAR, "baseline")
    cpu_library.library.cache_clear()
    if platform.machine() in ("x86_64", "AMD64"):
        assert cpu_library.kernel_isa() == "sse2"
    assert cpu_library.library()._name != native
    for kind in ("lstm", "gru_reset_after"):
        for dtype in (torch.float32, torch.float64):
            _assert_the_fused_layer_agrees_with_the_loop(kind, dtype, dropout=False)


# A compiler without OpenMP, as Apple's clang: it rejects -fopenmp and passes the rest on to
# the real compiler.
COMPILER_WITHOUT_OPENMP = """#!/bin/sh
for flag in "$@"; do
  if [ "$flag" = -fopenmp ]; then
    echo "clang: error: unsupported option '-fopenmp'" >&2
    exit 1
  fi
done
exec "{real}" "$@"
"""


def test_a_compiler_without_openmp_still_builds_for_this_cpu(fresh_library, tmp_path, monkeypatch):
    """Without OpenMP the kernels run on one thread, but with this CPU's vector instructions,
    not the portable build's."""
    native_isa = cpu_library.kernel_isa()
    compiler = tmp_path / "c++-without-openmp"
    real = shutil.which(os.environ.get("CXX", "c++"))
    compiler.write_text(COMPILER_WITHOUT_OPENMP.format(real=real))
    compiler.chmod(0o755)
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CXX", str(compiler))
    cpu_library.library.cache_clear()
    assert cpu_library.kernel_isa() == native_isa
    _assert_the_fused_layer_agrees_with_the_loop("lstm", torch.float32, dropout=False)


def test_an_unknown_instruction_set_is_named(fresh_library, monkeypatch):
    monkeypatch.setenv(cpu_library.ISA_ENV_VAR, "avx9000")
    with pytest.raises(
        cpu_library.KernelBuildError, match="RNNKIT_CPU_ISA must be one of.*'avx9000'"
    ):
        cpu_library.library()


@pytest.mark.skipif(not _cpu_has("avx512f"), reason="this CPU has no AVX-512")
def test_the_native_build_uses_avx512_where_the_cpu_has_it(fresh_library):
    assert cpu_library.kernel_isa() == "avx512"


FAILING_COMPILER = """#!/bin/sh
echo "cpu.cpp:1:1: error: the first line of the reason" >&2
echo "cpu.cpp:2:1: note: and the last line of it" >&2
exit 1
"""


@pytest.fixture
def failing_compiler(fresh_library, tmp_path, monkeypatch):
    """A "compiler" that fails with two lines on stderr, and an empty kernel cache."""
    compiler = tmp_path / "failing-c++"
    compiler.write_text(FAILING_COMPILER)
    compiler.chmod(0o755)
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CXX", str(compiler))
    return compiler


def test_use_fused_true_reports_the_compilers_whole_error(failing_compiler, capsys):
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(ValueError, match="use_fused=True, but the fused CPU kernel") as info,
    ):
        LSTM(3, use_fused=True)(torch.randn(2, 4, 3))
    message = str(info.value)
    assert "the first line of the reason" in message and "and the last line of it" in message
    assert str(failing_compiler) in message  # the command that failed
    assert capsys.readouterr().err == "compiling rnnkit's CPU kernels (once, about 15 s)...\n"


def test_auto_falls_back_with_one_warning_holding_the_compilers_error(failing_compiler):
    x = torch.randn(2, 4, 3)
    with pytest.warns(RuntimeWarning, match="run the plain loop") as warned:
        LSTM(3, use_fused="auto")(x)
        GRU(3, use_fused="auto")(x)  # the second layer runs the loop without a second warning
    assert len(warned) == 1
    message = str(warned[0].message)
    assert "the first line of the reason" in message and "and the last line of it" in message


def test_an_unwritable_cache_is_a_build_error(fresh_library, tmp_path, monkeypatch):
    (tmp_path / "kernels").write_text("a file where the cache folder should be")
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    with pytest.raises(cpu_library.KernelBuildError, match="building the fused CPU kernels failed"):
        cpu_library.library()
    with pytest.warns(RuntimeWarning):
        assert cpu_library.blocker().startswith("building the fused CPU kernels failed")


# Batches: a depth block's rows span many steps at 3 rows, one or two at 64. These outputs are
# under 64 KiB, so the threads take the depth in parts, summed apart; larger outputs split the
# columns (`test_weight_gradient_splits_the_columns_of_outputs_over_64_kib`).
BATCHES = pytest.mark.parametrize("batch", [3, 64], ids=["few_rows", "many_rows"])
# float64 sums over thousands of rows, in another order than einsum's.
CLOSE = dict(rtol=1e-12, atol=1e-10)


# State sizes: 7 = a six-row block and a padded one; 14 = a six-row block and two of four.
# Layouts: time-major states are read in place; batch-major ones (the inputs) are gathered.
@BATCHES
@pytest.mark.parametrize("layout", ["time_major", "batch_major"])
@pytest.mark.parametrize("size", [7, 14])
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_weight_gradient_is_the_masked_product_over_rows_and_steps(masked, size, layout, batch):
    generator = torch.Generator().manual_seed(0)
    timesteps, gates, units = 300, 4, 5  # depth spans several blocks

    def random(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    if layout == "time_major":
        states = random(timesteps, batch, size)
    else:
        states = random(batch, timesteps, size).transpose(0, 1)
    gradients = random(timesteps, batch, gates, units)
    mask = (random(batch, gates, size) > 0).double() if masked else None
    out = torch.full((size, gates * units), float("nan"), dtype=torch.float64)
    first, last = (1, 2) if masked else (1, 3)
    cpu.weight_gradient(states, mask, gradients, out, first, last)
    for g in range(first, last):
        masked_states = states * mask[None, :, g] if masked else states
        want = torch.einsum("tbs,tbu->su", masked_states, gradients[:, :, g])
        torch.testing.assert_close(out[:, g * units : (g + 1) * units], want, **CLOSE)
    untouched = [g for g in range(gates) if not first <= g < last]
    for g in untouched:
        assert torch.isnan(out[:, g * units : (g + 1) * units]).all()


@BATCHES
def test_weight_gradient_forms_a_second_product_in_the_same_pass(batch):
    generator = torch.Generator().manual_seed(1)
    timesteps, gates, units = 300, 4, 5

    def random(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    inputs = random(batch, timesteps, 7).transpose(0, 1)  # batch-major, as the layer's inputs
    states = random(timesteps, batch, units)
    gradients = random(timesteps, batch, gates, units)
    out, out2 = (
        torch.empty(7, gates * units, dtype=torch.float64),
        torch.empty(units, gates * units, dtype=torch.float64),
    )
    sums = torch.empty(gates * units, dtype=torch.float64)
    cpu.weight_gradient(
        inputs, None, gradients, out, 0, gates, sums, cpu.SecondProduct(states, out2)
    )
    flat = gradients.reshape(timesteps, batch, -1)
    for got, operand in ((out, inputs), (out2, states)):
        want = torch.einsum("tbs,tbw->sw", operand, flat)
        torch.testing.assert_close(got, want, **CLOSE)
    torch.testing.assert_close(sums, flat.sum((0, 1)), **CLOSE)


def test_weight_gradient_splits_the_columns_of_outputs_over_64_kib():
    """Outputs of (6 + 64) x 256 float32 values (70 KiB) take the other split: each thread a
    range of column strips over the whole depth (300 rows: three blocks), with a masked second
    product and the bias sums."""
    generator = torch.Generator().manual_seed(3)
    timesteps, batch, gates, units = 100, 3, 4, 64

    def random(*shape):
        return torch.randn(*shape, generator=generator)

    inputs = random(batch, timesteps, 6).transpose(0, 1)
    states = random(timesteps, batch, units)
    gradients = random(timesteps, batch, gates, units)
    mask = (torch.rand(batch, gates, units, generator=generator) > 0.3).float() / 0.7
    out, out2 = torch.empty(6, gates * units), torch.empty(units, gates * units)
    sums = torch.empty(gates * units)
    product = cpu.SecondProduct(states, out2, mask=mask)
    cpu.weight_gradient(inputs, None, gradients, out, 0, gates, sums, product)
    tolerance = dict(rtol=1e-5, atol=1e-4)  # float32 sums against float64 ones
    inputs, states, gradients, mask = (t.double() for t in (inputs, states, gradients, mask))
    flat = gradients.reshape(timesteps, batch, -1)
    want = torch.einsum("tbs,tbw->sw", inputs, flat)
    torch.testing.assert_close(out.double(), want, **tolerance)
    for g in range(gates):
        want = torch.einsum("tbs,tbw->sw", states * mask[:, g], gradients[:, :, g])
        torch.testing.assert_close(out2[:, g * units : (g + 1) * units].double(), want,
                                   **tolerance)  # fmt: skip
    torch.testing.assert_close(sums.double(), flat.sum((0, 1)), **tolerance)


# 5 units: strips that cross gates, outputs under 64 KiB (the depth parts); 64: over 64 KiB of
# float64 outputs (the column split), states2 rows 512 bytes apart (packed in row blocks).
@pytest.mark.parametrize("units", [5, 64])
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_weight_gradient_takes_one_gates_second_product_from_other_gradients(masked, units):
    """GRU reset_after's two weight gradients in one pass: out2's h-gate columns (gate 2) from
    dinner instead of the pre-activations' gradients, and second_sums likewise."""
    generator = torch.Generator().manual_seed(5)
    timesteps, batch, gates = 100, 3, 3

    def random(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    inputs = random(batch, timesteps, 6).transpose(0, 1)
    states = random(timesteps, batch, units)
    gradients = random(timesteps, batch, gates, units)
    inner = random(timesteps, batch, units)
    mask = (random(batch, gates, units) > 0).double() if masked else None
    out = torch.empty(6, gates * units, dtype=torch.float64)
    out2 = torch.empty(units, gates * units, dtype=torch.float64)
    sums, sums2 = torch.empty(gates * units, dtype=torch.float64), torch.empty_like(out[0])
    product = cpu.SecondProduct(states, out2, mask=mask, gate_gradients=inner, gate=2, sums=sums2)
    cpu.weight_gradient(inputs, None, gradients, out, 0, gates, sums, product)
    flat = gradients.reshape(timesteps, batch, -1)
    torch.testing.assert_close(out, torch.einsum("tbs,tbw->sw", inputs, flat), **CLOSE)
    torch.testing.assert_close(sums, flat.sum((0, 1)), **CLOSE)
    second = torch.cat([gradients[:, :, :2], inner[:, :, None]], 2)
    for g in range(gates):
        operand = states * mask[:, g] if masked else states
        want = torch.einsum("tbs,tbu->su", operand, second[:, :, g])
        torch.testing.assert_close(out2[:, g * units : (g + 1) * units], want, **CLOSE)
    torch.testing.assert_close(sums2, second.reshape(timesteps, batch, -1).sum((0, 1)), **CLOSE)


# Float64 states of 64 and 70 values (rows 512 bytes or more apart) go through the products
# packed in row blocks; 65 (a padded four) stays in place. 5 units: outputs under 64 KiB, strips
# of one vector and single columns; 16: outputs over 64 KiB, the column split.
@pytest.mark.parametrize("units", [5, 16])
@pytest.mark.parametrize("sizes", [(64, 70), (65, 70)], ids=["packed", "one_padded"])
def test_weight_gradient_packs_far_apart_rows_in_row_blocks(sizes, units):
    generator = torch.Generator().manual_seed(4)
    timesteps, batch, gates = 150, 3, 4
    size, size2 = sizes

    def random(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    inputs = random(batch, timesteps, size).transpose(0, 1)  # gathered, then packed
    states = random(timesteps, batch, size2)  # packed from where it lies
    gradients = random(timesteps, batch, gates, units)
    out = torch.empty(size, gates * units, dtype=torch.float64)
    out2 = torch.empty(size2, gates * units, dtype=torch.float64)
    sums = torch.empty(gates * units, dtype=torch.float64)
    cpu.weight_gradient(
        inputs, None, gradients, out, 0, gates, sums, cpu.SecondProduct(states, out2)
    )
    flat = gradients.reshape(timesteps, batch, -1)
    for got, operand in ((out, inputs), (out2, states)):
        torch.testing.assert_close(got, torch.einsum("tbs,tbw->sw", operand, flat), **CLOSE)
    torch.testing.assert_close(sums, flat.sum((0, 1)), **CLOSE)


@pytest.mark.parametrize(("dtype", "units"), [(torch.float64, 5), (torch.float64, 8),
                                              (torch.float32, 16), (torch.float32, 7)])  # fmt: skip
@BATCHES
def test_weight_gradient_masks_each_gate_of_the_second_product(dtype, units, batch):
    """With `second_mask`, out2's gate g reads states2 times mask g; units that are not a
    multiple of the column strips make strips that cross from one gate into the next."""
    generator = torch.Generator().manual_seed(2)
    timesteps, gates = 100, 4

    def random(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    inputs = random(batch, timesteps, 6).transpose(0, 1)
    states = random(timesteps, batch, units)
    gradients = random(timesteps, batch, gates, units)
    mask = (torch.rand(batch, gates, units, generator=generator) > 0.3).to(dtype) / 0.7
    out = torch.empty(6, gates * units, dtype=dtype)
    out2 = torch.empty(units, gates * units, dtype=dtype)
    product = cpu.SecondProduct(states, out2, mask=mask)
    cpu.weight_gradient(inputs, None, gradients, out, 0, gates, second=product)
    # Against float64 sums (float32 ones over 6,400 rows, of size up to about 300, were off by
    # up to 1e-4; torch's float32 einsum by more).
    tolerance = CLOSE if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-4)
    inputs, states, gradients, mask = (t.double() for t in (inputs, states, gradients, mask))
    for g in range(gates):
        want = torch.einsum("tbs,tbw->sw", states * mask[:, g], gradients[:, :, g])
        got = out2[:, g * units : (g + 1) * units].double()
        torch.testing.assert_close(got, want, **tolerance)
    want = torch.einsum("tbs,tbw->sw", inputs, gradients.reshape(timesteps, batch, -1))
    torch.testing.assert_close(out.double(), want, **tolerance)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru_reset_after", "gru_reset_before"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("dropout", [True, False], ids=["dropout", "no_dropout"])
def test_every_block_shape_of_the_products_agrees_with_the_loop(kind, dtype, dropout):
    """Sizes that take every path of the products: 37 units = two-vector strips, a one-vector
    strip and single columns (float32 and float64 lanes); 13 rows = six-row blocks, a four-row
    block and a last row on its own (over four panels at once where the stacked gates are eight
    vectors wide or more); masks, go_backwards; recurrent and input dropout per gate, or none
    (then the products over all gates: x_t @ K and h @ R in one, the backward's stacked)."""
    _assert_the_fused_layer_agrees_with_the_loop(kind, dtype, dropout)


def _assert_the_fused_layer_agrees_with_the_loop(kind, dtype, dropout):
    """`test_every_block_shape_of_the_products_agrees_with_the_loop` on the loaded build."""
    make = partial(KINDS[kind].layer, **KINDS[kind].options)
    torch.manual_seed(0)
    options = dict(go_backwards=True, dtype=dtype)
    if dropout:
        options.update(dropout=0.2, recurrent_dropout=0.3)
    fused_layer, loop_layer = (make(37, use_fused=f, **options) for f in (True, False))
    x = torch.randn(13, 7, 21, dtype=dtype)
    mask = torch.arange(7) < torch.randint(1, 8, (13,))[:, None]
    fused_layer.build(x.shape)
    loop_layer.build(x.shape)
    loop_layer.set_weights(fused_layer.get_weights())
    if dropout:
        masks = fused_layer.cell.make_dropout_masks(13)
        for layer in (fused_layer, loop_layer):
            layer.cell.make_dropout_masks = lambda batch: masks
    results = []
    for layer in (fused_layer, loop_layer):
        inputs = x.clone().requires_grad_()
        output = layer(inputs, mask=mask, training=True)
        (
            output * torch.linspace(-1, 1, output.numel(), dtype=dtype).view_as(output)
        ).sum().backward()
        results.append([output, inputs.grad, *[p.grad for p in layer.parameters()]])
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("batch", "formed"), [(128, True), (96, True), (32, True), (16, True), (100, False)]
)
@pytest.mark.parametrize("sizes", ["odd", "whole_panels"])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3], ids=["plain", "recurrent_dropout"])
def test_the_backward_forms_the_weight_gradients_in_row_groups(kind, dtype, batch, formed, sizes,
                                                               recurrent_dropout,
                                                               monkeypatch):  # fmt: skip
    """At batches of whole pairs of 64-row groups, or of two groups of a multiple of eight rows
    under 64 (96: 48 rows, one step per product; 32: 16 rows, four steps; 16: 8 rows, eight
    steps; 11 steps, so that a pass's first product takes the steps left over), the backward
    pass forms the weight gradients itself (each group's sums, added in order); elsewhere the
    long products do. Both agree with the loop: masks, go_backwards; odd sizes (11 inputs, 13
    units: padded rows and single columns in the group products, the rows gathered) or inputs
    and units of whole two-vector panels (packed where they lie); with recurrent dropout, a
    mask per gate (LSTM: h packed once per gate, times that gate's mask)."""
    features, units = (
        (11, 13) if sizes == "odd" else (32, 32) if dtype == torch.float32 else (16, 16)
    )
    returned = []
    backward = cpu.backward
    monkeypatch.setattr(cpu, "backward", lambda *args: returned.append(backward(*args)) or
                        returned[-1])  # fmt: skip
    make = partial(KINDS[kind].layer, **KINDS[kind].options)
    torch.manual_seed(0)
    fused_layer, loop_layer = (make(units, use_fused=f, go_backwards=True, dtype=dtype,
                                    recurrent_dropout=recurrent_dropout)
                               for f in (True, False))  # fmt: skip
    x = torch.randn(batch, 11, features, dtype=dtype)
    mask = torch.arange(11) < torch.randint(1, 12, (batch,))[:, None]
    fused_layer.build(x.shape)
    loop_layer.build(x.shape)
    loop_layer.set_weights(fused_layer.get_weights())
    if recurrent_dropout:
        masks = fused_layer.cell.make_dropout_masks(batch)
        for layer in (fused_layer, loop_layer):
            layer.cell.make_dropout_masks = lambda rows: masks
    results = []
    for layer in (fused_layer, loop_layer):
        inputs = x.clone().requires_grad_()  # the inputs' gradient from the same step buffers
        output = layer(inputs, mask=mask, training=True)
        (
            output * torch.linspace(-1, 1, output.numel(), dtype=dtype).view_as(output)
        ).sum().backward()
        results.append([output, inputs.grad, *[p.grad for p in layer.parameters()]])
    assert [answer.weights for answer in returned] == [formed]
    # float32 sums over up to 1,408 rows and steps, in another order than the loop's.
    tolerance = CLOSE if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-4)
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru_reset_after", "gru_reset_before"])
@pytest.mark.parametrize(
    "options",
    [{"zero_output_for_mask": True}, {"unroll": True}, {"go_backwards": True}],
    ids=["zero_output_for_mask", "unroll", "go_backwards"],
)
def test_last_output_only_agrees_with_the_loop(kind, options):
    """Without return_sequences the kernels write and back-propagate the last output only;
    its masked cases (a masked last step, leading masked steps) against the loop."""
    make = partial(KINDS[kind].layer, **KINDS[kind].options)
    torch.manual_seed(1)
    fused_layer, loop_layer = (
        make(6, use_fused=f, return_state=True, dtype=torch.float64, **options)
        for f in (True, False)
    )
    x = torch.randn(5, 8, 3, dtype=torch.float64)
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[0, :3] = mask[1, -2:] = mask[2, 0] = mask[3, -1] = False  # leading and trailing gaps
    for layer in (fused_layer, loop_layer):
        layer.build(x.shape)
    loop_layer.set_weights(fused_layer.get_weights())
    results = []
    for layer in (fused_layer, loop_layer):
        inputs = x.clone().requires_grad_()
        output, *states = layer(inputs, mask=mask)
        weights = torch.linspace(-1, 1, output.numel(), dtype=torch.float64).view_as(output)
        ((output * weights).sum() + sum(s.sum() for s in states)).backward()
        results.append([output, *states, inputs.grad, *[p.grad for p in layer.parameters()]])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_a_new_build_removes_only_the_builds_unused_for_a_month(tmp_path):
    now = 1_800_000_000.0
    day = 86400
    ages = {"rnnkit_cpu_old.so": 31, "rnnkit_cpu_recent.so": 2, "rnnkit_cpu_keep.so": 90,
            "notes_old.so": 90}  # fmt: skip
    for name, age in ages.items():
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (now - age * day, now - age * day))
    cpu_library.remove_stale_builds(tmp_path, tmp_path / "rnnkit_cpu_keep.so", now)
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == ["notes_old.so", "rnnkit_cpu_keep.so", "rnnkit_cpu_recent.so"]
