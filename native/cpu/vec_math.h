// Float32 exp, log, log1p, tanh, sigmoid and erf as inline straight-line arithmetic, so that
// `#pragma omp simd` loops over them vectorise (native/cpu/unary.cpp uses them for its float32
// kernels; float64 stays on libm, the accuracy reference).
//
// Why: std::exp / std::log / std::tanh / std::erf are opaque libm calls. GCC only swaps in
// glibc's SIMD variants (libmvec) under -ffast-math (glibc declares them only when __FAST_MATH__
// is defined), which this project does not use, so every element paid for a scalar call: 3-5 GB/s
// for exp/log and 0.35-0.5 GB/s for tanh on 4M floats, against ~40+ GB/s for add/relu. Below there
// are only +, -, *, /, fma, bit casts (memcpy) and selects, with no branches, tables or calls;
// each function becomes a few dozen vector instructions (16 lanes with AVX-512, 8 with AVX2,
// 4 with SSE2). Everything is computed in float (no widening to double).
//
// Method, and max error measured over all 2^32 float inputs against the double-precision libm
// value (ulp: of the float nearest the exact result, 2^-149 for subnormal results), built with
// -march=native (FMA) / for baseline x86-64 without FMA. Special values are exact in both.
//
//   exp     Cody-Waite: n = rint(x log2 e) (by the 1.5 * 2^23 shifter), r = x - n ln2 with ln2
//           split into a 15-bit head (n * head and x - n * head are exact) and a tail, |r| <=
//           ln2/2. exp(r) = 1 + r + r^2 q(r), q a degree-4 minimax polynomial (relative error
//           2^-28.3), 1 + r summed with its rounding error kept. Scaled by 2^n as two factors
//           2^(n/2) 2^(n - n/2) built in the exponent bits, so subnormal results round once and
//           x > 88.72 overflows to +inf. x > 89 -> +inf, x < -104 -> 0 (below -103.97 exp rounds
//           to 0), NaN -> NaN.                                          0.78 ulp / 0.78 ulp
//   log     x = 2^k m, m in [sqrt(1/2), sqrt(2)), from the bits (subnormal x scaled by 2^23
//           first); f = m - 1 (exact), s = f / (2 + f), z = s^2, log(1 + f) = f - f^2/2 +
//           s (f^2/2 + R(z)) with R(z) = z (c1 + c2 z + c3 z^2) the minimax fit of
//           2 atanh(s)/s - 2 (absolute error 2^-29.2, |s| <= 0.1716): the rounding of s only
//           touches the small term. k ln2 added in head and tail. log(+-0) = -inf, log(x < 0) =
//           NaN, log(+inf) = +inf, NaN -> NaN.                              0.84 ulp / 0.84 ulp
//   log1p   u = 1 + x, c = x - (u - 1) its rounding error, log(u) as above plus c / u.
//           log1p(-1) = -inf, log1p(x < -1) = NaN, log1p(+-0) = +-0.       0.84 ulp / 0.87 ulp
//   tanh    odd, on |x| with the sign bit copied back. |x| < 0.875: |x| + |x| x^2 P(x^2), P a
//           degree-6 minimax polynomial (relative error 2^-30.3); above, 1 - 2 / (exp(2|x|) + 1)
//           (cancels mildly: 2 / (e + 1) < 0.42 there). Exactly +-1 from |x| >= 9.01 on (as
//           the rounded true value), +-0 -> +-0, NaN -> NaN.                 1.00 ulp / 1.05 ulp
//   sigmoid e = exp(-|x|), q = (x >= 0 ? 1 : e) / (1 + e) (no overflow for any x), then one
//           correction step against the exact 1 + e (its rounding error by Fast2Sum, the
//           division's residual by fma, or Dekker's product without FMA). Exactly 1 from
//           x >= 17.33 on, 0 below -103.97 (and at -inf), subnormal in between as the true
//           value; NaN -> NaN.                                             1.48 ulp / 1.48 ulp
//   erf     odd. |x| < 1: |x| + |x| Q(x^2), Q a degree-6 minimax polynomial (relative error
//           2^-29.6). 1 <= |x| < 4: 1 - exp(-x^2) R(|x| - 2.5), R a degree-9 polynomial
//           fitted to exp(x^2) erfc(x) with weight exp(-x^2), i.e. to the absolute error of erf
//           (2^-31). |x| >= 4 (where erf rounds to 1) -> +-1.                1.00 ulp / 1.32 ulp
//
// The coefficients come from a weighted Remez exchange in 50-digit arithmetic (mpmath), rounded
// to float. Composite float32 formulas in unary.cpp (logsigmoid, softplus, gelu, gelu_tanh)
// add their own roundings; test/ops/vec_math.test.ts checks all of them through the ops.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__GNUC__)
#define TS_VM_INLINE inline __attribute__((always_inline))
#else
#define TS_VM_INLINE inline
#endif

namespace tessera::cpu::vm {

namespace detail {

TS_VM_INLINE uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
TS_VM_INLINE float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// a * b + c. Fused where the target has FMA (one instruction, vectorises); otherwise plain
// arithmetic, because __builtin_fmaf would become a libm call. Every function here is accurate
// either way.
TS_VM_INLINE float fmla(float a, float b, float c) {
#if defined(__FMA__) || defined(__AVX512F__) || defined(__aarch64__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}
// c - a b with a b exact (one rounding at the end): fma, or Dekker's product without it.
TS_VM_INLINE float residual(float a, float b, float c) {
#if defined(__FMA__) || defined(__AVX512F__) || defined(__aarch64__)
  return __builtin_fmaf(-a, b, c);
#else
  const float p = a * b;
  const float ta = 4097.0f * a, tb = 4097.0f * b;  // Veltkamp split into 12-bit halves
  const float ah = ta - (ta - a), al = a - ah;
  const float bh = tb - (tb - b), bl = b - bh;
  const float err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;  // a b = p + err exactly
  return (c - p) - err;
#endif
}
TS_VM_INLINE float abs(float x) { return from_bits(bits(x) & 0x7fffffffu); }
// |y| with the sign bit of x (y must be >= 0 or NaN).
TS_VM_INLINE float with_sign_of(float y, float x) { return from_bits(bits(y) | (bits(x) & 0x80000000u)); }

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kLog2e = 1.44269504088896341f;
// ln2 = kLn2Hi + kLn2Lo; kLn2Hi has 15 significant bits, so k * kLn2Hi is exact for |k| < 512.
constexpr float kLn2Hi = 0.693145751953125f;      // 0x3f317200
constexpr float kLn2Lo = 1.428606765330187045e-06f;

// log(1 + f) for f = m - 1, m in [sqrt(1/2), sqrt(2)), plus k ln2 + extra (a small correction
// added with the low-order terms).
TS_VM_INLINE float log_core(float f, float k, float extra) {
  const float s = f / (2.0f + f);
  const float z = s * s;
  float R = fmla(z, 2.987186313e-01f, 3.997753561e-01f);
  R = fmla(R, z, 6.666677594e-01f);
  R = R * z;
  const float hfsq = 0.5f * f * f;
  const float lo = fmla(s, hfsq + R, fmla(k, kLn2Lo, extra));
  return fmla(k, kLn2Hi, f - (hfsq - lo));
}

// Splits x > 0 (normal, finite) into 2^k m, m in [sqrt(1/2), sqrt(2)); returns m - 1.
TS_VM_INLINE float log_reduce(float x, float& k) {
  constexpr uint32_t kSqrtHalfBits = 0x3f3504f3u;  // bits of sqrt(1/2)
  const uint32_t d = bits(x) - kSqrtHalfBits;
  k = float(int32_t(d) >> 23);
  const float m = from_bits((d & 0x007fffffu) + kSqrtHalfBits);
  return m - 1.0f;  // exact
}

}  // namespace detail

// c ? a : b as a bit blend. A plain ?: lets GCC sink each arm's arithmetic into a branch;
// without AVX-512 masking it then cannot if-convert the loop (floating-point operations may
// trap) and does not vectorise it at all. The blend keeps both arms unconditional.
TS_VM_INLINE float select(bool c, float a, float b) {
  using namespace detail;
  const uint32_t m = 0u - uint32_t(c);
  return from_bits((bits(a) & m) | (bits(b) & ~m));
}

// exp(x); see the header comment.
TS_VM_INLINE float exp(float x) {
  using namespace detail;
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: t = v + kShift rounds v to an integer
  const float t = fmla(x, kLog2e, kShift);
  const float n = t - kShift;  // rint(x / ln2)
  const float rh = fmla(n, -kLn2Hi, x);  // exact (n * kLn2Hi is, and the difference is)
  const float w = n * kLn2Lo;
  const float r = rh - w;  // x - n ln2
  float q = fmla(1.381459879e-03f, r, 8.368716575e-03f);
  q = fmla(q, r, 4.166838899e-02f);
  q = fmla(q, r, 1.666652113e-01f);
  q = fmla(q, r, 4.999999404e-01f);
  // p = 1 + rh + (r^2 q - w), adding 1 + rh with its rounding error kept (Fast2Sum): the only
  // rounding of a large term left is the last one.
  const float s = 1.0f + rh;
  const float se = (1.0f - s) + rh;
  const float p = s + (se + fmla(q, r * r, -w));
  // n as an integer from the low mantissa bits of t. For x in [-104, 89], n is in [-150, 128]
  // and n1, n2 in [-75, 64], so 2^n1 and 2^n2 are normal floats. Outside that range (and for
  // NaN) the lanes compute garbage that the final select replaces; the arithmetic is unsigned,
  // so there is no overflow.
  const uint32_t ni = bits(t) - bits(kShift);
  const uint32_t n1 = uint32_t(int32_t(ni) >> 1), n2 = ni - n1;
  const float s1 = from_bits((n1 + 127u) << 23);
  const float s2 = from_bits((n2 + 127u) << 23);
  const float y = (p * s1) * s2;  // overflows to +inf above 88.72, rounds once when subnormal
  // The range checks come last (not as a clamp of x, which GCC would constant-fold through
  // the body into a branch). Comparisons are false for NaN: y is NaN then.
  return select(x > 89.0f, kInf, select(x < -104.0f, 0.0f, y));
}

// log(x); see the header comment.
TS_VM_INLINE float log(float x) {
  using namespace detail;
  const bool sub = x < 1.17549435e-38f;  // subnormal (or <= 0, handled below)
  const float xs = select(sub, x * 8388608.0f, x);
  float k;
  const float f = log_reduce(xs, k);
  k = select(sub, k - 23.0f, k);
  const float y = log_core(f, k, 0.0f);
  const bool ok = bits(x) - 1u < 0x7f7fffffu;  // 0 < x <= FLT_MAX
  const float special = select(x < 0.0f, kNaN, select(x == 0.0f, -kInf, x));  // +inf, NaN: x
  return select(ok, y, special);
}

// log(1 + x); see the header comment.
TS_VM_INLINE float log1p(float x) {
  using namespace detail;
  const float u = 1.0f + x;
  const float c = x - (u - 1.0f);  // 1 + x = u + c exactly (for u < 2^24; beyond, c is negligible)
  float k;
  const float f = log_reduce(u, k);
  const float y = log_core(f, k, c / u);
  const bool ok = (x > -1.0f) & (x <= 3.40282347e+38f) & (x != 0.0f);
  const float special = select(x < -1.0f, kNaN, select(x == -1.0f, -kInf, x));  // +inf, NaN, +-0: x
  return select(ok, y, special);
}

// tanh(x); see the header comment.
TS_VM_INLINE float tanh(float x) {
  using namespace detail;
  const float a = abs(x);
  const float z = a * a;
  float p = fmla(-4.824179923e-04f, z, 2.651010174e-03f);
  p = fmla(p, z, -8.331941441e-03f);
  p = fmla(p, z, 2.169604227e-02f);
  p = fmla(p, z, -5.393717065e-02f);
  p = fmla(p, z, 1.333306581e-01f);
  p = fmla(p, z, -3.333332539e-01f);
  const float small = fmla(a * z, p, a);
  const float large = 1.0f - 2.0f / (vm::exp(2.0f * a) + 1.0f);  // exp(inf) = inf gives 1
  return with_sign_of(select(a < 0.875f, small, large), x);
}

// 1 / (1 + exp(-x)), without overflow for any x; see the header comment.
TS_VM_INLINE float sigmoid(float x) {
  using namespace detail;
  const float e = vm::exp(-abs(x));
  const bool pos = x >= 0.0f;
  const float num = select(pos, 1.0f, e);
  const float d = 1.0f + e;
  const float derr = e - (d - 1.0f);  // 1 + e = d + derr exactly (e <= 1)
  const float q = num / d;
  // One correction step of the quotient against the exact denominator: the residual
  // num - q (d + derr) times 1 / (1 + e), which is q for x >= 0 and 1 - q otherwise. Removes
  // the rounding of 1 + e and most of the division's.
  const float res = fmla(-q, derr, residual(q, d, num));
  return fmla(res, select(pos, q, 1.0f - q), q);
}

// erf(x); see the header comment.
TS_VM_INLINE float erf(float x) {
  using namespace detail;
  const float a = abs(x);
  const float z = a * a;
  float q = fmla(7.853860734e-05f, z, -8.010193706e-04f);
  q = fmla(q, z, 5.188327748e-03f);
  q = fmla(q, z, -2.685381100e-02f);
  q = fmla(q, z, 1.128358543e-01f);
  q = fmla(q, z, -3.761262596e-01f);
  q = fmla(q, z, 1.283791661e-01f);
  const float small = fmla(a, q, a);
  const float t = a - 2.5f;
  float r = fmla(-2.799442882e-05f, t, -5.777968909e-05f);
  r = fmla(r, t, -1.362074690e-04f);
  r = fmla(r, t, 2.236739674e-04f);
  r = fmla(r, t, -6.491645472e-04f);
  r = fmla(r, t, 2.520707436e-03f);
  r = fmla(r, t, -8.000193164e-03f);
  r = fmla(r, t, 2.492953278e-02f);
  r = fmla(r, t, -7.434938103e-02f);
  r = fmla(r, t, 2.108063400e-01f);
  const float large = fmla(-vm::exp(-z), r, 1.0f);
  // erf(|x| >= 3.92) rounds to 1; beyond 4 the polynomial is not fitted (and may be inf or NaN).
  return with_sign_of(select(a < 1.0f, small, select(a >= 4.0f, 1.0f, large)), x);
}

}  // namespace tessera::cpu::vm
