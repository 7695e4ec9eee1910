// Reductions over the middle axis of a contiguous [outer, R, inner] tensor into a contiguous
// [outer, inner] output, on the GPU: sum, mean, amax, amin, logsumexp, var [correction].
// CPU twin: native/cpu/reduce.cpp (same argument checks, same calling convention: the
// TypeScript side, lib/ops/reduce.ts, folds the reduced dims into R).
//
// Semantics mirrored from the CPU kernel, for both float32 and float64:
//  * every accumulator is a double (float32 inputs too), and the statistics are the same
//    two-pass ones: var = sum((x - mean)^2) / (R - correction) with the mean from a first pass
//    (NaN when R - correction <= 0); logsumexp = m + log(sum(exp(x - m))) with m the max from a
//    first pass, NaN anywhere gives NaN, and an infinite max is returned as is (a row of -inf
//    gives -inf, any +inf gives +inf); amax/amin propagate NaN.
//  * R = 0 writes 0 (sum), -inf (logsumexp) or NaN (mean, amax, amin, var), as the CPU.
//  * mean divides by R on the inner == 1 path and multiplies by 1/R on the inner > 1 path,
//    exactly as the CPU's two paths do.
//
// Kernel shapes (chosen on the host from the dims):
//  * inner == 1, many rows: one warp per row (R < 1024) or one 256-thread block per row; each
//    thread strides over the row (coalesced loads), then a shuffle/shared-memory tree reduce.
//  * inner == 1, few long rows (e.g. a full reduction to a scalar): each row is split into up to
//    2048 / outer chunks, one block per chunk writes a double partial to scratch, and one thread
//    per row combines the partials in chunk order. logsumexp and var run this twice (max then
//    sum of exp; mean then sum of squared deviations), as the CPU's two passes.
//  * inner > 1 (reducing a non-last dim): threads own output columns, adjacent threads adjacent
//    columns (coalesced). With >= 8192 columns each thread walks its column sequentially, in the
//    CPU's order; with fewer, 8 threads share a column and combine their partials through shared
//    memory in a fixed order. (A [1, huge R, few columns] shape therefore uses few blocks: correct
//    but not bandwidth-bound.)
// Everything is deterministic run to run (fixed trees, no atomics).
//
// Precision vs the CPU: amax/amin are exact (bitwise equal). The sums are double in both, but the
// order of additions differs (tree vs the CPU's simd lanes), and exp/log are CUDA's double
// versions (<= 1-2 ulp) rather than glibc's, so sum/mean/var/logsumexp agree to double rounding
// before the final rounding to the element type: tests compare float32 with rtol ~1e-6 and
// float64 with rtol ~1e-12 rather than bit for bit. The inner > 1 path with >= 8192 columns sums
// in exactly the CPU's order (sum/mean bitwise equal there).
#include <cmath>
#include <limits>

#include <math_constants.h>

#include "cuda/common.cuh"
#include "cuda/reduce.h"

namespace tessera::cuda {

namespace {

enum class Kind { Sum, Mean, Max, Min, LogSumExp, Var };

struct Dims {
  int64_t outer, r, inner;
};

Dims check_args(OpCall& c, size_t nscalars) {
  c.expect_count(2, nscalars);
  c.expect_ndim(0, 3, "x (as [outer, R, inner])");
  c.expect_contiguous(0, "x");
  c.expect_contiguous(1, "out");
  c.expect_same_dtype(0, 1, "x", "out");
  c.expect_float(0, "x");
  const TensorRef& x = c.t(0);
  Dims d{x.shape[0], x.shape[1], x.shape[2]};
  c.expect_numel(1, d.outer * d.inner, "out");
  return d;
}

// Device scratch for one call, stream-ordered on the legacy default stream every kernel here
// uses (cudaMallocAsync; plain cudaMalloc where memory pools are unsupported).
struct Scratch {
  void* ptr = nullptr;
  bool async = false;
  Scratch(size_t bytes, const char* op) {
    if (bytes == 0) return;
    if (cudaMallocAsync(&ptr, bytes, 0) == cudaSuccess) {
      async = true;
      return;
    }
    cudaGetLastError();
    ptr = nullptr;
    check(cudaMalloc(&ptr, bytes), op);
  }
  ~Scratch() {
    if (!ptr) return;
    if (async) cudaFreeAsync(ptr, 0);
    else cudaFree(ptr);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

unsigned grid_for(int64_t blocks) {
  return (unsigned)(blocks < 1 ? 1 : (blocks > (int64_t)1 << 20 ? (int64_t)1 << 20 : blocks));
}

// ---- combine operators (all in double) --------------------------------------------------------

struct AddOp {
  __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};
struct MaxOp {  // NaN wins
  __device__ __forceinline__ double operator()(double a, double b) const {
    return a != a ? a : (b != b ? b : (b > a ? b : a));
  }
};
struct MinOp {
  __device__ __forceinline__ double operator()(double a, double b) const {
    return a != a ? a : (b != b ? b : (b < a ? b : a));
  }
};

template <Kind K>
struct Pass1 {  // the first pass: a sum for sum/mean/var, an extreme for amax/amin/logsumexp
  static constexpr bool kMax = K == Kind::Max || K == Kind::LogSumExp;
  static constexpr bool kMin = K == Kind::Min;
  __device__ __forceinline__ static double identity() {
    return kMax ? -CUDART_INF : (kMin ? CUDART_INF : 0.0);
  }
  __device__ __forceinline__ double operator()(double a, double b) const {
    if constexpr (kMax) return MaxOp{}(a, b);
    else if constexpr (kMin) return MinOp{}(a, b);
    else return a + b;
  }
};

template <Kind K>
constexpr bool kTwoPass = K == Kind::Var || K == Kind::LogSumExp;

// Thread-local partial of pass 1 or 2 over p[i * stride] for i = begin, begin + step, ... < end.
template <Kind K, int Pass, typename T>
__device__ __forceinline__ double partial(const T* __restrict__ p, int64_t begin, int64_t end, int64_t step,
                                          int64_t stride, double center) {
  if constexpr (Pass == 1) {
    Pass1<K> op;
    double acc = Pass1<K>::identity();
    for (int64_t i = begin; i < end; i += step) acc = op(acc, (double)p[i * stride]);
    return acc;
  } else {
    double acc = 0;
    for (int64_t i = begin; i < end; i += step) {
      const double v = (double)p[i * stride];
      if constexpr (K == Kind::Var) {
        const double d = v - center;
        acc += d * d;
      } else {
        acc += ::exp(v - center);
      }
    }
    return acc;
  }
}

template <typename Op>
__device__ __forceinline__ double warp_allreduce(double v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// All threads of a group of TPR threads (a warp, or the whole block) get the same result.
template <int TPR, typename Op>
__device__ __forceinline__ double group_allreduce(double v, Op op, double* sh) {
  v = warp_allreduce(v, op);
  if constexpr (TPR == 32) {
    return v;
  } else {
    constexpr int NW = TPR / 32;
    __syncthreads();  // sh may still be read from a previous call
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double r = sh[0];
#pragma unroll
    for (int w = 1; w < NW; ++w) r = op(r, sh[w]);
    return r;
  }
}

// Result of a one-pass kind from its pass-1 value; `divide`: mean as s / R (else s * (1 / R)).
template <Kind K>
__device__ __forceinline__ double finish1(double s1, int64_t r, bool divide) {
  if constexpr (K == Kind::Mean) return divide ? s1 / (double)r : s1 * (1.0 / (double)r);
  else return s1;
}
// Center for pass 2 (mean for var, max for logsumexp) from the pass-1 value.
template <Kind K>
__device__ __forceinline__ double center_of(double s1, int64_t r) {
  return K == Kind::Var ? s1 / (double)r : s1;
}
// logsumexp stops after pass 1 when the max is NaN or infinite (the CPU returns it as is).
template <Kind K>
__device__ __forceinline__ bool skip_pass2(double s1) {
  return K == Kind::LogSumExp && (s1 != s1 || isinf(s1));
}
template <Kind K>
__device__ __forceinline__ double finish2(double center, double s2, int64_t r, double correction) {
  if constexpr (K == Kind::Var) {
    const double denom = (double)r - correction;
    return denom > 0 ? s2 / denom : CUDART_NAN;
  } else {
    return center + ::log(s2);
  }
}

// inner == 1: a group of TPR threads per row.
template <Kind K, typename T, int TPR>
__global__ void __launch_bounds__(kThreads) reduce_rows(const T* __restrict__ x, T* __restrict__ out, int64_t outer,
                                                        int64_t r, double correction) {
  constexpr int RPB = kThreads / TPR;
  __shared__ double sh[kThreads / 32];
  const int lane = threadIdx.x % TPR;
  for (int64_t base = (int64_t)blockIdx.x * RPB; base < outer; base += (int64_t)gridDim.x * RPB) {
    const int64_t row = base + threadIdx.x / TPR;
    if constexpr (TPR == 32) {
      if (row >= outer) continue;  // whole warps; no block-wide barrier on this path
    }
    const T* p = x + row * r;
    const double s1 = group_allreduce<TPR>(partial<K, 1>(p, lane, r, TPR, 1, 0.0), Pass1<K>{}, sh);
    double res;
    if constexpr (kTwoPass<K>) {
      if (skip_pass2<K>(s1)) {
        res = s1;
      } else {
        const double ctr = center_of<K>(s1, r);
        const double s2 = group_allreduce<TPR>(partial<K, 2>(p, lane, r, TPR, 1, ctr), AddOp{}, sh);
        res = finish2<K>(ctr, s2, r, correction);
      }
    } else {
      res = finish1<K>(s1, r, true);
    }
    if (lane == 0) out[row] = (T)res;
  }
}

// Combine the S partials of each column (threadIdx.y = 0..S-1) in a fixed order; every thread
// of the column gets the result.
template <int CX, int S, typename Op>
__device__ __forceinline__ double col_combine(double v, Op op, double (*sh)[CX]) {
  if constexpr (S == 1) {
    return v;
  } else {
    __syncthreads();
    sh[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    double r = sh[0][threadIdx.x];
#pragma unroll
    for (int k = 1; k < S; ++k) r = op(r, sh[k][threadIdx.x]);
    return r;
  }
}

// inner > 1: block (CX, S); CX adjacent output columns per block, S threads per column.
template <Kind K, typename T, int CX, int S>
__global__ void __launch_bounds__(CX* S) reduce_cols(const T* __restrict__ x, T* __restrict__ out, int64_t outer,
                                                    int64_t r, int64_t inner, double correction) {
  __shared__ double sh[S][CX];
  const int64_t ncols = outer * inner;
  for (int64_t c0 = (int64_t)blockIdx.x * CX; c0 < ncols; c0 += (int64_t)gridDim.x * CX) {
    const int64_t col = c0 + threadIdx.x;
    const bool ok = col < ncols;
    const int64_t o = ok ? col / inner : 0, j = ok ? col % inner : 0;
    const T* p = x + o * r * inner + j;
    const double v1 = ok ? partial<K, 1>(p, threadIdx.y, r, S, inner, 0.0) : Pass1<K>::identity();
    const double s1 = col_combine<CX, S>(v1, Pass1<K>{}, sh);
    double res;
    if constexpr (kTwoPass<K>) {
      // s1 is the same for every thread of a column, but columns differ: no early exit around the
      // barriers, just skip the arithmetic.
      const bool skip = skip_pass2<K>(s1);
      const double ctr = center_of<K>(s1, r);
      const double v2 = ok && !skip ? partial<K, 2>(p, threadIdx.y, r, S, inner, ctr) : 0.0;
      const double s2 = col_combine<CX, S>(v2, AddOp{}, sh);
      res = skip ? s1 : finish2<K>(ctr, s2, r, correction);
    } else {
      res = finish1<K>(s1, r, false);
    }
    if (ok && threadIdx.y == 0) out[col] = (T)res;
  }
}

// inner == 1, few long rows: block w = row * nsplit + k reduces chunk k of its row into part[w].
template <Kind K, int Pass, typename T>
__global__ void __launch_bounds__(kThreads) split_partial(const T* __restrict__ x, double* __restrict__ part,
                                                          const double* __restrict__ center, int64_t outer, int64_t r,
                                                          int64_t nsplit, int64_t chunk) {
  __shared__ double sh[kThreads / 32];
  const int64_t work = outer * nsplit;
  for (int64_t w = blockIdx.x; w < work; w += gridDim.x) {
    const int64_t row = w / nsplit, k = w % nsplit;
    const int64_t b = k * chunk, e = b + chunk < r ? b + chunk : r;
    const T* p = x + row * r;
    double v;
    if constexpr (Pass == 1) {
      v = group_allreduce<kThreads>(partial<K, 1>(p, b + threadIdx.x, e, kThreads, 1, 0.0), Pass1<K>{}, sh);
    } else {
      const double ctr = center[row];
      if (skip_pass2<K>(ctr)) v = 0.0;  // uniform over the block
      else v = group_allreduce<kThreads>(partial<K, 2>(p, b + threadIdx.x, e, kThreads, 1, ctr), AddOp{}, sh);
    }
    if (threadIdx.x == 0) part[w] = v;
  }
}

// One thread per row: combine the row's partials in chunk order. Pass 1 writes the result (one-pass
// kinds) or the pass-2 center; pass 2 writes the result.
template <Kind K, int Pass, typename T>
__global__ void split_finish(const double* __restrict__ part, double* __restrict__ center, T* __restrict__ out,
                             int64_t outer, int64_t r, int64_t nsplit, double correction) {
  for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < outer; row += (int64_t)gridDim.x * blockDim.x) {
    const double* p = part + row * nsplit;
    if constexpr (Pass == 1) {
      Pass1<K> op;
      double s = p[0];
      for (int64_t k = 1; k < nsplit; ++k) s = op(s, p[k]);
      if constexpr (kTwoPass<K>) {
        center[row] = skip_pass2<K>(s) ? s : center_of<K>(s, r);
      } else {
        out[row] = (T)finish1<K>(s, r, true);
      }
    } else {
      const double ctr = center[row];
      if (skip_pass2<K>(ctr)) {
        out[row] = (T)ctr;
      } else {
        double s = p[0];
        for (int64_t k = 1; k < nsplit; ++k) s += p[k];
        out[row] = (T)finish2<K>(ctr, s, r, correction);
      }
    }
  }
}

template <typename T>
__global__ void fill_value(T* out, int64_t n, double v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = (T)v;
}

template <Kind K, typename T>
void reduce_typed(OpCall& c, const T* x, T* out, Dims d, double correction) {
  const int64_t nout = d.outer * d.inner;
  if (nout == 0) return;
  if (d.r == 0) {
    const double empty = K == Kind::Sum ? 0.0
                       : K == Kind::LogSumExp ? -std::numeric_limits<double>::infinity()
                                              : std::numeric_limits<double>::quiet_NaN();
    fill_value<T><<<blocks_for(nout), kThreads>>>(out, nout, empty);
    check_launch(c.op);
    return;
  }
  if (d.inner == 1) {
    const int64_t want_chunks = (d.r + 8191) / 8192;
    const int64_t room = (2048 + d.outer - 1) / d.outer;
    const int64_t nsplit = want_chunks < room ? want_chunks : room;
    if (nsplit >= 2) {
      const int64_t chunk = (d.r + nsplit - 1) / nsplit;
      const int64_t work = d.outer * nsplit;
      Scratch part(sizeof(double) * (size_t)(work + d.outer), c.op);
      double* pp = part.as<double>();
      double* center = pp + work;
      split_partial<K, 1, T><<<grid_for(work), kThreads>>>(x, pp, center, d.outer, d.r, nsplit, chunk);
      check_launch(c.op);
      split_finish<K, 1, T><<<blocks_for(d.outer), kThreads>>>(pp, center, out, d.outer, d.r, nsplit, correction);
      check_launch(c.op);
      if constexpr (kTwoPass<K>) {
        split_partial<K, 2, T><<<grid_for(work), kThreads>>>(x, pp, center, d.outer, d.r, nsplit, chunk);
        check_launch(c.op);
        split_finish<K, 2, T><<<blocks_for(d.outer), kThreads>>>(pp, center, out, d.outer, d.r, nsplit, correction);
        check_launch(c.op);
      }
      return;
    }
    if (d.r >= 1024) {
      reduce_rows<K, T, kThreads><<<grid_for(d.outer), kThreads>>>(x, out, d.outer, d.r, correction);
    } else {
      constexpr int rpb = kThreads / 32;
      reduce_rows<K, T, 32><<<grid_for((d.outer + rpb - 1) / rpb), kThreads>>>(x, out, d.outer, d.r, correction);
    }
    check_launch(c.op);
    return;
  }
  if (nout >= 8192) {
    reduce_cols<K, T, 256, 1><<<grid_for((nout + 255) / 256), dim3(256, 1)>>>(x, out, d.outer, d.r, d.inner, correction);
  } else {
    reduce_cols<K, T, 32, 8><<<grid_for((nout + 31) / 32), dim3(32, 8)>>>(x, out, d.outer, d.r, d.inner, correction);
  }
  check_launch(c.op);
}

template <Kind K>
void reduce(OpCall& c) {
  const Dims d = check_args(c, K == Kind::Var ? 1 : 0);
  const double correction = K == Kind::Var ? c.s(0) : 0.0;
  const TensorRef &x = c.t(0), &out = c.t(1);
  if (x.dtype == DType::F32) reduce_typed<K, float>(c, x.data<float>(), out.data<float>(), d, correction);
  else reduce_typed<K, double>(c, x.data<double>(), out.data<double>(), d, correction);
}

}  // namespace

void sum(OpCall& c) { reduce<Kind::Sum>(c); }
void mean(OpCall& c) { reduce<Kind::Mean>(c); }
void amax(OpCall& c) { reduce<Kind::Max>(c); }
void amin(OpCall& c) { reduce<Kind::Min>(c); }
void logsumexp(OpCall& c) { reduce<Kind::LogSumExp>(c); }
void var(OpCall& c) { reduce<Kind::Var>(c); }

}  // namespace tessera::cuda
