"""Fused CPU recurrences (Numba): the whole sequence forward, and its backward, in compiled loops.

The input projection of every timestep (`x @ kernel + bias`, one large matrix product) is done
by PyTorch before these kernels run; the kernels do what must be sequential: the recurrent
matrix product, the gate arithmetic, masking and direction, step by step, and the recurrent
kernel's gradient alongside. Rows of the batch are independent, so chunks of `CHUNK` rows run in
parallel threads that never synchronise inside the sequence; each step works on (chunk rows,
width) tiles, with inner loops that start at 0 along contiguous memory, so they vectorise
(Numba's negative-index handling and array slices inside inner loops stop that). Per-chunk
gradient sums are added in a fixed order, so results do not depend on the number of threads.

Layout (batch-major, as the layers use):

    xproj   (B, T, G, U)  projected inputs by time index, gate blocks in Keras's order
    R       (U, G*U)      recurrent kernel (Rg: by gate, (G, U, U));  brec (G, U) recurrent
                          bias (GRU reset_after)
    keep    (B, T)        False where a step is masked;  rmask (B, G, U) recurrent dropout
    out     (B, T, U)     outputs in processing order (reversed when going backwards)
    hs      (B, T+1, U)   states before the first and after every processed step; cs the
                          same for the LSTM's carry (LSTM only)
    gates   (B, T, G, U)  gate values after their activations (SimpleRNN: the new state)
    pre     (B, T, G, U)  pre-activations, kept only when `keep_pre` (silu is the one
                          activation whose derivative cannot be computed from its output)
    aux     (B, T, U)     LSTM: act(c); GRU reset_after: inner_h = h @ R_h + b_h;
                          GRU reset_before: r * h (times the h-gate's dropout mask)

Cells: SIMPLE (G=1), LSTM (G=4: i, f, c, o), GRU_AFTER and GRU_BEFORE (G=3: z, r, h).
A masked step outputs the previous output (zeros with `zero_output`, and — as Keras's unrolled
loop does — zeros before the first real step with `zero_leading`). Activations are applied a
gate block at a time (with NumPy's error model: no Python ZeroDivisionError checks, which would
stop vectorisation). Float32 uses a rational tanh (within 3e-7 of the exact one); float64 uses
the exact functions.
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
def activate(code, src, dst, lo, hi, precise):
    """dst[i, lo:hi] = f(src[i, lo:hi]) for activation `code`, every row i of the tiles."""
    for i in range(src.shape[0]):
        x, y = src[i, lo:hi], dst[i, lo:hi]
        if code == TANH:
            for j in range(hi - lo):
                y[j] = _tanh(x[j], precise)
        elif code == SIGMOID:
            for j in range(hi - lo):
                y[j] = _sigmoid(x[j], precise)
        elif code == RELU:
            for j in range(hi - lo):
                y[j] = max(x[j], 0.0)
        elif code == HARD_SIGMOID:
            for j in range(hi - lo):
                y[j] = min(max(x[j] / 6.0 + 0.5, 0.0), 1.0)
        elif code == SOFTSIGN:
            for j in range(hi - lo):
                y[j] = x[j] / (1.0 + abs(x[j]))
        elif code == ELU:
            for j in range(hi - lo):
                y[j] = x[j] if x[j] > 0 else math.expm1(x[j])
        elif code == SELU:
            for j in range(hi - lo):
                y[j] = _SELU_SCALE * (x[j] if x[j] > 0 else _SELU_ALPHA * math.expm1(x[j]))
        elif code == SOFTPLUS:
            for j in range(hi - lo):
                y[j] = max(x[j], 0.0) + math.log1p(math.exp(-abs(x[j])))
        elif code == EXPONENTIAL:
            for j in range(hi - lo):
                y[j] = math.exp(x[j])
        elif code == SILU:
            for j in range(hi - lo):
                y[j] = x[j] * _sigmoid(x[j], precise)
        elif code == RELU6:
            for j in range(hi - lo):
                y[j] = min(max(x[j], 0.0), 6.0)
        else:
            for j in range(hi - lo):
                y[j] = x[j]


@_block
def derivative(code, out, src, dst, lo, hi, precise):
    """dst[i, lo:hi] = f'(src[i, lo:hi]) for activation `code`, every row i of the tiles, from
    the activation's output `out` = f(src). Only silu reads the pre-activations `src`."""
    for i in range(out.shape[0]):
        y, x, d = out[i, lo:hi], src[i, lo:hi], dst[i, lo:hi]
        if code == TANH:
            for j in range(hi - lo):
                d[j] = 1.0 - y[j] * y[j]
        elif code == SIGMOID:
            for j in range(hi - lo):
                d[j] = y[j] * (1.0 - y[j])
        elif code == RELU:
            for j in range(hi - lo):
                d[j] = 1.0 if y[j] > 0 else 0.0
        elif code == HARD_SIGMOID:
            for j in range(hi - lo):
                d[j] = 1.0 / 6.0 if 0.0 < y[j] < 1.0 else 0.0
        elif code == SOFTSIGN:
            for j in range(hi - lo):
                d[j] = (1.0 - abs(y[j])) * (1.0 - abs(y[j]))
        elif code == ELU:
            for j in range(hi - lo):
                d[j] = 1.0 if y[j] > 0 else y[j] + 1.0
        elif code == SELU:
            for j in range(hi - lo):
                d[j] = _SELU_SCALE if y[j] > 0 else y[j] + _SELU_SCALE * _SELU_ALPHA
        elif code == SOFTPLUS:
            for j in range(hi - lo):
                d[j] = -math.expm1(-y[j])
        elif code == EXPONENTIAL:
            for j in range(hi - lo):
                d[j] = y[j]
        elif code == SILU:
            for j in range(hi - lo):
                sig = _sigmoid(x[j], precise)
                d[j] = sig * (1.0 + x[j] * (1.0 - sig))
        elif code == RELU6:
            for j in range(hi - lo):
                d[j] = 1.0 if 0.0 < y[j] < 6.0 else 0.0
        else:
            for j in range(hi - lo):
                d[j] = 1.0


@_block
def product(A, B, out, accumulate):
    """out (+)= A @ B for C-contiguous A (rows, depth), B (depth, width), out (rows, width).

    Two rows of A and four of B at a time, so each loaded row of B serves two output rows and
    each output element is loaded and stored once per four products; the summation order is
    fixed, so results do not depend on threads.
    """
    rows, depth = A.shape
    width = B.shape[1]
    if not accumulate:
        out[:] = 0.0
    whole_rows, whole_depth = rows - rows % 2, depth - depth % 4
    for b in range(0, whole_rows, 2):
        o, p = out[b], out[b + 1]
        for k in range(0, whole_depth, 4):
            h0, h1, h2, h3 = A[b, k], A[b, k + 1], A[b, k + 2], A[b, k + 3]
            g0, g1, g2, g3 = A[b + 1, k], A[b + 1, k + 1], A[b + 1, k + 2], A[b + 1, k + 3]
            w0, w1, w2, w3 = B[k], B[k + 1], B[k + 2], B[k + 3]
            for j in range(width):
                a0, a1, a2, a3 = w0[j], w1[j], w2[j], w3[j]
                o[j] += h0 * a0 + h1 * a1 + h2 * a2 + h3 * a3
                p[j] += g0 * a0 + g1 * a1 + g2 * a2 + g3 * a3
        for k in range(whole_depth, depth):
            h, g, w = A[b, k], A[b + 1, k], B[k]
            for j in range(width):
                o[j] += h * w[j]
                p[j] += g * w[j]
    for b in range(whole_rows, rows):
        o = out[b]
        for k in range(depth):
            h, w = A[b, k], B[k]
            for j in range(width):
                o[j] += h * w[j]


@_block
def recurrent_product(H, M, R, Rg, first, last, masked, acc, Hg, Og):
    """acc[:, g*U:(g+1)*U] = (H * M[:, g]) @ R_g for first <= g < last, over a chunk's rows.

    H (C, U) states, M (C, G, U) dropout masks (read only when `masked`), R (U, G*U) and Rg
    (G, U, U) the recurrent kernel whole and by gate, acc (C, G*U); Hg, Og (C, U) scratch.
    """
    units = H.shape[1]
    if not masked and first == 0 and last == Rg.shape[0]:
        product(H, R, acc, False)
        return
    for g in range(first, last):
        for i in range(H.shape[0]):
            for k in range(units):
                Hg[i, k] = H[i, k] * M[i, g, k] if masked else H[i, k]
        product(Hg, Rg[g], Og, False)
        for i in range(H.shape[0]):
            acc[i, g * units : (g + 1) * units] = Og[i]


@_block
def recurrent_product_transposed(D, M, RT, RTg, first, last, masked, dH, Dg, Tg):
    """dH += sum_g (D[:, g*U:(g+1)*U] @ R_g^T) * M[:, g] for first <= g < last: the gradient
    `recurrent_product` passes to its states. RT (G*U, U) and RTg (G, U, U) are R transposed,
    whole and by gate; Dg, Tg (C, U) scratch."""
    units = dH.shape[1]
    if not masked and first == 0 and last == RTg.shape[0]:
        product(D, RT, dH, True)
        return
    for g in range(first, last):
        for i in range(D.shape[0]):
            Dg[i] = D[i, g * units : (g + 1) * units]
        product(Dg, RTg[g], Tg, False)
        for i in range(D.shape[0]):
            for k in range(units):
                dH[i, k] += Tg[i, k] * M[i, g, k] if masked else Tg[i, k]


@_block
def outer_product_sum(H, M, D, first, last, masked, dR, dRg, HT, Dg):
    """One step's share of the recurrent kernel's gradient, over a chunk's rows H (C, U) and
    D (C, G*U): (H * M[:, g])^T @ D[:, g*U:(g+1)*U] for first <= g < last, added to dR (U, G*U)
    when all gates go unmasked at once, else to dRg[g] (U, U). HT (U, C), Dg (C, U) scratch."""
    rows, units = H.shape
    whole = not masked and first == 0 and last == dRg.shape[0]
    for g in range(first, last):
        for i in range(rows):
            for k in range(units):
                HT[k, i] = H[i, k] * M[i, g, k] if masked else H[i, k]
        if whole:
            product(HT, D, dR, True)
            return
        for i in range(rows):
            Dg[i] = D[i, g * units : (g + 1) * units]
        product(HT, Dg, dRg[g], True)


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
def forward(cell, xproj, R, Rg, brec, h0, c0, keep, rmask, masked, backwards, zero_output,
            zero_leading, act, ract, precise, out, h_last, c_last, save, hs, cs, gates, pre,
            keep_pre, aux):  # fmt: skip
    """Runs the recurrence over all timesteps; fills out and the final states h_last, c_last
    (B, U), and, when `save` (for the backward pass), hs, gates, and cs (LSTM), aux (LSTM and
    GRU) and pre (when `keep_pre`) — see the module doc. xproj, gates and pre come as
    (B, T, G, U), brec as (G, U)."""
    batch, timesteps, n_gates, units = xproj.shape
    width = n_gates * units
    first = first_real_steps(keep, backwards)
    product_gates = 2 if cell == GRU_BEFORE else n_gates
    direct = 2 if cell == GRU_AFTER or cell == GRU_BEFORE else n_gates
    for chunk in nb.prange((batch + CHUNK - 1) // CHUNK):
        b0, b1 = chunk * CHUNK, min(batch, (chunk + 1) * CHUNK)
        rows = b1 - b0
        dtype = xproj.dtype
        H, C, M = h0[b0:b1].copy(), c0[b0:b1].copy(), rmask[b0:b1]
        acc = np.empty((rows, width), dtype=dtype)
        Z = np.empty((rows, width), dtype=dtype)
        A = np.empty((rows, width), dtype=dtype)
        acc3 = acc.reshape((rows, n_gates, units))
        Z3 = Z.reshape((rows, n_gates, units))
        A3 = A.reshape((rows, n_gates, units))
        new_h = np.empty((rows, units), dtype=dtype)
        new_c = np.empty((rows, units), dtype=dtype)
        X = np.empty((rows, units), dtype=dtype)
        Hg = np.empty((rows, units), dtype=dtype)
        Og = np.empty((rows, units), dtype=dtype)
        if save:
            hs[b0:b1, 0] = H
            if cell == LSTM:
                cs[b0:b1, 0] = C
        for s in range(timesteps):
            t = timesteps - 1 - s if backwards else s
            recurrent_product(H, M, R, Rg, 0, product_gates, masked, acc, Hg, Og)
            for i in range(rows):
                for g in range(direct):
                    x, a, z, bias = xproj[b0 + i, t, g], acc3[i, g], Z3[i, g], brec[g]
                    for j in range(units):
                        z[j] = x[j] + a[j] + bias[j]
            if cell == SIMPLE:
                activate(act, Z, A, 0, units, precise)
                new_h[:] = A
            elif cell == LSTM:
                activate(ract, Z, A, 0, 2 * units, precise)
                activate(act, Z, A, 2 * units, 3 * units, precise)
                activate(ract, Z, A, 3 * units, width, precise)
                for i in range(rows):
                    for j in range(units):
                        new_c[i, j] = A3[i, 1, j] * C[i, j] + A3[i, 0, j] * A3[i, 2, j]
                activate(act, new_c, X, 0, units, precise)
                for i in range(rows):
                    for j in range(units):
                        new_h[i, j] = A3[i, 3, j] * X[i, j]
            else:
                activate(ract, Z, A, 0, 2 * units, precise)
                if cell == GRU_AFTER:  # X = inner_h = h @ R_h + b_h, reset after the product
                    for i in range(rows):
                        x = xproj[b0 + i, t, 2]
                        for j in range(units):
                            X[i, j] = acc3[i, 2, j] + brec[2, j]
                            Z3[i, 2, j] = x[j] + A3[i, 1, j] * X[i, j]
                else:  # X = r * h (times the h-gate's dropout mask), then X @ R_h
                    for i in range(rows):
                        for k in range(units):
                            X[i, k] = A3[i, 1, k] * H[i, k]
                            if masked:
                                X[i, k] *= M[i, 2, k]
                    recurrent_product(X, M, R, Rg, 2, 3, False, acc, Hg, Og)
                    for i in range(rows):
                        x = xproj[b0 + i, t, 2]
                        for j in range(units):
                            Z3[i, 2, j] = x[j] + acc3[i, 2, j]
                activate(act, Z, A, 2 * units, width, precise)
                for i in range(rows):
                    for j in range(units):
                        u = A3[i, 0, j]
                        new_h[i, j] = u * H[i, j] + (1.0 - u) * A3[i, 2, j]
            for i in range(rows):
                b = b0 + i
                if save:
                    gates[b, s] = A3[i]
                    if keep_pre:
                        pre[b, s] = Z3[i]
                    if cell != SIMPLE:
                        aux[b, s] = X[i]
                if keep[b, t]:
                    H[i] = new_h[i]
                    if cell == LSTM:
                        C[i] = new_c[i]
                    out[b, s] = new_h[i]
                elif zero_output or (zero_leading and s < first[b]):
                    out[b, s] = 0.0
                else:
                    out[b, s] = H[i]
                if save:
                    hs[b, s + 1] = H[i]
                    if cell == LSTM:
                        cs[b, s + 1] = C[i]
        h_last[b0:b1] = H
        c_last[b0:b1] = C


@nb.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
def backward(cell, R, RT, RTg, keep, rmask, masked, backwards, zero_output, zero_leading, act,
             ract, precise, hs, cs, gates, pre, keep_pre, aux, dout, dh_last, dc_last,
             dxproj, dR_chunks, dRg_chunks, dbrec_chunks, dh0, dc0):  # fmt: skip
    """Backpropagates through `forward`.

    Fills dxproj (B, T, G, U) by time index, dh0, dc0 (B, U), and per-chunk sums of the
    recurrent kernel's gradient — dR_chunks (chunks, U, G*U) from products of all gates at once,
    dRg_chunks (chunks, G, U, U) from products gate by gate; their sum is the gradient — and of
    the recurrent bias's, dbrec_chunks (chunks, G*U). Adding the chunks in order gives results
    that do not depend on the number of threads. The gradient of `out[b, s]` reaches the state
    h after step s, which equals the output unless the output was zeroed.
    """
    batch, timesteps, units = dout.shape
    n_gates = gates.shape[2]
    width = n_gates * units
    first = first_real_steps(keep, backwards)
    product_gates = 2 if cell == GRU_BEFORE else n_gates
    for chunk in nb.prange((batch + CHUNK - 1) // CHUNK):
        b0, b1 = chunk * CHUNK, min(batch, (chunk + 1) * CHUNK)
        rows = b1 - b0
        dtype = dout.dtype
        dH, dC, M = dh_last[b0:b1].copy(), dc_last[b0:b1].copy(), rmask[b0:b1]
        dR, dRg, dbrec = dR_chunks[chunk], dRg_chunks[chunk], dbrec_chunks[chunk]
        dR[:] = 0.0
        dRg[:] = 0.0
        dbrec[:] = 0.0
        A = np.empty((rows, width), dtype=dtype)
        Z = np.empty((rows, width), dtype=dtype)
        S = np.empty((rows, width), dtype=dtype)
        DX = np.empty((rows, width), dtype=dtype)
        DN = np.empty((rows, width), dtype=dtype)
        A3 = A.reshape((rows, n_gates, units))
        S3 = S.reshape((rows, n_gates, units))
        DX3 = DX.reshape((rows, n_gates, units))
        DN3 = DN.reshape((rows, n_gates, units))
        Z3 = Z.reshape((rows, n_gates, units))
        HP = np.empty((rows, units), dtype=dtype)
        X = np.empty((rows, units), dtype=dtype)
        CN = np.empty((rows, units), dtype=dtype)
        SC = np.empty((rows, units), dtype=dtype)
        dHP = np.empty((rows, units), dtype=dtype)
        dCP = np.empty((rows, units), dtype=dtype)
        Dg = np.empty((rows, units), dtype=dtype)
        Tg = np.empty((rows, units), dtype=dtype)
        d_rh = np.empty((rows, units), dtype=dtype)
        HT = np.empty((units, rows), dtype=dtype)
        source = Z if keep_pre else A
        inner = DN if cell == GRU_AFTER else DX  # the gradient reaching recurrent_product
        for s in range(timesteps - 1, -1, -1):
            t = timesteps - 1 - s if backwards else s
            for i in range(rows):
                b = b0 + i
                A3[i] = gates[b, s]
                HP[i] = hs[b, s]
                if keep_pre:
                    Z3[i] = pre[b, s]
                if cell != SIMPLE:
                    X[i] = aux[b, s]
                if cell == LSTM:
                    CN[i] = cs[b, s + 1]
                if keep[b, t] or not (zero_output or (zero_leading and s < first[b])):
                    d = dout[b, s]
                    for j in range(units):
                        dH[i, j] += d[j]
            dHP[:] = 0.0
            if cell == SIMPLE:
                derivative(act, A, source, S, 0, units, precise)
                for i in range(rows):
                    for j in range(units):
                        DX[i, j] = dH[i, j] * S[i, j]
            elif cell == LSTM:
                derivative(ract, A, source, S, 0, 2 * units, precise)
                derivative(act, A, source, S, 2 * units, 3 * units, precise)
                derivative(ract, A, source, S, 3 * units, width, precise)
                derivative(act, X, CN, SC, 0, units, precise)
                for i in range(rows):
                    c_prev = cs[b0 + i, s]
                    for j in range(units):
                        dc_total = dC[i, j] + dH[i, j] * A3[i, 3, j] * SC[i, j]
                        DX3[i, 0, j] = dc_total * A3[i, 2, j] * S3[i, 0, j]
                        DX3[i, 1, j] = dc_total * c_prev[j] * S3[i, 1, j]
                        DX3[i, 2, j] = dc_total * A3[i, 0, j] * S3[i, 2, j]
                        DX3[i, 3, j] = dH[i, j] * X[i, j] * S3[i, 3, j]
                        dCP[i, j] = dc_total * A3[i, 1, j]
            else:
                derivative(ract, A, source, S, 0, 2 * units, precise)
                derivative(act, A, source, S, 2 * units, width, precise)
                for i in range(rows):
                    for j in range(units):
                        u = A3[i, 0, j]
                        DX3[i, 0, j] = dH[i, j] * (HP[i, j] - A3[i, 2, j]) * S3[i, 0, j]
                        DX3[i, 2, j] = dH[i, j] * (1.0 - u) * S3[i, 2, j]
                        dHP[i, j] = dH[i, j] * u
                if cell == GRU_AFTER:
                    for i in range(rows):
                        for j in range(units):
                            d_h = DX3[i, 2, j]
                            DX3[i, 1, j] = d_h * X[i, j] * S3[i, 1, j]
                            DN3[i, 0, j] = DX3[i, 0, j]
                            DN3[i, 1, j] = DX3[i, 1, j]
                            DN3[i, 2, j] = d_h * A3[i, 1, j]
                else:  # back through X @ R_h, X = r * h * m_h
                    d_rh[:] = 0.0
                    recurrent_product_transposed(DX, M, RT, RTg, 2, 3, False, d_rh, Dg, Tg)
                    for i in range(rows):
                        for j in range(units):
                            d_x = d_rh[i, j] * M[i, 2, j] if masked else d_rh[i, j]
                            DX3[i, 1, j] = d_x * HP[i, j] * S3[i, 1, j]
                            dHP[i, j] += d_x * A3[i, 1, j]
            for i in range(rows):
                if keep[b0 + i, t]:
                    if cell == LSTM:
                        dC[i] = dCP[i]
                else:  # the states passed through this step unchanged
                    DX[i] = 0.0
                    DN[i] = 0.0
                    dHP[i] = dH[i]
            recurrent_product_transposed(inner, M, RT, RTg, 0, product_gates, masked, dHP, Dg, Tg)
            outer_product_sum(HP, M, inner, 0, product_gates, masked, dR, dRg, HT, Dg)
            if cell == GRU_BEFORE:
                outer_product_sum(X, M, DX, 2, 3, False, dR, dRg, HT, Dg)
            if cell == GRU_AFTER:
                for i in range(rows):
                    for j in range(width):
                        dbrec[j] += DN[i, j]
            for i in range(rows):
                dxproj[b0 + i, t] = DX3[i]
            dH[:] = dHP
        dh0[b0:b1] = dH
        dc0[b0:b1] = dC
