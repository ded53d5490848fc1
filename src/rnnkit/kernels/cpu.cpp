// Fused CPU recurrences for rnnkit: the sequential part of SimpleRNN, LSTM and GRU, forward and
// backward, for float and double. `rnnkit/kernels/cpu.py` compiles this file once per machine
// (with -march=native) and calls `rnnkit_forward` / `rnnkit_backward` through ctypes; its
// docstring describes the array layouts. Rows of the batch are independent: chunks of rows run
// on separate threads that never synchronise inside the sequence, and no result depends on how
// rows are split, so results do not depend on the number of threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

enum Cell : int64_t { SIMPLE = 0, LSTM = 1, GRU_AFTER = 2, GRU_BEFORE = 3 };
enum Activation : int64_t {
  LINEAR, TANH, SIGMOID, RELU, HARD_SIGMOID, SOFTSIGN, ELU, SELU, SOFTPLUS, EXPONENTIAL, SILU,
  RELU6
};
constexpr double SELU_ALPHA = 1.6732632423543772848170429916717;
constexpr double SELU_SCALE = 1.0507009873554804934193349852946;

}  // namespace

// Mirrored field by field by `_Problem` in cpu.py. Arrays are C-contiguous; see cpu.py.
struct Problem {
  int64_t cell, batch, timesteps, features, units, gates;
  int64_t backwards, zero_output, zero_leading, activation, recurrent_activation;
  int64_t input_masked, masked, save, keep_pre, input_gradient, threads;
  const void *inputs, *kernel, *kernel_t, *input_bias, *xmask;
  const void *recurrent_kernel, *recurrent_kernel_t, *recurrent_bias, *h0, *c0, *rmask;
  const uint8_t* keep;
  void *out, *h_last, *c_last, *hs, *cs, *gate_values, *pre, *aux;
  const void *dout, *dh_last, *dc_last;
  void *dxproj, *dinner, *dinputs, *dh0, *dc0;
};

namespace {

// One SIMD register of T (AVX2: 8 floats; AVX-512: 16), through GCC's vector extensions.
#if defined(__AVX512F__)
constexpr int VECTOR_BYTES = 64;
#else
constexpr int VECTOR_BYTES = 32;
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

// C (rows x NV vectors at column j) (+)= A (rows x depth) @ B (depth x ...): ROWS x NV
// accumulators stay in registers for the whole depth loop.
template <typename T, int ROWS, int NV>
inline void matmul_block(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
                         int64_t depth, int64_t j, bool accumulate) {
  using V = typename Vector<T>::type;
  constexpr int LANES = VECTOR_BYTES / sizeof(T);
  V acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? load(C + r * ldc + j + v * LANES) : V{};
  for (int64_t k = 0; k < depth; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load(B + k * ldb + j + v * LANES);
    for (int r = 0; r < ROWS; ++r) {
      const T a = A[r * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int v = 0; v < NV; ++v) store(C + r * ldc + j + v * LANES, acc[r][v]);
}

// C (rows x width) (+)= A (rows x depth) @ B (depth x width), leading dimensions lda, ldb, ldc.
// The summation over depth runs in order for every element. Rows go in blocks of four; the
// last rows are padded to a block, so that every row is computed by the same code whatever
// its place in the chunk (and so whatever the number of threads).
template <typename T>
void matmul(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t rows,
            int64_t depth, int64_t width, bool accumulate) {
  constexpr int LANES = VECTOR_BYTES / sizeof(T);
  const int64_t whole = rows - rows % 4;
  for (int64_t i = 0; i < whole; i += 4) {
    const T* a = A + i * lda;
    T* c = C + i * ldc;
    int64_t j = 0;
    for (; j + 2 * LANES <= width; j += 2 * LANES)
      matmul_block<T, 4, 2>(a, lda, B, ldb, c, ldc, depth, j, accumulate);
    for (; j + LANES <= width; j += LANES)
      matmul_block<T, 4, 1>(a, lda, B, ldb, c, ldc, depth, j, accumulate);
    for (; j < width; ++j)
      for (int r = 0; r < 4; ++r) {
        T sum = accumulate ? c[r * ldc + j] : T(0);
        for (int64_t k = 0; k < depth; ++k) sum += a[r * lda + k] * B[k * ldb + j];
        c[r * ldc + j] = sum;
      }
  }
  if (whole == rows) return;
  std::vector<T> a(4 * depth, T(0)), c(4 * width, T(0));
  for (int64_t r = 0; r < rows - whole; ++r) {
    std::copy_n(A + (whole + r) * lda, depth, &a[r * depth]);
    if (accumulate) std::copy_n(C + (whole + r) * ldc, width, &c[r * width]);
  }
  matmul(a.data(), depth, B, ldb, c.data(), width, 4, depth, width, accumulate);
  for (int64_t r = 0; r < rows - whole; ++r)
    std::copy_n(&c[r * width], width, C + (whole + r) * ldc);
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

// y[0:n] = f(x[0:n]) for activation `code`.
template <typename T> void activate(int64_t code, const T* __restrict x, T* __restrict y, int64_t n) {
  switch (code) {
    case TANH: for (int64_t j = 0; j < n; ++j) y[j] = tanh_of(x[j]); break;
    case SIGMOID: for (int64_t j = 0; j < n; ++j) y[j] = sigmoid_of(x[j]); break;
    case RELU: for (int64_t j = 0; j < n; ++j) y[j] = std::max(x[j], T(0)); break;
    case HARD_SIGMOID:
      for (int64_t j = 0; j < n; ++j) y[j] = std::min(std::max(x[j] / T(6) + T(0.5), T(0)), T(1));
      break;
    case SOFTSIGN: for (int64_t j = 0; j < n; ++j) y[j] = x[j] / (T(1) + std::abs(x[j])); break;
    case ELU: for (int64_t j = 0; j < n; ++j) y[j] = x[j] > 0 ? x[j] : std::expm1(x[j]); break;
    case SELU:
      for (int64_t j = 0; j < n; ++j)
        y[j] = T(SELU_SCALE) * (x[j] > 0 ? x[j] : T(SELU_ALPHA) * std::expm1(x[j]));
      break;
    case SOFTPLUS:
      for (int64_t j = 0; j < n; ++j)
        y[j] = std::max(x[j], T(0)) + std::log1p(std::exp(-std::abs(x[j])));
      break;
    case EXPONENTIAL: for (int64_t j = 0; j < n; ++j) y[j] = std::exp(x[j]); break;
    case SILU: for (int64_t j = 0; j < n; ++j) y[j] = x[j] * sigmoid_of(x[j]); break;
    case RELU6: for (int64_t j = 0; j < n; ++j) y[j] = std::min(std::max(x[j], T(0)), T(6)); break;
    default: for (int64_t j = 0; j < n; ++j) y[j] = x[j];
  }
}

// d[0:n] = f'(x[0:n]) for activation `code`, from its output y = f(x); only silu reads x.
template <typename T>
void derivative(int64_t code, const T* __restrict y, const T* __restrict x, T* __restrict d,
                int64_t n) {
  switch (code) {
    case TANH: for (int64_t j = 0; j < n; ++j) d[j] = T(1) - y[j] * y[j]; break;
    case SIGMOID: for (int64_t j = 0; j < n; ++j) d[j] = y[j] * (T(1) - y[j]); break;
    case RELU: for (int64_t j = 0; j < n; ++j) d[j] = y[j] > 0 ? T(1) : T(0); break;
    case HARD_SIGMOID:
      for (int64_t j = 0; j < n; ++j) d[j] = (y[j] > 0 && y[j] < 1) ? T(1) / T(6) : T(0);
      break;
    case SOFTSIGN:
      for (int64_t j = 0; j < n; ++j) d[j] = (T(1) - std::abs(y[j])) * (T(1) - std::abs(y[j]));
      break;
    case ELU: for (int64_t j = 0; j < n; ++j) d[j] = y[j] > 0 ? T(1) : y[j] + T(1); break;
    case SELU:
      for (int64_t j = 0; j < n; ++j)
        d[j] = y[j] > 0 ? T(SELU_SCALE) : y[j] + T(SELU_SCALE * SELU_ALPHA);
      break;
    case SOFTPLUS: for (int64_t j = 0; j < n; ++j) d[j] = -std::expm1(-y[j]); break;
    case EXPONENTIAL: for (int64_t j = 0; j < n; ++j) d[j] = y[j]; break;
    case SILU:
      for (int64_t j = 0; j < n; ++j) {
        const T sig = sigmoid_of(x[j]);
        d[j] = sig * (T(1) + x[j] * (T(1) - sig));
      }
      break;
    case RELU6: for (int64_t j = 0; j < n; ++j) d[j] = (y[j] > 0 && y[j] < 6) ? T(1) : T(0); break;
    default: for (int64_t j = 0; j < n; ++j) d[j] = T(1);
  }
}

// Runs body(first_row, rows) over chunks of rows on `threads` threads (round robin); chunks of
// at most 16 rows, at least one per thread when there are enough rows.
template <typename Body> void for_each_chunk(int64_t batch, int64_t threads, Body body) {
  threads = std::max<int64_t>(1, std::min(threads, batch));
  const int64_t per_thread = (batch + threads - 1) / threads;
  const int64_t chunks_per_thread = (per_thread + 15) / 16;
  const int64_t rows = (per_thread + chunks_per_thread - 1) / chunks_per_thread;
  const int64_t chunks = (batch + rows - 1) / rows;
  auto work = [&](int64_t worker) {
    for (int64_t c = worker; c < chunks; c += threads)
      body(c * rows, std::min(rows, batch - c * rows));
  };
  std::vector<std::thread> pool;
  for (int64_t worker = 1; worker < threads; ++worker) pool.emplace_back(work, worker);
  work(0);
  for (auto& thread : pool) thread.join();
}

// Per row, the processing index of its first unmasked step (timesteps if none).
std::vector<int64_t> first_real_steps(const Problem& p, int64_t b0, int64_t rows) {
  std::vector<int64_t> first(rows, p.timesteps);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t s = 0; s < p.timesteps; ++s) {
      const int64_t t = p.backwards ? p.timesteps - 1 - s : s;
      if (p.keep[(b0 + i) * p.timesteps + t]) {
        first[i] = s;
        break;
      }
    }
  return first;
}

// dst[:, (g-g0)*U : (g-g0+1)*U] (+)= (A * mask[:, g]) @ B[:, g*U : (g+1)*U] for g0 <= g < g1:
// A (rows x depth, lda), B (depth x G*U), dst (rows x ..., ldd); mask (rows, G, depth) or null
// (then all gates in one product); Ag (rows x depth) scratch.
template <typename T>
void gate_products(const T* A, int64_t lda, const T* mask, const T* B, T* dst, int64_t ldd,
                   int64_t rows, int64_t depth, int64_t G, int64_t U, int64_t g0, int64_t g1,
                   bool accumulate, T* Ag) {
  if (!mask) {
    matmul(A, lda, B + g0 * U, G * U, dst, ldd, rows, depth, (g1 - g0) * U, accumulate);
    return;
  }
  for (int64_t g = g0; g < g1; ++g) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < depth; ++k)
        Ag[i * depth + k] = A[i * lda + k] * mask[(i * G + g) * depth + k];
    matmul(Ag, depth, B + g * U, G * U, dst + (g - g0) * U, ldd, rows, depth, U, accumulate);
  }
}

// dst (rows x depth, ldd) (+)= sum over g0 <= g < g1 of (D[:, g*U:(g+1)*U] @ BT_g) * mask[:, g]:
// the gradient `gate_products` passes to A. BT (G*U x depth) is B transposed, BT_g its rows
// g*U..; mask (rows, G, depth) or null; Tg (rows x depth) scratch.
template <typename T>
void gate_products_transposed(const T* D, int64_t ldD, const T* mask, const T* BT, T* dst,
                              int64_t ldd, int64_t rows, int64_t depth, int64_t G, int64_t U,
                              int64_t g0, int64_t g1, bool accumulate, T* Tg) {
  if (!mask) {
    matmul(D + g0 * U, ldD, BT + g0 * U * depth, depth, dst, ldd, rows, (g1 - g0) * U, depth,
           accumulate);
    return;
  }
  if (!accumulate)
    for (int64_t i = 0; i < rows; ++i) std::fill_n(dst + i * ldd, depth, T(0));
  for (int64_t g = g0; g < g1; ++g) {
    matmul(D + g * U, ldD, BT + g * U * depth, depth, Tg, depth, rows, U, depth, false);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < depth; ++k)
        dst[i * ldd + k] += Tg[i * depth + k] * mask[(i * G + g) * depth + k];
  }
}

template <typename T> void forward_chunk(const Problem& p, int64_t b0, int64_t rows) {
  const int64_t T_ = p.timesteps, F = p.features, U = p.units, G = p.gates, W = G * U;
  const T* inputs = static_cast<const T*>(p.inputs);
  const T* K = static_cast<const T*>(p.kernel);
  const T* bias = static_cast<const T*>(p.input_bias);
  const T* R = static_cast<const T*>(p.recurrent_kernel);
  const T* brec = static_cast<const T*>(p.recurrent_bias);
  const T* xmask = p.input_masked ? static_cast<const T*>(p.xmask) + b0 * G * F : nullptr;
  const T* M = p.masked ? static_cast<const T*>(p.rmask) + b0 * G * U : nullptr;
  T* out = static_cast<T*>(p.out);
  T* hs = static_cast<T*>(p.hs);
  T* cs = static_cast<T*>(p.cs);
  T* gate_values = static_cast<T*>(p.gate_values);
  T* pre = static_cast<T*>(p.pre);
  T* aux = static_cast<T*>(p.aux);
  const bool gru = p.cell == GRU_AFTER || p.cell == GRU_BEFORE;
  const int64_t direct = gru ? 2 : G;  // gates whose recurrent part adds straight to x @ K
  const std::vector<int64_t> first = first_real_steps(p, b0, rows);
  const T* h0 = static_cast<const T*>(p.h0) + b0 * U;
  const T* c0 = static_cast<const T*>(p.c0) + b0 * U;
  std::vector<T> H(h0, h0 + rows * U), C(c0, c0 + rows * U);
  std::vector<T> acc(rows * W), Z(rows * W), A(rows * W), hidden(rows * U), new_h(rows * U),
      new_c(rows * U), X(rows * U), Hg(rows * U), Xg(rows * F);
  for (int64_t s = 0; s < T_; ++s) {
    const int64_t t = p.backwards ? T_ - 1 - s : s;
    if (p.save)
      for (int64_t i = 0; i < rows; ++i) {
        std::copy_n(&H[i * U], U, hs + ((b0 + i) * T_ + t) * U);
        if (p.cell == LSTM) std::copy_n(&C[i * U], U, cs + ((b0 + i) * T_ + t) * U);
      }
    // acc = x_t @ K + h @ R for the direct gates, x_t @ K alone for GRU's h gate.
    gate_products(inputs + (b0 * T_ + t) * F, T_ * F, xmask, K, acc.data(), W, rows, F, G, U, 0,
                  G, false, Xg.data());
    gate_products(H.data(), U, M, R, acc.data(), W, rows, U, G, U, 0, direct, true, Hg.data());
    if (p.cell == GRU_AFTER)  // hidden = h @ R_h, reset after the product
      gate_products(H.data(), U, M, R, hidden.data(), U, rows, U, G, U, 2, 3, false, Hg.data());
    for (int64_t i = 0; i < rows; ++i) {
      T* z = &Z[i * W];
      const T* a = &acc[i * W];
      for (int64_t j = 0; j < direct * U; ++j) z[j] = a[j] + bias[j] + brec[j];
      for (int64_t j = direct * U; j < W; ++j) z[j] = a[j] + bias[j];
    }
    if (gru)
      for (int64_t i = 0; i < rows; ++i)
        activate(p.recurrent_activation, &Z[i * W], &A[i * W], 2 * U);
    if (p.cell == GRU_BEFORE) {  // X = r * h (times the h-gate's dropout mask); hidden = X @ R_h
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t k = 0; k < U; ++k)
          X[i * U + k] = A[i * W + U + k] * H[i * U + k] * (M ? M[(i * G + 2) * U + k] : T(1));
      matmul(X.data(), U, R + 2 * U, W, hidden.data(), U, rows, U, U, false);
    }
    for (int64_t i = 0; i < rows; ++i) {
      T* z = &Z[i * W];
      T* a = &A[i * W];
      T* h = &H[i * U];
      T* nh = &new_h[i * U];
      if (p.cell == SIMPLE) {
        activate(p.activation, z, a, U);
        std::copy_n(a, U, nh);
      } else if (p.cell == LSTM) {
        activate(p.recurrent_activation, z, a, 2 * U);
        activate(p.activation, z + 2 * U, a + 2 * U, U);
        activate(p.recurrent_activation, z + 3 * U, a + 3 * U, U);
        T* c = &C[i * U];
        T* nc = &new_c[i * U];
        for (int64_t j = 0; j < U; ++j) nc[j] = a[U + j] * c[j] + a[j] * a[2 * U + j];
        activate(p.activation, nc, &X[i * U], U);
        for (int64_t j = 0; j < U; ++j) nh[j] = a[3 * U + j] * X[i * U + j];
      } else {
        const T* hid = &hidden[i * U];
        T* inner = &X[i * U];
        if (p.cell == GRU_AFTER) {  // X = inner_h = h @ R_h + b_h
          for (int64_t j = 0; j < U; ++j) {
            inner[j] = hid[j] + brec[2 * U + j];
            z[2 * U + j] += a[U + j] * inner[j];
          }
        } else {
          for (int64_t j = 0; j < U; ++j) z[2 * U + j] += hid[j];
        }
        activate(p.activation, z + 2 * U, a + 2 * U, U);
        for (int64_t j = 0; j < U; ++j) nh[j] = a[j] * h[j] + (T(1) - a[j]) * a[2 * U + j];
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t b = b0 + i;
      if (p.save) {
        std::copy_n(&A[i * W], W, gate_values + (b * T_ + t) * W);
        if (p.keep_pre) std::copy_n(&Z[i * W], W, pre + (b * T_ + t) * W);
        if (p.cell != SIMPLE) std::copy_n(&X[i * U], U, aux + (b * T_ + t) * U);
      }
      T* o = out + (b * T_ + s) * U;
      if (p.keep[b * T_ + t]) {
        std::copy_n(&new_h[i * U], U, &H[i * U]);
        if (p.cell == LSTM) std::copy_n(&new_c[i * U], U, &C[i * U]);
        std::copy_n(&new_h[i * U], U, o);
      } else if (p.zero_output || (p.zero_leading && s < first[i])) {
        std::fill_n(o, U, T(0));
      } else {
        std::copy_n(&H[i * U], U, o);
      }
    }
  }
  std::copy(H.begin(), H.end(), static_cast<T*>(p.h_last) + b0 * U);
  std::copy(C.begin(), C.end(), static_cast<T*>(p.c_last) + b0 * U);
}

template <typename T> void backward_chunk(const Problem& p, int64_t b0, int64_t rows) {
  const int64_t T_ = p.timesteps, F = p.features, U = p.units, G = p.gates, W = G * U;
  const T* KT = static_cast<const T*>(p.kernel_t);
  const T* RT = static_cast<const T*>(p.recurrent_kernel_t);
  const T* xmask = p.input_masked ? static_cast<const T*>(p.xmask) + b0 * G * F : nullptr;
  const T* M = p.masked ? static_cast<const T*>(p.rmask) + b0 * G * U : nullptr;
  const T* hs = static_cast<const T*>(p.hs);
  const T* cs = static_cast<const T*>(p.cs);
  const T* gate_values = static_cast<const T*>(p.gate_values);
  const T* pre = static_cast<const T*>(p.pre);
  const T* aux = static_cast<const T*>(p.aux);
  const T* dout = static_cast<const T*>(p.dout);
  T* dxproj = static_cast<T*>(p.dxproj);
  T* dinner = static_cast<T*>(p.dinner);
  T* dinputs = static_cast<T*>(p.dinputs);
  const int64_t product_gates = p.cell == GRU_BEFORE ? 2 : G;
  const std::vector<int64_t> first = first_real_steps(p, b0, rows);
  const T* dh_last = static_cast<const T*>(p.dh_last) + b0 * U;
  const T* dc_last = static_cast<const T*>(p.dc_last) + b0 * U;
  std::vector<T> dH(dh_last, dh_last + rows * U), dC(dc_last, dc_last + rows * U);
  std::vector<T> S(rows * W), DX(rows * W), DN(rows * W), SC(U), CN(U), dHP(rows * U), d_rh(rows * U),
      Tg(rows * U), TgF(rows * F);
  // The gradient that reaches the recurrent product: DN (GRU reset_after) or DX.
  T* inner = p.cell == GRU_AFTER ? DN.data() : DX.data();
  for (int64_t s = T_ - 1; s >= 0; --s) {
    const int64_t t = p.backwards ? T_ - 1 - s : s;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t b = b0 + i;
      const T* a = gate_values + (b * T_ + t) * W;
      const T* source = p.keep_pre ? pre + (b * T_ + t) * W : a;
      const T* hp = hs + (b * T_ + t) * U;
      const T* x = p.cell == SIMPLE ? nullptr : aux + (b * T_ + t) * U;
      T* dh = &dH[i * U];
      T* dhp = &dHP[i * U];
      T* sd = &S[i * W];
      T* dx = &DX[i * W];
      if (p.keep[b * T_ + t] || !(p.zero_output || (p.zero_leading && s < first[i]))) {
        const T* d = dout + (b * T_ + s) * U;
        for (int64_t j = 0; j < U; ++j) dh[j] += d[j];
      }
      std::fill_n(dhp, U, T(0));
      if (p.cell == SIMPLE) {
        derivative(p.activation, a, source, sd, U);
        for (int64_t j = 0; j < U; ++j) dx[j] = dh[j] * sd[j];
      } else if (p.cell == LSTM) {
        derivative(p.recurrent_activation, a, source, sd, 2 * U);
        derivative(p.activation, a + 2 * U, source + 2 * U, sd + 2 * U, U);
        derivative(p.recurrent_activation, a + 3 * U, source + 3 * U, sd + 3 * U, U);
        const T* c_prev = cs + (b * T_ + t) * U;
        if (p.keep_pre)  // silu's derivative reads its input, the new carry
          for (int64_t j = 0; j < U; ++j) CN[j] = a[U + j] * c_prev[j] + a[j] * a[2 * U + j];
        derivative(p.activation, x, CN.data(), SC.data(), U);
        T* dc = &dC[i * U];
        for (int64_t j = 0; j < U; ++j) {
          const T dc_total = dc[j] + dh[j] * a[3 * U + j] * SC[j];
          dx[j] = dc_total * a[2 * U + j] * sd[j];
          dx[U + j] = dc_total * c_prev[j] * sd[U + j];
          dx[2 * U + j] = dc_total * a[j] * sd[2 * U + j];
          dx[3 * U + j] = dh[j] * x[j] * sd[3 * U + j];
          if (p.keep[b * T_ + t]) dc[j] = dc_total * a[U + j];
        }
      } else {
        derivative(p.recurrent_activation, a, source, sd, 2 * U);
        derivative(p.activation, a + 2 * U, source + 2 * U, sd + 2 * U, U);
        for (int64_t j = 0; j < U; ++j) {
          dx[j] = dh[j] * (hp[j] - a[2 * U + j]) * sd[j];
          dx[2 * U + j] = dh[j] * (T(1) - a[j]) * sd[2 * U + j];
          dhp[j] = dh[j] * a[j];
        }
        if (p.cell == GRU_AFTER) {
          T* dn = &DN[i * W];
          for (int64_t j = 0; j < U; ++j) {
            dx[U + j] = dx[2 * U + j] * x[j] * sd[U + j];
            dn[j] = dx[j];
            dn[U + j] = dx[U + j];
            dn[2 * U + j] = dx[2 * U + j] * a[U + j];
          }
        }
      }
    }
    if (p.cell == GRU_BEFORE) {  // back through X @ R_h, X = r * h * m_h
      matmul(&DX[2 * U], W, RT + 2 * U * U, U, d_rh.data(), U, rows, U, U, false);
      for (int64_t i = 0; i < rows; ++i) {
        const T* a = gate_values + ((b0 + i) * T_ + t) * W;
        const T* hp = hs + ((b0 + i) * T_ + t) * U;
        for (int64_t j = 0; j < U; ++j) {
          const T d_x = d_rh[i * U + j] * (M ? M[(i * G + 2) * U + j] : T(1));
          DX[i * W + U + j] = d_x * hp[j] * S[i * W + U + j];
          dHP[i * U + j] += d_x * a[U + j];
        }
      }
    }
    for (int64_t i = 0; i < rows; ++i)
      if (!p.keep[(b0 + i) * T_ + t]) {  // the states passed through this step unchanged
        std::fill_n(&DX[i * W], W, T(0));
        std::fill_n(&DN[i * W], W, T(0));
        std::copy_n(&dH[i * U], U, &dHP[i * U]);
      }
    gate_products_transposed(inner, W, M, RT, dHP.data(), U, rows, U, G, U, 0, product_gates,
                             true, Tg.data());
    if (p.input_gradient)
      gate_products_transposed(DX.data(), W, xmask, KT, dinputs + (b0 * T_ + t) * F, T_ * F,
                               rows, F, G, U, 0, G, false, TgF.data());
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t b = b0 + i;
      std::copy_n(&DX[i * W], W, dxproj + (b * T_ + t) * W);
      if (p.cell == GRU_AFTER) std::copy_n(&DN[i * W + 2 * U], U, dinner + (b * T_ + t) * U);
    }
    std::swap(dH, dHP);
  }
  std::copy(dH.begin(), dH.end(), static_cast<T*>(p.dh0) + b0 * U);
  std::copy(dC.begin(), dC.end(), static_cast<T*>(p.dc0) + b0 * U);
}

// C (S x width) = sum over n of (states[n] * mask_g[n / timesteps])^T B[n] for n < depth (every
// row and step; states (depth x S), B (depth x width, ldb), mask (batch, gates, S) or null): a
// weight's gradient. The depth goes in blocks of 128, each transposed (and masked) into
// scratch and added in order; the columns in strips of two vectors, each strip on one thread.
// Every element sums over the depth in order, whatever the number of threads.
template <typename T>
void long_product(const T* states, const T* mask, int64_t gate, int64_t gates, int64_t timesteps,
                  const T* B, int64_t ldb, T* C, int64_t ldc, int64_t S, int64_t depth,
                  int64_t width, int64_t threads) {
  constexpr int64_t STRIP = 2 * VECTOR_BYTES / sizeof(T), DEPTH_BLOCK = 128;
  const int64_t strips = (width + STRIP - 1) / STRIP;
  threads = std::max<int64_t>(1, std::min(threads, strips));
  auto work = [&](int64_t worker) {
    std::vector<T> block(S * DEPTH_BLOCK);  // (S x block depth)
    for (int64_t k = 0; k < depth; k += DEPTH_BLOCK) {
      const int64_t n = std::min(DEPTH_BLOCK, depth - k);
      for (int64_t d = 0; d < n; ++d) {
        const T* row = states + (k + d) * S;
        const T* m = mask ? mask + (((k + d) / timesteps) * gates + gate) * S : nullptr;
        for (int64_t r = 0; r < S; ++r) block[r * n + d] = m ? row[r] * m[r] : row[r];
      }
      for (int64_t strip = worker; strip < strips; strip += threads) {
        const int64_t j = strip * STRIP;
        matmul(block.data(), n, B + k * ldb + j, ldb, C + j, ldc, S, n,
               std::min(STRIP, width - j), k > 0);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t worker = 1; worker < threads; ++worker) pool.emplace_back(work, worker);
  work(0);
  for (auto& thread : pool) thread.join();
}

}  // namespace

extern "C" {

// Runs the recurrence over all timesteps (double when `precise`, else float).
void rnnkit_forward(const Problem* p, int64_t precise) {
  for_each_chunk(p->batch, p->threads, [&](int64_t b0, int64_t rows) {
    if (precise) forward_chunk<double>(*p, b0, rows);
    else forward_chunk<float>(*p, b0, rows);
  });
}

// Backpropagates through `rnnkit_forward` (the state gradients; weight gradients are products
// of what this fills, done by the caller).
void rnnkit_backward(const Problem* p, int64_t precise) {
  for_each_chunk(p->batch, p->threads, [&](int64_t b0, int64_t rows) {
    if (precise) backward_chunk<double>(*p, b0, rows);
    else backward_chunk<float>(*p, b0, rows);
  });
}

// The weight gradient `long_product` computes; see there.
void rnnkit_long_product(const void* states, const void* mask, int64_t gate, int64_t gates,
                         int64_t timesteps, const void* B, int64_t ldb, void* C, int64_t ldc,
                         int64_t S, int64_t depth, int64_t width, int64_t threads,
                         int64_t precise) {
  if (precise)
    long_product(static_cast<const double*>(states), static_cast<const double*>(mask), gate,
                 gates, timesteps, static_cast<const double*>(B), ldb, static_cast<double*>(C),
                 ldc, S, depth, width, threads);
  else
    long_product(static_cast<const float*>(states), static_cast<const float*>(mask), gate, gates,
                 timesteps, static_cast<const float*>(B), ldb, static_cast<float*>(C), ldc, S,
                 depth, width, threads);
}

}  // extern "C"
