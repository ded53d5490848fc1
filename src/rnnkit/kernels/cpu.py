"""Fused CPU recurrences (Numba): the whole sequence forward, and its backward, in compiled loops.

The input projection of every timestep (`x @ kernel + bias`, one large matrix product) is done
by PyTorch before these kernels run; the kernels do what must be sequential: the recurrent
matrix product, the gate arithmetic, masking and direction, step by step. Rows of the batch are
independent, so chunks of `CHUNK` rows run in parallel threads that never synchronise inside the
sequence. Weight gradients are summed per chunk and the chunks are added in a fixed order, so
results do not depend on the number of threads.

Layout (batch-major, as the layers use):

    xproj   (B, T, G*U)   projected inputs by time index, gate blocks in Keras's order
    R       (U, G*U)      recurrent kernel;  brec (G*U,) recurrent bias (GRU reset_after)
    keep    (B, T)        False where a step is masked;  rmask (B, G, U) recurrent dropout
    out     (B, T, U)     outputs in processing order (reversed when going backwards)
    hs, cs  (B, T+1, U)   states before the first and after every processed step
    pre     (B, T, G*U)   gate pre-activations;  aux (B, T, U) GRU reset_after's inner_h

Cells: SIMPLE (G=1), LSTM (G=4: i, f, c, o), GRU_AFTER and GRU_BEFORE (G=3: z, r, h).
A masked step outputs the previous output (zeros with `zero_output`, and — as Keras's unrolled
loop does — zeros before the first real step with `zero_leading`). Activations are applied a
gate block at a time, so each element loop is simple enough to vectorise (with NumPy's error
model: no Python ZeroDivisionError checks, which would stop vectorisation). Float32 uses a
rational tanh (within 3e-7 of the exact one); float64 uses the exact functions.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

SIMPLE, LSTM, GRU_AFTER, GRU_BEFORE = 0, 1, 2, 3
CHUNK = 16

LINEAR, TANH, SIGMOID, RELU, HARD_SIGMOID, SOFTSIGN, ELU, SELU, SOFTPLUS, EXPONENTIAL = range(10)
SILU, RELU6 = 10, 11
# The activations the kernels implement, by Keras name.
ACTIVATION_CODES = {
    "linear": LINEAR,
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "relu": RELU,
    "hard_sigmoid": HARD_SIGMOID,
    "softsign": SOFTSIGN,
    "elu": ELU,
    "selu": SELU,
    "softplus": SOFTPLUS,
    "exponential": EXPONENTIAL,
    "silu": SILU,
    "relu6": RELU6,
}
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

_inline = nb.njit(inline="always", fastmath=True, error_model="numpy", cache=True)
_block = nb.njit(fastmath=True, error_model="numpy", cache=True)


@_inline
def _tanh(x, precise):
    if precise:
        return math.tanh(x)
    x = min(max(x, -7.90531110763549805), 7.90531110763549805)
    x2 = x * x
    p = -2.76076847742355e-16
    p = p * x2 + 2.00018790482477e-13
    p = p * x2 - 8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    q = 1.19825839466702e-06
    q = q * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03
    return x * p / q


@_inline
def _sigmoid(x, precise):
    if precise:
        return 1.0 / (1.0 + math.exp(-x))
    return 0.5 + 0.5 * _tanh(0.5 * x, False)


@_block
def activate(code, src, dst, precise):
    """dst[:] = f(src) for activation `code`, over one gate block."""
    n = src.shape[0]
    if code == TANH:
        for j in range(n):
            dst[j] = _tanh(src[j], precise)
    elif code == SIGMOID:
        for j in range(n):
            dst[j] = _sigmoid(src[j], precise)
    elif code == RELU:
        for j in range(n):
            dst[j] = max(src[j], 0.0)
    elif code == HARD_SIGMOID:
        for j in range(n):
            dst[j] = min(max(src[j] / 6.0 + 0.5, 0.0), 1.0)
    elif code == SOFTSIGN:
        for j in range(n):
            dst[j] = src[j] / (1.0 + abs(src[j]))
    elif code == ELU:
        for j in range(n):
            dst[j] = src[j] if src[j] > 0 else math.expm1(src[j])
    elif code == SELU:
        for j in range(n):
            x = src[j]
            dst[j] = _SELU_SCALE * (x if x > 0 else _SELU_ALPHA * math.expm1(x))
    elif code == SOFTPLUS:
        for j in range(n):
            dst[j] = max(src[j], 0.0) + math.log1p(math.exp(-abs(src[j])))
    elif code == EXPONENTIAL:
        for j in range(n):
            dst[j] = math.exp(src[j])
    elif code == SILU:
        for j in range(n):
            dst[j] = src[j] * _sigmoid(src[j], precise)
    elif code == RELU6:
        for j in range(n):
            dst[j] = min(max(src[j], 0.0), 6.0)
    else:
        for j in range(n):
            dst[j] = src[j]


@_block
def derivative(code, src, dst, precise):
    """dst[:] = f'(src) for activation `code` at the pre-activations `src`."""
    n = src.shape[0]
    if code == TANH:
        for j in range(n):
            y = _tanh(src[j], precise)
            dst[j] = 1.0 - y * y
    elif code == SIGMOID:
        for j in range(n):
            y = _sigmoid(src[j], precise)
            dst[j] = y * (1.0 - y)
    elif code == RELU:
        for j in range(n):
            dst[j] = 1.0 if src[j] > 0 else 0.0
    elif code == HARD_SIGMOID:
        for j in range(n):
            dst[j] = 1.0 / 6.0 if -3.0 < src[j] < 3.0 else 0.0
    elif code == SOFTSIGN:
        for j in range(n):
            d = 1.0 + abs(src[j])
            dst[j] = 1.0 / (d * d)
    elif code == ELU:
        for j in range(n):
            dst[j] = 1.0 if src[j] > 0 else math.exp(src[j])
    elif code == SELU:
        for j in range(n):
            dst[j] = _SELU_SCALE * (1.0 if src[j] > 0 else _SELU_ALPHA * math.exp(src[j]))
    elif code == SOFTPLUS:
        for j in range(n):
            dst[j] = _sigmoid(src[j], precise)
    elif code == EXPONENTIAL:
        for j in range(n):
            dst[j] = math.exp(src[j])
    elif code == SILU:
        for j in range(n):
            y = _sigmoid(src[j], precise)
            dst[j] = y * (1.0 + src[j] * (1.0 - y))
    elif code == RELU6:
        for j in range(n):
            dst[j] = 1.0 if 0 < src[j] < 6 else 0.0
    else:
        for j in range(n):
            dst[j] = 1.0


@_block
def recurrent_product(H, M, R, first, last, acc):
    """acc[b, g*U:(g+1)*U] = (H[b] * M[b, g]) @ R[:, g*U:(g+1)*U] for first <= g < last.

    H (C, U) states of a chunk of rows, M (C, G, U) their dropout masks, acc (C, G*U). Each row
    of R is read once for the whole chunk.
    """
    rows, units = H.shape
    acc[:, first * units : last * units] = 0.0
    for k in range(units):
        for g in range(first, last):
            base = g * units
            weights = R[k, base : base + units]
            for b in range(rows):
                hk = H[b, k] * M[b, g, k]
                out = acc[b, base : base + units]
                for j in range(units):
                    out[j] += hk * weights[j]


@_block
def recurrent_product_backward(dinner, H, M, R, RT, gates, dH, dR):
    """Backward of `recurrent_product` over gates [0, gates), for a chunk of rows:
    dH[b] += sum_g (dinner[b, g] @ R_g^T) * M[b, g] and dR_g += sum_b (H[b] * M[b, g])^T
    dinner[b, g]. RT is R transposed, (G*U, U), so both products run along contiguous rows."""
    rows, units = H.shape
    for b in range(rows):
        for g in range(gates):
            base = g * units
            for j in range(units):
                coefficient = dinner[b, base + j]
                for k in range(units):
                    dH[b, k] += coefficient * RT[base + j, k] * M[b, g, k]
    for k in range(units):
        for g in range(gates):
            base = g * units
            for b in range(rows):
                hk = H[b, k] * M[b, g, k]
                for j in range(units):
                    dR[k, base + j] += hk * dinner[b, base + j]


@_block
def first_real_steps(keep, backwards):
    """Per row, the processing index of its first unmasked step (timesteps if none)."""
    batch, timesteps = keep.shape
    first = np.full(batch, timesteps, dtype=np.int64)
    for b in range(batch):
        for s in range(timesteps):
            if keep[b, timesteps - 1 - s if backwards else s]:
                first[b] = s
                break
    return first


@nb.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
def forward(cell, xproj, R, brec, h0, c0, keep, rmask, backwards, zero_output, zero_leading,
            act, ract, precise, out, hs, cs, pre, aux):  # fmt: skip
    """Runs the recurrence over all timesteps; fills out, hs, cs, pre, aux (see module doc)."""
    batch, timesteps, width = xproj.shape
    units = R.shape[0]
    first = first_real_steps(keep, backwards)
    product_gates = 2 if cell == GRU_BEFORE else width // units
    for chunk in nb.prange((batch + CHUNK - 1) // CHUNK):
        b0, b1 = chunk * CHUNK, min(batch, (chunk + 1) * CHUNK)
        acc = np.empty((b1 - b0, width), dtype=xproj.dtype)
        gate = np.empty(width, dtype=xproj.dtype)
        new_h = np.empty(units, dtype=xproj.dtype)
        hs[b0:b1, 0] = h0[b0:b1]
        cs[b0:b1, 0] = c0[b0:b1]
        for s in range(timesteps):
            t = timesteps - 1 - s if backwards else s
            recurrent_product(hs[b0:b1, s], rmask[b0:b1], R, 0, product_gates, acc)
            for b in range(b0, b1):
                hp, x, z, a = hs[b, s], xproj[b, t], pre[b, s], acc[b - b0]
                if cell == SIMPLE:
                    for j in range(units):
                        z[j] = x[j] + a[j]
                    activate(act, z, new_h, precise)
                elif cell == LSTM:
                    for j in range(width):
                        z[j] = x[j] + a[j]
                    activate(ract, z[: 2 * units], gate[: 2 * units], precise)
                    activate(act, z[2 * units : 3 * units], gate[2 * units : 3 * units], precise)
                    activate(ract, z[3 * units :], gate[3 * units :], precise)
                    c = cs[b, s + 1]
                    for j in range(units):
                        c[j] = gate[units + j] * cs[b, s, j] + gate[j] * gate[2 * units + j]
                    activate(act, c, new_h, precise)
                    for j in range(units):
                        new_h[j] *= gate[3 * units + j]
                else:
                    for j in range(2 * units):
                        z[j] = x[j] + a[j] + brec[j]
                    activate(ract, z[: 2 * units], gate[: 2 * units], precise)
                    if cell == GRU_AFTER:
                        for j in range(units):
                            aux[b, s, j] = a[2 * units + j] + brec[2 * units + j]
                            z[2 * units + j] = x[2 * units + j] + gate[units + j] * aux[b, s, j]
                    else:  # (r * h) @ R_h, with the h-gate's dropout mask
                        for j in range(units):
                            z[2 * units + j] = x[2 * units + j]
                        for k in range(units):
                            rk = gate[units + k] * hp[k] * rmask[b, 2, k]
                            for j in range(units):
                                z[2 * units + j] += rk * R[k, 2 * units + j]
                    activate(act, z[2 * units :], gate[2 * units :], precise)
                    for j in range(units):
                        u = gate[j]
                        new_h[j] = u * hp[j] + (1.0 - u) * gate[2 * units + j]
                if keep[b, t]:
                    hs[b, s + 1] = new_h
                    out[b, s] = new_h
                else:
                    hs[b, s + 1] = hp
                    if cell == LSTM:
                        cs[b, s + 1] = cs[b, s]
                    if zero_output or (zero_leading and s < first[b]):
                        out[b, s] = 0.0
                    else:
                        out[b, s] = hp


@nb.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
def backward(cell, R, RT, brec, keep, rmask, backwards, zero_output, zero_leading, act, ract,
             precise, hs, cs, pre, aux, dout, dh_last, dc_last,
             dxproj, dR_chunks, dbrec_chunks, dh0, dc0):  # fmt: skip
    """Backpropagates through `forward`.

    RT is R transposed (G*U, U). Fills dxproj (B, T, G*U) by time index, dh0, dc0 (B, U), and
    per-chunk sums of the
    recurrent kernel and recurrent bias gradients: dR_chunks (chunks, U, G*U), dbrec_chunks
    (chunks, G*U). The gradient of `out[b, s]` reaches the state h after step s, which equals
    the output unless the output was zeroed.
    """
    batch, timesteps, units = dout.shape
    width = R.shape[1]
    first = first_real_steps(keep, backwards)
    product_gates = 2 if cell == GRU_BEFORE else width // units
    for chunk in nb.prange((batch + CHUNK - 1) // CHUNK):
        b0, b1 = chunk * CHUNK, min(batch, (chunk + 1) * CHUNK)
        dR, dbrec = dR_chunks[chunk], dbrec_chunks[chunk]
        dR[:] = 0.0
        dbrec[:] = 0.0
        dtype = dout.dtype
        dh = dh_last[b0:b1].copy()  # (C, U): gradient with respect to h after step s
        dc = dc_last[b0:b1].copy()
        dhp = np.empty((b1 - b0, units), dtype=dtype)
        dinner = np.empty((b1 - b0, width), dtype=dtype)
        gate = np.empty(width, dtype=dtype)
        slope = np.empty(width, dtype=dtype)
        tanh_c = np.empty(units, dtype=dtype)
        slope_c = np.empty(units, dtype=dtype)
        d_rh = np.empty(units, dtype=dtype)
        for s in range(timesteps - 1, -1, -1):
            t = timesteps - 1 - s if backwards else s
            for b in range(b0, b1):
                i = b - b0
                zeroed = zero_output or (zero_leading and s < first[b])
                if keep[b, t] or not zeroed:
                    for j in range(units):
                        dh[i, j] += dout[b, s, j]
                dx, dn = dxproj[b, t], dinner[i]
                dn[:] = 0.0
                if not keep[b, t]:  # the state passed through unchanged
                    dx[:] = 0.0
                    dhp[i] = dh[i]
                    continue
                hp, z = hs[b, s], pre[b, s]
                dhp[i] = 0.0
                if cell == SIMPLE:
                    derivative(act, z, slope, precise)
                    for j in range(units):
                        dx[j] = dh[i, j] * slope[j]
                        dn[j] = dx[j]
                elif cell == LSTM:
                    activate(ract, z[: 2 * units], gate[: 2 * units], precise)
                    activate(act, z[2 * units : 3 * units], gate[2 * units : 3 * units], precise)
                    activate(ract, z[3 * units :], gate[3 * units :], precise)
                    derivative(ract, z[: 2 * units], slope[: 2 * units], precise)
                    derivative(act, z[2 * units : 3 * units], slope[2 * units : 3 * units], precise)
                    derivative(ract, z[3 * units :], slope[3 * units :], precise)
                    activate(act, cs[b, s + 1], tanh_c, precise)
                    derivative(act, cs[b, s + 1], slope_c, precise)
                    for j in range(units):
                        dc_total = dc[i, j] + dh[i, j] * gate[3 * units + j] * slope_c[j]
                        dx[j] = dc_total * gate[2 * units + j] * slope[j]
                        dx[units + j] = dc_total * cs[b, s, j] * slope[units + j]
                        dx[2 * units + j] = dc_total * gate[j] * slope[2 * units + j]
                        dx[3 * units + j] = dh[i, j] * tanh_c[j] * slope[3 * units + j]
                        dc[i, j] = dc_total * gate[units + j]
                    dn[:] = dx
                else:
                    activate(ract, z[: 2 * units], gate[: 2 * units], precise)
                    activate(act, z[2 * units :], gate[2 * units :], precise)
                    derivative(ract, z[: 2 * units], slope[: 2 * units], precise)
                    derivative(act, z[2 * units :], slope[2 * units :], precise)
                    for j in range(units):
                        u = gate[j]
                        dx[j] = dh[i, j] * (hp[j] - gate[2 * units + j]) * slope[j]
                        dx[2 * units + j] = dh[i, j] * (1.0 - u) * slope[2 * units + j]
                        dhp[i, j] = dh[i, j] * u
                    if cell == GRU_AFTER:
                        for j in range(units):
                            dx[units + j] = dx[2 * units + j] * aux[b, s, j] * slope[units + j]
                            dn[2 * units + j] = dx[2 * units + j] * gate[units + j]
                        for j in range(2 * units):
                            dn[j] = dx[j]
                        for j in range(width):
                            dbrec[j] += dn[j]
                    else:  # through (r * h * m_h) @ R_h; the z and r products follow
                        for k in range(units):
                            rh = gate[units + k] * hp[k] * rmask[b, 2, k]
                            total = 0.0
                            for j in range(units):
                                total += dx[2 * units + j] * R[k, 2 * units + j]
                                dR[k, 2 * units + j] += rh * dx[2 * units + j]
                            d_rh[k] = total
                        for j in range(units):
                            m_h = rmask[b, 2, j]
                            dx[units + j] = d_rh[j] * hp[j] * m_h * slope[units + j]
                            dhp[i, j] += d_rh[j] * gate[units + j] * m_h
                        for j in range(2 * units):
                            dn[j] = dx[j]
            recurrent_product_backward(
                dinner, hs[b0:b1, s], rmask[b0:b1], R, RT, product_gates, dhp, dR
            )
            dh[:] = dhp
        dh0[b0:b1] = dh
        dc0[b0:b1] = dc
