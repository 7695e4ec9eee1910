// softmax / log_softmax over the last axis of a contiguous [rows, n] tensor.
//
// Why this shape: the TypeScript op moves the softmax dim to the last axis (one copy when it
// is not already there), so here a row is always a unit-stride run of n elements. Each row is
// independent, so rows are spread over threads with parallel_for; within a row every loop is a
// flat `omp simd` loop:
//   forward:  max pass, then a pass that computes e = exp(x - max) into the output row and sums
//             it, then a scale pass (log_softmax: out = x - max - log(sum), overwriting e).
//   backward: one reduction pass (sum(g * y) or sum(g)) and one elementwise pass.
// The row is read 2-3 times, but it is in L1/L2 after the first pass, which keeps the kernel
// memory-bound on large tensors without the serial dependency of an "online" single-pass
// softmax (whose running rescale does not vectorise). exp is vec_exp (cpu/vec_exp.h) so the exp
// pass vectorises too. Subtracting the row max makes every exponent <= 0: no overflow for any
// finite input, and a -inf entry gets exactly 0 probability. Row sums accumulate in double for
// both dtypes. No allocation anywhere.
#include "cpu/softmax.h"

#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu/strided.h"
#include "cpu/vec_exp.h"

namespace tessera::cpu {

namespace {

struct Rows {
  int64_t rows, n;
};

// Every tensor: 2-D, contiguous, same shape and float dtype as tensor 0.
Rows check_rows(OpCall& c, size_t count, const char* const* names) {
  c.expect_count(count, 0);
  c.expect_float(0, names[0]);
  for (size_t i = 0; i < count; ++i) {
    c.expect_ndim(i, 2, names[i]);
    c.expect_contiguous(i, names[i]);
    if (i > 0) {
      c.expect_same_shape(0, i, names[0], names[i]);
      c.expect_same_dtype(0, i, names[0], names[i]);
    }
  }
  return {c.t(0).shape[0], c.t(0).shape[1]};
}

int64_t grain_for(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n)); }

template <typename T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// e[i] = exp(x[i] - m) into e, returning sum(e) accumulated in double. For double this is one
// fused loop; for float the convert-and-accumulate in the same loop as vec_exp defeats GCC's
// if-conversion, so the sum is a second vectorised pass over e while it is still in cache.
template <typename T>
double exp_and_sum(const T* x, T m, T* e, int64_t n) {
  double s = 0;
  if constexpr (std::is_same_v<T, double>) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) {
      const double v = vec_exp(x[i] - m);
      e[i] = v;
      s += v;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) e[i] = vec_exp(T(x[i] - m));
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += (double)e[i];
  }
  return s;
}

template <bool Log, typename T>
void forward_rows(const T* x, T* out, Rows r) {
  parallel_for(r.rows, grain_for(r.n), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const T* xi = x + row * r.n;
      T* oi = out + row * r.n;
      const int64_t n = r.n;
      // A row of all -inf gives (-inf) - (-inf) = NaN, as PyTorch; NaN anywhere gives NaN.
      const T m = row_max(xi, n);
      const double s = exp_and_sum(xi, m, oi, n);  // the output row doubles as scratch
      if constexpr (Log) {
        const T ls = T(std::log(s));
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) oi[i] = (xi[i] - m) - ls;
      } else {
        const T inv = T(1.0 / s);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) oi[i] *= inv;
      }
    }
  });
}

template <bool Log, typename T>
void backward_rows(const T* y, const T* g, T* gx, Rows r) {
  parallel_for(r.rows, grain_for(r.n), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const T* yi = y + row * r.n;
      const T* gi = g + row * r.n;
      T* di = gx + row * r.n;
      const int64_t n = r.n;
      double s = 0;
      if constexpr (Log) {
        // y = log p: dx = g - p * sum(g)
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) s += (double)gi[i];
        const T st = T(s);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) di[i] = gi[i] - vec_exp(yi[i]) * st;
      } else {
        // y = p: dx = p * (g - sum(g * p))
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) s += (double)gi[i] * (double)yi[i];
        const T st = T(s);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) di[i] = yi[i] * (gi[i] - st);
      }
    }
  });
}

template <bool Log>
void forward(OpCall& c) {
  static const char* const names[] = {"x", "out"};
  const Rows r = check_rows(c, 2, names);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    forward_rows<Log, T>(c.t(0).data<T>(), c.t(1).data<T>(), r);
  });
}

template <bool Log>
void backward(OpCall& c) {
  static const char* const names[] = {"y", "grad_y", "grad_x"};
  const Rows r = check_rows(c, 3, names);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    backward_rows<Log, T>(c.t(0).data<T>(), c.t(1).data<T>(), c.t(2).data<T>(), r);
  });
}

}  // namespace

void softmax(OpCall& c) { forward<false>(c); }
void log_softmax(OpCall& c) { forward<true>(c); }
void softmax_backward(OpCall& c) { backward<false>(c); }
void log_softmax_backward(OpCall& c) { backward<true>(c); }

}  // namespace tessera::cpu
