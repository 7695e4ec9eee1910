// Unary elementwise kernels and their fused backward rules on the GPU. CPU twin:
// native/cpu/unary.cpp; every formula below is that file's, operation for operation, with the
// same scalar arguments and the same checks made in the same order before any launch:
//   forward  (x, out) [scalars]          out = f(x)
//   backward (x, y, grad_y, grad_x) [s]  grad_x = d(x, y, grad_y), y the forward output
//   softplus [beta, threshold] (linear where beta x > threshold; forward checks beta > 0),
//   clamp [min, max] (a NaN bound means no bound on that side; gradient passes where
//   min <= x <= max), pow_scalar [exponent] (2 and 1 special-cased as on the CPU), affine
//   [scale, shift] (scale * x + shift), gelu the erf form, gelu_tanh the tanh approximation.
//
// Shape of the kernels: one thread per element in a grid-stride loop (256 threads a block, the
// grid capped by blocks_for), float32 and float64 only (as the CPU: expect_float). On the host
// the operands' layout is coalesced exactly like cpu::coalesce (size-1 dims dropped, dims
// contiguous in all operands merged); all-contiguous operands take a flat kernel with no index
// arithmetic, the rest a strided kernel doing one div/mod per remaining dim (32-bit when the
// element count allows). No shared memory or tiling: each element is read once and written
// once, so these are memory-bound and only need coalesced accesses; the transcendental ones
// (erf, tanh, exp, log1p) cost a few dozen FP32 instructions an element, well under the
// memory time on sm_80+.
//
// Precision. Single IEEE operations and selects give the CPU's bits exactly: neg, abs, relu,
// sqrt, rsqrt (computed as 1 / sqrt(x), not the approximate rsqrt instruction; nvcc's default
// -prec-div/-prec-sqrt are IEEE-rounded), clamp, pow_scalar with exponent 0, 1 or 2, and the
// backward rules of exp, log, sqrt, rsqrt, abs, relu, sigmoid, clamp and pow_scalar (exponent
// 0, 1, 2) given identical inputs. The transcendentals use the CUDA math library: float32 expf, logf,
// log1pf, tanhf, erff, powf (max 1-4 ulp per the CUDA guide) where the CPU's float32 uses its
// inline vec_math.h versions (<= 1.5 ulp), and float64 exp, log, log1p, tanh, erf, pow (<= 2 ulp)
// where the CPU uses glibc (< 1 ulp); so those ops, and the composites built on them (gelu,
// gelu_tanh, sigmoid, logsigmoid, softplus and their backwards), agree with the CPU to a few
// ulp (more, relative, where the formula cancels, e.g. 1 + erf(x) for x << 0: the tests use
// an absolute-plus-relative tolerance). The float32 sigmoid here is the CPU's float64 formula
// (1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below) without vec_math's extra correction step.
// nvcc contracts a * b + c into one fma (as GCC does for the CPU build with -march=native on
// FMA hardware, but not in portable builds), so affine, tanh_backward and the polynomial-like
// composites may differ from a non-FMA CPU build by an ulp; the tests allow that.
// (The functors are __host__ __device__ so a host harness could check the transcription:
// evaluated on the host with glibc they reproduce the CPU's float64 results bit for bit.)
#include "cuda/common.cuh"
#include "cuda/unary.h"

namespace tessera::cuda {

namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;

// Math by element type (the CUDA math library on the device). Written with the global-namespace
// names because this namespace's own ops (exp, log, sqrt, tanh, abs) would otherwise hide them.
// The functors below are __host__ __device__ only so that a host harness can check them
// against the CPU twin's formulas; the kernels use them on the device.
__host__ __device__ __forceinline__ float m_exp(float x) { return ::expf(x); }
__host__ __device__ __forceinline__ double m_exp(double x) { return ::exp(x); }
__host__ __device__ __forceinline__ float m_log(float x) { return ::logf(x); }
__host__ __device__ __forceinline__ double m_log(double x) { return ::log(x); }
__host__ __device__ __forceinline__ float m_log1p(float x) { return ::log1pf(x); }
__host__ __device__ __forceinline__ double m_log1p(double x) { return ::log1p(x); }
__host__ __device__ __forceinline__ float m_tanh(float x) { return ::tanhf(x); }
__host__ __device__ __forceinline__ double m_tanh(double x) { return ::tanh(x); }
__host__ __device__ __forceinline__ float m_erf(float x) { return ::erff(x); }
__host__ __device__ __forceinline__ double m_erf(double x) { return ::erf(x); }
__host__ __device__ __forceinline__ float m_sqrt(float x) { return ::sqrtf(x); }
__host__ __device__ __forceinline__ double m_sqrt(double x) { return ::sqrt(x); }
__host__ __device__ __forceinline__ float m_fabs(float x) { return ::fabsf(x); }
__host__ __device__ __forceinline__ double m_fabs(double x) { return ::fabs(x); }
__host__ __device__ __forceinline__ float m_pow(float x, float y) { return ::powf(x, y); }
__host__ __device__ __forceinline__ double m_pow(double x, double y) { return ::pow(x, y); }
// std::min(a, b) / std::max(a, b) exactly: (b < a) ? b : a and (a < b) ? b : a, so a NaN first
// argument comes back as is (fminf/fmaxf would drop it).
template <typename T> __host__ __device__ __forceinline__ T std_min(T a, T b) { return (b < a) ? b : a; }
template <typename T> __host__ __device__ __forceinline__ T std_max(T a, T b) { return (a < b) ? b : a; }
// std::isnan for the (double) scalar bounds.
__host__ __device__ __forceinline__ bool is_nan(double v) { return v != v; }

// The scalar parameters, by value (a, b as the CPU's struct P).
struct P { double a = 0, b = 0; };

template <typename T> __host__ __device__ __forceinline__ T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + m_exp(-x));
  T e = m_exp(x);
  return e / (T(1) + e);
}

struct Neg { template <typename T> __host__ __device__ static T f(T x, const P&) { return -x; } };
struct Exp {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return m_exp(x); }
  template <typename T> __host__ __device__ static T d(T, T y, T g, const P&) { return g * y; }
};
struct Log {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return m_log(x); }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P&) { return g / x; }
};
struct Sqrt {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return m_sqrt(x); }
  template <typename T> __host__ __device__ static T d(T, T y, T g, const P&) { return g * T(0.5) / y; }
};
struct Rsqrt {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return T(1) / m_sqrt(x); }
  template <typename T> __host__ __device__ static T d(T, T y, T g, const P&) { return T(-0.5) * g * y * y * y; }
};
struct Abs {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return m_fabs(x); }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P&) { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};
struct Relu {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return x > T(0) ? x : T(0); }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P&) { return x > T(0) ? g : T(0); }
};
struct Gelu {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return T(0.5) * x * (T(1) + m_erf(x * T(kSqrt1_2))); }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P&) {
    T cdf = T(0.5) * (T(1) + m_erf(x * T(kSqrt1_2)));
    T pdf = T(kInvSqrt2Pi) * m_exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
};
struct GeluTanh {
  template <typename T> __host__ __device__ static T f(T x, const P&) {
    T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + m_tanh(inner));
  }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P&) {
    T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    T t = m_tanh(inner);
    T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
  }
};
struct Sigmoid {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return stable_sigmoid(x); }
  template <typename T> __host__ __device__ static T d(T, T y, T g, const P&) { return g * y * (T(1) - y); }
};
struct LogSigmoid {
  // log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)): no overflow for any x.
  template <typename T> __host__ __device__ static T f(T x, const P&) {
    return std_min(x, T(0)) - m_log1p(m_exp(-m_fabs(x)));
  }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P&) { return g * stable_sigmoid(-x); }
};
struct Softplus {
  // a = beta, b = threshold (linear above beta*x > threshold), as in PyTorch.
  template <typename T> __host__ __device__ static T f(T x, const P& p) {
    T bx = T(p.a) * x;
    if (bx > T(p.b)) return x;
    return (std_max(bx, T(0)) + m_log1p(m_exp(-m_fabs(bx)))) / T(p.a);
  }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P& p) {
    T bx = T(p.a) * x;
    if (bx > T(p.b)) return g;
    return g * stable_sigmoid(bx);
  }
};
struct Tanh {
  template <typename T> __host__ __device__ static T f(T x, const P&) { return m_tanh(x); }
  template <typename T> __host__ __device__ static T d(T, T y, T g, const P&) { return g * (T(1) - y * y); }
};
struct Clamp {
  template <typename T> __host__ __device__ static T f(T x, const P& p) {
    if (x != x) return x;
    if (!is_nan(p.a) && x < T(p.a)) x = T(p.a);
    if (!is_nan(p.b) && x > T(p.b)) x = T(p.b);
    return x;
  }
  // Gradient passes where the input was inside [min, max] (bounds inclusive, as PyTorch).
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P& p) {
    bool in = (is_nan(p.a) || x >= T(p.a)) && (is_nan(p.b) || x <= T(p.b));
    return in ? g : T(0);
  }
};
struct PowScalar {
  template <typename T> __host__ __device__ static T f(T x, const P& p) {
    if (p.a == 2.0) return x * x;
    if (p.a == 1.0) return x;
    return m_pow(x, T(p.a));
  }
  template <typename T> __host__ __device__ static T d(T x, T, T g, const P& p) {
    if (p.a == 0.0) return T(0);
    if (p.a == 2.0) return g * T(2) * x;
    return g * T(p.a) * m_pow(x, T(p.a - 1));
  }
};
struct Affine { template <typename T> __host__ __device__ static T f(T x, const P& p) { return T(p.a) * x + T(p.b); } };

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

constexpr int64_t kMaxI32Count = 2147483647;  // strided loops use 32-bit indices up to here

// No __restrict__ anywhere: an output may be an input's own memory (in-place use); each
// element is read before it is written, by the same thread.
template <typename Op, typename T>
__global__ void forward_flat(const T* x, T* out, int64_t n, P p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = Op::f(x[i], p);
}

template <typename Op, typename T, typename I>
__global__ void forward_strided(const T* x, T* out, DeviceLayout<2> L, I n, P p) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    int64_t off[2];
    strided_offsets<2, I>(L, i, off);
    out[off[1]] = Op::f(x[off[0]], p);
  }
}

template <typename Op, typename T>
__global__ void backward_flat(const T* x, const T* y, const T* g, T* dx, int64_t n, P p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = Op::d(x[i], y[i], g[i], p);
}

template <typename Op, typename T, typename I>
__global__ void backward_strided(const T* x, const T* y, const T* g, T* dx, DeviceLayout<4> L, I n, P p) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * (I)blockDim.x) {
    int64_t off[4];
    strided_offsets<4, I>(L, i, off);
    dx[off[3]] = Op::d(x[off[0]], y[off[1]], g[off[2]], p);
  }
}

template <typename F>
void dispatch_float(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else fail(op, ": expected a float32 or float64 tensor, got ", dtype_name(d));
}

template <typename Op, int NumParams>
void forward(OpCall& c) {
  c.expect_count(2, NumParams);
  c.expect_same_shape(0, 1, "x", "out");
  c.expect_same_dtype(0, 1, "x", "out");
  c.expect_float(0, "x");
  P p;
  if (NumParams > 0) p.a = c.s(0);
  if (NumParams > 1) p.b = c.s(1);
  const TensorRef &x = c.t(0), &out = c.t(1);
  const int64_t n = out.numel();
  if (n == 0) return;
  const TensorRef* ts[2] = {&x, &out};
  const DeviceLayout<2> L = coalesced_layout<2>(ts);
  const bool flat = is_flat<2>(L);
  dispatch_float(x.dtype, c.op, [&](auto zero) {
    using T = decltype(zero);
    if (flat)
      forward_flat<Op, T><<<blocks_for(n), kThreads>>>(x.data<T>(), out.data<T>(), n, p);
    else if (n <= kMaxI32Count)
      forward_strided<Op, T, uint32_t><<<blocks_for(n), kThreads>>>(x.data<T>(), out.data<T>(), L, (uint32_t)n, p);
    else
      forward_strided<Op, T, int64_t><<<blocks_for(n), kThreads>>>(x.data<T>(), out.data<T>(), L, n, p);
  });
  check_launch(c.op);
}

template <typename Op, int NumParams>
void backward(OpCall& c) {
  c.expect_count(4, NumParams);
  for (size_t i = 1; i < 4; ++i) {
    c.expect_same_shape(0, i, "x", i == 1 ? "y" : i == 2 ? "grad_y" : "grad_x");
    c.expect_same_dtype(0, i, "x", i == 1 ? "y" : i == 2 ? "grad_y" : "grad_x");
  }
  c.expect_float(0, "x");
  P p;
  if (NumParams > 0) p.a = c.s(0);
  if (NumParams > 1) p.b = c.s(1);
  const TensorRef &x = c.t(0), &y = c.t(1), &g = c.t(2), &dx = c.t(3);
  const int64_t n = dx.numel();
  if (n == 0) return;
  const TensorRef* ts[4] = {&x, &y, &g, &dx};
  const DeviceLayout<4> L = coalesced_layout<4>(ts);
  const bool flat = is_flat<4>(L);
  dispatch_float(x.dtype, c.op, [&](auto zero) {
    using T = decltype(zero);
    if (flat)
      backward_flat<Op, T><<<blocks_for(n), kThreads>>>(x.data<T>(), y.data<T>(), g.data<T>(), dx.data<T>(), n, p);
    else if (n <= kMaxI32Count)
      backward_strided<Op, T, uint32_t><<<blocks_for(n), kThreads>>>(x.data<T>(), y.data<T>(), g.data<T>(), dx.data<T>(), L, (uint32_t)n, p);
    else
      backward_strided<Op, T, int64_t><<<blocks_for(n), kThreads>>>(x.data<T>(), y.data<T>(), g.data<T>(), dx.data<T>(), L, n, p);
  });
  check_launch(c.op);
}

}  // namespace

void neg(OpCall& c) { forward<Neg, 0>(c); }
void exp(OpCall& c) { forward<Exp, 0>(c); }
void log(OpCall& c) { forward<Log, 0>(c); }
void sqrt(OpCall& c) { forward<Sqrt, 0>(c); }
void rsqrt(OpCall& c) { forward<Rsqrt, 0>(c); }
void abs(OpCall& c) { forward<Abs, 0>(c); }
void relu(OpCall& c) { forward<Relu, 0>(c); }
void gelu(OpCall& c) { forward<Gelu, 0>(c); }
void gelu_tanh(OpCall& c) { forward<GeluTanh, 0>(c); }
void sigmoid(OpCall& c) { forward<Sigmoid, 0>(c); }
void logsigmoid(OpCall& c) { forward<LogSigmoid, 0>(c); }
void softplus(OpCall& c) {
  TS_CHECK(c.scalars.size() == 2 && c.scalars[0] > 0, c.op, ": beta must be > 0");
  forward<Softplus, 2>(c);
}
void tanh(OpCall& c) { forward<Tanh, 0>(c); }
void clamp(OpCall& c) { forward<Clamp, 2>(c); }
void pow_scalar(OpCall& c) { forward<PowScalar, 1>(c); }
void affine(OpCall& c) { forward<Affine, 2>(c); }

void exp_backward(OpCall& c) { backward<Exp, 0>(c); }
void log_backward(OpCall& c) { backward<Log, 0>(c); }
void sqrt_backward(OpCall& c) { backward<Sqrt, 0>(c); }
void rsqrt_backward(OpCall& c) { backward<Rsqrt, 0>(c); }
void abs_backward(OpCall& c) { backward<Abs, 0>(c); }
void relu_backward(OpCall& c) { backward<Relu, 0>(c); }
void gelu_backward(OpCall& c) { backward<Gelu, 0>(c); }
void gelu_tanh_backward(OpCall& c) { backward<GeluTanh, 0>(c); }
void sigmoid_backward(OpCall& c) { backward<Sigmoid, 0>(c); }
void logsigmoid_backward(OpCall& c) { backward<LogSigmoid, 0>(c); }
void softplus_backward(OpCall& c) { backward<Softplus, 2>(c); }
void tanh_backward(OpCall& c) { backward<Tanh, 0>(c); }
void clamp_backward(OpCall& c) { backward<Clamp, 2>(c); }
void pow_scalar_backward(OpCall& c) { backward<PowScalar, 1>(c); }

}  // namespace tessera::cuda
