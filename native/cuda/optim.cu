// Fused optimizer updates on the GPU: adamw_step, sgd_step, lion_step, and sum_squares (the
// gradient-norm helper used by clipping). CPU twin: native/cpu/optim.cpp (same tensors, scalars,
// validation and messages: counts, shapes, dtypes, contiguity, non-overlapping written tensors,
// finite hyper-parameters, step >= 1).
//
// The updates are one grid-stride elementwise pass over contiguous memory (memory-bound: each
// element reads 2-4 arrays and writes 1-3). The per-element arithmetic is the CPU's sequence of
// operations in the element type (float32 works in float, as PyTorch's), and the scalar
// coefficients (1 - lr*wd, -lr / (1 - beta1^step), sqrt(1 - beta2^step), ...) are computed on the
// host in double exactly as the CPU computes them, then rounded once to the element type. Option
// flags (weight decay, momentum, nesterov, first step) are template parameters, as on the CPU.
// sqrt and division are IEEE correctly rounded (nvcc's defaults), so the only difference from the
// CPU is floating-point contraction: nvcc fuses a*b + c into an FMA where GCC may or may not, so
// results agree to an ulp or so per operation rather than bit for bit (tests use float32
// rtol ~1e-6, float64 ~1e-14).
//
// sum_squares: x is cut into fixed blocks of 4096 elements (as the CPU); one 256-thread block per
// chunk squares and sums its elements in double (a fixed tree), writing one partial per chunk to
// scratch; then one 1024-thread block adds the partials in a fixed order and writes out (float64,
// or rounded to x's dtype). Deterministic run to run; it agrees with the CPU (which sums each
// block in simd-lane order and the partials serially) to double rounding.
#include <cmath>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/optim.h"

namespace tessera::cuda {

namespace {

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

bool overlaps(const TensorRef& a, const TensorRef& b) {
  if (a.storage != b.storage || a.numel() == 0 || b.numel() == 0) return false;
  int64_t a0 = a.offset, a1 = a.offset + a.numel();
  int64_t b0 = b.offset, b1 = b.offset + b.numel();
  return a0 < b1 && b0 < a1;
}

void check_tensors(OpCall& c, std::initializer_list<const char*> names, std::initializer_list<size_t> written) {
  std::vector<const char*> nm(names);
  c.expect_count(nm.size(), c.scalars.size());
  c.expect_float(0, nm[0]);
  for (size_t i = 0; i < nm.size(); ++i) {
    if (i > 0) {
      c.expect_same_dtype(0, i, nm[0], nm[i]);
      c.expect_same_shape(0, i, nm[0], nm[i]);
    }
    c.expect_contiguous(i, nm[i]);
  }
  for (size_t w : written)
    for (size_t j = 0; j < nm.size(); ++j)
      TS_CHECK(j == w || !overlaps(c.t(w), c.t(j)), c.op, ": ", nm[w], " and ", nm[j],
               " must not share memory, got ", c.t(w).describe(), " and ", c.t(j).describe());
}

void expect_scalars(OpCall& c, size_t n, std::initializer_list<const char*> names) {
  if (c.scalars.size() != n) {
    std::string list;
    for (const char* x : names) list += (list.empty() ? "" : ", ") + std::string(x);
    fail(c.op, ": expected ", n, " scalars (", list, "), got ", c.scalars.size());
  }
  size_t i = 0;
  for (const char* x : names) {
    TS_CHECK(std::isfinite(c.scalars[i]), c.op, ": ", x, " must be finite, got ", c.scalars[i]);
    ++i;
  }
}

void expect_range(OpCall& c, size_t i, const char* name, double lo, double hi, bool hi_open) {
  double v = c.s(i);
  bool ok = v >= lo && (hi_open ? v < hi : v <= hi);
  TS_CHECK(ok, c.op, ": ", name, " must be in [", lo, ", ", hi, hi_open ? ")" : "]", ", got ", v);
}

void expect_nonneg(OpCall& c, size_t i, const char* name) {
  TS_CHECK(c.s(i) >= 0, c.op, ": ", name, " must be >= 0, got ", c.s(i));
}

void expect_flag(OpCall& c, size_t i, const char* name) {
  TS_CHECK(c.s(i) == 0 || c.s(i) == 1, c.op, ": ", name, " must be 0 or 1, got ", c.s(i));
}

// --- AdamW -------------------------------------------------------------------------------------

__device__ __forceinline__ float sqrt_t(float v) { return sqrtf(v); }  // IEEE correctly rounded
__device__ __forceinline__ double sqrt_t(double v) { return ::sqrt(v); }

template <typename T>
__global__ void adamw_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                             int64_t n, T decay, T beta1, T one_minus_b1, T beta2, T one_minus_b2, T neg_step_size,
                             T bc2_sqrt, T epsilon, T scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const T gi = g[i] * scale;
    const T pi = p[i] * decay;                           // param.mul_(1 - lr*wd)
    const T mi = m[i] * beta1 + one_minus_b1 * gi;       // exp_avg.mul_(b1).add_(g, alpha=1-b1)
    const T vi = v[i] * beta2 + one_minus_b2 * gi * gi;  // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
    const T denom = sqrt_t(vi) / bc2_sqrt + epsilon;       // (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps)
    p[i] = pi + neg_step_size * mi / denom;              // param.addcdiv_(exp_avg, denom, value=-lr/bc1)
    m[i] = mi;
    v[i] = vi;
  }
}

template <typename T>
void adamw_typed(OpCall& c, double lr, double b1, double b2, double eps, double wd, double step, double gs) {
  const int64_t n = c.t(0).numel();
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(b1, step);
  const double bc2 = 1.0 - std::pow(b2, step);
  adamw_kernel<T><<<blocks_for(n), kThreads>>>(c.t(0).data<T>(), c.t(1).data<T>(), c.t(2).data<T>(), c.t(3).data<T>(),
                                               n, T(1.0 - lr * wd), T(b1), T(1.0 - b1), T(b2), T(1.0 - b2),
                                               T(-(lr / bc1)), T(std::sqrt(bc2)), T(eps), T(gs));
  check_launch(c.op);
}

// --- SGD ---------------------------------------------------------------------------------------

template <typename T, bool Decay, bool Momentum, bool Nesterov, bool First>
__global__ void sgd_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf, int64_t n, T neg_lr,
                           T momentum, T one_minus_damp, T decay, T scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    T d = g[i] * scale;
    const T pi = p[i];
    if constexpr (Decay) d = d + decay * pi;  // grad.add(param, alpha=wd)
    if constexpr (Momentum) {
      T b;
      if constexpr (First) b = d;  // torch.clone(grad) on the first step
      else b = buf[i] * momentum + one_minus_damp * d;
      buf[i] = b;
      if constexpr (Nesterov) d = d + momentum * b;
      else d = b;
    }
    p[i] = pi + neg_lr * d;  // param.add_(grad, alpha=-lr)
  }
}

template <typename T, bool Dc, bool Mo, bool Ne, bool Fi>
void sgd_launch(OpCall& c, double lr, double mom, double damp, double wd, double gs) {
  const int64_t n = c.t(0).numel();
  if (n == 0) return;
  T* buf = Mo ? c.t(2).data<T>() : nullptr;
  sgd_kernel<T, Dc, Mo, Ne, Fi><<<blocks_for(n), kThreads>>>(c.t(0).data<T>(), c.t(1).data<T>(), buf, n, T(-lr),
                                                             T(mom), T(1.0 - damp), T(wd), T(gs));
  check_launch(c.op);
}

template <typename T>
void sgd_dispatch(OpCall& c, double lr, double mom, double damp, double wd, bool nesterov, bool first, double gs) {
  const bool decay = wd != 0, momentum = mom != 0;
  auto go = [&](auto D) {
    constexpr bool Dc = decltype(D)::value;
    if (!momentum) return sgd_launch<T, Dc, false, false, false>(c, lr, mom, damp, wd, gs);
    if (nesterov) {
      if (first) return sgd_launch<T, Dc, true, true, true>(c, lr, mom, damp, wd, gs);
      return sgd_launch<T, Dc, true, true, false>(c, lr, mom, damp, wd, gs);
    }
    if (first) return sgd_launch<T, Dc, true, false, true>(c, lr, mom, damp, wd, gs);
    return sgd_launch<T, Dc, true, false, false>(c, lr, mom, damp, wd, gs);
  };
  if (decay) go(std::true_type{});
  else go(std::false_type{});
}

// --- Lion --------------------------------------------------------------------------------------

template <typename T>
__global__ void lion_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, int64_t n, T decay,
                            T neg_lr, T scale, T beta1, T one_minus_b1, T beta2, T one_minus_b2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const T gi = g[i] * scale;
    const T mi = m[i];
    const T u = mi * beta1 + one_minus_b1 * gi;             // exp_avg.clone().mul_(b1).add(g, alpha=1-b1)
    const T s = u > T(0) ? T(1) : (u < T(0) ? T(-1) : u);  // sign_(): 0 stays 0, NaN stays NaN
    p[i] = p[i] * decay + neg_lr * s;                       // p.mul_(1 - lr*wd); p.add_(update, alpha=-lr)
    m[i] = mi * beta2 + one_minus_b2 * gi;                  // exp_avg.mul_(b2).add_(g, alpha=1-b2)
  }
}

template <typename T>
void lion_typed(OpCall& c, double lr, double b1, double b2, double wd, double gs) {
  const int64_t n = c.t(0).numel();
  if (n == 0) return;
  lion_kernel<T><<<blocks_for(n), kThreads>>>(c.t(0).data<T>(), c.t(1).data<T>(), c.t(2).data<T>(), n,
                                              T(1.0 - lr * wd), T(-lr), T(gs), T(b1), T(1.0 - b1), T(b2), T(1.0 - b2));
  check_launch(c.op);
}

// --- sum of squares ----------------------------------------------------------------------------

constexpr int64_t kSumBlock = 4096;  // elements per partial, as the CPU
constexpr int kFinalThreads = 1024;

template <typename T>
__global__ void __launch_bounds__(kThreads) sumsq_partials(const T* __restrict__ x, int64_t n, int64_t nblocks,
                                                          double* __restrict__ part) {
  __shared__ double sh[kThreads / 32];
  for (int64_t b = blockIdx.x; b < nblocks; b += gridDim.x) {
    const int64_t b0 = b * kSumBlock, b1 = b0 + kSumBlock < n ? b0 + kSumBlock : n;
    double acc = 0;
    for (int64_t i = b0 + threadIdx.x; i < b1; i += kThreads) {
      const double v = (double)x[i];
      acc += v * v;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    __syncthreads();  // sh is reused across iterations of b
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      double s = sh[0];
      for (int w = 1; w < kThreads / 32; ++w) s += sh[w];
      part[b] = s;
    }
  }
}

template <typename O>
__global__ void __launch_bounds__(kFinalThreads) sumsq_final(const double* __restrict__ part, int64_t nblocks,
                                                             O* __restrict__ out) {
  __shared__ double sh[kFinalThreads / 32];
  double acc = 0;
  for (int64_t b = threadIdx.x; b < nblocks; b += kFinalThreads) acc += part[b];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = sh[0];
    for (int w = 1; w < kFinalThreads / 32; ++w) s += sh[w];
    out[0] = (O)s;
  }
}

}  // namespace

void adamw_step(OpCall& c) {
  expect_scalars(c, 7, {"lr", "beta1", "beta2", "eps", "weight_decay", "step", "grad_scale"});
  check_tensors(c, {"param", "grad", "exp_avg", "exp_avg_sq"}, {0, 2, 3});
  expect_nonneg(c, 0, "lr");
  expect_range(c, 1, "beta1", 0, 1, true);
  expect_range(c, 2, "beta2", 0, 1, true);
  expect_nonneg(c, 3, "eps");
  expect_nonneg(c, 4, "weight_decay");
  TS_CHECK(c.s(5) >= 1, c.op, ": step must be >= 1 (the count of updates including this one), got ", c.s(5));
  int64_t step = c.si(5);
  if (c.t(0).dtype == DType::F32) adamw_typed<float>(c, c.s(0), c.s(1), c.s(2), c.s(3), c.s(4), (double)step, c.s(6));
  else adamw_typed<double>(c, c.s(0), c.s(1), c.s(2), c.s(3), c.s(4), (double)step, c.s(6));
}

void sgd_step(OpCall& c) {
  expect_scalars(c, 7, {"lr", "momentum", "dampening", "weight_decay", "nesterov", "first_step", "grad_scale"});
  const double mom = c.s(1);
  expect_nonneg(c, 0, "lr");
  expect_nonneg(c, 1, "momentum");
  expect_nonneg(c, 3, "weight_decay");
  expect_flag(c, 4, "nesterov");
  expect_flag(c, 5, "first_step");
  const bool nesterov = c.s(4) == 1;
  TS_CHECK(!nesterov || (mom > 0 && c.s(2) == 0), c.op, ": nesterov momentum requires momentum > 0 and dampening = 0, got momentum ",
           mom, " and dampening ", c.s(2));
  if (mom != 0) {
    TS_CHECK(c.tensors.size() == 3, c.op, ": with momentum ", mom, " expected 3 tensors (param, grad, momentum_buf), got ",
             c.tensors.size());
    check_tensors(c, {"param", "grad", "momentum_buf"}, {0, 2});
  } else {
    TS_CHECK(c.tensors.size() == 2 || c.tensors.size() == 3, c.op,
             ": expected 2 tensors (param, grad) or 3 (param, grad, momentum_buf), got ", c.tensors.size());
    if (c.tensors.size() == 3) check_tensors(c, {"param", "grad", "momentum_buf"}, {0, 2});
    else check_tensors(c, {"param", "grad"}, {0});
  }
  if (c.t(0).dtype == DType::F32) sgd_dispatch<float>(c, c.s(0), mom, c.s(2), c.s(3), nesterov, c.s(5) == 1, c.s(6));
  else sgd_dispatch<double>(c, c.s(0), mom, c.s(2), c.s(3), nesterov, c.s(5) == 1, c.s(6));
}

void lion_step(OpCall& c) {
  expect_scalars(c, 5, {"lr", "beta1", "beta2", "weight_decay", "grad_scale"});
  check_tensors(c, {"param", "grad", "exp_avg"}, {0, 2});
  expect_nonneg(c, 0, "lr");
  expect_range(c, 1, "beta1", 0, 1, false);
  expect_range(c, 2, "beta2", 0, 1, false);
  expect_nonneg(c, 3, "weight_decay");
  if (c.t(0).dtype == DType::F32) lion_typed<float>(c, c.s(0), c.s(1), c.s(2), c.s(3), c.s(4));
  else lion_typed<double>(c, c.s(0), c.s(1), c.s(2), c.s(3), c.s(4));
}

void sum_squares(OpCall& c) {
  c.expect_count(2, 0);
  c.expect_float(0, "x");
  c.expect_contiguous(0, "x");
  const TensorRef &x = c.t(0), &out = c.t(1);
  TS_CHECK(out.numel() == 1, c.op, ": out must have one element, got ", out.describe());
  TS_CHECK(out.dtype == DType::F64 || out.dtype == x.dtype, c.op, ": out must be float64 or ", dtype_name(x.dtype),
           ", got ", out.describe());
  const int64_t n = x.numel();
  const int64_t nblocks = (n + kSumBlock - 1) / kSumBlock;
  Scratch part(sizeof(double) * (size_t)nblocks, c.op);
  double* pp = part.as<double>();
  if (nblocks > 0) {
    const unsigned grid = (unsigned)(nblocks < ((int64_t)1 << 20) ? nblocks : ((int64_t)1 << 20));
    if (x.dtype == DType::F32) sumsq_partials<float><<<grid, kThreads>>>(x.data<float>(), n, nblocks, pp);
    else sumsq_partials<double><<<grid, kThreads>>>(x.data<double>(), n, nblocks, pp);
    check_launch(c.op);
  }
  if (out.dtype == DType::F64) sumsq_final<double><<<1, kFinalThreads>>>(pp, nblocks, out.data<double>());
  else sumsq_final<float><<<1, kFinalThreads>>>(pp, nblocks, out.data<float>());
  check_launch(c.op);
}

}  // namespace tessera::cuda
