// Broadcasting binary elementwise kernels on the GPU: add, sub, mul, div, pow, maximum, minimum,
// the comparisons eq/ne/lt/le/gt/ge, and where. CPU twin: native/cpu/binary.cpp (same argument
// order (a, b, out) / (cond, a, b, out), same checks, same per-element formulas).
//
// Shape of the kernels: one thread per element in a grid-stride loop (256 threads a block, the
// grid capped by blocks_for). Operands arrive already broadcast to the output's shape by
// stride-0 views (lib/ops/binary.ts), so one strided walk serves broadcast, transposed and
// sliced operands. On the host the layout is first coalesced exactly like cpu::coalesce
// (size-1 dims dropped, dims contiguous in every operand merged): all-contiguous operands
// become one unit-stride dim and take a flat kernel with no index arithmetic; everything else
// takes the strided kernel, whose per-element cost is one div/mod per remaining dim, done in
// 32-bit arithmetic whenever the element count fits (offsets are always 64-bit). There is no
// shared memory or tiling: each element is read once and written once, so the kernels are
// bound by memory bandwidth and coalesced accesses are all that matters.
//
// Precision: add/sub/mul/div/maximum/minimum/comparisons/where are single IEEE operations
// (or selects) on both sides, so results are bit-identical to the CPU (nvcc's default
// -prec-div=true gives an IEEE-rounded float32 division; nothing here can be contracted to an
// fma). pow uses the CUDA math library's pow/powf (max 2 / 4 ulp from the true value, per the
// CUDA programming guide) where the CPU uses glibc's pow/powf (< 1 ulp), so pow agrees with the
// CPU to a few ulp, not bitwise; special cases (pow(x, 0) = 1, pow(1, y) = 1, NaN, infinities,
// negative base with an integer exponent) follow C99 Annex F on both sides.
//
// Comparisons write 1 or 0 in the operands' dtype (there is no bool dtype), as on the CPU.
// maximum/minimum propagate NaN from either side, exactly as the CPU's (a != a || a > b) ? a : b.
#include "cuda/binary.h"
#include "cuda/common.cuh"

namespace tessera::cuda {

namespace {

struct Add { template <typename T> __device__ static T f(T a, T b) { return a + b; } };
struct Sub { template <typename T> __device__ static T f(T a, T b) { return a - b; } };
struct Mul { template <typename T> __device__ static T f(T a, T b) { return a * b; } };
struct Div { template <typename T> __device__ static T f(T a, T b) { return a / b; } };
// Float only: float-only ops are dispatched over float32/float64 alone (see binary() below).
__device__ __forceinline__ float pow_of(float a, float b) { return ::powf(a, b); }
__device__ __forceinline__ double pow_of(double a, double b) { return ::pow(a, b); }
struct Pow { template <typename T> __device__ static T f(T a, T b) { return pow_of(a, b); } };
// NaN-propagating like torch.maximum/minimum (and the CPU twin, character for character).
struct Max { template <typename T> __device__ static T f(T a, T b) { return (a != a || a > b) ? a : b; } };
struct Min { template <typename T> __device__ static T f(T a, T b) { return (a != a || a < b) ? a : b; } };
struct Eq { template <typename T> __device__ static T f(T a, T b) { return a == b ? T(1) : T(0); } };
struct Ne { template <typename T> __device__ static T f(T a, T b) { return a != b ? T(1) : T(0); } };
struct Lt { template <typename T> __device__ static T f(T a, T b) { return a < b ? T(1) : T(0); } };
struct Le { template <typename T> __device__ static T f(T a, T b) { return a <= b ? T(1) : T(0); } };
struct Gt { template <typename T> __device__ static T f(T a, T b) { return a > b ? T(1) : T(0); } };
struct Ge { template <typename T> __device__ static T f(T a, T b) { return a >= b ? T(1) : T(0); } };

// Host: the layout of N same-shaped operands with size-1 dims dropped and dims that are
// contiguous in every operand merged (cpu::coalesce in native/cpu/strided.h, same rules).
// A 0-d or all-ones shape becomes one dim of size 1.
template <int N>
DeviceLayout<N> coalesced_layout(const TensorRef* const (&ts)[N]) {
  const TensorRef& ref = *ts[0];
  DeviceLayout<N> L;
  L.ndim = 0;
  for (int d = 0; d < ref.ndim; ++d) {
    if (ref.shape[d] == 1) continue;
    L.shape[L.ndim] = ref.shape[d];
    for (int k = 0; k < N; ++k) L.strides[k][L.ndim] = ts[k]->strides[d];
    ++L.ndim;
  }
  if (L.ndim == 0) {
    L.ndim = 1;
    L.shape[0] = 1;
    for (int k = 0; k < N; ++k) L.strides[k][0] = 1;
    return L;
  }
  DeviceLayout<N> M;
  M.ndim = 1;
  M.shape[0] = L.shape[0];
  for (int k = 0; k < N; ++k) M.strides[k][0] = L.strides[k][0];
  for (int d = 1; d < L.ndim; ++d) {
    bool mergeable = true;
    for (int k = 0; k < N; ++k)
      if (M.strides[k][M.ndim - 1] != L.strides[k][d] * L.shape[d]) mergeable = false;
    if (mergeable) {
      M.shape[M.ndim - 1] *= L.shape[d];
      for (int k = 0; k < N; ++k) M.strides[k][M.ndim - 1] = L.strides[k][d];
    } else {
      M.shape[M.ndim] = L.shape[d];
      for (int k = 0; k < N; ++k) M.strides[k][M.ndim] = L.strides[k][d];
      ++M.ndim;
    }
  }
  return M;
}

// True when the coalesced layout is one unit-stride dim in every operand (all contiguous).
template <int N>
bool is_flat(const DeviceLayout<N>& L) {
  if (L.ndim != 1) return false;
  for (int k = 0; k < N; ++k)
    if (L.strides[k][0] != 1) return false;
  return true;
}

// Element offsets of linear index i in each operand; I is the index type of the div/mod chain
// (uint32_t when the element count is below 2^31, else int64_t).
template <int N, typename I>
__device__ __forceinline__ void strided_offsets(const DeviceLayout<N>& L, I i, int64_t (&off)[N]) {
  if (L.ndim == 1) {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = (int64_t)i * L.strides[k][0];
    return;
  }
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = L.ndim - 1; d >= 0; --d) {
    const I s = (I)L.shape[d];
    const I idx = i % s;
    i /= s;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += (int64_t)idx * L.strides[k][d];
  }
}

// No __restrict__: the output may be one of the inputs (autograd accumulates with
// add(grad, g, grad)); every element is still read before it is written, by the same thread.
template <typename Op, typename T>
__global__ void binary_flat(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = Op::f(a[i], b[i]);
}

template <typename Op, typename T, typename I>
__global__ void binary_strided(const T* a, const T* b, T* out, DeviceLayout<3> L, I n) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    int64_t off[3];
    strided_offsets<3, I>(L, i, off);
    out[off[2]] = Op::f(a[off[0]], b[off[1]]);
  }
}

template <typename C, typename T, typename I>
__global__ void where_strided(const C* cond, const T* a, const T* b, T* out, DeviceLayout<4> L, I n) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    int64_t off[4];
    strided_offsets<4, I>(L, i, off);
    out[off[3]] = cond[off[0]] != C(0) ? a[off[1]] : b[off[2]];
  }
}

constexpr int64_t kMaxI32Count = 2147483647;  // strided loops use 32-bit indices up to here

template <typename F>
void dispatch_all(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else if (d == DType::I32) f(int32_t{});
  else fail(op, ": unknown dtype");
}

template <typename F>
void dispatch_float(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else fail(op, ": expected a float32 or float64 tensor, got ", dtype_name(d));
}

template <typename Op, bool IntAllowed>
void binary(OpCall& c) {
  // The CPU twin's checks, in the same order (so the same call fails with the same message).
  c.expect_count(3, 0);
  c.expect_same_shape(0, 2, "a", "out");
  c.expect_same_shape(1, 2, "b", "out");
  c.expect_same_dtype(0, 1, "a", "b");
  c.expect_same_dtype(0, 2, "a", "out");
  if (!IntAllowed) c.expect_float(0, "a");
  const TensorRef &a = c.t(0), &b = c.t(1), &out = c.t(2);
  const int64_t n = out.numel();
  if (n == 0) return;
  const TensorRef* ts[3] = {&a, &b, &out};
  const DeviceLayout<3> L = coalesced_layout<3>(ts);
  const bool flat = is_flat<3>(L);
  auto launch = [&](auto zero) {
    using T = decltype(zero);
    if (flat)
      binary_flat<Op, T><<<blocks_for(n), kThreads>>>(a.data<T>(), b.data<T>(), out.data<T>(), n);
    else if (n <= kMaxI32Count)
      binary_strided<Op, T, uint32_t><<<blocks_for(n), kThreads>>>(a.data<T>(), b.data<T>(), out.data<T>(), L, (uint32_t)n);
    else
      binary_strided<Op, T, int64_t><<<blocks_for(n), kThreads>>>(a.data<T>(), b.data<T>(), out.data<T>(), L, n);
  };
  if constexpr (IntAllowed) dispatch_all(a.dtype, c.op, launch);
  else dispatch_float(a.dtype, c.op, launch);
  check_launch(c.op);
}

}  // namespace

void add(OpCall& c) { binary<Add, true>(c); }
void sub(OpCall& c) { binary<Sub, true>(c); }
void mul(OpCall& c) { binary<Mul, true>(c); }
void div(OpCall& c) { binary<Div, false>(c); }
void pow(OpCall& c) { binary<Pow, false>(c); }
void maximum(OpCall& c) { binary<Max, true>(c); }
void minimum(OpCall& c) { binary<Min, true>(c); }
void eq(OpCall& c) { binary<Eq, true>(c); }
void ne(OpCall& c) { binary<Ne, true>(c); }
void lt(OpCall& c) { binary<Lt, true>(c); }
void le(OpCall& c) { binary<Le, true>(c); }
void gt(OpCall& c) { binary<Gt, true>(c); }
void ge(OpCall& c) { binary<Ge, true>(c); }

void where(OpCall& c) {
  c.expect_count(4, 0);
  c.expect_same_shape(0, 3, "cond", "out");
  c.expect_same_shape(1, 3, "a", "out");
  c.expect_same_shape(2, 3, "b", "out");
  c.expect_same_dtype(1, 2, "a", "b");
  c.expect_same_dtype(1, 3, "a", "out");
  const TensorRef &cond = c.t(0), &a = c.t(1), &b = c.t(2), &out = c.t(3);
  // The CPU twin rejects an unknown dtype of either cond or a even for an empty output, so
  // validate both before the early return.
  dispatch_all(cond.dtype, c.op, [](auto) {});
  dispatch_all(a.dtype, c.op, [](auto) {});
  const int64_t n = out.numel();
  if (n == 0) return;
  const TensorRef* ts[4] = {&cond, &a, &b, &out};
  const DeviceLayout<4> L = coalesced_layout<4>(ts);
  dispatch_all(cond.dtype, c.op, [&](auto zc) {
    using C = decltype(zc);
    dispatch_all(a.dtype, c.op, [&](auto zt) {
      using T = decltype(zt);
      if (n <= kMaxI32Count)
        where_strided<C, T, uint32_t><<<blocks_for(n), kThreads>>>(cond.data<C>(), a.data<T>(), b.data<T>(), out.data<T>(), L, (uint32_t)n);
      else
        where_strided<C, T, int64_t><<<blocks_for(n), kThreads>>>(cond.data<C>(), a.data<T>(), b.data<T>(), out.data<T>(), L, n);
    });
  });
  check_launch(c.op);
}

}  // namespace tessera::cuda
