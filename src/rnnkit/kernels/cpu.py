"""Fused CPU recurrences: the C++ kernels in `cpu.cpp`, compiled once per machine, called here.

Each step's input and recurrent products (`x_t @ kernel + h @ recurrent_kernel`), the gate
arithmetic, masking and direction run step by step in the kernels, with no projected sequence
in memory; the backward pass does the same in reverse and passes the gradients of the
pre-activations to `weight_gradient`, which forms the weight gradients as long products over
every row and step (for SimpleRNN and LSTM without input dropout at some sizes the backward
pass forms them itself, step by step, in groups of rows: see `backward`). Rows of the batch are
independent, so chunks of rows run on `torch.get_num_threads()` OpenMP threads (PyTorch's own
pool) that never synchronise inside the sequence; no result depends on how rows are split, so
results do not depend on the number of threads.

`cpu_library` compiles `cpu.cpp`, loads it and declares its functions.

Layout (C-contiguous). What the layer passes in and gets back is batch-major, as the layers
use; what the kernels save for the backward pass is time-major, so that each step's rows of a
chunk of the batch lie together (one stream per array for the hardware prefetchers, instead of
one per row, which made reading them back the larger part of the backward pass):

    inputs  (B, T, F)     the layer's inputs by time index
    K       (F, G*U)      kernel (the backward pass packs its transpose from it); bias (G*U,)
                          input bias (zeros without)
    input_dropout_mask (B, G, F)  read when `input_dropout`
    R       (U, G*U)      recurrent kernel (the same); brec (G*U,) recurrent bias (GRU
                          reset_after; zeros otherwise)
    mask    (B, T)        False (0) where a step is masked
    recurrent_dropout_mask (B, G, U)  read when `recurrent_dropout`
    out     (B, T, U)     outputs in processing order (reversed when going backwards); with
                          `return_sequences` 0, (B, 1, U): the last output only
    hs      (T, B, U)     the state before each step, by time index; cs the same for the
                          LSTM's carry (LSTM only)
    gates   (T, B, G, U)  gate values after their activations, by time index (SimpleRNN: the
                          new state)
    pre     (T, B, G, U)  pre-activations, kept only when `save_preactivations` (silu is the
                          one activation whose derivative cannot be computed from its output)
    inner_h (T, B, U)     what the h gate's recurrent product gives or reads, by time index;
                          GRU reset_after: h @ R_h + b_h; GRU reset_before: r * h (times the
                          h-gate's dropout mask); SimpleRNN and LSTM: none
    dout    (B, T, U)     backward: the outputs' gradient, shaped as `out`
    dxproj  (T, B, G, U)  backward: the gradient of the pre-activations, by time index (may be
                          `gates` itself: each row's gate values are read before it is written)
    dinner  (T, B, U)     backward, GRU reset_after: the gradient of inner_h, by time index
                          (may be `inner_h` itself, likewise)
    dinputs (B, T, F)     backward: the inputs' gradient, filled when `input_gradient`
    dkernel (F, G*U), drecurrent (U, G*U), dbias (G*U,)  backward: the weight gradients,
                          where the backward pass forms them (`backward`)
    ids     (B, T) int64  folded inputs (where `table` is given; F is then 0 and inputs and K
                          are not read): each step's input product is its id's table row
    table   (V, G*U)      folded inputs: each id's input product x @ K + bias, formed once
    dtable  (V, G*U)      backward, folded inputs: the table's gradient, where the backward
                          pass forms it (`backward`; `table_rows` is V)
    table_sums            backward, folded inputs: scratch for its row groups' tables of sums
                          (`table_sums_size` values)

Cells (`CellKind`): SIMPLE_RNN (G=1), LSTM (G=4: i, f, c, o), GRU_RESET_AFTER and
GRU_RESET_BEFORE (G=3: z, r, h); activations by `ActivationCode`. The C++ enums get both from
those Python definitions, as compile-time defines. A masked step outputs the previous output
(zeros with `zero_output_for_mask`, and — as Keras's unrolled loop does — zeros before the first
real step with `unroll`). Float32 uses a rational tanh (within 3e-7 of the exact one); float64
uses the exact functions.
"""

from __future__ import annotations

import ctypes
import functools
import weakref
from collections.abc import Callable
from typing import NamedTuple

import torch

from rnnkit.kernels.cpu_library import LongProduct, Problem, library


def _problem(options: dict[str, int], arrays: dict[str, torch.Tensor]) -> Problem:
    problem = Problem(threads=torch.get_num_threads(), **options)
    for name, tensor in arrays.items():
        if not tensor.is_contiguous():
            raise ValueError(f"internal: array `{name}` passed to the kernels is not contiguous")
        setattr(problem, name, tensor.data_ptr())
    return problem


def forward(options: dict[str, int], arrays: dict[str, torch.Tensor]) -> None:
    """Runs the forward recurrence: `options` names `cpu_library.OPTIONS` (all but threads),
    `arrays` the forward arrays of the module doc (contiguous tensors of one dtype; `keep`
    bool)."""
    problem = _problem(options, arrays)
    library().rnnkit_forward(ctypes.byref(problem), arrays["inputs"].dtype == torch.float64)


class PreparedForward:
    """A forward call packed once, run many times: each run sets only the arrays that change
    (a one-step call's inputs, states and outputs) and the thread count, instead of packing
    every option, array and weight again.

    The weights are packed (copied into the kernels' panels) here: a run computes with their
    values at construction, so the owner must prepare a new call when they change.

    Args:
        options: as `forward`'s.
        arrays: as `forward`'s, for the first run.
        changing: the names of the arrays every run gives anew; the others are kept referenced
            (their pointers are packed) while this object lives.
    """

    def __init__(
        self, options: dict[str, int], arrays: dict[str, torch.Tensor], changing: tuple[str, ...]
    ) -> None:
        lib = library()
        self._problem = _problem(options, arrays)
        self._changing = frozenset(changing)
        # The packed pointers must stay valid; the changing arrays need not be kept (a call's
        # inputs may be large).
        self._kept = {name: array for name, array in arrays.items() if name not in changing}
        self._run = lib.rnnkit_forward_packed
        self._double = arrays["inputs"].dtype == torch.float64
        self._weights = lib.rnnkit_pack_forward(ctypes.byref(self._problem), self._double)
        weakref.finalize(self, lib.rnnkit_free_forward_weights, self._weights, self._double)

    def run(self, changed: dict[str, torch.Tensor]) -> None:
        """Runs the forward recurrence with `changed` (contiguous; every name of `changing`)
        in place of the packed arrays of the same names."""
        if changed.keys() != self._changing:
            raise ValueError(f"internal: a prepared forward call needs {sorted(self._changing)}")
        # A copy per run: calls from two threads must not share the pointers they set.
        problem = Problem.from_buffer_copy(self._problem)
        problem.threads = torch.get_num_threads()
        for name, tensor in changed.items():
            if not tensor.is_contiguous():
                raise ValueError(
                    f"internal: array `{name}` passed to the kernels is not contiguous"
                )
            setattr(problem, name, tensor.data_ptr())
        self._run(ctypes.byref(problem), self._double, self._weights)

    def bind(self, changed: dict[str, torch.Tensor]) -> Callable[[], None]:
        """A run on `changed` fixed once: calling the result (no arguments) reruns the
        recurrence on whatever those arrays hold then, on one thread, setting no pointer again
        (a one-step plan's preallocated buffers: `rnnkit.models.step_plan`).

        Args:
            changed: as `run`'s.

        Returns:
            The run. It keeps `changed` and this object (whose finalizer frees the packed
            weights) alive as long as itself.
        """
        if changed.keys() != self._changing:
            raise ValueError(f"internal: a prepared forward call needs {sorted(self._changing)}")
        problem = Problem.from_buffer_copy(self._problem)
        problem.threads = 1  # a bound run is one small step: threads would cost, not share
        for name, tensor in changed.items():
            if not tensor.is_contiguous():
                raise ValueError(
                    f"internal: array `{name}` passed to the kernels is not contiguous"
                )
            setattr(problem, name, tensor.data_ptr())
        run = functools.partial(self._run, ctypes.byref(problem), self._double, self._weights)
        run.kept = (self, changed)  # what the pointers point into (`byref` keeps `problem`)
        return run


def table_sums_size(options: dict[str, int], arrays: dict[str, torch.Tensor]) -> int:
    """How many values `backward`'s `table_sums` scratch must hold for the pass to form the
    folded table's gradient itself, or 0 where it will not: where it forms the weight gradients
    in row groups whose tables of sums (one `(V, G*U)` table each) are no larger than dxproj.
    `arrays` as `backward`'s (with `ids`)."""
    problem = _problem(options, arrays)
    precise = arrays["dout"].dtype == torch.float64
    return library().rnnkit_table_sums_size(ctypes.byref(problem), precise)


class Formed(NamedTuple):
    """What a backward pass formed itself (`backward`).

    Attributes:
        weights: the weight gradients dkernel, drecurrent and dbias.
        table: the folded table's gradient dtable; dxproj is then unwritten.
    """

    weights: bool
    table: bool


def backward(options: dict[str, int], arrays: dict[str, torch.Tensor]) -> Formed:
    """Runs the backward recurrence: fills dinner (GRU reset_after), dinputs, dh0, dc0, and
    either dxproj (for `weight_gradient`) or, where it can and `options["weight_gradients"]`
    asks for it, the weight gradients dkernel, drecurrent and dbias themselves (for SimpleRNN and
    LSTM without input dropout, at some sizes: the kernel decides by the sizes alone, so the
    result does not depend on the number of threads), and then dxproj too only where
    `options["write_dxproj"]` asks for it (the folded path's table gradient). Given folded
    inputs' `ids`, `options["table_rows"]`, a `dtable` and `table_sums` scratch of
    `table_sums_size` values, it forms the table's gradient too, and then writes no dxproj.

    Returns:
        What it formed.
    """
    problem = _problem(options, arrays)
    precise = arrays["dout"].dtype == torch.float64
    formed = library().rnnkit_backward(ctypes.byref(problem), precise)
    return Formed(weights=bool(formed & 1), table=bool(formed & 2))


class SecondProduct(NamedTuple):
    """A second weight's gradient that `weight_gradient` forms in the same pass over the
    gradients (the recurrent kernel's, beside the kernel's).

    Attributes:
        states: `(T, B, S2)` contiguous, what the second product read.
        out: `(S2, G*U)` contiguous, the second weight's gradient.
        mask: None, or `(B, G, S2)` contiguous dropout masks on `states`.
        gate_gradients: None, or `(T, B, U)` contiguous gradients that gate `gate`'s columns of
            `out` take instead of the shared ones (GRU reset_after's h gate: those of inner_h).
        gate: the gate `gate_gradients` serves (first <= gate < last).
        sums: None, or `(G*U,)` contiguous, the sums of `out`'s gradients (a bias's gradient).
    """

    states: torch.Tensor
    out: torch.Tensor
    mask: torch.Tensor | None = None
    gate_gradients: torch.Tensor | None = None
    gate: int = 0
    sums: torch.Tensor | None = None


def weight_gradient(
    states: torch.Tensor,
    mask: torch.Tensor | None,
    gradients: torch.Tensor,
    out: torch.Tensor,
    first: int,
    last: int,
    sums: torch.Tensor | None = None,
    second: SecondProduct | None = None,
) -> None:
    """out[:, first*U:last*U] = sum over steps t and rows b of (states[t, b] * mask[b, g])^T @
    gradients[t, b, g] for first <= g < last, summed in an order that the sizes alone fix (so
    not depending on the number of threads): a weight's gradient; with `sums`, also the plain
    sums of those gradients; with `second`, also a second weight's gradient in the same pass
    over the gradients (see `SecondProduct`).

    Args:
        states: `(T, B, S)`, what each step's product read (the states before each step, or the
            batch-major inputs as `inputs.transpose(0, 1)`): any strides for T and B, the last
            dimension contiguous.
        mask: None, or `(B, G, S)` contiguous dropout masks (then `last == first + 1`).
        gradients: `(T, B, G, U)` contiguous, the gradients of the pre-activations.
        out: `(S, G*U)` contiguous, the weight's gradient.
        first, last: the gates to fill.
        sums: None, or `(G*U,)` contiguous: sums[g*U:(g+1)*U] = gradients[..., g, :] summed
            over rows and steps, for the same gates (a bias's gradient).
        second: None, or the second product.
    """
    timesteps, batch, size = states.shape
    if states.stride(-1) != 1 or not gradients.is_contiguous():
        raise ValueError("internal: weight_gradient needs contiguous rows and gradients")
    width, units = out.shape[1], gradients.shape[-1]
    offset = first * units * out.element_size()
    second = second if second is not None else _NO_SECOND
    states2, out2, gradients2 = second.states, second.out, second.gate_gradients
    gate2 = second.gate if gradients2 is not None else first
    problem = LongProduct(
        states=states.data_ptr(),
        mask=None if mask is None else mask.data_ptr(),
        gradients=gradients.data_ptr() + offset,
        states2=None if states2 is None else states2.data_ptr(),
        mask2=None if second.mask is None else second.mask.data_ptr(),
        gradients2=None if gradients2 is None else gradients2.data_ptr(),
        out=out.data_ptr() + offset,
        sums=None if sums is None else sums.data_ptr() + offset,
        out2=None if out2 is None else out2.data_ptr() + offset,
        sums2=None if second.sums is None else second.sums.data_ptr() + offset,
        gate=first,
        gates=gradients.shape[2],
        batch=batch,
        size=size,
        stride_t=states.stride(0),
        stride_b=states.stride(1),
        ldb=width,
        ldc=width,
        depth=timesteps * batch,
        width=(last - first) * units,
        size2=0 if states2 is None else states2.shape[-1],
        ldc2=width,
        gate2=gate2 - first,
        ldb2=units,
        threads=torch.get_num_threads(),
    )
    library().rnnkit_long_product(ctypes.byref(problem), out.dtype == torch.float64)


_NO_SECOND = SecondProduct(None, None)


def scatter_rows(ids: torch.Tensor, rows: torch.Tensor, out: torch.Tensor) -> None:
    """out[v] = the sum of the rows `rows[n]` with `ids[n] == v`, added in the order of n (zeros
    where no row has id v): the gradient of a table whose rows `ids` picked. The order of each
    sum does not depend on the number of threads (they split the columns).

    Args:
        ids: `(N,)` contiguous int64, each in `[0, V)` (the caller checks).
        rows: `(N, W)` contiguous.
        out: `(V, W)` contiguous, of `rows`' dtype (float32 or float64): filled.
    """
    _check_contiguous("scatter_rows", ids, rows, out)
    count, width = rows.shape
    library().rnnkit_scatter_rows(
        ids.data_ptr(), rows.data_ptr(), count, width, out.shape[0], out.data_ptr(),
        torch.get_num_threads(), out.dtype == torch.float64,
    )  # fmt: skip


def table_product(
    embeddings: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor
) -> None:
    """out = embeddings @ kernel + bias: the folded input table, written in one pass. Each
    row's sums do not depend on the number of threads.

    Args:
        embeddings: `(V, F)` contiguous, float32 or float64.
        kernel: `(F, W)` contiguous, of that dtype.
        bias: `(W,)` contiguous, or None.
        out: `(V, W)` contiguous: filled.
    """
    _check_arrays("table_product", out.dtype, embeddings, kernel, bias, out)
    (rows, features), width = embeddings.shape, kernel.shape[1]
    library().rnnkit_table_product(
        embeddings.data_ptr(), kernel.data_ptr(), None if bias is None else bias.data_ptr(),
        rows, features, width, out.data_ptr(), torch.get_num_threads(),
        out.dtype == torch.float64,
    )  # fmt: skip


def table_gradients(
    dtable: torch.Tensor,
    embeddings: torch.Tensor,
    kernel: torch.Tensor,
    dembeddings: torch.Tensor | None,
    dkernel: torch.Tensor,
    dbias: torch.Tensor,
) -> None:
    """The gradients of `table_product`'s operands from its output's, `dtable`, in one pass
    over it: dembeddings = dtable @ kernel^T (skipped where None), dkernel = embeddings^T @
    dtable, dbias = dtable's column sums. No result depends on the number of threads.

    Args:
        dtable: `(V, W)` contiguous, float32 or float64.
        embeddings: `(V, F)` contiguous, of that dtype.
        kernel: `(F, W)` contiguous.
        dembeddings: `(V, F)` contiguous, or None: filled.
        dkernel: `(F, W)` contiguous: filled.
        dbias: `(W,)` contiguous: filled.
    """
    arrays = (dtable, embeddings, kernel, dembeddings, dkernel, dbias)
    _check_arrays("table_gradients", dtable.dtype, *arrays)
    (rows, width), features = dtable.shape, embeddings.shape[1]
    library().rnnkit_table_gradients(
        dtable.data_ptr(), embeddings.data_ptr(), kernel.data_ptr(), rows, features, width,
        None if dembeddings is None else dembeddings.data_ptr(), dkernel.data_ptr(),
        dbias.data_ptr(), torch.get_num_threads(), dtable.dtype == torch.float64,
    )  # fmt: skip


def _check_contiguous(name: str, *arrays: torch.Tensor | None) -> None:
    if not all(array is None or array.is_contiguous() for array in arrays):
        raise ValueError(f"internal: {name} needs contiguous arrays")


def _check_arrays(name: str, dtype: torch.dtype, *arrays: torch.Tensor | None) -> None:
    """Contiguous arrays of one float dtype (the kernels read them all as that type)."""
    _check_contiguous(name, *arrays)
    if not all(array is None or array.dtype == dtype for array in arrays):
        raise ValueError(f"internal: {name} needs arrays of one dtype")
