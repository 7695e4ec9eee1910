#include "cpu/unary.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/strided.h"
#include "cpu/vec_math.h"

namespace tessera::cpu {

namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;

// Transcendentals: float32 uses the inline vec_math.h versions (plain arithmetic, so the
// `#pragma omp simd` loops below vectorise; glibc's expf/tanhf/... are opaque calls); float64
// keeps libm, which is the accuracy reference the gradient checks compare against.
TS_VM_INLINE float t_exp(float x) { return vm::exp(x); }
TS_VM_INLINE double t_exp(double x) { return std::exp(x); }
TS_VM_INLINE float t_log(float x) { return vm::log(x); }
TS_VM_INLINE double t_log(double x) { return std::log(x); }
TS_VM_INLINE float t_log1p(float x) { return vm::log1p(x); }
TS_VM_INLINE double t_log1p(double x) { return std::log1p(x); }
TS_VM_INLINE float t_tanh(float x) { return vm::tanh(x); }
TS_VM_INLINE double t_tanh(double x) { return std::tanh(x); }
TS_VM_INLINE float t_erf(float x) { return vm::erf(x); }
TS_VM_INLINE double t_erf(double x) { return std::erf(x); }
template <typename T> constexpr bool kF32 = std::is_same_v<T, float>;

// Each functor: f(x, params) forward; d(x, y, g, params) backward. Those using the functions
// above are TS_VM_INLINE (always_inline): their float32 bodies are big enough that GCC would
// otherwise call them out of line from the `#pragma omp simd` loops, which then stay scalar.
struct P { double a = 0, b = 0; };

struct Neg { template <typename T> static T f(T x, const P&) { return -x; } };
struct Exp {
  template <typename T> TS_VM_INLINE static T f(T x, const P&) { return t_exp(x); }
  template <typename T> TS_VM_INLINE static T d(T, T y, T g, const P&) { return g * y; }
};
struct Log {
  template <typename T> TS_VM_INLINE static T f(T x, const P&) { return t_log(x); }
  template <typename T> TS_VM_INLINE static T d(T x, T, T g, const P&) { return g / x; }
};
struct Sqrt {
  template <typename T> static T f(T x, const P&) { return std::sqrt(x); }
  template <typename T> static T d(T, T y, T g, const P&) { return g * T(0.5) / y; }
};
struct Rsqrt {
  template <typename T> static T f(T x, const P&) { return T(1) / std::sqrt(x); }
  template <typename T> static T d(T, T y, T g, const P&) { return T(-0.5) * g * y * y * y; }
};
struct Abs {
  template <typename T> static T f(T x, const P&) { return std::abs(x); }
  template <typename T> static T d(T x, T, T g, const P&) { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};
struct Relu {
  template <typename T> static T f(T x, const P&) { return x > T(0) ? x : T(0); }
  template <typename T> static T d(T x, T, T g, const P&) { return x > T(0) ? g : T(0); }
};
struct Gelu {
  template <typename T> TS_VM_INLINE static T f(T x, const P&) { return T(0.5) * x * (T(1) + t_erf(x * T(kSqrt1_2))); }
  template <typename T> TS_VM_INLINE static T d(T x, T, T g, const P&) {
    T cdf = T(0.5) * (T(1) + t_erf(x * T(kSqrt1_2)));
    T pdf = T(kInvSqrt2Pi) * t_exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
};
struct GeluTanh {
  template <typename T> TS_VM_INLINE static T f(T x, const P&) {
    T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + t_tanh(inner));
  }
  template <typename T> TS_VM_INLINE static T d(T x, T, T g, const P&) {
    T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    T t = t_tanh(inner);
    T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
  }
};
template <typename T> TS_VM_INLINE T stable_sigmoid(T x) {
  if constexpr (kF32<T>) {
    return vm::sigmoid(x);  // the same two formulas, branch-free
  } else {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  }
}
struct Sigmoid {
  template <typename T> TS_VM_INLINE static T f(T x, const P&) { return stable_sigmoid(x); }
  template <typename T> TS_VM_INLINE static T d(T, T y, T g, const P&) { return g * y * (T(1) - y); }
};
struct LogSigmoid {
  // log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)): no overflow for any x.
  template <typename T> TS_VM_INLINE static T f(T x, const P&) {
    return std::min(x, T(0)) - t_log1p(t_exp(-std::abs(x)));
  }
  template <typename T> TS_VM_INLINE static T d(T x, T, T g, const P&) { return g * stable_sigmoid(-x); }
};
struct Softplus {
  // params: a = beta, b = threshold (linear above beta*x > threshold), as in PyTorch.
  // (float32 selects instead of returning early: a branch around the exp/log1p arithmetic
  // would keep the loop from vectorising on targets without AVX-512 masks.)
  template <typename T> TS_VM_INLINE static T f(T x, const P& p) {
    T bx = T(p.a) * x;
    if constexpr (kF32<T>) {
      return vm::select(bx > T(p.b), x, (std::max(bx, T(0)) + t_log1p(t_exp(-std::abs(bx)))) / T(p.a));
    } else {
      if (bx > T(p.b)) return x;
      return (std::max(bx, T(0)) + std::log1p(std::exp(-std::abs(bx)))) / T(p.a);
    }
  }
  template <typename T> TS_VM_INLINE static T d(T x, T, T g, const P& p) {
    T bx = T(p.a) * x;
    if constexpr (kF32<T>) {
      return vm::select(bx > T(p.b), g, g * stable_sigmoid(bx));
    } else {
      if (bx > T(p.b)) return g;
      return g * stable_sigmoid(bx);
    }
  }
};
struct Tanh {
  template <typename T> TS_VM_INLINE static T f(T x, const P&) { return t_tanh(x); }
  template <typename T> TS_VM_INLINE static T d(T, T y, T g, const P&) { return g * (T(1) - y * y); }
};
struct Clamp {
  template <typename T> static T f(T x, const P& p) {
    if (x != x) return x;
    if (!std::isnan(p.a) && x < T(p.a)) x = T(p.a);
    if (!std::isnan(p.b) && x > T(p.b)) x = T(p.b);
    return x;
  }
  // Gradient passes where the input was inside [min, max] (bounds inclusive, as PyTorch).
  template <typename T> static T d(T x, T, T g, const P& p) {
    bool in = (std::isnan(p.a) || x >= T(p.a)) && (std::isnan(p.b) || x <= T(p.b));
    return in ? g : T(0);
  }
};
struct PowScalar {
  template <typename T> static T f(T x, const P& p) {
    if (p.a == 2.0) return x * x;
    if (p.a == 1.0) return x;
    return std::pow(x, T(p.a));
  }
  template <typename T> static T d(T x, T, T g, const P& p) {
    if (p.a == 0.0) return T(0);
    if (p.a == 2.0) return g * T(2) * x;
    return g * T(p.a) * std::pow(x, T(p.a - 1));
  }
};
struct Affine { template <typename T> static T f(T x, const P& p) { return T(p.a) * x + T(p.b); } };

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
  dispatch_float(x.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for_each_row<2>({&x, &out}, [&](const int64_t* off, int64_t n, const int64_t* st) {
      const T* xi = px + off[0];
      T* oi = po + off[1];
      if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) oi[i] = Op::f(xi[i], p);
      } else {
        for (int64_t i = 0; i < n; ++i) oi[i * st[1]] = Op::f(xi[i * st[0]], p);
      }
    });
   });
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
  dispatch_float(x.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    const T *px = x.data<T>(), *py = y.data<T>(), *pg = g.data<T>();
    T* pd = dx.data<T>();
    for_each_row<4>({&x, &y, &g, &dx}, [&](const int64_t* off, int64_t n, const int64_t* st) {
      if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
        const T *xi = px + off[0], *yi = py + off[1], *gi = pg + off[2];
        T* di = pd + off[3];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) di[i] = Op::d(xi[i], yi[i], gi[i], p);
      } else {
        for (int64_t i = 0; i < n; ++i)
          pd[off[3] + i * st[3]] = Op::d(px[off[0] + i * st[0]], py[off[1] + i * st[1]], pg[off[2] + i * st[2]], p);
      }
    });
   });
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

}  // namespace tessera::cpu
