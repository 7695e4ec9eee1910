// exp(x) for double written as plain arithmetic (float uses vm::exp from cpu/vec_math.h) (Cody-Waite range reduction, a
// Taylor polynomial, the power of two built in the exponent bits), so that a loop calling it
// vectorises. glibc's exp/expf are opaque calls the vectoriser cannot see through unless the
// whole build uses -ffast-math, and in softmax, log_softmax and cross_entropy the exp of every
// element is most of the work.
//
// Accuracy: within ~2 ulp of the correctly rounded result on the normal range. Below it
// (x < -708 for double, x < -86.5 for float, where exp(x) is tiny or subnormal) the result is 0,
// so exp(-inf) is exactly 0 (masked logits get exactly zero probability); above the range it
// is +inf; NaN gives NaN. The callers only pass x - rowmax <= 0 (or NaN), so the absolute error
// of flushing subnormals is below 1e-307 (1e-37 for float), far under anything observable in a
// probability that sums with terms >= 1.
#pragma once
#include "cpu/vec_math.h"
#include <cstdint>
#include <cstring>

namespace tessera::cpu {

inline double vec_exp(double x) {
  constexpr double kLog2e = 1.4426950408889634074;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 32 significant bits: k * hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  constexpr double kLo = -708.0, kHi = 710.0;
  double xc = x < kLo ? kLo : x;  // comparisons are false for NaN, so NaN passes through
  xc = xc > kHi ? kHi : xc;
  const double t = xc * kLog2e + kShifter;
  const double k = t - kShifter;
  const double r = (xc - k * kLn2Hi) - k * kLn2Lo;  // |r| <= ln2 / 2
  // exp(r) by Horner on the Taylor series to r^13 (truncation < 5e-18 relative on |r| <= 0.347).
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // The low bits of t hold k in [-1021, 1024] after the clamps; 2^(k-1) has biased exponent
  // k + 1022 in [1, 2046], and the final * 2 overflows to +inf exactly where exp does.
  int64_t tb, sb;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&sb, &kShifter, sizeof sb);
  const int64_t eb = (tb - sb + 1022) << 52;
  double scale;
  std::memcpy(&scale, &eb, sizeof scale);
  const double y = (p * scale) * 2.0;
  return x < kLo ? 0.0 : y;
}

// float: the shared vectorisable expf of cpu/vec_math.h (0.78 ulp, exact special values).
inline float vec_exp(float x) { return vm::exp(x); }

}  // namespace tessera::cpu
