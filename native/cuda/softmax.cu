// softmax / log_softmax over the last axis of a contiguous [rows, n] tensor, forward and
// backward, on the GPU. CPU twin: native/cpu/softmax.cpp (same checks; lib/ops/softmax.ts moves
// any dim last first, so rows are unit-stride here too).
//
// Kernel shape: one group of threads per row, a warp when n <= 1024 (8 rows per 256-thread
// block), else the whole 256-thread block. Threads stride over the row (coalesced loads).
//   forward:  one "online" pass keeps a running (max m, sum s of exp(x - m)) per thread,
//             rescaling s when m grows; the per-thread pairs are merged by a shuffle /
//             shared-memory tree into the row's (m, s). A second pass writes
//             softmax = exp(x - m) * (1 / s) or log_softmax = (x - m) - log(s). The row is read
//             twice (the second read mostly from L2) and written once.
//   backward: one reduction pass (sum(g * y) for softmax, sum(g) for log_softmax, in double)
//             and one elementwise pass, exactly the CPU's formulas.
//
// Semantics mirrored from the CPU: subtracting the max means no overflow for finite inputs and a
// -inf entry gets probability 0; a row of all -inf gives NaN ((-inf) - (-inf)); NaN anywhere in a
// row makes the whole row NaN; a +inf entry makes the whole row NaN (the CPU's sum then contains
// exp(inf - inf)). The final scale and the log are computed in double from the double sum and
// rounded once to the element type, as on the CPU.
//
// Precision vs the CPU: the row sum is a double in both, but here each term is exp(x - m_running)
// rescaled by exp(m_running - m) (a product of two rounded values) and the order of additions is
// a tree; exp is CUDA's expf/exp (<= 2 ulp) vs the CPU's vectorised vec_exp. Results agree to a
// few ulp of the element type, so tests use a tolerance (float32 rtol ~1e-5, float64 ~1e-13), not
// bitwise equality. Deterministic run to run (fixed trees, no atomics).
#include <math_constants.h>

#include <cmath>

#include "cuda/common.cuh"
#include "cuda/softmax.h"

namespace tessera::cuda {

namespace {

struct Rows {
  int64_t rows, n;
};

// Every tensor: 2-D, contiguous, same shape and float dtype as tensor 0 (as the CPU twin).
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

unsigned grid_for(int64_t blocks) {
  return (unsigned)(blocks < 1 ? 1 : (blocks > (int64_t)1 << 20 ? (int64_t)1 << 20 : blocks));
}

__device__ __forceinline__ float exp_t(float v) { return expf(v); }
__device__ __forceinline__ double exp_t(double v) { return ::exp(v); }

template <typename T>
__device__ __forceinline__ T neg_inf() {
  return (T)(-CUDART_INF);
}

// Running (max, sum of exp(x - max)) of one thread: add element v.
template <typename T>
__device__ __forceinline__ void ms_add(T& m, double& s, T v) {
  if (v > m) {
    s = s * (double)exp_t(T(m - v)) + 1.0;  // m = -inf: exp(-inf) = 0
    m = v;
  } else if (!(v == m && m == neg_inf<T>())) {  // a -inf entry while m is still -inf adds 0
    s += (double)exp_t(T(v - m));             // NaN v makes s NaN
  }
}

// Merge two (max, sum) pairs; commutative bit for bit, so a butterfly gives every lane the same.
template <typename T>
__device__ __forceinline__ void ms_merge(T& m, double& s, T m2, double s2) {
  const T M = m2 > m ? m2 : m;
  if (M == neg_inf<T>()) {
    s = s + s2;  // both rows-so-far are all -inf (0) or NaN
  } else {
    // Explicitly rounded products: with nvcc's default FMA contraction, a*b + c*d becomes
    // fma(a, b, c*d) on one lane and fma(c, d, a*b) on its partner, which differ in the last bit,
    // so the lanes of a warp would end up with different row sums.
    s = __dmul_rn(s, ::exp((double)m - (double)M)) + __dmul_rn(s2, ::exp((double)m2 - (double)M));
  }
  m = M;
}

template <int TPR, typename T>
__device__ __forceinline__ void ms_allreduce(T& m, double& s, T* shm, double* shs) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const T m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const double s2 = __shfl_xor_sync(0xffffffffu, s, o);
    ms_merge(m, s, m2, s2);
  }
  if constexpr (TPR > 32) {
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
      shm[threadIdx.x >> 5] = m;
      shs[threadIdx.x >> 5] = s;
    }
    __syncthreads();
    m = shm[0];
    s = shs[0];
#pragma unroll
    for (int w = 1; w < TPR / 32; ++w) ms_merge(m, s, shm[w], shs[w]);
  }
}

template <int TPR>
__device__ __forceinline__ double sum_allreduce(double v, double* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if constexpr (TPR > 32) {
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = sh[0];
#pragma unroll
    for (int w = 1; w < TPR / 32; ++w) v += sh[w];
  }
  return v;
}

template <bool Log, typename T, int TPR>
__global__ void __launch_bounds__(kThreads) softmax_fwd(const T* __restrict__ x, T* __restrict__ out, int64_t rows,
                                                       int64_t n) {
  constexpr int RPB = kThreads / TPR;
  __shared__ T shm[kThreads / 32];
  __shared__ double shs[kThreads / 32];
  const int lane = threadIdx.x % TPR;
  for (int64_t base = (int64_t)blockIdx.x * RPB; base < rows; base += (int64_t)gridDim.x * RPB) {
    const int64_t row = base + threadIdx.x / TPR;
    if constexpr (TPR == 32) {
      if (row >= rows) continue;  // whole warps; no block-wide barrier on this path
    }
    const T* xi = x + row * n;
    T* oi = out + row * n;
    T m = neg_inf<T>();
    double s = 0;
    for (int64_t i = lane; i < n; i += TPR) ms_add(m, s, xi[i]);
    ms_allreduce<TPR>(m, s, shm, shs);
    if (m == (T)CUDART_INF) s = CUDART_NAN;  // the CPU's sum holds exp(inf - inf)
    if constexpr (Log) {
      const T ls = T(::log(s));
      for (int64_t i = lane; i < n; i += TPR) oi[i] = (xi[i] - m) - ls;
    } else {
      const T inv = T(1.0 / s);
      for (int64_t i = lane; i < n; i += TPR) oi[i] = exp_t(T(xi[i] - m)) * inv;
    }
  }
}

template <bool Log, typename T, int TPR>
__global__ void __launch_bounds__(kThreads) softmax_bwd(const T* __restrict__ y, const T* __restrict__ g,
                                                       T* __restrict__ gx, int64_t rows, int64_t n) {
  constexpr int RPB = kThreads / TPR;
  __shared__ double sh[kThreads / 32];
  const int lane = threadIdx.x % TPR;
  for (int64_t base = (int64_t)blockIdx.x * RPB; base < rows; base += (int64_t)gridDim.x * RPB) {
    const int64_t row = base + threadIdx.x / TPR;
    if constexpr (TPR == 32) {
      if (row >= rows) continue;
    }
    const T* yi = y + row * n;
    const T* gi = g + row * n;
    T* di = gx + row * n;
    double s = 0;
    if constexpr (Log) {
      for (int64_t i = lane; i < n; i += TPR) s += (double)gi[i];
    } else {
      for (int64_t i = lane; i < n; i += TPR) s += (double)gi[i] * (double)yi[i];
    }
    s = sum_allreduce<TPR>(s, sh);
    const T st = T(s);
    if constexpr (Log) {
      for (int64_t i = lane; i < n; i += TPR) di[i] = gi[i] - exp_t(yi[i]) * st;  // dx = g - p * sum(g)
    } else {
      for (int64_t i = lane; i < n; i += TPR) di[i] = yi[i] * (gi[i] - st);  // dx = p * (g - sum(g * p))
    }
  }
}

constexpr int64_t kWarpRowMax = 1024;  // rows up to this long get one warp, longer ones a block

template <bool Log>
void forward(OpCall& c) {
  static const char* const names[] = {"x", "out"};
  const Rows r = check_rows(c, 2, names);
  if (r.rows == 0 || r.n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = c.t(0).data<T>();
    T* out = c.t(1).data<T>();
    if (r.n <= kWarpRowMax)
      softmax_fwd<Log, T, 32><<<grid_for((r.rows + 7) / 8), kThreads>>>(x, out, r.rows, r.n);
    else
      softmax_fwd<Log, T, kThreads><<<grid_for(r.rows), kThreads>>>(x, out, r.rows, r.n);
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

template <bool Log>
void backward(OpCall& c) {
  static const char* const names[] = {"y", "grad_y", "grad_x"};
  const Rows r = check_rows(c, 3, names);
  if (r.rows == 0 || r.n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* y = c.t(0).data<T>();
    const T* g = c.t(1).data<T>();
    T* gx = c.t(2).data<T>();
    if (r.n <= kWarpRowMax)
      softmax_bwd<Log, T, 32><<<grid_for((r.rows + 7) / 8), kThreads>>>(y, g, gx, r.rows, r.n);
    else
      softmax_bwd<Log, T, kThreads><<<grid_for(r.rows), kThreads>>>(y, g, gx, r.rows, r.n);
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

}  // namespace

void softmax(OpCall& c) { forward<false>(c); }
void log_softmax(OpCall& c) { forward<true>(c); }
void softmax_backward(OpCall& c) { backward<false>(c); }
void log_softmax_backward(OpCall& c) { backward<true>(c); }

}  // namespace tessera::cuda
