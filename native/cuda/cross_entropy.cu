// Fused cross-entropy over the rows of contiguous [N, C] logits with int32 targets, on the GPU.
// CPU twin: native/cpu/cross_entropy.cpp (same tensors, scalars [ignore_index, smoothing,
// reduction], checks and error messages):
//   loss_i = lse_i - (1 - eps) * x[i, t_i] - (eps / C) * sum_c x[i, c]     (0 on ignored rows)
//   dx[i, c] = scale_i * (exp(x[i, c] - lse_i) - eps / C) - [c == t_i] * g_i' * (1 - eps)
// with scale_i = g_i ('none'), g ('sum') or g / count ('mean', count = rows not ignored; 'mean'
// with every row ignored is NaN in the forward and a zero gradient in the backward, as the CPU).
//
// Targets are validated on the device before anything is written, by both kernels (a target
// tensor can change between forward and backward): one pass finds the first out-of-range row
// (atomicMin of the row index) and counts the rows that are not ignored; the host reads those two
// numbers back (one small synchronous copy) and throws the CPU's exact message, naming the value
// and its row. Only then do the main kernels run.
//
// Forward: one thread group per row (a warp when C <= 1024, else a 256-thread block): a max pass,
// then one pass accumulating sum(exp(x - max)) and, with smoothing, sum(x), both in double; one
// lane writes lse and the loss. For 'mean'/'sum' the per-row losses go to a double scratch array
// and one 1024-thread block adds them up in a fixed order (deterministic), then divides by count.
// Backward: one thread per logit (flat index, 32-bit index arithmetic when N * C < 2^31).
//
// Precision vs the CPU: the same double accumulators and rounding points, but exp is CUDA's
// expf/exp (<= 2 ulp) vs vec_exp, the float32 exp-sum is accumulated in double (the CPU adds
// float blocks of 256 to a double) and the orders of additions differ (trees). Tests use a
// tolerance: float32 rtol ~1e-5, float64 rtol ~1e-12.
#include <math_constants.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "cuda/common.cuh"
#include "cuda/cross_entropy.h"

namespace tessera::cuda {

namespace {

enum Reduction { kNone = 0, kMean = 1, kSum = 2 };

struct Params {
  int64_t n, c;
  int64_t ignore;
  double eps;
  Reduction reduction;
};

struct Scratch {  // per-call device scratch, stream-ordered on the legacy default stream
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

Params check_common(OpCall& c, size_t ntensors) {
  c.expect_count(ntensors, 3);
  c.expect_float(0, "logits");
  c.expect_ndim(0, 2, "logits (as [N, C])");
  c.expect_contiguous(0, "logits");
  c.expect_dtype(1, DType::I32, "targets");
  c.expect_ndim(1, 1, "targets");
  Params p;
  p.n = c.t(0).shape[0];
  p.c = c.t(0).shape[1];
  TS_CHECK(c.t(1).shape[0] == p.n, c.op, ": targets ", c.t(1).describe(), " must have one entry per row of logits ",
           c.t(0).describe());
  p.ignore = c.si(0);
  p.eps = c.s(1);
  TS_CHECK(p.eps >= 0 && p.eps <= 1, c.op, ": label smoothing must be in [0, 1], got ", p.eps);
  const double red = c.s(2);
  TS_CHECK(red == 0 || red == 1 || red == 2, c.op, ": reduction code must be 0 (none), 1 (mean) or 2 (sum), got ", red);
  p.reduction = (Reduction)(int)red;
  return p;
}

// res[0]: smallest out-of-range row (UINT64_MAX when none); res[1]: rows not ignored.
__global__ void __launch_bounds__(kThreads) ce_validate(const int32_t* __restrict__ tg, int64_t ts, int64_t n,
                                                       int64_t ignore, int64_t C, unsigned long long* res) {
  __shared__ unsigned long long sh[kThreads / 32];
  unsigned long long count = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t v = tg[i * ts];
    if (v == ignore) continue;
    if (v < 0 || v >= C) atomicMin(&res[0], (unsigned long long)i);
    else ++count;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) count += __shfl_xor_sync(0xffffffffu, count, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = count;
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long t = 0;
    for (int w = 0; w < kThreads / 32; ++w) t += sh[w];
    if (t) atomicAdd(&res[1], t);
  }
}

// Throws on the first out-of-range target (the CPU's message); returns the count of rows that
// are not ignored.
int64_t validate_targets(const OpCall& c, const Params& p) {
  if (p.n == 0) return 0;
  const TensorRef& t = c.t(1);
  const int32_t* tg = t.data<int32_t>();
  const int64_t ts = t.strides[0];
  Scratch res(2 * sizeof(unsigned long long), c.op);
  unsigned long long* r = res.as<unsigned long long>();
  check(cudaMemsetAsync(r, 0xff, sizeof(unsigned long long), 0), c.op);
  check(cudaMemsetAsync(r + 1, 0, sizeof(unsigned long long), 0), c.op);
  ce_validate<<<grid_for((p.n + kThreads - 1) / kThreads < 1024 ? (p.n + kThreads - 1) / kThreads : 1024), kThreads>>>(
      tg, ts, p.n, p.ignore, p.c, r);
  check_launch(c.op);
  unsigned long long host[2];
  check(cudaMemcpy(host, r, sizeof(host), cudaMemcpyDeviceToHost), c.op);
  if (host[0] != ~0ULL) {
    const int64_t i = (int64_t)host[0];
    int32_t v32 = 0;
    check(cudaMemcpy(&v32, tg + i * ts, sizeof(int32_t), cudaMemcpyDeviceToHost), c.op);
    const int64_t v = v32;
    fail(c.op, ": target ", v, " at row ", i, " is out of range: expected a class index in [0, ", p.c,
         ") or ignore_index (", p.ignore, ")");
  }
  return (int64_t)host[1];
}

__device__ __forceinline__ float exp_t(float v) { return expf(v); }
__device__ __forceinline__ double exp_t(double v) { return ::exp(v); }

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

template <int TPR, typename T>
__device__ __forceinline__ T max_allreduce(T v, T* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const T u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  if constexpr (TPR > 32) {
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = sh[0];
#pragma unroll
    for (int w = 1; w < TPR / 32; ++w) v = sh[w] > v ? sh[w] : v;
  }
  return v;
}

template <typename T, int TPR>
__global__ void __launch_bounds__(kThreads) ce_forward(const T* __restrict__ x, const int32_t* __restrict__ tg,
                                                      int64_t ts, T* __restrict__ out, T* __restrict__ lse_out,
                                                      double* __restrict__ losses, int64_t N, int64_t C,
                                                      int64_t ignore, double eps) {
  constexpr int RPB = kThreads / TPR;
  __shared__ double sh[kThreads / 32];
  __shared__ T shm[kThreads / 32];
  const int lane = threadIdx.x % TPR;
  const bool smooth = eps > 0;
  for (int64_t base = (int64_t)blockIdx.x * RPB; base < N; base += (int64_t)gridDim.x * RPB) {
    const int64_t i = base + threadIdx.x / TPR;
    if constexpr (TPR == 32) {
      if (i >= N) continue;  // whole warps; no block-wide barrier on this path
    }
    const int64_t t = tg[i * ts];  // the same for the whole group: uniform branch
    double loss = 0, lse = 0;
    if (t != ignore) {
      const T* xi = x + i * C;
      T m = (T)(-CUDART_INF);
      for (int64_t j = lane; j < C; j += TPR) m = xi[j] > m ? xi[j] : m;
      m = max_allreduce<TPR>(m, shm);
      double s = 0, sx = 0;
      for (int64_t j = lane; j < C; j += TPR) {
        s += (double)exp_t(T(xi[j] - m));
        if (smooth) sx += (double)xi[j];
      }
      s = sum_allreduce<TPR>(s, sh);
      if (smooth) sx = sum_allreduce<TPR>(sx, sh);
      lse = (double)m + ::log(s);
      loss = lse - (1.0 - eps) * (double)xi[t];
      if (smooth) loss -= eps / (double)C * sx;
    }
    if (lane == 0) {
      lse_out[i] = T(lse);
      if (losses) losses[i] = loss;
      else out[i] = T(loss);
    }
  }
}

constexpr int kTotalThreads = 1024;

// One block: total = sum of losses in a fixed order; 'mean' divides by count (NaN when 0).
template <typename T>
__global__ void __launch_bounds__(kTotalThreads) ce_total(const double* __restrict__ losses, int64_t N, int64_t count,
                                                          bool mean, T* __restrict__ out) {
  __shared__ double sh[kTotalThreads / 32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < N; i += kTotalThreads) s += losses[i];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < kTotalThreads / 32; ++w) total += sh[w];
    if (mean) total = count > 0 ? total / (double)count : CUDART_NAN;
    out[0] = T(total);
  }
}

template <typename T, typename I>
__global__ void ce_backward(const T* __restrict__ x, const int32_t* __restrict__ tg, int64_t ts,
                            const T* __restrict__ lse, const T* __restrict__ g, int64_t gs, T* __restrict__ dx, I N,
                            I C, int64_t ignore, double eps, double base, T off) {
  const I total = N * C;
  for (I k = blockIdx.x * (I)blockDim.x + threadIdx.x; k < total; k += (I)gridDim.x * blockDim.x) {
    const I i = k / C, j = k - i * C;
    const int64_t t = tg[(int64_t)i * ts];
    if (t == ignore) {
      dx[k] = T(0);
      continue;
    }
    const double sc = (double)g[(int64_t)i * gs] * base;
    const T scale = T(sc);
    T v = scale * (exp_t(T(x[k] - lse[i])) - off);
    if ((int64_t)j == t) v -= T(sc * (1.0 - eps));
    dx[k] = v;
  }
}

constexpr int64_t kWarpRowMax = 1024;  // rows up to this long get one warp, longer ones a block

template <typename T>
void forward_typed(OpCall& c, const Params& p, int64_t count) {
  if (p.n == 0) {  // no rows: the CPU writes only the 'mean'/'sum' total (0 or NaN)
    if (p.reduction != kNone) {
      ce_total<T><<<1, kTotalThreads>>>(nullptr, 0, count, p.reduction == kMean, c.t(2).data<T>());
      check_launch(c.op);
    }
    return;
  }
  const T* x = c.t(0).data<T>();
  const int32_t* tg = c.t(1).data<int32_t>();
  const int64_t ts = c.t(1).strides[0];
  T* out = c.t(2).data<T>();
  T* lse = c.t(3).data<T>();
  Scratch losses(p.reduction == kNone ? 0 : sizeof(double) * (size_t)p.n, c.op);
  double* lp = losses.as<double>();
  if (p.c <= kWarpRowMax)
    ce_forward<T, 32><<<grid_for((p.n + 7) / 8), kThreads>>>(x, tg, ts, out, lse, lp, p.n, p.c, p.ignore, p.eps);
  else
    ce_forward<T, kThreads><<<grid_for(p.n), kThreads>>>(x, tg, ts, out, lse, lp, p.n, p.c, p.ignore, p.eps);
  check_launch(c.op);
  if (p.reduction != kNone) {
    ce_total<T><<<1, kTotalThreads>>>(lp, p.n, count, p.reduction == kMean, out);
    check_launch(c.op);
  }
}

template <typename T>
void backward_typed(OpCall& c, const Params& p, int64_t count) {
  const int64_t total = p.n * p.c;
  if (total == 0) return;
  const T* x = c.t(0).data<T>();
  const int32_t* tg = c.t(1).data<int32_t>();
  const int64_t ts = c.t(1).strides[0];
  const T* lse = c.t(2).data<T>();
  const T* g = c.t(3).data<T>();
  const int64_t gs = p.reduction == kNone ? c.t(3).strides[0] : 0;
  T* dx = c.t(4).data<T>();
  const double base = p.reduction == kMean ? (count > 0 ? 1.0 / (double)count : 0.0) : 1.0;
  const T off = T(p.eps / (double)p.c);
  if (total < ((int64_t)1 << 31))
    ce_backward<T, uint32_t><<<blocks_for(total), kThreads>>>(x, tg, ts, lse, g, gs, dx, (uint32_t)p.n, (uint32_t)p.c,
                                                              p.ignore, p.eps, base, off);
  else
    ce_backward<T, int64_t><<<blocks_for(total), kThreads>>>(x, tg, ts, lse, g, gs, dx, p.n, p.c, p.ignore, p.eps,
                                                             base, off);
  check_launch(c.op);
}

}  // namespace

void cross_entropy(OpCall& c) {
  const Params p = check_common(c, 4);
  if (p.reduction == kNone) {
    c.expect_ndim(2, 1, "out");
    c.expect_numel(2, p.n, "out");
    c.expect_contiguous(2, "out");
  } else {
    c.expect_numel(2, 1, "out");
  }
  c.expect_same_dtype(0, 2, "logits", "out");
  c.expect_ndim(3, 1, "lse");
  c.expect_numel(3, p.n, "lse");
  c.expect_contiguous(3, "lse");
  c.expect_same_dtype(0, 3, "logits", "lse");
  const int64_t count = validate_targets(c, p);
  if (c.t(0).dtype == DType::F32) forward_typed<float>(c, p, count);
  else forward_typed<double>(c, p, count);
}

void cross_entropy_backward(OpCall& c) {
  const Params p = check_common(c, 5);
  c.expect_ndim(2, 1, "lse");
  c.expect_numel(2, p.n, "lse");
  c.expect_contiguous(2, "lse");
  c.expect_same_dtype(0, 2, "logits", "lse");
  if (p.reduction == kNone) {
    c.expect_ndim(3, 1, "grad_out");
    c.expect_numel(3, p.n, "grad_out");
  } else {
    c.expect_numel(3, 1, "grad_out");
  }
  c.expect_same_dtype(0, 3, "logits", "grad_out");
  c.expect_same_shape(0, 4, "logits", "grad_logits");
  c.expect_contiguous(4, "grad_logits");
  c.expect_same_dtype(0, 4, "logits", "grad_logits");
  const int64_t count = validate_targets(c, p);
  if (c.t(0).dtype == DType::F32) backward_typed<float>(c, p, count);
  else backward_typed<double>(c, p, count);
}

}  // namespace tessera::cuda
