"""Triton recurrences: the whole sequence of a SimpleRNN, LSTM or GRU, forward and backward.

This module needs Triton (it fails to import without it); `rnnkit.kernels.gpu` wraps it, checks
what it supports and falls back when Triton is missing. With `TRITON_INTERPRET=1` set before
this module is imported, the kernels run on CPU tensors in Triton's interpreter.

One program owns `BLOCK_B` rows of the batch: it loads the recurrent kernel once, one
`(BLOCK_U, BLOCK_U)` tile per gate (padded with zeros beyond `units`), keeps it on chip and walks
every timestep with no synchronisation between programs. The input projection before the
recurrence and the recurrent kernel's gradient after it are large matrix products done by
PyTorch, not here. States and gate arithmetic are in `ACC` (float32, or float64 for float64
inputs); the recurrent matrix products take their operands in the recurrent kernel's dtype
(bfloat16 and float16 inputs use the tensor cores) and accumulate in `ACC`.

Layout (every tensor contiguous, G gates, width = G*U):

    xproj   (B, T, G*U)   projected inputs by time index, gate blocks in Keras's order
    R       (U, G*U)      recurrent kernel;  brec (G*U,) recurrent bias (GRU reset_after)
    flags   (B, T) int8   per processing step: REAL, REPEAT (masked, repeats the previous
                          output) or ZERO (masked, outputs zeros)
    rmask   (B, [G,] U)   recurrent dropout, addressed with a row and a gate stride (a gate
                          stride of 0 shares one mask between the gates)
    out     (B, T, U)     outputs in processing order
    hs      (B, T+1, U)   states before the first and after every processed step; cs the same
                          for the LSTM's carry
    gates   (B, T, G, U)  gate values after their activations, in processing order
    aux     (B, T, U)     LSTM: act(c_t); GRU reset_after: inner_h = (h * m_h) @ R_h + b_h;
                          GRU reset_before: r * h * m_h

Cells (Keras's equations; `act` is `activation`, `ract` is `recurrent_activation`):

    SIMPLE_RNN        h = act(x + (h * m) @ R)
    LSTM              i, f, c~, o = ract(x_i + ..), ract(x_f + ..), act(x_c + ..), ract(x_o + ..)
                      c = f * c + i * c~;  h = o * act(c)
    GRU_RESET_AFTER   z, r = ract(x_z + (h*m_z) @ R_z + b_z), ract(x_r + (h*m_r) @ R_r + b_r)
                      hh = act(x_h + r * ((h*m_h) @ R_h + b_h));  h = z * h + (1 - z) * hh
    GRU_RESET_BEFORE  z, r as above without b;  hh = act(x_h + (r * h * m_h) @ R_h)

Every activation here has a derivative that can be computed from its output, so the backward
pass reads the saved gate values only. The kernels call Triton's built-in operations only, not
the `@triton.jit` functions of `triton.language.standard` (such as `tl.zeros`): those are
decorated when Triton is imported, so under the interpreter they would fail whenever Triton was
imported before `TRITON_INTERPRET=1` was set.
"""

from __future__ import annotations

import triton
import triton.language as tl

from rnnkit.activations import ActivationCode
from rnnkit.kernels.spec import CellKind

# Codes from their one definition each (`CellKind`, `ActivationCode`), as Triton constants.
SIMPLE_RNN = tl.constexpr(CellKind.SIMPLE_RNN.value)
LSTM = tl.constexpr(CellKind.LSTM.value)
GRU_RESET_AFTER = tl.constexpr(CellKind.GRU_RESET_AFTER.value)
GRU_RESET_BEFORE = tl.constexpr(CellKind.GRU_RESET_BEFORE.value)

REPEAT = tl.constexpr(0)
REAL = tl.constexpr(1)
ZERO = tl.constexpr(2)

LINEAR = tl.constexpr(ActivationCode.LINEAR.value)
TANH = tl.constexpr(ActivationCode.TANH.value)
SIGMOID = tl.constexpr(ActivationCode.SIGMOID.value)
RELU = tl.constexpr(ActivationCode.RELU.value)
HARD_SIGMOID = tl.constexpr(ActivationCode.HARD_SIGMOID.value)
SOFTSIGN = tl.constexpr(ActivationCode.SOFTSIGN.value)
ELU = tl.constexpr(ActivationCode.ELU.value)
SELU = tl.constexpr(ActivationCode.SELU.value)
SOFTPLUS = tl.constexpr(ActivationCode.SOFTPLUS.value)
EXPONENTIAL = tl.constexpr(ActivationCode.EXPONENTIAL.value)
RELU6 = tl.constexpr(ActivationCode.RELU6.value)
# The activations these kernels implement (silu's derivative needs its input, which the
# backward pass does not keep).
IMPLEMENTED_ACTIVATIONS = tuple(code for code in ActivationCode if code != ActivationCode.SILU)
SELU_ALPHA = tl.constexpr(1.6732632423543772848170429916717)
SELU_SCALE = tl.constexpr(1.0507009873554804934193349852946)


@triton.jit
def _activate(x, CODE: tl.constexpr):
    """f(x) elementwise for activation `CODE`, written without overflow for large |x|."""
    if CODE == TANH:
        e = tl.exp(-2.0 * tl.abs(x))
        y = (1.0 - e) / (1.0 + e)
        y = tl.where(x < 0, -y, y)
    elif CODE == SIGMOID:
        e = tl.exp(-tl.abs(x))
        y = tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    elif CODE == RELU:
        y = tl.maximum(x, 0.0)
    elif CODE == HARD_SIGMOID:  # Keras 3: relu6(x + 3) / 6
        y = tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0
    elif CODE == SOFTSIGN:
        y = x / (1.0 + tl.abs(x))
    elif CODE == ELU:
        y = tl.where(x > 0, x, tl.exp(tl.minimum(x, 0.0)) - 1.0)
    elif CODE == SELU:
        y = SELU_SCALE * tl.where(x > 0, x, SELU_ALPHA * (tl.exp(tl.minimum(x, 0.0)) - 1.0))
    elif CODE == SOFTPLUS:
        y = tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))
    elif CODE == EXPONENTIAL:
        y = tl.exp(x)
    elif CODE == RELU6:
        y = tl.minimum(tl.maximum(x, 0.0), 6.0)
    else:
        y = x
    return y


@triton.jit
def _derivative(y, CODE: tl.constexpr):
    """f'(x) elementwise for activation `CODE`, from its output y = f(x)."""
    if CODE == TANH:
        d = 1.0 - y * y
    elif CODE == SIGMOID:
        d = y * (1.0 - y)
    elif CODE == RELU:
        d = tl.where(y > 0, 1.0, 0.0)
    elif CODE == HARD_SIGMOID:
        d = tl.where((y > 0) & (y < 1), 1.0, 0.0).to(y.dtype) / 6.0  # where() makes float32
    elif CODE == SOFTSIGN:
        d = (1.0 - tl.abs(y)) * (1.0 - tl.abs(y))
    elif CODE == ELU:
        d = tl.where(y > 0, 1.0, y + 1.0)
    elif CODE == SELU:
        d = tl.where(y > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA)
    elif CODE == SOFTPLUS:
        d = 1.0 - tl.exp(-y)
    elif CODE == EXPONENTIAL:
        d = y
    elif CODE == RELU6:
        d = tl.where((y > 0) & (y < 6), 1.0, 0.0)
    else:
        d = tl.full(y.shape, 1.0, y.dtype)
    return d.to(y.dtype)


@triton.jit
def _matmul(a, b, UPCAST: tl.constexpr, ACC: tl.constexpr):
    """a @ b with `a` rounded to b's dtype, accumulated in ACC. `UPCAST` multiplies the rounded
    operands in ACC instead (Triton 3.9's interpreter reads bfloat16 dot operands as integers)."""
    a = a.to(b.dtype)
    if UPCAST:
        a = a.to(ACC)
        b = b.to(ACC)
    return tl.dot(a, b, input_precision="ieee", out_dtype=ACC)


@triton.jit
def _load(ptr, rows, start, cols, ok, ACC: tl.constexpr):
    """The (BLOCK_B, BLOCK_U) tile ptr[rows[:, None] + start + cols[None, :]] in ACC, zeros
    outside `ok`; `rows` are the element offsets of the rows."""
    return tl.load(ptr + rows[:, None] + start + cols[None, :], mask=ok, other=0.0).to(ACC)


@triton.jit
def _store(ptr, rows, start, cols, ok, value):
    tl.store(ptr + rows[:, None] + start + cols[None, :], value, mask=ok)


@triton.jit
def _recurrent_tile(R, gate, units, width, TRANSPOSE: tl.constexpr, BLOCK_U: tl.constexpr):
    """Gate `gate`'s (U, U) block of R (U, G*U) as a (BLOCK_U, BLOCK_U) tile, zero-padded;
    transposed (R_g^T) for the backward pass."""
    k = tl.arange(0, BLOCK_U)
    j = tl.arange(0, BLOCK_U)
    ok = (k[:, None] < units) & (j[None, :] < units)
    if TRANSPOSE:
        offsets = j[None, :] * width + gate * units + k[:, None]
    else:
        offsets = k[:, None] * width + gate * units + j[None, :]
    return tl.load(R + offsets, mask=ok, other=0.0)


@triton.jit
def forward_kernel(
    xproj, R, brec, h0, c0, flags, rmask, out, h_last, c_last, hs, cs, gates, aux,
    batch, timesteps, units, mask_row_stride, mask_gate_stride,
    CELL: tl.constexpr, GATES: tl.constexpr, ACT: tl.constexpr, RACT: tl.constexpr,
    BACKWARDS: tl.constexpr, MASKED: tl.constexpr, SAVE: tl.constexpr,
    UPCAST: tl.constexpr, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_U: tl.constexpr,
):  # fmt: skip
    """Runs the recurrence of `BLOCK_B` batch rows over all timesteps (see the module doc).

    Fills out (B, T, U) and the final states h_last, c_last (B, U); with `SAVE`, also what the
    backward pass reads: hs, gates, and cs (LSTM), aux (LSTM and GRU).
    """
    b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    j = tl.arange(0, BLOCK_U)
    row_ok = b < batch
    ok = row_ok[:, None] & (j[None, :] < units)
    width = GATES * units
    r_0 = _recurrent_tile(R, 0, units, width, False, BLOCK_U)
    if GATES > 1:
        r_1 = _recurrent_tile(R, 1, units, width, False, BLOCK_U)
        r_2 = _recurrent_tile(R, 2, units, width, False, BLOCK_U)
    if GATES > 3:
        r_3 = _recurrent_tile(R, 3, units, width, False, BLOCK_U)
    if CELL == GRU_RESET_AFTER:
        no_rows = tl.full((BLOCK_B,), 0, tl.int64)
        b_z = _load(brec, no_rows, 0, j, ok, ACC)
        b_r = _load(brec, no_rows, units, j, ok, ACC)
        b_h = _load(brec, no_rows, 2 * units, j, ok, ACC)
    if MASKED:
        m_0 = _load(rmask, b * mask_row_stride, 0, j, ok, ACC)
        if GATES > 1:
            m_1 = _load(rmask, b * mask_row_stride, mask_gate_stride, j, ok, ACC)
            m_2 = _load(rmask, b * mask_row_stride, 2 * mask_gate_stride, j, ok, ACC)
        if GATES > 3:
            m_3 = _load(rmask, b * mask_row_stride, 3 * mask_gate_stride, j, ok, ACC)
    h = _load(h0, b * units, 0, j, ok, ACC)
    if CELL == LSTM:
        c = _load(c0, b * units, 0, j, ok, ACC)
    if SAVE:
        _store(hs, b * (timesteps + 1) * units, 0, j, ok, h)
        if CELL == LSTM:
            _store(cs, b * (timesteps + 1) * units, 0, j, ok, c)
    for s in range(timesteps):
        if BACKWARDS:
            t = timesteps - 1 - s
        else:
            t = s
        flag = tl.load(flags + b * timesteps + s, mask=row_ok, other=REAL)[:, None]
        x_row = (b * timesteps + t) * width
        g_row = (b * timesteps + s) * width
        if MASKED:
            h_0 = h * m_0
            if GATES > 1:
                h_1 = h * m_1
                h_2 = h * m_2
            if GATES > 3:
                h_3 = h * m_3
        else:
            h_0 = h
            h_1 = h
            h_2 = h
            h_3 = h
        if CELL == SIMPLE_RNN:
            new_h = _activate(
                _load(xproj, x_row, 0, j, ok, ACC) + _matmul(h_0, r_0, UPCAST, ACC), ACT
            )
            if SAVE:
                _store(gates, g_row, 0, j, ok, new_h)
        elif CELL == LSTM:
            i = _load(xproj, x_row, 0, j, ok, ACC) + _matmul(h_0, r_0, UPCAST, ACC)
            f = _load(xproj, x_row, units, j, ok, ACC) + _matmul(h_1, r_1, UPCAST, ACC)
            g = _load(xproj, x_row, 2 * units, j, ok, ACC) + _matmul(h_2, r_2, UPCAST, ACC)
            o = _load(xproj, x_row, 3 * units, j, ok, ACC) + _matmul(h_3, r_3, UPCAST, ACC)
            i = _activate(i, RACT)
            f = _activate(f, RACT)
            g = _activate(g, ACT)
            o = _activate(o, RACT)
            new_c = f * c + i * g
            act_c = _activate(new_c, ACT)
            new_h = o * act_c
            c = tl.where(flag == REAL, new_c, c)
            if SAVE:
                _store(gates, g_row, 0, j, ok, i)
                _store(gates, g_row, units, j, ok, f)
                _store(gates, g_row, 2 * units, j, ok, g)
                _store(gates, g_row, 3 * units, j, ok, o)
                _store(aux, (b * timesteps + s) * units, 0, j, ok, act_c)
        else:
            z = _load(xproj, x_row, 0, j, ok, ACC) + _matmul(h_0, r_0, UPCAST, ACC)
            r = _load(xproj, x_row, units, j, ok, ACC) + _matmul(h_1, r_1, UPCAST, ACC)
            if CELL == GRU_RESET_AFTER:
                z = _activate(z + b_z, RACT)
                r = _activate(r + b_r, RACT)
                inner = _matmul(h_2, r_2, UPCAST, ACC) + b_h
                hh = _load(xproj, x_row, 2 * units, j, ok, ACC) + r * inner
            else:
                z = _activate(z, RACT)
                r = _activate(r, RACT)
                inner = r * h_2
                hh = _load(xproj, x_row, 2 * units, j, ok, ACC) + _matmul(inner, r_2, UPCAST, ACC)
            hh = _activate(hh, ACT)
            new_h = z * h + (1.0 - z) * hh
            if SAVE:
                _store(gates, g_row, 0, j, ok, z)
                _store(gates, g_row, units, j, ok, r)
                _store(gates, g_row, 2 * units, j, ok, hh)
                _store(aux, (b * timesteps + s) * units, 0, j, ok, inner)
        h = tl.where(flag == REAL, new_h, h)
        _store(out, (b * timesteps + s) * units, 0, j, ok, tl.where(flag == ZERO, 0.0, h))
        if SAVE:
            _store(hs, (b * (timesteps + 1) + s + 1) * units, 0, j, ok, h)
            if CELL == LSTM:
                _store(cs, (b * (timesteps + 1) + s + 1) * units, 0, j, ok, c)
    _store(h_last, b * units, 0, j, ok, h)
    if CELL == LSTM:
        _store(c_last, b * units, 0, j, ok, c)


@triton.jit
def backward_kernel(
    R, flags, rmask, hs, cs, gates, aux, dout, dh_last, dc_last, dxproj, dinner, dh0, dc0,
    batch, timesteps, units, mask_row_stride, mask_gate_stride,
    CELL: tl.constexpr, GATES: tl.constexpr, ACT: tl.constexpr, RACT: tl.constexpr,
    BACKWARDS: tl.constexpr, MASKED: tl.constexpr,
    UPCAST: tl.constexpr, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_U: tl.constexpr,
):  # fmt: skip
    """Backpropagates `BLOCK_B` batch rows through `forward_kernel`, last step first.

    Fills dxproj (B, T, G*U) by time index (the gradient of the pre-activations, which is the
    gradient of xproj), dh0, dc0 (B, U), and for GRU_RESET_AFTER dinner (B, T, U) by time index,
    the gradient of inner_h (dxproj_h * r). The gradient of `out[b, s]` reaches the state after
    step s, which equals the output unless the output was zeroed; at a masked step every state
    gradient passes through unchanged.
    """
    b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    j = tl.arange(0, BLOCK_U)
    row_ok = b < batch
    ok = row_ok[:, None] & (j[None, :] < units)
    width = GATES * units
    rt_0 = _recurrent_tile(R, 0, units, width, True, BLOCK_U)
    if GATES > 1:
        rt_1 = _recurrent_tile(R, 1, units, width, True, BLOCK_U)
        rt_2 = _recurrent_tile(R, 2, units, width, True, BLOCK_U)
    if GATES > 3:
        rt_3 = _recurrent_tile(R, 3, units, width, True, BLOCK_U)
    one = tl.full((BLOCK_B, BLOCK_U), 1.0, ACC)
    m_0 = one
    m_1 = one
    m_2 = one
    m_3 = one
    if MASKED:
        m_0 = _load(rmask, b * mask_row_stride, 0, j, ok, ACC)
        if GATES > 1:
            m_1 = _load(rmask, b * mask_row_stride, mask_gate_stride, j, ok, ACC)
            m_2 = _load(rmask, b * mask_row_stride, 2 * mask_gate_stride, j, ok, ACC)
        if GATES > 3:
            m_3 = _load(rmask, b * mask_row_stride, 3 * mask_gate_stride, j, ok, ACC)
    dh = _load(dh_last, b * units, 0, j, ok, ACC)
    if CELL == LSTM:
        dc = _load(dc_last, b * units, 0, j, ok, ACC)
    for step in range(timesteps):
        s = timesteps - 1 - step
        if BACKWARDS:
            t = timesteps - 1 - s
        else:
            t = s
        flag = tl.load(flags + b * timesteps + s, mask=row_ok, other=REAL)[:, None]
        real = flag == REAL
        row = (b * timesteps + s) * units
        g_row = (b * timesteps + s) * width
        x_row = (b * timesteps + t) * width
        dh += tl.where(flag == ZERO, 0.0, _load(dout, row, 0, j, ok, ACC))
        h_prev = _load(hs, (b * (timesteps + 1) + s) * units, 0, j, ok, ACC)
        if CELL == SIMPLE_RNN:
            d_0 = tl.where(real, dh * _derivative(_load(gates, g_row, 0, j, ok, ACC), ACT), 0.0)
            dh_prev = tl.where(real, 0.0, dh) + _matmul(d_0, rt_0, UPCAST, ACC) * m_0
            _store(dxproj, x_row, 0, j, ok, d_0)
        elif CELL == LSTM:
            i = _load(gates, g_row, 0, j, ok, ACC)
            f = _load(gates, g_row, units, j, ok, ACC)
            g = _load(gates, g_row, 2 * units, j, ok, ACC)
            o = _load(gates, g_row, 3 * units, j, ok, ACC)
            act_c = _load(aux, row, 0, j, ok, ACC)
            c_prev = _load(cs, (b * (timesteps + 1) + s) * units, 0, j, ok, ACC)
            dc_total = dc + dh * o * _derivative(act_c, ACT)
            d_i = tl.where(real, dc_total * g * _derivative(i, RACT), 0.0)
            d_f = tl.where(real, dc_total * c_prev * _derivative(f, RACT), 0.0)
            d_g = tl.where(real, dc_total * i * _derivative(g, ACT), 0.0)
            d_o = tl.where(real, dh * act_c * _derivative(o, RACT), 0.0)
            dc = tl.where(real, dc_total * f, dc)
            dh_prev = tl.where(real, 0.0, dh)
            dh_prev += _matmul(d_i, rt_0, UPCAST, ACC) * m_0
            dh_prev += _matmul(d_f, rt_1, UPCAST, ACC) * m_1
            dh_prev += _matmul(d_g, rt_2, UPCAST, ACC) * m_2
            dh_prev += _matmul(d_o, rt_3, UPCAST, ACC) * m_3
            _store(dxproj, x_row, 0, j, ok, d_i)
            _store(dxproj, x_row, units, j, ok, d_f)
            _store(dxproj, x_row, 2 * units, j, ok, d_g)
            _store(dxproj, x_row, 3 * units, j, ok, d_o)
        else:
            z = _load(gates, g_row, 0, j, ok, ACC)
            r = _load(gates, g_row, units, j, ok, ACC)
            hh = _load(gates, g_row, 2 * units, j, ok, ACC)
            inner = _load(aux, row, 0, j, ok, ACC)
            d_z = tl.where(real, dh * (h_prev - hh) * _derivative(z, RACT), 0.0)
            d_h = tl.where(real, dh * (1.0 - z) * _derivative(hh, ACT), 0.0)
            dh_prev = tl.where(real, dh * z, dh)
            if CELL == GRU_RESET_AFTER:
                d_r = d_h * inner * _derivative(r, RACT)
                d_inner = d_h * r
                dh_prev += _matmul(d_inner, rt_2, UPCAST, ACC) * m_2
                _store(dinner, (b * timesteps + t) * units, 0, j, ok, d_inner)
            else:  # back through (r * h * m_h) @ R_h
                d_rh = _matmul(d_h, rt_2, UPCAST, ACC) * m_2
                d_r = d_rh * h_prev * _derivative(r, RACT)
                dh_prev += d_rh * r
            dh_prev += _matmul(d_z, rt_0, UPCAST, ACC) * m_0
            dh_prev += _matmul(d_r, rt_1, UPCAST, ACC) * m_1
            _store(dxproj, x_row, 0, j, ok, d_z)
            _store(dxproj, x_row, units, j, ok, d_r)
            _store(dxproj, x_row, 2 * units, j, ok, d_h)
        dh = dh_prev
    _store(dh0, b * units, 0, j, ok, dh)
    if CELL == LSTM:
        _store(dc0, b * units, 0, j, ok, dc)
