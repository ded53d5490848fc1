// Fused CPU recurrences for rnnkit: the sequential part of SimpleRNN, LSTM and GRU, forward and
// backward, for float and double. `rnnkit/kernels/cpu_library.py` compiles this file once per
// machine (with -march=native) and `rnnkit/kernels/cpu.py` calls `rnnkit_forward` /
// `rnnkit_backward` through ctypes; its docstring describes the array layouts. Rows of the
// batch are independent: chunks of rows run on separate threads that never synchronise inside
// the sequence, and no result depends on how rows are split, so results do not depend on the
// number of threads. The threads are OpenMP's: loaded beside PyTorch, the library shares
// PyTorch's OpenMP runtime and its thread pool (whose idle threads spin for a while after each
// PyTorch operation, and would otherwise take the cores from threads of our own).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

// The codes are defined once, in Python (`rnnkit.kernels.spec.CellKind`,
// `rnnkit.activations.ActivationCode`); cpu_library.py passes them as `NAME = value` lists at
// compile time.
#if !defined(RNNKIT_CELL_CODES) || !defined(RNNKIT_ACTIVATION_CODES)
#error "compile cpu.cpp through rnnkit.kernels.cpu_library, which defines the codes"
#endif
enum Cell : int64_t { RNNKIT_CELL_CODES };
enum Activation : int64_t { RNNKIT_ACTIVATION_CODES };
constexpr double SELU_ALPHA = 1.6732632423543772848170429916717;
constexpr double SELU_SCALE = 1.0507009873554804934193349852946;

}  // namespace

// Mirrored field by field by `Problem` in cpu_library.py. Arrays are C-contiguous; see cpu.py.
struct Problem {
  int64_t cell, batch, timesteps, features, units, gates;
  int64_t go_backwards, zero_output_for_mask, unroll, activation, recurrent_activation;
  int64_t input_dropout, recurrent_dropout, save, save_preactivations, input_gradient;
  int64_t return_sequences, threads, weight_gradients;
  // Where the backward forms the weight gradients, whether it also writes dxproj (the folded
  // path's table gradient sums it, unless this pass forms that too: `forms_table_gradient`);
  // elsewhere dxproj is always written. table_rows: V, the folded table's rows (backward).
  int64_t write_dxproj, table_rows;
  const void *inputs, *kernel, *input_bias, *input_dropout_mask;
  const void *recurrent_kernel, *recurrent_bias, *h0, *c0;
  const void* recurrent_dropout_mask;
  const uint8_t* mask;
  void *out, *h_last, *c_last, *hs, *cs, *gate_values, *pre, *inner_h;
  const void *dout, *dh_last, *dc_last;
  void *dxproj, *dinner, *dinputs, *dh0, *dc0;
  void *dkernel, *drecurrent, *dbias;  // the weight gradients, where the backward forms them
  // Folded inputs, where `table` is not null: ids (B, T) into table (V x G*U), each id's row its
  // input product x @ K + b formed once (an Embedding folded into the kernel); features is 0.
  const int64_t* ids;
  const void* table;
  // Backward, folded inputs: the table's gradient (V x G*U), and scratch for the row groups'
  // tables of sums (`rnnkit_table_sums_size` values), or null.
  void *dtable, *table_sums;
};

// A weight's gradient as one long product over every row and step (`long_product`). Mirrored
// field by field by `LongProduct` in cpu_library.py.
struct LongProduct {
  // states: row n = (t, b) at states + t * stride_t + b * stride_b, `size` values (contiguous).
  // gradients: (depth x width), row stride ldb; rows by n = t * batch + b, time-major as the
  // saved arrays are. mask: (batch, gates, size) dropout masks, or null; mask2 the same for
  // states2 (batch, gates, size2). gradients2: null, or (depth x U), row stride ldb2: the
  // gradients out2's columns of gate `gate2` (counted from `gate`) take instead. sums2: null,
  // or the sums of out2's gradients (as sums for out's).
  const void *states, *mask, *gradients, *states2, *mask2, *gradients2;
  void *out, *sums, *out2, *sums2;
  int64_t gate, gates, batch, size, stride_t, stride_b, ldb, ldc, depth, width, size2, ldc2;
  int64_t gate2, ldb2, threads;
};

namespace {

// One SIMD register of T (AVX-512: 16 floats; AVX: 8; the portable builds, SSE2 on x86-64 or
// NEON on ARM: 4), through GCC's vector extensions.
#if defined(__AVX512F__)
constexpr int VECTOR_BYTES = 64;
#elif defined(__AVX__)
constexpr int VECTOR_BYTES = 32;
#else
constexpr int VECTOR_BYTES = 16;
#endif
typedef float float_vector __attribute__((vector_size(VECTOR_BYTES)));
typedef double double_vector __attribute__((vector_size(VECTOR_BYTES)));
template <typename T> struct Vector;
template <> struct Vector<float> { using type = float_vector; };
template <> struct Vector<double> { using type = double_vector; };

template <typename T> inline typename Vector<T>::type load(const T* p) {
  typename Vector<T>::type v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T> inline void store(T* p, typename Vector<T>::type v) {
  std::memcpy(p, &v, sizeof v);
}

// to[0, n) = from[0, n), inline: for the rows of a few dozen values the step loops copy, a
// library call per row costs more than the copy.
template <typename T> inline void copy_row(const T* from, int64_t n, T* to) {
  constexpr int64_t LANES = VECTOR_BYTES / sizeof(T);
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) store(to + j, load(from + j));
  for (; j < n; ++j) to[j] = from[j];
}

// to[0, n) = from[0, n) * mask[0, n): a row times its dropout mask.
template <typename T> inline void masked_row(const T* from, const T* mask, int64_t n, T* to) {
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) to[j] = from[j] * mask[j];
}

// Asks the caches for `count` values from `p` ahead of their use: into L1 (prefetcht0), or with
// `l2_only` into L2 alone (prefetcht2). In the batch-major arrays (inputs, outputs and their
// gradients) each batch row's entries lie T steps apart, one stream per row: more streams than
// the hardware prefetchers follow.
template <typename T> inline void prefetch_row(const T* p, int64_t count, bool l2_only = false) {
  for (int64_t offset = 0; offset < count; offset += 64 / sizeof(T)) {
    if (l2_only)  // the locality must be a constant
      __builtin_prefetch(p + offset, 0, 1);
    else
      __builtin_prefetch(p + offset);
  }
}

// A second left operand that continues a product's depth: row r's values A[r * lda + k] for
// k < depth multiply B's rows after the first operand's (none where depth is 0).
template <typename T> struct Continued {
  const T* A = nullptr;
  int64_t lda = 0, depth = 0;
  Continued from_row(int64_t i) const { return {A ? A + i * lda : nullptr, lda, depth}; }
};

// acc (ROWS x NV vectors) += A (ROWS x depth; A(r, k) = A[r * lda + k * a_step]) @ B (depth x
// NV vectors, row stride ldb). PACKED: A is a block of `pack_row_blocks` (lda 1, a_step ROWS),
// its strides compile-time constants.
template <typename T, int ROWS, int NV, bool PACKED = false>
__attribute__((always_inline)) inline void add_products(
    typename Vector<T>::type (&acc)[ROWS][NV], const T* A, int64_t lda, int64_t a_step,
    const T* B, int64_t ldb, int64_t depth) {
  using V = typename Vector<T>::type;
  constexpr int LANES = VECTOR_BYTES / sizeof(T);
  if constexpr (PACKED) lda = 1, a_step = ROWS;
  // Unrolled: the loop's own instructions then take fewer of the core's issue slots (by 8, not
  // 4: see benchmarks/README.md, "Why the fused CPU kernels are written as they are").
#pragma GCC unroll 8
  for (int64_t k = 0; k < depth; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) {
      b[v] = load(B + k * ldb + v * LANES);
      // Keeps a four-row block's b[v] in a register: left alone, GCC reloads it from memory in
      // every row's multiply-add. Six-row blocks need no such hint.
      if constexpr (ROWS < 6) __asm__("" : "+x"(b[v]));
    }
    for (int r = 0; r < ROWS; ++r) {
      const T a = A[r * lda + k * a_step];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
}

// C (ROWS x NV vectors) (+)= A (ROWS x depth; A(r, k) = A[r * lda + k * a_step]) @ B (depth x
// NV vectors, row stride ldb), then + `then`'s rows @ B's next then.depth rows, plus the row
// `bias` in every row if given (without accumulate): the ROWS x NV accumulators stay in
// registers for the whole depth of both. PACKED as for `add_products`.
template <typename T, int ROWS, int NV, bool PACKED = false>
inline void matmul_block(const T* A, int64_t lda, int64_t a_step, const T* B, int64_t ldb, T* C,
                         int64_t ldc, int64_t depth, bool accumulate, const T* bias,
                         Continued<T> then = {}) {
  using V = typename Vector<T>::type;
  constexpr int LANES = VECTOR_BYTES / sizeof(T);
  V acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? load(C + r * ldc + v * LANES) : bias ? load(bias + v * LANES) : V{};
  add_products<T, ROWS, NV, PACKED>(acc, A, lda, a_step, B, ldb, depth);
  if (then.depth)
    add_products<T, ROWS, NV>(acc, then.A, then.lda, 1, B + depth * ldb, ldb, then.depth);
  for (int r = 0; r < ROWS; ++r)
    for (int v = 0; v < NV; ++v) store(C + r * ldc + v * LANES, acc[r][v]);
}

// One row of C (+)= a (depth; a[k * a_step]) @ PANELS two-vector panels of B (panel p starts
// at P + p * panel_stride, as `pack` lays them out), then + then's row @ the panels' next
// then.depth rows, plus `bias` (without accumulate): matmul_block's sums for one row, over
// several panels at once, so that 2 * PANELS multiply-add chains run side by side (a one-row
// block over one panel has two, each waiting on the latency of the one before).
template <typename T, int PANELS>
inline void matmul_row_panels(const T* a, int64_t a_step, const T* P, int64_t panel_stride,
                              T* C, int64_t depth, bool accumulate, const T* bias,
                              Continued<T> then) {
  using V = typename Vector<T>::type;
  constexpr int LANES = VECTOR_BYTES / sizeof(T), PANEL = 2 * LANES;
  V acc[PANELS][2];
  for (int p = 0; p < PANELS; ++p)
    for (int v = 0; v < 2; ++v)
      acc[p][v] = accumulate ? load(C + p * PANEL + v * LANES)
                  : bias     ? load(bias + p * PANEL + v * LANES)
                             : V{};
  auto add = [&](const T* row, int64_t step, const T* B, int64_t n) {
#pragma GCC unroll 4
    for (int64_t k = 0; k < n; ++k) {
      const T value = row[k * step];
      for (int p = 0; p < PANELS; ++p)
        for (int v = 0; v < 2; ++v)
          acc[p][v] += value * load(B + p * panel_stride + k * PANEL + v * LANES);
    }
  };
  add(a, a_step, P, depth);
  if (then.depth) add(then.A, 1, P + depth * PANEL, then.depth);
  for (int p = 0; p < PANELS; ++p)
    for (int v = 0; v < 2; ++v) store(C + p * PANEL + v * LANES, acc[p][v]);
}

// Weights are packed before the recurrence: a (depth x width) matrix becomes panels of its
// columns — strips of two vectors, then of one, then single columns — each stored (depth x
// panel width) contiguously, one after another, so the panel starting at column j begins at
// P + depth * j. A product then streams each panel from memory in order (no stride that crosses
// a page at every row, as a wide row-major matrix has).
template <typename T, int64_t PANEL>
inline void pack_panel(const T* B, int64_t ldb, int64_t depth, T* P) {
  for (int64_t k = 0; k < depth; ++k)
    for (int64_t jj = 0; jj < PANEL; ++jj) P[k * PANEL + jj] = B[k * ldb + jj];
}

// pack_panel of B times a mask row per depth index (mask[k * ldm + jj]): states times their
// dropout masks.
template <typename T, int64_t PANEL>
inline void pack_masked_panel(const T* B, int64_t ldb, const T* mask, int64_t ldm, int64_t depth,
                              T* P) {
  for (int64_t k = 0; k < depth; ++k)
    for (int64_t jj = 0; jj < PANEL; ++jj) P[k * PANEL + jj] = B[k * ldb + jj] * mask[k * ldm + jj];
}

// pack_panel of B = A^T (depth x PANEL, B(k, jj) = A[jj * lda + k]): A's rows become the
// panel's columns, 16 depth rows at a time (each tile of A's rows and of the panel stays in L1).
// The backward pass packs the weights' transposes so, straight from the weights, rather than
// packing a transposed copy made first (one pass over the weights instead of two: see
// benchmarks/README.md, "The large LSTM step (issue 24, eleventh session)").
template <typename T, int64_t PANEL>
inline void pack_transposed_panel(const T* A, int64_t lda, int64_t depth, T* P) {
  constexpr int64_t TILE = 16;
  for (int64_t k0 = 0; k0 < depth; k0 += TILE) {
    const int64_t kn = std::min(TILE, depth - k0);
    for (int64_t jj = 0; jj < PANEL; ++jj)
      for (int64_t i = 0; i < kn; ++i) P[(k0 + i) * PANEL + jj] = A[jj * lda + k0 + i];
  }
}

// B (depth x width, row stride ld) in panels, as above; with TRANSPOSED, B = A^T for A (width x
// depth, row stride ld) given in its place.
template <typename T, bool TRANSPOSED = false>
void pack(const T* B, int64_t ld, int64_t depth, int64_t width, T* P) {
  constexpr int64_t LANES = VECTOR_BYTES / sizeof(T);
  auto panel = [&](auto panel_width, int64_t j) {
    constexpr int64_t PANEL = decltype(panel_width)::value;
    if constexpr (TRANSPOSED)
      pack_transposed_panel<T, PANEL>(B + j * ld, ld, depth, P + depth * j);
    else
      pack_panel<T, PANEL>(B + j, ld, depth, P + depth * j);
  };
  int64_t j = 0;
  using TwoVectors = std::integral_constant<int64_t, 2 * LANES>;
  using OneVector = std::integral_constant<int64_t, LANES>;
  for (; j + 2 * LANES <= width; j += 2 * LANES) panel(TwoVectors{}, j);
  for (; j + LANES <= width; j += LANES) panel(OneVector{}, j);
  for (; j < width; ++j) panel(std::integral_constant<int64_t, 1>{}, j);
}

// Every element of C sums its products over the depth in order, in the same instructions
// whatever the block shape, so a row's result does not depend on its place in the chunk (and so
// on the number of threads). A's row blocks start `block_step` apart (ROWS * lda, or packed
// blocks: `pack_row_blocks`).
// From column j0 on (`matmul_row_blocks` does the two-vector panels before it).
template <typename T, int ROWS>
void matmul_rows(const T* A, int64_t lda, int64_t a_step, int64_t block_step, const T* P, T* C,
                 int64_t ldc, int64_t rows, int64_t depth, int64_t width, bool accumulate,
                 const T* bias, Continued<T> then = {}, int64_t j0 = 0) {
  constexpr int LANES = VECTOR_BYTES / sizeof(T);
  const int64_t panel_depth = depth + then.depth;
  int64_t j = j0;
  if constexpr (ROWS == 1)  // four panels at a time (`matmul_row_panels`)
    for (; j + 8 * LANES <= width; j += 8 * LANES)
      for (int64_t i = 0; i < rows; ++i)
        matmul_row_panels<T, 4>(A + i * block_step, a_step, P + panel_depth * j,
                                panel_depth * 2 * LANES, C + i * ldc + j, depth, accumulate,
                                bias ? bias + j : bias, then.from_row(i));
  for (; j + 2 * LANES <= width; j += 2 * LANES)
    for (int64_t i = 0; i < rows; i += ROWS)
      matmul_block<T, ROWS, 2>(A + i / ROWS * block_step, lda, a_step, P + panel_depth * j,
                               2 * LANES, C + i * ldc + j, ldc, depth, accumulate,
                               bias ? bias + j : bias, then.from_row(i));
  for (; j + LANES <= width; j += LANES)
    for (int64_t i = 0; i < rows; i += ROWS)
      matmul_block<T, ROWS, 1>(A + i / ROWS * block_step, lda, a_step, P + panel_depth * j,
                               LANES, C + i * ldc + j, ldc, depth, accumulate,
                               bias ? bias + j : bias, then.from_row(i));
  for (; j < width; ++j)
    for (int64_t i = 0; i < rows; ++i) {
      const T* a = A + i / ROWS * block_step + i % ROWS * lda;
      const T* column = P + panel_depth * j;
      T sum = accumulate ? C[i * ldc + j] : bias ? bias[j] : T(0);
      for (int64_t k = 0; k < depth; ++k) sum += a[k * a_step] * column[k];
      for (int64_t k = 0; k < then.depth; ++k) sum += then.A[i * then.lda + k] * column[depth + k];
      C[i * ldc + j] = sum;
    }
}

// How many of `rows` go in six-row blocks (the rest in fours, then the last rows): as many
// sixes as leave a multiple of four, only fours for a few rows that four divide.
inline int64_t six_row_rows(int64_t rows) {
  if (rows % 6 == 0) return rows;
  int64_t sixes = rows % 4 == 0 && rows < 24 ? 0 : rows / 6 * 6;
  if ((rows - sixes) % 4 == 2 && sixes >= 6) sixes -= 6;  // 6 + 2 rows as two fours
  return sixes;
}

// C (rows x width) (+)= A (rows x depth; A(r, k) = A[r * lda + k * a_step]) @ B (depth x width)
// (+ the row `bias`, if given, without accumulate), B packed (`pack`), C's leading dimension
// ldc. Columns go in panels, outermost, so that a panel stays in L1 for all rows; rows in
// blocks of eight with AVX-512 where eight divides them, else of six (6 x 2 vectors: 12
// accumulators, within AVX2's 16 registers) then of four, as many sixes as leave a multiple of
// four (only fours for a few rows that four divide); a last row on its own, or two or three
// padded to a block of four. Everything it calls is inlined
// (`flatten`): GCC otherwise calls out-of-line copies of the blocks, and with AVX-512 each call
// realigns the stack to 64 bytes and passes the accumulators through it (training steps at the
// chapter shape took 1.05x the time, at the long one 1.02x; the AVX2 build, whose vectors need
// no such alignment, the same either way).
template <typename T>
__attribute__((flatten)) void matmul_strided(const T* A, int64_t lda, int64_t a_step, const T* P,
                                             T* C, int64_t ldc, int64_t rows, int64_t depth,
                                             int64_t width, bool accumulate,
                                             const T* bias = nullptr, Continued<T> then = {}) {
#if defined(__AVX512F__)
  // Where eight divides the rows, blocks of eight (8 x 2 vectors: 16 accumulators, within
  // AVX-512's 32 registers): a four-row block loads as many weight vectors for half the
  // multiply-adds. Training steps at the chapter and long shapes took 0.97-0.99x the time (one
  // thread's share at 8 and 32 to 96 rows), the large one 1.00x.
  if (rows % 8 == 0)
    return matmul_rows<T, 8>(A, lda, a_step, 8 * lda, P, C, ldc, rows, depth, width, accumulate,
                             bias, then);
#endif
  const int64_t sixes = six_row_rows(rows), fours = sixes + (rows - sixes) / 4 * 4;
  matmul_rows<T, 6>(A, lda, a_step, 6 * lda, P, C, ldc, sixes, depth, width, accumulate, bias,
                    then);
  matmul_rows<T, 4>(A + sixes * lda, lda, a_step, 4 * lda, P, C + sixes * ldc, ldc,
                    fours - sixes, depth, width, accumulate, bias, then.from_row(sixes));
  if (fours == rows) return;
  if (rows - fours == 1)  // a last row on its own (a one-step call at batch 1 runs here alone)
    return matmul_rows<T, 1>(A + fours * lda, lda, a_step, lda, P, C + fours * ldc, ldc, 1,
                             depth, width, accumulate, bias, then.from_row(fours));
  // Two or three last rows padded to a block of four, both operands' rows side by side (each
  // on its own streamed the weights once per row: 1.1-1.2x slower at batches 3 and 7).
  const int64_t all = depth + then.depth;
  thread_local std::vector<T> a, c;
  a.assign(4 * all, T(0));
  c.assign(4 * width, T(0));
  for (int64_t r = 0; r < rows - fours; ++r) {
    for (int64_t k = 0; k < depth; ++k) a[r * all + k] = A[(fours + r) * lda + k * a_step];
    for (int64_t k = 0; k < then.depth; ++k)
      a[r * all + depth + k] = then.A[(fours + r) * then.lda + k];
    if (accumulate) std::copy_n(C + (fours + r) * ldc, width, &c[r * width]);
  }
  matmul_rows<T, 4>(a.data(), all, 1, 4 * all, P, c.data(), width, 4, all, width, accumulate,
                    bias);
  for (int64_t r = 0; r < rows - fours; ++r)
    std::copy_n(&c[r * width], width, C + (fours + r) * ldc);
}

// matmul_strided for a row-major A (rows x depth, leading dimension lda).
template <typename T>
void matmul(const T* A, int64_t lda, const T* P, T* C, int64_t ldc, int64_t rows, int64_t depth,
            int64_t width, bool accumulate, const T* bias = nullptr, Continued<T> then = {}) {
  matmul_strided(A, lda, 1, P, C, ldc, rows, depth, width, accumulate, bias, then);
}

// A (rows x depth, A(r, k) = A[r + k * lda]: a transposed block of states) in the row blocks of
// `matmul_strided` (six-row blocks, then fours), each block's values for one depth index
// together: block i (of ROWS rows) starts at P + i * ROWS * depth. Only for rows that leave no
// last rows outside blocks of four (`packs_in_row_blocks`).
template <typename T>
void pack_row_blocks(const T* A, int64_t lda, int64_t rows, int64_t depth, T* P) {
  const int64_t sixes = six_row_rows(rows);
  auto pack_blocks = [&](auto rows_per_block, int64_t r_begin, int64_t r_end) {
    constexpr int64_t ROWS = decltype(rows_per_block)::value;
    for (int64_t r0 = r_begin; r0 < r_end; r0 += ROWS)
      for (int64_t k = 0; k < depth; ++k)
        for (int64_t r = 0; r < ROWS; ++r) P[r0 * depth + k * ROWS + r] = A[r0 + r + k * lda];
  };
  pack_blocks(std::integral_constant<int64_t, 6>{}, 0, sixes);
  pack_blocks(std::integral_constant<int64_t, 4>{}, sixes, rows);
}

inline bool packs_in_row_blocks(int64_t rows) { return (rows - six_row_rows(rows)) % 4 == 0; }

// matmul_strided (the same sums in the same order) for A packed by `pack_row_blocks`. The
// two-vector panels' blocks take the packed strides as compile-time constants (a block's values
// for one depth index lie together, 6 or 4 apart), inlined as in `matmul_strided`; through
// `matmul_rows`, which reads them at run time, and out-of-line blocks, the weight gradients at
// the large LSTM shape took 1.04x the time.
template <typename T>
__attribute__((flatten)) void matmul_row_blocks(const T* P_A, int64_t rows, int64_t depth,
                                                const T* P, T* C, int64_t ldc, int64_t width,
                                                bool accumulate) {
  constexpr int64_t PANEL = 2 * VECTOR_BYTES / sizeof(T);
  const int64_t sixes = six_row_rows(rows);
  int64_t j = 0;
  for (; j + PANEL <= width; j += PANEL) {
    for (int64_t i = 0; i < sixes; i += 6)  // block i starts at P_A + i * depth
      matmul_block<T, 6, 2, true>(P_A + i * depth, 1, 6, P + depth * j, PANEL, C + i * ldc + j,
                                  ldc, depth, accumulate, nullptr);
    for (int64_t i = sixes; i < rows; i += 4)
      matmul_block<T, 4, 2, true>(P_A + i * depth, 1, 4, P + depth * j, PANEL, C + i * ldc + j,
                                  ldc, depth, accumulate, nullptr);
  }
  matmul_rows<T, 6>(P_A, 1, 6, 6 * depth, P, C, ldc, sixes, depth, width, accumulate, nullptr,
                    {}, j);
  matmul_rows<T, 4>(P_A + sixes * depth, 1, 4, 4 * depth, P, C + sixes * ldc, ldc,
                    rows - sixes, depth, width, accumulate, nullptr, {}, j);
}

// The G gate blocks of a weight matrix, each packed: block g is columns g*U.. of B (depth x
// G*width); it starts at g*depth*width.
template <typename T>
std::vector<T> pack_gates(const void* weights, int64_t depth, int64_t width, int64_t G) {
  const T* B = static_cast<const T*>(weights);
  std::vector<T> packed(G * depth * width);
  for (int64_t g = 0; g < G; ++g)
    pack(B + g * width, G * width, depth, width, packed.data() + g * depth * width);
  return packed;
}

// The G gate blocks of a weight matrix's transpose, each packed: B (width x G*U), block g is
// rows g*U.. of B^T (U x width), starting at g*U*width; with `stacked`, B^T (G*U x width)
// packed as one (the same values: `gate_products_transposed`).
template <typename T>
std::vector<T> pack_gates_transposed(const void* weights, int64_t U, int64_t width, int64_t G,
                                     bool stacked) {
  const T* B = static_cast<const T*>(weights);
  std::vector<T> packed(G * U * width);
  if (stacked) {
    pack<T, true>(B, G * U, G * U, width, packed.data());
    return packed;
  }
  for (int64_t g = 0; g < G; ++g)
    pack<T, true>(B + g * U, G * U, U, width, packed.data() + g * U * width);
  return packed;
}

// Float32 tanh as a rational function (Eigen's, within 3e-7 of the exact one); float64 exact.
template <typename T> inline T tanh_of(T x) {
  if constexpr (std::is_same_v<T, double>) {
    return std::tanh(x);
  } else {
    x = std::min(std::max(x, -7.90531110763549805f), 7.90531110763549805f);
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
  }
}

template <typename T> inline T sigmoid_of(T x) {
  if constexpr (std::is_same_v<T, double>) return 1.0 / (1.0 + std::exp(-x));
  return 0.5f + 0.5f * tanh_of(0.5f * x);
}

// f(x) for activation `code`. Inlined where `code` is a compile-time constant, so that the
// switch folds away and the loops around it vectorise.
template <typename T> inline T activation_of(int64_t code, T x) {
  switch (code) {
    case TANH: return tanh_of(x);
    case SIGMOID: return sigmoid_of(x);
    case RELU: return std::max(x, T(0));
    case HARD_SIGMOID: return std::min(std::max(x / T(6) + T(0.5), T(0)), T(1));
    case SOFTSIGN: return x / (T(1) + std::abs(x));
    case ELU: return x > 0 ? x : std::expm1(x);
    case SELU: return T(SELU_SCALE) * (x > 0 ? x : T(SELU_ALPHA) * std::expm1(x));
    case SOFTPLUS: return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
    case EXPONENTIAL: return std::exp(x);
    case SILU: return x * sigmoid_of(x);
    case RELU6: return std::min(std::max(x, T(0)), T(6));
    default: return x;
  }
}

// f'(x) for activation `code`, from its output y = f(x); only silu reads x.
template <typename T> inline T derivative_of(int64_t code, T y, T x) {
  switch (code) {
    case TANH: return T(1) - y * y;
    case SIGMOID: return y * (T(1) - y);
    case RELU: return y > 0 ? T(1) : T(0);
    case HARD_SIGMOID: return (y > 0 && y < 1) ? T(1) / T(6) : T(0);
    case SOFTSIGN: return (T(1) - std::abs(y)) * (T(1) - std::abs(y));
    case ELU: return y > 0 ? T(1) : y + T(1);
    case SELU: return y > 0 ? T(SELU_SCALE) : y + T(SELU_SCALE * SELU_ALPHA);
    case SOFTPLUS: return -std::expm1(-y);
    case EXPONENTIAL: return y;
    case SILU: {
      const T sig = sigmoid_of(x);
      return sig * (T(1) + x * (T(1) - sig));
    }
    case RELU6: return (y > 0 && y < 6) ? T(1) : T(0);
    default: return T(1);
  }
}

// The activations of one kernel instance: compile-time codes (ACT, RACT >= 0) for the common
// pairs, or the problem's codes read at run time (-1).
template <int64_t ACT, int64_t RACT> struct Activations {
  int64_t act, ract;
  explicit Activations(const Problem& p)
      : act(ACT >= 0 ? ACT : p.activation), ract(RACT >= 0 ? RACT : p.recurrent_activation) {}
};

// Where a parallel region's threads run. OpenMP's worker threads sleep between regions, and
// after an idle spell (a pause in a training loop or a notebook, a server between requests)
// Linux can wake a worker onto the CPU its waker, the master thread, runs on: the region's
// threads then share one CPU until the load balancer's next pass, a scheduler tick or more
// later. Traced on this project's 2-vCPU VMs (`perf sched`, benchmarks/README.md), a 2 ms
// call took 5-6 ms in about two of three calls after a 0.2 s pause. So a worker that starts
// its share on the master's CPU moves to another CPU it may run on, then takes back its own
// CPU mask: a binding (taskset, OMP_PROC_BIND) stays as it was, and the scheduler stays free
// to place the thread later. Nothing moves where the mask has fewer CPUs than the region has
// threads (sharing is then unavoidable), nor off Linux or without OpenMP. The long regions
// check (`for_each_chunk`, `long_product`); the short ones (`scatter_rows`, `rmsprop_update`)
// do not.

// The CPU the master thread runs on before a region of `threads` threads, or -1 where no
// worker will need to look (one thread, or no way to tell).
inline int master_cpu(int64_t threads) {
#if defined(__linux__) && defined(_OPENMP)
  return threads > 1 ? sched_getcpu() : -1;
#else
  (void)threads;
  return -1;
#endif
}

// Called by every thread at the start of its share of a region of `threads` threads (see
// above): a worker on `master` moves off it.
inline void leave_master_cpu(int master, int64_t threads) {
#if defined(__linux__) && defined(_OPENMP)
  if (master < 0 || omp_get_thread_num() == 0 || sched_getcpu() != master) return;
  cpu_set_t own;
  if (sched_getaffinity(0, sizeof own, &own) != 0 || !CPU_ISSET(master, &own) ||
      CPU_COUNT(&own) < threads)
    return;
  cpu_set_t elsewhere = own;
  CPU_CLR(master, &elsewhere);
  if (sched_setaffinity(0, sizeof elsewhere, &elsewhere) == 0)  // moves the thread now
    sched_setaffinity(0, sizeof own, &own);
#else
  (void)master, (void)threads;
#endif
}

// Runs body(first_row, rows) over chunks of rows on `threads` threads: each thread takes an
// about equal share of the rows and runs it as chunks of `max_rows` rows at most. The shares'
// bounds fall on multiples of the height of `matmul`'s row blocks: four where that makes the
// shares equal or they are under 24 rows, else six (six-row blocks do more per load, but at a
// few rows a share one block taller than the others would cost more than that: equal shares
// are what the slowest thread's time depends on). With a `granule`, on multiples of it instead
// (then max_rows must be one too).
template <typename Body>
void for_each_chunk(int64_t batch, int64_t threads, int64_t max_rows, Body body,
                    int64_t granule = 0) {
  threads = std::max<int64_t>(1, std::min(threads, batch));
  const int64_t block = granule ? granule
                        : batch % (4 * threads) == 0 || batch / threads < 24 ? 4 : 6;
  auto bound = [&](int64_t t) {  // the first row of thread t's share
    if (t == threads) return batch;
    return std::min(batch, (t * batch / threads + block / 2) / block * block);
  };
  const int master = master_cpu(threads);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t t = 0; t < threads; ++t) {
    leave_master_cpu(master, threads);
    for (int64_t b0 = bound(t), end = bound(t + 1); b0 < end; b0 += max_rows)
      body(b0, std::min(max_rows, end - b0));
  }
}

// Rows per chunk: enough to reuse each strip of the weights over many row blocks (a thread's
// whole share at the chapter's batch: fewer, taller chunks leave fewer four-row blocks), few
// enough that the chunk's step buffers stay in cache.
int64_t chunk_rows(const Problem& p) { return p.gates * p.units <= 256 ? 96 : 48; }

// Per row, the processing index of its first unmasked step (timesteps if none).
std::vector<int64_t> first_real_steps(const Problem& p, int64_t b0, int64_t rows) {
  std::vector<int64_t> first(rows, p.timesteps);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t s = 0; s < p.timesteps; ++s) {
      const int64_t t = p.go_backwards ? p.timesteps - 1 - s : s;
      if (p.mask[(b0 + i) * p.timesteps + t]) {
        first[i] = s;
        break;
      }
    }
  return first;
}

// dst[:, (g-g0)*U : (g-g0+1)*U] (+)= (A * mask[:, g]) @ B_g for g0 <= g < g1: A (rows x depth,
// lda), P the gate blocks B_g (depth x U) packed (`pack_gates`), dst (rows x ..., ldd); mask
// (rows, G, depth) or null; Ag (rows x depth) scratch.
template <typename T>
void gate_products(const T* A, int64_t lda, const T* mask, const T* P, T* dst, int64_t ldd,
                   int64_t rows, int64_t depth, int64_t G, int64_t U, int64_t g0, int64_t g1,
                   bool accumulate, T* Ag, const T* bias = nullptr) {
  for (int64_t g = g0; g < g1; ++g) {
    const T* a = A;
    if (mask) {
      for (int64_t i = 0; i < rows; ++i)
        masked_row(A + i * lda, mask + (i * G + g) * depth, depth, Ag + i * depth);
      a = Ag;
    }
    matmul(a, mask ? depth : lda, P + g * depth * U, dst + (g - g0) * U, ldd, rows, depth, U,
           accumulate, bias ? bias + (g - g0) * U : bias);
  }
}

// dst (rows x depth, ldd) (+)= sum over g0 <= g < g1 of (D_g @ BT_g) * mask[:, g], D_g =
// D[:, (g-g0)*U : (g-g0+1)*U]: the gradient `gate_products` passes to A. PT holds BT_g = B_g^T
// (U x depth) packed (`pack_gates_transposed`), or with `stacked` all G blocks packed as one (G*U x
// depth) matrix (then g0 = 0, g1 = G, no mask: one product G*U deep instead of G products U
// deep, the same sums in the same order); mask (rows, G, depth) or null; Tg (rows x depth)
// scratch.
template <typename T>
void gate_products_transposed(const T* D, int64_t ldD, const T* mask, const T* PT, bool stacked,
                              T* dst, int64_t ldd, int64_t rows, int64_t depth, int64_t G,
                              int64_t U, int64_t g0, int64_t g1, bool accumulate, T* Tg) {
  if (stacked) return matmul(D, ldD, PT, dst, ldd, rows, G * U, depth, accumulate);
  if (!mask) {
    for (int64_t g = g0; g < g1; ++g)
      matmul(D + (g - g0) * U, ldD, PT + g * U * depth, dst, ldd, rows, U, depth,
             accumulate || g > g0);
    return;
  }
  if (!accumulate)
    for (int64_t i = 0; i < rows; ++i) std::fill_n(dst + i * ldd, depth, T(0));
  for (int64_t g = g0; g < g1; ++g) {
    matmul(D + (g - g0) * U, ldD, PT + g * U * depth, Tg, depth, rows, U, depth, false);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < depth; ++k)
        dst[i * ldd + k] += Tg[i * depth + k] * mask[(i * G + g) * depth + k];
  }
}

// A kernel's and a recurrent kernel's gate blocks, packed once per call and shared by the
// threads: forward B_g (K: F x U, R: U x U), backward B_g^T (K: U x F, R: U x U).
template <typename T> struct PackedWeights {
  std::vector<T> kernel, recurrent;
  bool kernel_stacked = false, recurrent_stacked = false;  // see `gate_products_transposed`
  // Forward, SimpleRNN and LSTM without input dropout: [K; R] ((F + U) x G*U) packed as one,
  // or with recurrent dropout each gate's [K_g; R_g] ((F + U) x U) packed apart, one after
  // another (each gate's product then continues into h times that gate's mask).
  std::vector<T> both;
  // Backward, where it forms the weight gradients (`gradient_group`): the rows of a group, and
  // each group's sums, written by the thread that runs the group.
  int64_t gradient_group = 0;
  mutable std::vector<T> gradient_sums;
};

// Where the backward pass forms the weight gradients itself, each group of `gradient_group`
// rows sums its steps' products into sums of its own, [K; R]'s gradient transposed (G*U x (F +
// U)) and the bias's (G*U), and the groups are added in order at the end: the sums' order
// depends on the sizes alone, not on the number of threads. Each step's pre-activation gradient
// is then still in cache when the products read it, instead of being written to memory by this
// pass and read back by the long products after it (benchmarks/README.md has the
// measurements). Each product is GRADIENT_DEPTH rows deep: one step of a 64-row group, or
// several steps of a smaller group at once (`GradientSteps`; one step's 8 rows would load and
// store the sums for every 8 multiply-adds).
constexpr int64_t GRADIENT_DEPTH = 64;

// The rows of a group, or 0 where the backward pass does not form the weight gradients: for
// SimpleRNN and LSTM without input dropout, GRADIENT_DEPTH rows at batches of whole pairs of
// them, else half the batch where that is a multiple of eight under GRADIENT_DEPTH (two threads
// then take equal shares), where a group's sums fit the limit (64 KiB for the first, whose
// products are one step deep; SMALL_GROUP_SUMS_BYTES for the second).
constexpr int64_t SMALL_GROUP_SUMS_BYTES = 256 << 10;

template <typename T> int64_t gradient_group(const Problem& p) {
  const int64_t W = p.gates * p.units;
  const int64_t sums_bytes = (p.features + p.units + 1) * W * int64_t(sizeof(T));
  if (!p.weight_gradients || (p.cell != SIMPLE_RNN && p.cell != LSTM) || p.input_dropout)
    return 0;
  if (p.batch % (2 * GRADIENT_DEPTH) == 0 && sums_bytes <= 64 << 10) return GRADIENT_DEPTH;
  if (p.batch % 16 == 0 && p.batch < 2 * GRADIENT_DEPTH && sums_bytes <= SMALL_GROUP_SUMS_BYTES)
    return p.batch / 2;
  return 0;
}

// Where the backward pass forms the weight gradients in groups of `group` rows, it can form the
// folded table's gradient too: each group adds each step's pre-activation gradient rows into its
// own table of sums (V x G*U, zeroed by the thread that runs the group) at their ids' rows, while
// they are in cache, and the groups' tables are added in order at the end
// (`finish_table_gradient`): dxproj is then neither written nor read back and summed by
// `scatter_rows`, a write and a read of T*B*G*U values. Only where the groups' tables are no
// larger than dxproj. The values the tables take, or 0 where the pass does not form them.
inline int64_t table_sums_size(const Problem& p, int64_t group) {
  if (!group || !p.ids || p.table_rows < 1) return 0;
  const int64_t groups = p.batch / group;
  return groups * p.table_rows <= p.batch * p.timesteps ? groups * p.table_rows * p.gates * p.units
                                                         : 0;
}

inline bool forms_table_gradient(const Problem& p, int64_t group) {
  return table_sums_size(p, group) > 0 && p.dtable && p.table_sums;
}

// A chunk's steps whose weight-gradient products run at once: `steps` of them per product, each
// group's [x_t | h] rows packed straight into that product's panels, and its pre-activation
// gradient rows kept (each group's steps together), until the last step of the product. The
// first product of a pass takes the steps left over (timesteps % steps), so that every
// product's size is known at its first step. With recurrent dropout the recurrent kernel's
// gradient for gate g reads h times that gate's mask (Keras's LSTM draws one per gate): h is
// packed once per gate, each copy times its mask (`copies`), and each gate's columns of the
// recurrent kernel's gradient are a product of their own.
template <typename T> struct GradientSteps {
  static constexpr int64_t PANEL = 2 * VECTOR_BYTES / sizeof(T);
  int64_t group, steps, rows, S, W, copies, packed_width;
  // Where the inputs and units are whole two-vector panels, x_t's and h's panels are packed
  // straight from where they lie; else their rows are copied to `xh` first.
  bool whole_panels;
  // Per group: (steps * group) x packed_width (x, then each copy of h), the same (else empty),
  // and (steps * group) x W (only for products of several steps: one step's are read where
  // they are).
  std::vector<T> packed, xh, dx;

  GradientSteps(int64_t group_rows, int64_t chunk_rows, int64_t features, int64_t units,
                int64_t width, int64_t h_copies)
      : group(group_rows), steps(std::max<int64_t>(1, GRADIENT_DEPTH / group_rows)),
        rows(chunk_rows), S(features + units), W(width), copies(h_copies),
        packed_width(features + h_copies * units),
        whole_panels(features % PANEL == 0 && units % PANEL == 0),
        packed(chunk_rows * steps * packed_width), xh(whole_panels ? 0 : packed.size()),
        dx(steps > 1 ? chunk_rows * steps * width : 0) {}

  // The product that processing index c (0 for the pass's first step) falls in: its steps and
  // c's slot in it.
  std::pair<int64_t, int64_t> product_of(int64_t c, int64_t timesteps) const {
    const int64_t first = timesteps % steps;
    if (c < first) return {first, c};
    return {steps, (c - first) % steps};
  }
};

// One step's part of the row groups' sums, for the chunk's rows from b0: stashed in `g` at slot
// `slot` of a product of `steps` steps, and at its last slot the product: each group's sums (W x
// (F + U)) += DX_group^T @ [x | h]_group over the product's steps (with recurrent dropout, gate
// g's columns of h's part from h times its mask M_g), and the bias's (W) += DX_group's column
// sums. DX: the step's (rows x W) pre-activation gradient; M: the chunk's (rows x G x U)
// recurrent dropout masks, or null.
template <typename T>
void add_step_weight_gradients(const Problem& p, const T* DX, const T* M, int64_t b0, int64_t t,
                               T* sums, GradientSteps<T>& g, int64_t slot, int64_t steps) {
  const int64_t F = p.features, U = p.units, W = g.W, S = g.S, group = g.group;
  const int64_t SP = g.packed_width, G = p.gates;
  const int64_t depth = steps * group;  // of this product
  const T* inputs = static_cast<const T*>(p.inputs);
  const T* hs = static_cast<const T*>(p.hs);
  // Whole panels go into the slot's rows of the product's panels (the panel of column j starts
  // at P + depth * j).
  constexpr int64_t PANEL = GradientSteps<T>::PANEL;
  for (int64_t g0 = 0; g0 < g.rows; g0 += group) {
    const int64_t b = b0 + g0;
    T* P = &g.packed[g0 * g.steps * SP];
    T* XH = g.whole_panels ? nullptr : &g.xh[g0 * g.steps * SP];
    const T* h = hs + (t * p.batch + b) * U;
    if (g.whole_panels) {
      for (int64_t j = 0; j < F; j += PANEL)
        pack_panel<T, PANEL>(inputs + (b * p.timesteps + t) * F + j, p.timesteps * F, group,
                             P + depth * j + slot * group * PANEL);
      for (int64_t c = 0; c < g.copies; ++c)
        for (int64_t j = 0; j < U; j += PANEL) {
          T* to = P + depth * (F + c * U + j) + slot * group * PANEL;
          if (M)
            pack_masked_panel<T, PANEL>(h + j, U, M + (g0 * G + c) * U + j, G * U, group, to);
          else
            pack_panel<T, PANEL>(h + j, U, group, to);
        }
    } else {
      for (int64_t i = 0; i < group; ++i) {
        T* row = XH + (slot * group + i) * SP;
        copy_row(inputs + ((b + i) * p.timesteps + t) * F, F, row);
        for (int64_t c = 0; c < g.copies; ++c)
          if (M)
            masked_row(h + i * U, M + ((g0 + i) * G + c) * U, U, row + F + c * U);
          else
            copy_row(h + i * U, U, row + F + c * U);
      }
    }
    // One step's rows are read where they are; several steps' are kept for their product
    // (copied there unless the backward pass wrote them there).
    const T* D = g.steps > 1 ? &g.dx[g0 * g.steps * W] : DX + g0 * W;
    T* slot_rows = g.steps > 1 ? &g.dx[(g0 * g.steps + slot * group) * W] : nullptr;
    if (slot_rows && slot_rows != DX + g0 * W) copy_row(DX + g0 * W, group * W, slot_rows);
    if (slot + 1 < steps) continue;
    T* group_sums = sums + g0 / group * (S + 1) * W;
    if (g.copies == 1) {  // [x | h] (h times its one mask with dropout) as one product
      if (!g.whole_panels) pack(XH, S, depth, S, P);
      matmul_strided(D, 1, W, P, group_sums, S, W, depth, S, true);
    } else {  // x's columns for every gate, then each gate's against its copy of h
      if (!g.whole_panels) {
        pack(XH, SP, depth, F, P);
        for (int64_t c = 0; c < g.copies; ++c)
          pack(XH + F + c * U, SP, depth, U, P + depth * (F + c * U));
      }
      matmul_strided(D, 1, W, P, group_sums, S, W, depth, F, true);
      for (int64_t c = 0; c < g.copies; ++c)
        matmul_strided(D + c * U, 1, W, P + depth * (F + c * U), group_sums + c * U * S + F, S,
                       U, depth, U, true);
    }
    T* bias_sums = group_sums + S * W;
    for (int64_t i = 0; i < depth; ++i)
#pragma GCC ivdep
      for (int64_t j = 0; j < W; ++j) bias_sums[j] += D[i * W + j];
  }
}

// The row groups' sums added in order, into dkernel (F x W), drecurrent (U x W) and dbias (W).
template <typename T> void finish_weight_gradients(const Problem& p, int64_t rows, T* sums) {
  const int64_t F = p.features, U = p.units, W = p.gates * U, S = F + U, size = (S + 1) * W;
  for (int64_t group = 1; group < p.batch / rows; ++group)
#pragma GCC ivdep
    for (int64_t n = 0; n < size; ++n) sums[n] += sums[group * size + n];
  T* dkernel = static_cast<T*>(p.dkernel);
  T* drecurrent = static_cast<T*>(p.drecurrent);
  for (int64_t j = 0; j < W; ++j) {
    for (int64_t k = 0; k < F; ++k) dkernel[k * W + j] = sums[j * S + k];
    for (int64_t k = 0; k < U; ++k) drecurrent[k * W + j] = sums[j * S + F + k];
  }
  std::copy_n(sums + S * W, W, static_cast<T*>(p.dbias));
}

// One step's part of the table sums of the chunk's row groups (of `group` rows, from b0; their
// tables one after another from `tables`): table[ids[b0 + i, t]] += DX[i] for the chunk's rows
// i (DX: rows x W), each into its group's table; the rows the next step (time `next`, or -1)
// adds to are asked for meanwhile.
template <typename T>
void add_table_rows(const Problem& p, const T* DX, int64_t b0, int64_t rows, int64_t group,
                    int64_t t, int64_t next, T* tables) {
  const int64_t W = p.gates * p.units;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t* ids = p.ids + (b0 + i) * p.timesteps;
    T* table = tables + i / group * p.table_rows * W;
    if (next >= 0) prefetch_row(table + ids[next] * W, W);
    T* to = table + ids[t] * W;
    const T* from = DX + i * W;
    #pragma GCC ivdep
    for (int64_t j = 0; j < W; ++j) to[j] += from[j];
  }
}

// The groups' table sums added in order into dtable (V x W): each element's sum has the same
// order on any number of threads, which split the rows.
template <typename T> void finish_table_gradient(const Problem& p, int64_t group, const T* sums) {
  const int64_t W = p.gates * p.units, size = p.table_rows * W, groups = p.batch / group;
  T* dtable = static_cast<T*>(p.dtable);
  const int64_t threads = std::max<int64_t>(1, std::min(p.threads, p.table_rows));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t v = 0; v < p.table_rows; ++v) {
    T* out = dtable + v * W;
    std::copy_n(sums + v * W, W, out);
    for (int64_t g = 1; g < groups; ++g)
      #pragma GCC ivdep
      for (int64_t j = 0; j < W; ++j) out[j] += sums[g * size + v * W + j];
  }
}

template <typename T, int64_t ACT, int64_t RACT>
void forward_chunk(const Problem& p, const PackedWeights<T>& w, int64_t b0, int64_t rows) {
  const Activations<ACT, RACT> f(p);
  const int64_t T_ = p.timesteps, F = p.features, U = p.units, G = p.gates, W = G * U;
  const T* inputs = static_cast<const T*>(p.inputs);
  const T* table = static_cast<const T*>(p.table);
  const T* K = w.kernel.data();
  const T* bias = static_cast<const T*>(p.input_bias);
  const T* R = w.recurrent.data();
  const T* brec = static_cast<const T*>(p.recurrent_bias);
  const T* xmask =
      p.input_dropout ? static_cast<const T*>(p.input_dropout_mask) + b0 * G * F : nullptr;
  const T* M =
      p.recurrent_dropout ? static_cast<const T*>(p.recurrent_dropout_mask) + b0 * G * U : nullptr;
  T* out = static_cast<T*>(p.out);
  const bool gru = p.cell == GRU_RESET_AFTER || p.cell == GRU_RESET_BEFORE;
  const int64_t direct = gru ? 2 : G;  // gates whose recurrent part adds straight to x @ K
  const std::vector<int64_t> first = first_real_steps(p, b0, rows);
  const T* h0 = static_cast<const T*>(p.h0) + b0 * U;
  const T* c0 = static_cast<const T*>(p.c0) + b0 * U;
  // The states before and after each step, H and NH (C and NC, the LSTM's carry), each the
  // chunk's rows: two buffers each, taking turns; with a backward pass to come, the saved hs
  // and cs themselves (a step writes the next step's entry), so that nothing is copied there.
  std::vector<T> h_buffers(2 * rows * U), c_buffers(2 * rows * U);
  std::copy_n(h0, rows * U, h_buffers.data());
  std::copy_n(c0, rows * U, c_buffers.data());
  T *H = h_buffers.data(), *C = c_buffers.data();
  // Step buffers; gate values, pre-activations and inner_h go straight to the saved arrays when
  // there is a backward pass to come.
  std::vector<T> hidden(rows * U), Hg(rows * U), Xg(rows * F), A(p.save ? 0 : rows * W),
      Z(p.save_preactivations ? 0 : rows * W), X(rows * U);
  // The biases every row's pre-activations start from: both for the direct gates.
  std::vector<T> biases(bias, bias + W);
  for (int64_t j = 0; j < direct * U; ++j) biases[j] += brec[j];
  for (int64_t s = 0; s < T_; ++s) {
    const int64_t t = p.go_backwards ? T_ - 1 - s : s;
    auto at = [&](void* array, int64_t i, int64_t size) {  // row i's saved entry at time t
      return static_cast<T*>(array) + (t * p.batch + b0 + i) * size;
    };
    const int64_t next = p.go_backwards ? t - 1 : t + 1;
    if (p.save && s == 0) {  // later steps' entries are written by the step before
      copy_row(H, rows * U, at(p.hs, 0, U));
      if (p.cell == LSTM) copy_row(C, rows * U, at(p.cs, 0, U));
    }
    auto other = [&](std::vector<T>& buffers, T* current) {
      return current == buffers.data() ? buffers.data() + rows * U : buffers.data();
    };
    const bool save_next = p.save && s + 1 < T_;
    T* NH = save_next ? static_cast<T*>(p.hs) + (next * p.batch + b0) * U : other(h_buffers, H);
    T* NC = save_next && p.cell == LSTM ? static_cast<T*>(p.cs) + (next * p.batch + b0) * U
                                        : other(c_buffers, C);
    // The pre-activations: x_t @ K + biases + h @ R for the direct gates, x_t @ K + bias alone
    // for GRU's h gate (its recurrent part is added below).
    T* pre = p.save_preactivations ? at(p.pre, 0, W) : Z.data();
    if (table)  // folded: each row starts from its id's row of the table (F is 0), plus biases
      for (int64_t i = 0; i < rows; ++i) {
        const T* x_product = table + p.ids[(b0 + i) * T_ + t] * W;
        T* z = pre + i * W;
        #pragma GCC ivdep
        for (int64_t j = 0; j < W; ++j) z[j] = x_product[j] + biases[j];
      }
    const T* start = table ? nullptr : biases.data();  // what the products start from
    if (!w.both.empty() && !M) {  // x_t @ K, then h @ R in the same accumulators (the same sums)
      matmul(inputs + (b0 * T_ + t) * F, T_ * F, w.both.data(), pre, W, rows, F, W,
             table != nullptr, start, Continued<T>{H, U, U});
    } else if (!w.both.empty()) {  // the same per gate, into h times the gate's mask
      for (int64_t g = 0; g < G; ++g) {
        for (int64_t i = 0; i < rows; ++i)
          masked_row(H + i * U, M + (i * G + g) * U, U, Hg.data() + i * U);
        matmul(inputs + (b0 * T_ + t) * F, T_ * F, w.both.data() + g * (F + U) * U, pre + g * U,
               W, rows, F, U, table != nullptr, start ? start + g * U : start,
               Continued<T>{Hg.data(), U, U});
      }
    } else {
      if (!table)
        gate_products(inputs + (b0 * T_ + t) * F, T_ * F, xmask, K, pre, W, rows, F, G, U, 0, G,
                      false, Xg.data(), start);
      gate_products(H, U, M, R, pre, W, rows, U, G, U, 0, direct, true, Hg.data());
    }
    if (p.cell == GRU_RESET_AFTER)  // hidden = h @ R_h, reset after the product
      gate_products(H, U, M, R, hidden.data(), U, rows, U, G, U, 2, 3, false, Hg.data());
    for (int64_t i = 0; i < rows; ++i) {
      const T* z = pre + i * W;
      T* a = p.save ? at(p.gate_values, i, W) : &A[i * W];
      // LSTM's act(c) is not saved: the backward pass recomputes it from the next carry.
      T* x = p.save && gru ? at(p.inner_h, i, U) : &X[i * U];
      const T* h = H + i * U;
      T* nh = NH + i * U;
      // The next step's rows of the batch-major arrays (each its own stream), one row at a
      // time between the rows' element loops rather than all at the step's start.
      if (s + 1 < T_) {
        prefetch_row(inputs + ((b0 + i) * T_ + next) * F, F);
        if (table) prefetch_row(table + p.ids[(b0 + i) * T_ + next] * W, W);
        if (p.return_sequences) prefetch_row(out + ((b0 + i) * T_ + s + 1) * U, U);
      }
      if (p.cell == SIMPLE_RNN) {
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) nh[j] = a[j] = activation_of(f.act, z[j]);
      } else if (p.cell == LSTM) {
        const T* c = C + i * U;
        T* nc = NC + i * U;
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) {
          const T in = activation_of(f.ract, z[j]), forget = activation_of(f.ract, z[U + j]);
          const T cand = activation_of(f.act, z[2 * U + j]);
          const T output = activation_of(f.ract, z[3 * U + j]);
          a[j] = in, a[U + j] = forget, a[2 * U + j] = cand, a[3 * U + j] = output;
          nc[j] = forget * c[j] + in * cand;
          x[j] = activation_of(f.act, nc[j]);
          nh[j] = output * x[j];
        }
      } else {
        #pragma GCC ivdep
        for (int64_t j = 0; j < 2 * U; ++j) a[j] = activation_of(f.ract, z[j]);
        if (p.cell == GRU_RESET_BEFORE) {  // X = r * h (times the h-gate's dropout mask)
          #pragma GCC ivdep
          for (int64_t k = 0; k < U; ++k)
            x[k] = a[U + k] * h[k] * (M ? M[(i * G + 2) * U + k] : T(1));
        }
      }
    }
    if (p.cell == GRU_RESET_BEFORE)  // hidden = X @ R_h
      matmul(p.save ? at(p.inner_h, 0, U) : X.data(), U, R + 2 * U * U, hidden.data(), U, rows, U,
             U, false);
    if (gru)
      for (int64_t i = 0; i < rows; ++i) {
        T* z = pre + i * W;
        T* a = p.save ? at(p.gate_values, i, W) : &A[i * W];
        T* x = p.save ? at(p.inner_h, i, U) : &X[i * U];
        const T* hid = &hidden[i * U];
        const T* h = H + i * U;
        T* nh = NH + i * U;
        // The cell test stays out of the element loops: inside one, GCC turns it into masked
        // loads and stores, which are slow on AMD's cores.
        if (p.cell == GRU_RESET_AFTER) {  // X = inner_h = h @ R_h + b_h
          #pragma GCC ivdep
          for (int64_t j = 0; j < U; ++j) {
            x[j] = hid[j] + brec[2 * U + j];
            z[2 * U + j] += a[U + j] * x[j];
          }
        } else {
          #pragma GCC ivdep
          for (int64_t j = 0; j < U; ++j) z[2 * U + j] += hid[j];
        }
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) {
          const T update = a[j], cand = activation_of(f.act, z[2 * U + j]);
          a[2 * U + j] = cand;
          nh[j] = update * h[j] + (T(1) - update) * cand;
        }
      }
    const bool output = p.return_sequences || s == T_ - 1;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t b = b0 + i;
      T* o = p.return_sequences ? out + (b * T_ + s) * U : out + b * U;  // by processing index
      if (p.mask[b * T_ + t]) {
        if (output) copy_row(NH + i * U, U, o);
        continue;
      }
      copy_row(H + i * U, U, NH + i * U);  // a masked step passes the states on unchanged
      if (p.cell == LSTM) copy_row(C + i * U, U, NC + i * U);
      if (!output) continue;
      if (p.zero_output_for_mask || (p.unroll && s < first[i]))
        std::fill_n(o, U, T(0));
      else
        copy_row(H + i * U, U, o);
    }
    H = NH;
    if (p.cell == LSTM) C = NC;
  }
  std::copy_n(H, rows * U, static_cast<T*>(p.h_last) + b0 * U);
  std::copy_n(C, rows * U, static_cast<T*>(p.c_last) + b0 * U);
}

template <typename T, int64_t ACT, int64_t RACT>
void backward_chunk(const Problem& p, const PackedWeights<T>& w, int64_t b0, int64_t rows) {
  const Activations<ACT, RACT> f(p);
  const int64_t T_ = p.timesteps, F = p.features, U = p.units, G = p.gates, W = G * U;
  const T* KT = w.kernel.data();
  const T* RT = w.recurrent.data();
  const T* xmask =
      p.input_dropout ? static_cast<const T*>(p.input_dropout_mask) + b0 * G * F : nullptr;
  const T* M =
      p.recurrent_dropout ? static_cast<const T*>(p.recurrent_dropout_mask) + b0 * G * U : nullptr;
  const T* dout = static_cast<const T*>(p.dout);
  T* dinputs = static_cast<T*>(p.dinputs);
  // Gates whose recurrent product is back-propagated from DX itself (GRU's h gate goes
  // through inner_h: DI for reset_after, d_rh for reset_before).
  const bool gru = p.cell == GRU_RESET_AFTER || p.cell == GRU_RESET_BEFORE;
  const int64_t direct = gru ? 2 : G;
  // Where a row's loops below are short (64 units or fewer), the saved entries the next step
  // reads are asked into L2 alone: asked into L1, they waited for L1's few miss buffers (at the
  // long LSTM shape the prefetch loops held 14% of this function's samples), and the LSTM's
  // training steps took 1.01-1.05x the time at the long shape, 0.98-1.04x at the chapter's; at
  // 256 units, asked into L2 they took 1.01x (benchmarks/README.md).
  const bool saved_rows_into_l2 = U <= 64;
  const std::vector<int64_t> first = first_real_steps(p, b0, rows);
  const T* dh_last = static_cast<const T*>(p.dh_last) + b0 * U;
  const T* dc_last = static_cast<const T*>(p.dc_last) + b0 * U;
  std::vector<T> dH(dh_last, dh_last + rows * U), dC(dc_last, dc_last + rows * U);
  std::vector<T> dHP(rows * U), d_rh(rows * U), Tg(rows * U), TgF(rows * F);
  // Where this pass forms the weight gradients: the chunk's groups' sums, and a step's DX in a
  // buffer of its own instead of dxproj (unless dxproj is still wanted: the folded table's
  // gradient, where this pass does not sum it too).
  const int64_t group = w.gradient_group;
  T* sums = group ? w.gradient_sums.data() + b0 / group * (F + U + 1) * W : nullptr;
  // The chunk's groups' tables of sums, where this pass forms the folded table's gradient.
  T* tables = forms_table_gradient(p, group)
                  ? static_cast<T*>(p.table_sums) + b0 / group * p.table_rows * W
                  : nullptr;
  if (tables) std::fill_n(tables, rows / group * p.table_rows * W, T(0));
  const bool own_dx = sums && (!p.write_dxproj || tables);
  std::optional<GradientSteps<T>> gradient_steps;
  if (sums) gradient_steps.emplace(group, rows, F, U, W, M && G > 1 ? G : 1);
  // Where the chunk is one row group whose products span several steps, each step's DX is
  // written straight into its rows of the product (`GradientSteps::dx`), not into a buffer of
  // its own and then copied there (the LSTM's backward at (64, 500, 32, 32) took 0.96x the time).
  const bool dx_in_product = own_dx && gradient_steps->steps > 1 && rows == group;
  std::vector<T> dx_step(own_dx && !dx_in_product ? rows * W : 0);
  for (int64_t s = T_ - 1; s >= 0; --s) {
    const int64_t t = p.go_backwards ? T_ - 1 - s : s;
    auto at = [&](const void* array, int64_t i, int64_t size) {  // row i's entry at time t
      return static_cast<T*>(const_cast<void*>(array)) + (t * p.batch + b0 + i) * size;
    };
    if (s > 0) {  // the next step's rows of the batch-major arrays (each its own stream)
      const int64_t next = p.go_backwards ? t + 1 : t - 1;
      for (int64_t i = 0; i < rows; ++i) {
        if (p.return_sequences) prefetch_row(dout + ((b0 + i) * T_ + s - 1) * U, U);
        if (p.input_gradient) prefetch_row(dinputs + ((b0 + i) * T_ + next) * F, F);
        if (sums) prefetch_row(static_cast<const T*>(p.inputs) + ((b0 + i) * T_ + next) * F, F);
      }
    }
    // DX: the pre-activations' gradient, written straight into dxproj; DI, GRU reset_after:
    // the gradient of inner_h, straight into dinner (the chunk's rows, contiguous). dxproj may
    // be the saved gate values themselves, and dinner inner_h (`fused.run_backward`, where no
    // second backward can come): a row's saved values are read at this step alone, by the loops
    // below, each of which reads a unit's values before it writes their gradients (same index,
    // so no `ivdep` loop is wrong for it), and nothing reads them after.
    // Where this pass forms the weight gradients: the steps of this step's product, and its slot.
    const auto [product_steps, slot] =
        sums ? gradient_steps->product_of(T_ - 1 - s, T_) : std::pair<int64_t, int64_t>{0, 0};
    T* DX = dx_in_product ? &gradient_steps->dx[slot * group * W]
            : own_dx      ? dx_step.data()
                          : at(p.dxproj, 0, W);
    T* DI = p.cell == GRU_RESET_AFTER ? at(p.dinner, 0, U) : nullptr;
    const int64_t ldx = W, ldi = U;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t b = b0 + i;
      const T* a = at(p.gate_values, i, W);
      const T* src = p.save_preactivations ? at(p.pre, i, W) : a;  // read by silu only
      const T* hp = at(p.hs, i, U);
      const T* x = p.cell == SIMPLE_RNN || p.cell == LSTM ? nullptr : at(p.inner_h, i, U);
      // This row's saved entries the next step reads, asked for while this step computes
      // (GRU's backward, without the weight gradients inside, took 1.00-1.02x the time).
      if (s > 0 && !gru) {
        const int64_t ahead = (p.go_backwards ? t + 1 : t - 1) * p.batch + b;
        prefetch_row(static_cast<const T*>(p.gate_values) + ahead * W, W, saved_rows_into_l2);
        if (p.cell == LSTM)
          prefetch_row(static_cast<const T*>(p.cs) + ahead * U, U, saved_rows_into_l2);
        prefetch_row(static_cast<const T*>(p.hs) + ahead * U, U, saved_rows_into_l2);
      }
      T* dh = &dH[i * U];
      T* dhp = &dHP[i * U];
      T* dx = DX + i * ldx;
      const bool has_output_gradient = p.return_sequences || s == T_ - 1;
      if (has_output_gradient &&
          (p.mask[b * T_ + t] || !(p.zero_output_for_mask || (p.unroll && s < first[i])))) {
        const T* d = p.return_sequences ? dout + (b * T_ + s) * U : dout + b * U;
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) dh[j] += d[j];
      }
      if (p.cell == SIMPLE_RNN) {
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) dx[j] = dh[j] * derivative_of(f.act, a[j], src[j]);
        std::fill_n(dhp, U, T(0));
      } else if (p.cell == LSTM) {
        const T* c_prev = at(p.cs, i, U);
        // The carry this step made: the next step's saved one, or the last (c_last). Its
        // act(c) is recomputed here rather than saved by the forward pass, which then writes
        // a sixth less, and this pass reads a carry the step before it read already.
        const int64_t next = p.go_backwards ? t - 1 : t + 1;
        const T* c_next = s == T_ - 1 ? static_cast<const T*>(p.c_last) + b * U
                                      : static_cast<const T*>(p.cs) + (next * p.batch + b) * U;
        const bool kept = p.mask[b * T_ + t];
        T* dc = &dC[i * U];
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) {
          const T in = a[j], forget = a[U + j], cand = a[2 * U + j], output = a[3 * U + j];
          const T c_new = c_next[j], act_c = activation_of(f.act, c_new);
          const T dc_total = dc[j] + dh[j] * output * derivative_of(f.act, act_c, c_new);
          dx[j] = dc_total * cand * derivative_of(f.ract, in, src[j]);
          dx[U + j] = dc_total * c_prev[j] * derivative_of(f.ract, forget, src[U + j]);
          dx[2 * U + j] = dc_total * in * derivative_of(f.act, cand, src[2 * U + j]);
          dx[3 * U + j] = dh[j] * act_c * derivative_of(f.ract, output, src[3 * U + j]);
          dc[j] = kept ? dc_total * forget : dc[j];  // a blend, not a masked store (see GRU's)
          dhp[j] = T(0);
        }
      } else {
        T* di = DI ? DI + i * ldi : nullptr;
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) {
          const T update = a[j], cand = a[2 * U + j];
          dx[j] = dh[j] * (hp[j] - cand) * derivative_of(f.ract, update, src[j]);
          dx[2 * U + j] = dh[j] * (T(1) - update) * derivative_of(f.act, cand, src[2 * U + j]);
          dhp[j] = dh[j] * update;
        }
        if (p.cell == GRU_RESET_AFTER) {  // out of the loop above, as in forward_chunk
          #pragma GCC ivdep
          for (int64_t j = 0; j < U; ++j) {
            const T reset = a[U + j];  // read before dx[U + j], which may lie over it
            dx[U + j] = dx[2 * U + j] * x[j] * derivative_of(f.ract, reset, src[U + j]);
            di[j] = dx[2 * U + j] * reset;
          }
        }
      }
    }
    if (p.cell == GRU_RESET_BEFORE) {  // back through X @ R_h, X = r * h * m_h
      matmul(DX + 2 * U, ldx, RT + 2 * U * U, d_rh.data(), U, rows, U, U, false);
      for (int64_t i = 0; i < rows; ++i) {
        const T* a = at(p.gate_values, i, W);
        const T* src = p.save_preactivations ? at(p.pre, i, W) : a;
        const T* hp = at(p.hs, i, U);
        #pragma GCC ivdep
        for (int64_t j = 0; j < U; ++j) {
          const T d_x = d_rh[i * U + j] * (M ? M[(i * G + 2) * U + j] : T(1));
          const T reset = a[U + j];  // read before DX's entry, which may lie over it
          DX[i * ldx + U + j] = d_x * hp[j] * derivative_of(f.ract, reset, src[U + j]);
          dHP[i * U + j] += d_x * reset;
        }
      }
    }
    for (int64_t i = 0; i < rows; ++i)
      if (!p.mask[(b0 + i) * T_ + t]) {  // the states passed through this step unchanged
        std::fill_n(DX + i * ldx, W, T(0));
        if (DI) std::fill_n(DI + i * ldi, U, T(0));
        copy_row(&dH[i * U], U, &dHP[i * U]);
      }
    if (tables)
      add_table_rows(p, DX, b0, rows, group, t, s > 0 ? (p.go_backwards ? t + 1 : t - 1) : -1,
                     tables);
    if (sums)
      add_step_weight_gradients(p, DX, M, b0, t, sums, *gradient_steps, slot, product_steps);
    // The gradient reaching the recurrent product: DX, and DI for GRU reset_after's h gate.
    gate_products_transposed(DX, ldx, M, RT, w.recurrent_stacked, dHP.data(), U, rows, U, G, U,
                             0, direct, true, Tg.data());
    if (DI)
      gate_products_transposed(DI, ldi, M, RT, false, dHP.data(), U, rows, U, G, U, 2, 3, true,
                               Tg.data());
    if (p.input_gradient)
      gate_products_transposed(DX, ldx, xmask, KT, w.kernel_stacked, dinputs + (b0 * T_ + t) * F,
                               T_ * F, rows, F, G, U, 0, G, false, TgF.data());
    std::swap(dH, dHP);
  }
  std::copy(dH.begin(), dH.end(), static_cast<T*>(p.dh0) + b0 * U);
  std::copy(dC.begin(), dC.end(), static_cast<T*>(p.dc0) + b0 * U);
}

// sums[0, count) (+)= the column sums of rows [0, n) of G (row stride ldg): a block's sums in
// registers, then added to the running ones (`first`: set them instead).
template <typename T, int64_t MAX_COUNT>
void add_block_sums(const T* G, int64_t ldg, int64_t n, int64_t count, T* sums, bool first) {
  T block_sums[MAX_COUNT] = {};
  for (int64_t d = 0; d < n; ++d)
#pragma GCC ivdep
    for (int64_t jj = 0; jj < count; ++jj) block_sums[jj] += G[d * ldg + jj];
  for (int64_t jj = 0; jj < count; ++jj) sums[jj] = (first ? T(0) : sums[jj]) + block_sums[jj];
}

// pack_panel of a whole strip (PANEL values a row) that also sums its columns, as
// `add_block_sums` does (the same sums in the same order), while each row is in registers:
// summed in a pass of its own, the strip's rows were read twice.
template <typename T, int64_t PANEL>
inline void pack_panel_with_sums(const T* B, int64_t ldb, int64_t depth, T* P, T* sums,
                                 bool first) {
  using V = typename Vector<T>::type;
  constexpr int64_t LANES = VECTOR_BYTES / sizeof(T), NV = PANEL / LANES;
  V block_sums[NV] = {};
  for (int64_t k = 0; k < depth; ++k)
    for (int64_t v = 0; v < NV; ++v) {
      const V b = load(B + k * ldb + v * LANES);
      store(P + k * PANEL + v * LANES, b);
      block_sums[v] += b;
    }
  for (int64_t v = 0; v < NV; ++v)
    store(sums + v * LANES, (first ? V{} : load(sums + v * LANES)) + block_sums[v]);
}

// out (size x width, ldc) = sum over n < depth of (states[n] * mask[b, gate])^T gradients[n]:
// a weight's gradient. With `sums`, also sums[j] = sum over n of gradients[n, j] (a bias's
// gradient). With `states2` (depth x size2, time-major contiguous), also out2 (size2 x width,
// ldc2) = sum over n of (states2[n] * mask2[b, g])^T gradients[n] (g the gate of column j;
// unmasked without mask2) from the same packed strips: a second weight's gradient for one pass
// over the gradients; with gradients2, gate gate2's columns of out2 from those (GRU
// reset_after's recurrent kernel, whose h gate reaches it through inner_h), and sums2.
//
// The depth goes in blocks of 128, the columns in strips of two vectors, packed per block;
// each strip's sums accumulate in a contiguous buffer of their own, copied out at the end.
// Time-major states are read in place as the transposed left operand; others (the batch-major
// inputs) and masked ones are gathered per block first. The threads split the work one of two
// ways, chosen by the sizes alone, so that every element sums over the depth in the same order
// whatever the number of threads:
// - `parts`: the depth in PARTS runs of whole blocks, claimed by the threads as they come free,
//   each summed into its own copy of the outputs, then the copies added in order. For outputs
//   that fit PART_BYTES: threads that run at different speeds (as these VMs' cores do) then no
//   longer wait for each other, and each block's batch-major inputs are gathered once instead
//   of once per thread.
// - else each thread takes a contiguous range of strips over the whole depth (interleaved
//   strips put both cores on every cache line of the gradients' rows).
template <typename T> void long_product(const LongProduct& q) {
  constexpr int64_t STRIP = 2 * VECTOR_BYTES / sizeof(T), DEPTH_BLOCK = 128;
  constexpr int64_t PARTS = 16, PART_BYTES = 64 << 10;
  const T* states = static_cast<const T*>(q.states);
  const T* mask = static_cast<const T*>(q.mask);
  const T* B = static_cast<const T*>(q.gradients);
  const T* states2 = static_cast<const T*>(q.states2);
  const T* mask2 = static_cast<const T*>(q.mask2);
  const T* G2 = static_cast<const T*>(q.gradients2);
  const int64_t S = q.size, S2 = states2 ? q.size2 : 0, depth = q.depth, width = q.width;
  const int64_t ldb = q.ldb, U = ldb / q.gates;  // U: a gate's columns
  const bool in_place = !mask && q.stride_b == S && q.stride_t == q.batch * S;
  const int64_t strips = (width + STRIP - 1) / STRIP;
  // Strips [first_strip, end_strip) over the rows [k0, k1) into C (ldc), C2 (ldc2), sums and
  // sums2.
  auto product = [&](int64_t first_strip, int64_t end_strip, int64_t k0, int64_t k1, T* C,
                     int64_t ldc, T* C2, int64_t ldc2, T* sums, T* sums2) {
    // The gates (counted from q.gate) these columns fall in, for the masked states2.
    const int64_t g0 = first_strip * STRIP / U;
    const int64_t g1 = (std::min(width, end_strip * STRIP) - 1) / U + 1;
    // States whose rows lie 512 bytes or more apart go through the products packed in row
    // blocks: in place, a six-row block's 128 depth rows, 1 KiB apart at 256 states, fall in
    // 4 of L1's 64 sets and evict each other within the block.
    const bool by_blocks = S * int64_t(sizeof(T)) >= 512 && packs_in_row_blocks(S);
    const bool by_blocks2 =
        states2 && !mask2 && S2 * int64_t(sizeof(T)) >= 512 && packs_in_row_blocks(S2);
    std::vector<T> blocked(by_blocks ? DEPTH_BLOCK * S : 0),
        blocked2(by_blocks2 ? DEPTH_BLOCK * S2 : 0);
    std::vector<T> gathered(in_place ? 0 : DEPTH_BLOCK * S), panel(DEPTH_BLOCK * STRIP),
        gate_panel(mask2 || G2 ? DEPTH_BLOCK * STRIP : 0),
        masked2(mask2 ? (g1 - g0) * DEPTH_BLOCK * S2 : 0);
    // The strips' sums, each strip's (S x STRIP) then (S2 x STRIP) contiguous, copied out at
    // the end: the outputs' rows lie ldc apart, and at 1024 columns (a page) a strip's rows
    // shared a few cache sets and came back from L3 at every block. Kept from call to call
    // (no page faults).
    thread_local std::vector<T> local;
    const int64_t local_size = (S + S2) * STRIP;
    if (int64_t(local.size()) < (end_strip - first_strip) * local_size)
      local.resize((end_strip - first_strip) * local_size);
    for (int64_t k = k0; k < k1; k += DEPTH_BLOCK) {
      const int64_t n = std::min(DEPTH_BLOCK, k1 - k);
      // The block's rows (n = t * batch + b): the states gathered unless read in place, and
      // states2 times each of these gates' masks.
      for (int64_t d = 0, t = k / q.batch, b = k % q.batch; d < n && (!in_place || mask2); ++d) {
        if (!in_place) {
          const T* row = states + t * q.stride_t + b * q.stride_b;
          if (mask)
            masked_row(row, mask + (b * q.gates + q.gate) * S, S, &gathered[d * S]);
          else
            copy_row(row, S, &gathered[d * S]);
          // The rows DEPTH_BLOCK ahead, for the next block: rows T steps apart each start a
          // new stream.
          const int64_t ahead = k + d + DEPTH_BLOCK;
          if (ahead < k1)
            prefetch_row(states + ahead / q.batch * q.stride_t + ahead % q.batch * q.stride_b, S);
        }
        for (int64_t g = g0; mask2 && g < g1; ++g)
          masked_row(states2 + (k + d) * S2, mask2 + (b * q.gates + q.gate + g) * S2, S2,
                     &masked2[((g - g0) * DEPTH_BLOCK + d) * S2]);
        if (++b == q.batch) b = 0, ++t;
      }
      const T* block = in_place ? states + k * S : gathered.data();  // (n x S), transposed
      if (by_blocks) pack_row_blocks(block, S, S, n, blocked.data());
      if (by_blocks2) pack_row_blocks(states2 + k * S2, S2, S2, n, blocked2.data());
      for (int64_t strip = first_strip; strip < end_strip; ++strip) {
        const int64_t j = strip * STRIP, strip_width = std::min(STRIP, width - j);
        // A whole strip's column sums (the bias's gradient) as it is packed.
        const bool whole_strip = strip_width == STRIP;
        if (sums && whole_strip)
          pack_panel_with_sums<T, STRIP>(B + k * ldb + j, ldb, n, panel.data(), sums + j, k == k0);
        else
          pack(B + k * ldb + j, ldb, n, strip_width, panel.data());
        T* strip_sums = &local[(strip - first_strip) * local_size];
        if (by_blocks)
          matmul_row_blocks(blocked.data(), S, n, panel.data(), strip_sums, STRIP, strip_width,
                            k > k0);
        else
          matmul_strided(block, 1, S, panel.data(), strip_sums, STRIP, S, n, strip_width,
                         k > k0);
        // out2's columns of the strip: with mask2, each gate's part from its own masked
        // states2, with gradients2 gate2's part from those (a strip that crosses into the next
        // gate packs each part on its own).
        for (int64_t c = j, end; states2 && c < j + strip_width; c = end) {
          const int64_t g = c / U;
          end = mask2 || G2 ? std::min(j + strip_width, (g + 1) * U) : j + strip_width;
          const bool own = G2 && g == q.gate2;  // from gradients2
          const T* from = own ? G2 + k * q.ldb2 + c - g * U : B + k * ldb + c;
          const int64_t ld = own ? q.ldb2 : ldb;
          const bool whole = c == j && end == j + strip_width && !own;
          if (!whole) pack(from, ld, n, end - c, gate_panel.data());
          const T* part_panel = whole ? panel.data() : gate_panel.data();
          T* part_sums = strip_sums + S * STRIP + c - j;
          if (by_blocks2)
            matmul_row_blocks(blocked2.data(), S2, n, part_panel, part_sums, STRIP, end - c,
                              k > k0);
          else
            matmul_strided(mask2 ? &masked2[(g - g0) * DEPTH_BLOCK * S2] : states2 + k * S2, 1,
                           S2, part_panel, part_sums, STRIP, S2, n, end - c, k > k0);
          if (sums2) add_block_sums<T, STRIP>(from, ld, n, end - c, sums2 + c, k == k0);
        }
        if (sums && !whole_strip)
          add_block_sums<T, STRIP>(B + k * ldb + j, ldb, n, strip_width, sums + j, k == k0);
      }
    }
    for (int64_t strip = first_strip; strip < end_strip; ++strip) {
      const int64_t j = strip * STRIP, strip_width = std::min(STRIP, width - j);
      const T* strip_sums = &local[(strip - first_strip) * local_size];
      for (int64_t r = 0; r < S; ++r)
        copy_row(strip_sums + r * STRIP, strip_width, C + r * ldc + j);
      for (int64_t r = 0; r < S2; ++r)
        copy_row(strip_sums + (S + r) * STRIP, strip_width, C2 + r * ldc2 + j);
    }
  };
  T *C = static_cast<T*>(q.out), *sums = static_cast<T*>(q.sums), *C2 = static_cast<T*>(q.out2);
  T* sums2 = static_cast<T*>(q.sums2);
  const int64_t blocks = (depth + DEPTH_BLOCK - 1) / DEPTH_BLOCK;
  const int64_t parts = std::min(PARTS, blocks);
  if (parts > 1 && (S + S2) * width * int64_t(sizeof(T)) <= PART_BYTES) {
    // Each part's copy: out (S lines of width), out2 (S2 lines), sums and sums2 (a line each).
    std::vector<T*> to;  // where each line goes
    for (int64_t r = 0; r < S; ++r) to.push_back(C + r * q.ldc);
    for (int64_t r = 0; r < S2; ++r) to.push_back(C2 + r * q.ldc2);
    if (sums) to.push_back(sums);
    if (sums2) to.push_back(sums2);
    const int64_t lines = to.size(), copy = lines * width;
    thread_local std::vector<T> copies;  // kept from call to call: no page faults
    if (int64_t(copies.size()) < parts * copy) copies.resize(parts * copy);
    T* first = copies.data();
    const int64_t threads = std::max<int64_t>(1, std::min(q.threads, parts));
    const int master = master_cpu(threads);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t part = 0; part < parts; ++part) {
      leave_master_cpu(master, threads);
      T* mine = first + part * copy;
      T* line_sums = mine + (S + S2) * width;
      product(0, strips, part * blocks / parts * DEPTH_BLOCK,
              std::min(depth, (part + 1) * blocks / parts * DEPTH_BLOCK), mine, width,
              mine + S * width, width, sums ? line_sums : nullptr,
              sums2 ? line_sums + (sums ? width : 0) : nullptr);
    }
#pragma omp parallel for num_threads(threads)
    for (int64_t line = 0; line < lines; ++line) {
      T* out_line = to[line];
      std::copy_n(first + line * width, width, out_line);
      for (int64_t part = 1; part < parts; ++part) {
        const T* from = first + part * copy + line * width;
#pragma GCC ivdep
        for (int64_t j = 0; j < width; ++j) out_line[j] += from[j];
      }
    }
    return;
  }
  const int64_t threads = std::max<int64_t>(1, std::min(q.threads, strips));
  const int master = master_cpu(threads);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t worker = 0; worker < threads; ++worker) {
    leave_master_cpu(master, threads);
    product(worker * strips / threads, (worker + 1) * strips / threads, 0, depth, C, q.ldc, C2,
            q.ldc2, sums, sums2);
  }
}

// Runs Pass<T, ACT, RACT> over the batch: compile-time activations for the common pairs (tanh
// or relu with sigmoid gates), run-time codes otherwise; double when `precise`.
// `packed`: the pass's weights packed beforehand (`rnnkit_pack_forward`), or null to pack them.
template <template <typename, int64_t, int64_t> class Pass>
void run_chunks(const Problem& p, bool precise, const void* packed = nullptr) {
  const bool sigmoid_gates = p.cell == SIMPLE_RNN || p.recurrent_activation == SIGMOID;
  auto body = [&](auto pass) {
    using Weights = decltype(pass.pack(p));
    Weights own;
    if (!packed) own = pass.pack(p);
    const Weights& weights = packed ? *static_cast<const Weights*>(packed) : own;
    // Row groups that sum the weight gradients run whole in one chunk.
    const int64_t group = weights.gradient_group;
    const int64_t max_rows =
        group ? std::max(group, chunk_rows(p) / group * group) : chunk_rows(p);
    for_each_chunk(
        p.batch, p.threads, max_rows,
        [&](int64_t b0, int64_t rows) { pass.run(p, weights, b0, rows); },
        group);
    if (group) finish_weight_gradients(p, group, weights.gradient_sums.data());
    if (forms_table_gradient(p, group)) {
      using T = typename decltype(weights.gradient_sums)::value_type;
      finish_table_gradient(p, group, static_cast<const T*>(p.table_sums));
    }
  };
  if (precise) return body(Pass<double, -1, -1>{});
  if (sigmoid_gates && p.activation == TANH) return body(Pass<float, TANH, SIGMOID>{});
  if (sigmoid_gates && p.activation == RELU) return body(Pass<float, RELU, SIGMOID>{});
  body(Pass<float, -1, -1>{});
}

template <typename T, int64_t ACT, int64_t RACT> struct Forward {
  static PackedWeights<T> pack(const Problem& p) {
    // x_t @ K and h @ R as one product ([x_t | h] @ [K; R], `Continued`): each block's
    // accumulators stored once, not twice. Only where a strip of the stacked panels (two
    // vectors wide) stays within half of L1: deeper, the panels no longer stay in L1 and the
    // gain is gone. The gate blocks apart are then not read.
    const int64_t F = p.features, U = p.units, W = p.gates * p.units;
    const bool fits = (F + U) * 2 * VECTOR_BYTES <= 16 << 10;
    PackedWeights<T> w;
    if ((p.cell == SIMPLE_RNN || p.cell == LSTM) && !p.input_dropout && fits) {
      std::vector<T> stacked(static_cast<const T*>(p.kernel),
                             static_cast<const T*>(p.kernel) + F * W);
      stacked.insert(stacked.end(), static_cast<const T*>(p.recurrent_kernel),
                     static_cast<const T*>(p.recurrent_kernel) + U * W);
      w.both.resize((F + U) * W);
      if (!p.recurrent_dropout) {
        ::pack<T>(stacked.data(), W, F + U, W, w.both.data());
        return w;
      }
      for (int64_t g = 0; g < p.gates; ++g)  // each gate's apart: see `both`
        ::pack<T>(stacked.data() + g * U, W, F + U, U, w.both.data() + g * (F + U) * U);
      return w;
    }
    w.kernel = pack_gates<T>(p.kernel, F, U, p.gates);
    w.recurrent = pack_gates<T>(p.recurrent_kernel, U, U, p.gates);
    return w;
  }
  static void run(const Problem& p, const PackedWeights<T>& w, int64_t b0, int64_t rows) {
    forward_chunk<T, ACT, RACT>(p, w, b0, rows);
  }
};
template <typename T, int64_t ACT, int64_t RACT> struct Backward {
  // Products over every gate without dropout masks read the gate blocks stacked: the kernel's
  // (the inputs' gradient), and the recurrent kernel's where every gate adds to the state's
  // gradient directly (not GRU's h gate).
  static PackedWeights<T> pack(const Problem& p) {
    const bool kernel_stacked = !p.input_dropout;
    const bool recurrent_stacked = !p.recurrent_dropout && (p.cell == SIMPLE_RNN || p.cell == LSTM);
    // The kernel is read only for the inputs' gradient (a benchmark's or an Embedding-fed
    // layer's inputs need none).
    PackedWeights<T> w{
        p.input_gradient
            ? pack_gates_transposed<T>(p.kernel, p.units, p.features, p.gates, kernel_stacked)
            : std::vector<T>{},
        pack_gates_transposed<T>(p.recurrent_kernel, p.units, p.units, p.gates,
                                 recurrent_stacked),
        kernel_stacked, recurrent_stacked};
    w.gradient_group = gradient_group<T>(p);
    if (w.gradient_group)
      w.gradient_sums.assign(p.batch / w.gradient_group * (p.features + p.units + 1) * p.gates *
                                 p.units,
                             T(0));
    return w;
  }
  static void run(const Problem& p, const PackedWeights<T>& w, int64_t b0, int64_t rows) {
    backward_chunk<T, ACT, RACT>(p, w, b0, rows);
  }
};

// out (table_rows x width) = for each id v, the sum of the rows n < count of `rows` (count x
// width) with ids[n] == v, added in the order of n (zeros where no row has v): the gradient of a
// table whose rows `ids` picked. The threads split the columns, so that no sum's order depends
// on their number.
template <typename T>
void scatter_rows(const int64_t* ids, const T* rows, int64_t count, int64_t width,
                  int64_t table_rows, T* out, int64_t threads) {
  constexpr int64_t LANES = VECTOR_BYTES / sizeof(T), AHEAD = 8;
  const int64_t vectors = (width + LANES - 1) / LANES;
  threads = std::max<int64_t>(1, std::min(threads, vectors));
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t worker = 0; worker < threads; ++worker) {
    const int64_t c0 = std::min(width, worker * vectors / threads * LANES);
    const int64_t c1 = std::min(width, (worker + 1) * vectors / threads * LANES);
    for (int64_t v = 0; v < table_rows; ++v)
      std::fill(out + v * width + c0, out + v * width + c1, T(0));
    for (int64_t n = 0; n < count; ++n) {
      // The table's rows are read in the ids' order, at random: ask for them ahead.
      if (n + AHEAD < count) prefetch_row(out + ids[n + AHEAD] * width + c0, c1 - c0);
      const T* from = rows + n * width;
      T* to = out + ids[n] * width;
      #pragma GCC ivdep
      for (int64_t j = c0; j < c1; ++j) to[j] += from[j];
    }
  }
}

// The folded input table (`rnnkit.kernels.folded`) and its gradients, in blocks of TABLE_BLOCK
// of its rows. Each block's sums run in the same instructions whatever thread takes it, and the
// blocks' parts of the weights' gradients are added in the blocks' order, so no result depends
// on the number of threads. Through torch, the table's product and its bias were two passes
// over the table (the bias copied in, then the product added), its gradients three (two
// products and a sum); here the table is written once and its gradient read once.
constexpr int64_t TABLE_BLOCK = 256;

// table (V x W) = E (V x F) @ K (F x W) + bias (W; none where null).
template <typename T>
void table_product(const T* E, const T* K, const T* bias, int64_t V, int64_t F, int64_t W,
                   T* table, int64_t threads) {
  std::vector<T> packed(F * W);
  pack(K, W, F, W, packed.data());
  for_each_chunk(
      V, threads, TABLE_BLOCK,
      [&](int64_t v0, int64_t rows) {
        matmul(E + v0 * F, F, packed.data(), table + v0 * W, W, rows, F, W, false, bias);
      },
      TABLE_BLOCK);
}

// From the table's gradient D (V x W): dE (V x F) = D @ K^T (none where dE is null), dK (F x
// W) = E^T @ D and dbias (W) = D's column sums. Each block forms its rows of dE, its part of
// dK^T (D_block^T @ E_block, D read in place as the transposed operand, E_block packed) and
// its column sums while its rows of D are in cache.
template <typename T>
void table_gradients(const T* D, const T* E, const T* K, int64_t V, int64_t F, int64_t W, T* dE,
                     T* dK, T* dbias, int64_t threads) {
  const int64_t blocks = (V + TABLE_BLOCK - 1) / TABLE_BLOCK;
  std::vector<T> packed_transposed(dE ? W * F : 0);
  if (dE) pack<T, true>(K, W, W, F, packed_transposed.data());
  // Block b's part of dK^T (W x F), then its column sums (W); each block writes all of its own.
  const std::unique_ptr<T[]> parts(new T[blocks * (W * F + W)]);
  for_each_chunk(
      V, threads, TABLE_BLOCK,
      [&](int64_t v0, int64_t rows) {
        const T* block = D + v0 * W;
        if (dE)
          matmul(block, W, packed_transposed.data(), dE + v0 * F, F, rows, W, F, false);
        thread_local std::vector<T> packed_inputs;
        packed_inputs.resize(TABLE_BLOCK * F);
        pack(E + v0 * F, F, rows, F, packed_inputs.data());
        T* part = parts.get() + v0 / TABLE_BLOCK * (W * F + W);
        matmul_strided(block, 1, W, packed_inputs.data(), part, F, W, rows, F, false);
        T* sums = part + W * F;
        std::copy_n(block, W, sums);
        for (int64_t v = 1; v < rows; ++v) {
          #pragma GCC ivdep
          for (int64_t j = 0; j < W; ++j) sums[j] += block[v * W + j];
        }
      },
      TABLE_BLOCK);
  std::fill_n(dK, F * W, T(0));
  std::fill_n(dbias, W, T(0));
  for (int64_t b = 0; b < blocks; ++b) {
    const T* part = parts.get() + b * (W * F + W);
    for (int64_t j = 0; j < W; ++j)
      for (int64_t f = 0; f < F; ++f) dK[f * W + j] += part[j * F + f];
    for (int64_t j = 0; j < W; ++j) dbias[j] += part[W * F + j];
  }
}

// Keras's RMSprop step for one variable without momentum or centering, in one pass over its
// elements: v = rho * v + (1 - rho) * g^2; w -= lr * g / sqrt(v + epsilon). The five torch
// operations it replaces pass over the arrays five times and allocate a temporary. The
// velocity's update is the fused multiply-add torch's `addcmul_` makes of it, so that the two
// velocities agree bit for bit; sqrt is the exact one. Each element is independent: the
// threads' split changes no result.
template <typename T>
void rmsprop_update(T* weights, const T* gradients, T* velocities, int64_t size,
                    T learning_rate, T rho, T one_minus_rho, T epsilon, int64_t threads) {
  constexpr int64_t BLOCK = 16 << 10;  // elements a thread takes at a time
  const int64_t blocks = (size + BLOCK - 1) / BLOCK;
  threads = std::max<int64_t>(1, std::min(threads, blocks));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t end = std::min(size, (block + 1) * BLOCK);
#pragma GCC ivdep
    for (int64_t i = block * BLOCK; i < end; ++i) {
      const T g = gradients[i];
      const T v = std::fma(one_minus_rho * g, g, velocities[i] * rho);
      velocities[i] = v;
      weights[i] += -learning_rate * g / std::sqrt(v + epsilon);
    }
  }
}

}  // namespace

extern "C" {

// Runs the recurrence over all timesteps (double when `precise`, else float).
void rnnkit_forward(const Problem* p, int64_t precise) { run_chunks<Forward>(*p, precise); }

// The forward pass's weights packed once, for calls that share the weights and the
// configuration (a stateful layer's one-step calls): `rnnkit_forward_packed` runs with them,
// `rnnkit_free_forward_weights` frees them. Packing does not depend on the activations.
void* rnnkit_pack_forward(const Problem* p, int64_t precise) {
  if (precise) return new PackedWeights<double>(Forward<double, -1, -1>::pack(*p));
  return new PackedWeights<float>(Forward<float, -1, -1>::pack(*p));
}

void rnnkit_forward_packed(const Problem* p, int64_t precise, const void* packed) {
  run_chunks<Forward>(*p, precise, packed);
}

void rnnkit_free_forward_weights(void* packed, int64_t precise) {
  if (precise) return delete static_cast<PackedWeights<double>*>(packed);
  delete static_cast<PackedWeights<float>*>(packed);
}

// Backpropagates through `rnnkit_forward`: the gradients of the inputs, the initial states and
// the pre-activations; the weight gradients are `rnnkit_long_product`s of what this fills, or,
// where bit 1 of what it returns is set (`gradient_group`: only if `weight_gradients` asked for
// them), this pass has formed them (dkernel, drecurrent, dbias) and left dxproj unwritten unless
// `write_dxproj` asked for it; where bit 2 is set too, it has formed the folded table's
// gradient (dtable) and left dxproj unwritten (`forms_table_gradient`).
int64_t rnnkit_backward(const Problem* p, int64_t precise) {
  run_chunks<Backward>(*p, precise);
  const int64_t group = precise ? gradient_group<double>(*p) : gradient_group<float>(*p);
  return (group > 0 ? 1 : 0) | (forms_table_gradient(*p, group) ? 2 : 0);
}

// The values `rnnkit_backward`'s `table_sums` must hold for it to form the folded table's
// gradient (given `dtable` too), or 0 where it will not (`table_sums_size`).
int64_t rnnkit_table_sums_size(const Problem* p, int64_t precise) {
  return table_sums_size(*p, precise ? gradient_group<double>(*p) : gradient_group<float>(*p));
}

// The widest vector instructions this build was compiled for
// (`rnnkit.kernels.cpu_library.kernel_isa`).
const char* rnnkit_isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE2__)
  return "sse2";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "generic";
#endif
}

// The gradient of a table of rows picked by ids, `scatter_rows` (double when `precise`).
void rnnkit_scatter_rows(const int64_t* ids, const void* rows, int64_t count, int64_t width,
                         int64_t table_rows, void* out, int64_t threads, int64_t precise) {
  if (precise)
    return scatter_rows(ids, static_cast<const double*>(rows), count, width, table_rows,
                        static_cast<double*>(out), threads);
  scatter_rows(ids, static_cast<const float*>(rows), count, width, table_rows,
               static_cast<float*>(out), threads);
}

// `table_product` (double when `precise`); bias may be null.
void rnnkit_table_product(const void* E, const void* K, const void* bias, int64_t V, int64_t F,
                          int64_t W, void* table, int64_t threads, int64_t precise) {
  if (precise)
    return table_product(static_cast<const double*>(E), static_cast<const double*>(K),
                         static_cast<const double*>(bias), V, F, W, static_cast<double*>(table),
                         threads);
  table_product(static_cast<const float*>(E), static_cast<const float*>(K),
                static_cast<const float*>(bias), V, F, W, static_cast<float*>(table), threads);
}

// `table_gradients` (double when `precise`); dE may be null.
void rnnkit_table_gradients(const void* D, const void* E, const void* K, int64_t V, int64_t F,
                            int64_t W, void* dE, void* dK, void* dbias, int64_t threads,
                            int64_t precise) {
  if (precise)
    return table_gradients(static_cast<const double*>(D), static_cast<const double*>(E),
                           static_cast<const double*>(K), V, F, W, static_cast<double*>(dE),
                           static_cast<double*>(dK), static_cast<double*>(dbias), threads);
  table_gradients(static_cast<const float*>(D), static_cast<const float*>(E),
                  static_cast<const float*>(K), V, F, W, static_cast<float*>(dE),
                  static_cast<float*>(dK), static_cast<float*>(dbias), threads);
}

// The weight gradient `long_product` computes (double when `precise`); see there.
void rnnkit_long_product(const LongProduct* q, int64_t precise) {
  if (precise) return long_product<double>(*q);
  long_product<float>(*q);
}

// `rmsprop_update` on float (double when `precise`) arrays of `size` elements; the scalars
// rounded to the arrays' type, as torch rounds an operation's scalar arguments (1 - rho is
// formed in double first, as Python forms the `value` torch's `addcmul_` is given).
void rnnkit_rmsprop_update(void* weights, const void* gradients, void* velocities, int64_t size,
                           double learning_rate, double rho, double epsilon, int64_t threads,
                           int64_t precise) {
  const double one_minus_rho = 1.0 - rho;
  if (precise)
    return rmsprop_update(static_cast<double*>(weights), static_cast<const double*>(gradients),
                          static_cast<double*>(velocities), size, learning_rate, rho,
                          one_minus_rho, epsilon, threads);
  rmsprop_update(static_cast<float*>(weights), static_cast<const float*>(gradients),
                 static_cast<float*>(velocities), size, float(learning_rate), float(rho),
                 float(one_minus_rho), float(epsilon), threads);
}

}  // extern "C"
