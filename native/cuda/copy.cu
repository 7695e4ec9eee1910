// Creation and layout kernels on the GPU; see native/cpu/copy.cpp for the reference versions:
// copy (strided, dtype-converting), fill, arange, and seeded rand/randn. All are one thread per
// element in a grid-stride loop; random draws use the same Philox stream and arithmetic as the
// CPU (native/core/philox.h), so they match it bit for bit, and so do copy/fill/arange (see the
// note at arange_kernel for the one build-dependent case: arange with inexact steps).
#include <cmath>
#include <type_traits>

#include "core/philox.h"
#include "cuda/common.cuh"
#include "cuda/copy.h"

namespace tessera::cuda {

namespace {

template <typename S, typename D>
__global__ void copy_kernel(const S* src, D* dst, DeviceLayout<2> L, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[2];
    offsets_of<2>(L, i, off);
    dst[off[1]] = (D)src[off[0]];
  }
}

template <typename T>
__global__ void fill_kernel(T* out, DeviceLayout<1> L, int64_t n, T v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[1];
    offsets_of<1>(L, i, off);
    out[off[0]] = v;
  }
}

// arange: out[i * stride] = (T)(start + (double)i * step), the CPU's formula, computed as one
// fma (i * step + start, rounded once). That is what the CPU kernel compiles to in the default
// build (GCC contracts the expression under -march=native on FMA hardware, i.e. on any x86 host
// of an sm_80+ GPU), so the two agree bit for bit there. A portable (no -march) CPU build rounds
// the product and the sum separately and may differ in the last bit where i * step is inexact;
// for integer or dyadic steps (i * step exact) every variant gives the same bits.
template <typename T>
__global__ void arange_kernel(T* out, int64_t n, int64_t stride, double start, double step) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i * stride] = (T)__fma_rn((double)i, step, start);
}

template <typename T>
__global__ void rand_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    Philox4 r = philox4x32(seed, offset + (uint64_t)i);
    double u = std::is_same<T, float>::value ? (double)uniform_f32(r.v[0]) : uniform_f64(r.v[0], r.v[1]);
    T x = (T)scale_shift(u, hi - lo, lo);  // one fma, exactly as the CPU kernel
    out[i] = (x < (T)hi || lo == hi) ? x : (T)lo;
  }
}

template <typename T>
__global__ void randn_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = (T)scale_shift(normal_from(philox4x32(seed, offset + (uint64_t)i)), std, mean);
}

template <typename F>
void dispatch_all(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else if (d == DType::I32) f(int32_t{});
  else fail(op, ": unsupported dtype");
}

uint64_t seed_arg(const OpCall& c, size_t i) {
  double v = c.s(i);
  TS_CHECK(std::isfinite(v) && v >= 0 && v < 9007199254740992.0 && v == std::floor(v), c.op,
           ": seed/offset must be a non-negative integer below 2^53, got ", v);
  return (uint64_t)v;
}

}  // namespace

void copy(OpCall& c) {
  c.expect_count(2, 0);
  c.expect_same_shape(0, 1, "src", "dst");
  const TensorRef &src = c.t(0), &dst = c.t(1);
  const TensorRef* ts[2] = {&src, &dst};
  auto L = make_layout<2>(ts);
  int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all(src.dtype, c.op, [&](auto s) {
    using S = decltype(s);
    dispatch_all(dst.dtype, c.op, [&](auto d) {
      using D = decltype(d);
      copy_kernel<S, D><<<blocks_for(n), kThreads>>>(src.data<S>(), dst.data<D>(), L, n);
    });
  });
  check_launch("copy_kernel");
}

void fill(OpCall& c) {
  c.expect_count(1, 1);
  const TensorRef& out = c.t(0);
  const TensorRef* ts[1] = {&out};
  auto L = make_layout<1>(ts);
  int64_t n = out.numel();
  if (n == 0) return;
  double v = c.s(0);
  if (out.dtype == DType::I32)
    TS_CHECK(std::isfinite(v) && v >= -2147483648.0 && v <= 2147483647.0, c.op, ": value ", v,
             " does not fit in int32");
  dispatch_all(out.dtype, c.op, [&](auto z) {
    using T = decltype(z);
    fill_kernel<T><<<blocks_for(n), kThreads>>>(out.data<T>(), L, n, (T)v);
  });
  check_launch("fill_kernel");
}

void arange(OpCall& c) {
  c.expect_count(1, 2);
  c.expect_ndim(0, 1, "out");
  const TensorRef& out = c.t(0);
  const double start = c.s(0), step = c.s(1);
  const int64_t n = out.shape[0], st = out.strides[0];
  // Unknown dtypes fail like the CPU's, even for an empty output.
  dispatch_all(out.dtype, c.op, [](auto) {});
  if (n == 0) return;
  dispatch_all(out.dtype, c.op, [&](auto z) {
    using T = decltype(z);
    arange_kernel<T><<<blocks_for(n), kThreads>>>(out.data<T>(), n, st, start, step);
  });
  check_launch(c.op);
}

void rand(OpCall& c) {
  c.expect_count(1, 4);
  c.expect_contiguous(0, "out");
  c.expect_float(0, "out");
  const TensorRef& out = c.t(0);
  uint64_t seed = seed_arg(c, 0), offset = seed_arg(c, 1);
  double lo = c.s(2), hi = c.s(3);
  TS_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, c.op, ": need finite low <= high, got ", lo, ", ", hi);
  int64_t n = out.numel();
  if (n == 0) return;
  if (out.dtype == DType::F32)
    rand_kernel<float><<<blocks_for(n), kThreads>>>(out.data<float>(), n, seed, offset, c.s(2), c.s(3));
  else
    rand_kernel<double><<<blocks_for(n), kThreads>>>(out.data<double>(), n, seed, offset, c.s(2), c.s(3));
  check_launch("rand_kernel");
}

void randn(OpCall& c) {
  c.expect_count(1, 4);
  c.expect_contiguous(0, "out");
  c.expect_float(0, "out");
  const TensorRef& out = c.t(0);
  uint64_t seed = seed_arg(c, 0), offset = seed_arg(c, 1);
  double mean = c.s(2), std = c.s(3);
  TS_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0, c.op,
           ": need finite mean and std >= 0, got ", mean, ", ", std);
  int64_t n = out.numel();
  if (n == 0) return;
  if (out.dtype == DType::F32)
    randn_kernel<float><<<blocks_for(n), kThreads>>>(out.data<float>(), n, seed, offset, c.s(2), c.s(3));
  else
    randn_kernel<double><<<blocks_for(n), kThreads>>>(out.data<double>(), n, seed, offset, c.s(2), c.s(3));
  check_launch("randn_kernel");
}

}  // namespace tessera::cuda
