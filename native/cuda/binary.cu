// Broadcasting binary elementwise kernels on the GPU; reference: native/cpu/binary.cpp.
// Contiguous operands take a flat grid-stride loop; broadcast/strided ones compute per-element
// offsets from the by-value layout (the index arithmetic is cheap next to the memory traffic).
#include "cuda/binary.h"
#include "cuda/common.cuh"

namespace tessera::cuda {

namespace {

struct Add { template <typename T> __device__ static T f(T a, T b) { return a + b; } };
struct Sub { template <typename T> __device__ static T f(T a, T b) { return a - b; } };
struct Mul { template <typename T> __device__ static T f(T a, T b) { return a * b; } };
struct Div { template <typename T> __device__ static T f(T a, T b) { return a / b; } };

template <typename Op, typename T>
__global__ void binary_contiguous(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = Op::f(a[i], b[i]);
}

template <typename Op, typename T>
__global__ void binary_strided(const T* a, const T* b, T* out, DeviceLayout<3> L, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    offsets_of<3>(L, i, off);
    out[off[2]] = Op::f(a[off[0]], b[off[1]]);
  }
}

template <typename Op, bool IntAllowed>
void binary(OpCall& c) {
  c.expect_count(3, 0);
  c.expect_same_shape(0, 2, "a", "out");
  c.expect_same_shape(1, 2, "b", "out");
  c.expect_same_dtype(0, 1, "a", "b");
  c.expect_same_dtype(0, 2, "a", "out");
  if (!IntAllowed) c.expect_float(0, "a");
  const TensorRef &a = c.t(0), &b = c.t(1), &out = c.t(2);
  int64_t n = out.numel();
  if (n == 0) return;
  bool flat = a.is_contiguous() && b.is_contiguous() && out.is_contiguous();
  const TensorRef* ts[3] = {&a, &b, &out};
  auto L = make_layout<3>(ts);
  auto launch = [&](auto zero) {
    using T = decltype(zero);
    if (flat)
      binary_contiguous<Op, T><<<blocks_for(n), kThreads>>>(a.data<T>(), b.data<T>(), out.data<T>(), n);
    else
      binary_strided<Op, T><<<blocks_for(n), kThreads>>>(a.data<T>(), b.data<T>(), out.data<T>(), L, n);
  };
  if (a.dtype == DType::F32) launch(float{});
  else if (a.dtype == DType::F64) launch(double{});
  else launch(int32_t{});
  check_launch(c.op);
}

}  // namespace

void add(OpCall& c) { binary<Add, true>(c); }
void sub(OpCall& c) { binary<Sub, true>(c); }
void mul(OpCall& c) { binary<Mul, true>(c); }
void div(OpCall& c) { binary<Div, false>(c); }

}  // namespace tessera::cuda
