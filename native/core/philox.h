// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Element i of a random tensor is a pure function of (seed, offset + i),
// so results do not depend on thread count or device, and the CUDA kernels reproduce the CPU
// stream exactly. The same construction as cuRAND's and PyTorch's philox engines.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TS_HOST_DEVICE inline
#endif

namespace tessera {

struct Philox4 {
  uint32_t v[4];
};

TS_HOST_DEVICE uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

TS_HOST_DEVICE Philox4 philox4x32(uint64_t seed, uint64_t counter) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1): 24 random bits for float32, 53 for float64.
TS_HOST_DEVICE float uniform_f32(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
TS_HOST_DEVICE double uniform_f64(uint32_t lo, uint32_t hi) {
  uint64_t bits = ((uint64_t)hi << 21) ^ (uint64_t)(lo >> 11);
  return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Elementary functions for the random streams, written so that every build computes them bit for
// bit alike: the CPU (with or without -march=native, whose FMA contraction would otherwise change
// `a + b * c`), and the GPU (whose libdevice log/cos differ from glibc's by an ulp or two). Only
// IEEE-exact operations are used (+ - * / sqrt, fma, floor, bit casts) and every multiply-add is
// an explicit fma, so the compilers have nothing to contract. Polynomials are evaluated by
// Estrin's scheme and quadrants selected without branches (short dependency chains; random
// branches would mispredict half the time). Accuracy: log 2 ulp, cos 3 ulp, normal_from 5 ulp.

TS_HOST_DEVICE uint64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
  return (uint64_t)__double_as_longlong(x);
#else
  uint64_t b;
  __builtin_memcpy(&b, &x, sizeof b);
  return b;
#endif
}
TS_HOST_DEVICE double bits_double(uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double((long long)b);
#else
  double x;
  __builtin_memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// log(x) for a positive normal x: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.1716, by its series to s^23 (truncation below 1e-17 relative).
TS_HOST_DEVICE double det_log(double x) {
  uint64_t b = double_bits(x);
  int e = (int)((b >> 52) & 0x7ff) - 1022;
  double m = bits_double((b & 0x000fffffffffffffull) | 0x3fe0000000000000ull);  // [0.5, 1)
  bool low = m < 0.70710678118654752440;
  m = low ? m * 2.0 : m;
  e -= low ? 1 : 0;
  double s = (m - 1.0) / (m + 1.0);  // m - 1 is exact
  double t = s * s, t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
  // q = 1/3 + t/5 + t^2/7 + ... + t^10/23
  double p01 = fma(0.2, t, 0.3333333333333333);
  double p23 = fma(0.1111111111111111, t, 0.14285714285714285);
  double p45 = fma(0.07692307692307693, t, 0.09090909090909091);
  double p67 = fma(0.058823529411764705, t, 0.06666666666666667);
  double p89 = fma(0.047619047619047616, t, 0.05263157894736842);
  double p0_3 = fma(p23, t2, p01);
  double p4_7 = fma(p67, t2, p45);
  double p8_10 = fma(0.043478260869565216, t2, p89);
  double q = fma(p8_10, t8, fma(p4_7, t4, p0_3));
  double two_s = s * 2.0;
  double log_m = fma(two_s * t, q, two_s);  // 2s + 2s^3 q
  double ed = (double)e;
  // ln 2 split (fdlibm): ed * ln2_hi is exact for |e| < 2^11.
  return fma(ed, 6.93147180369123816490e-01, fma(ed, 1.90821492927058770002e-10, log_m));
}

// cos(2 pi u) for u in [0, 1): quadrant from 4u (exact), then Taylor polynomials of cos and sin
// on |x| <= pi/4 (to x^18 and x^19: truncation below 1e-17), the quadrant picking one.
TS_HOST_DEVICE double det_cos_2pi(double u) {
  double t4u = u * 4.0;
  double q = floor(t4u);
  double r = t4u - q;  // exact
  bool up = r > 0.5;
  r = up ? r - 1.0 : r;  // exact; |r| <= 1/2
  int quadrant = ((int)q + (up ? 1 : 0)) & 3;
  double x = r * 1.5707963267948966;  // pi/2 * r, |x| <= pi/4
  double y = -(x * x), y2 = y * y, y4 = y2 * y2, y8 = y4 * y4;
  // cos x = sum y^k / (2k)!, k = 0..9
  double c01 = fma(0.5, y, 1.0);
  double c23 = fma(0.001388888888888889, y, 0.041666666666666664);
  double c45 = fma(2.755731922398589e-07, y, 2.48015873015873e-05);
  double c67 = fma(1.1470745597729725e-11, y, 2.08767569878681e-09);
  double c89 = fma(1.5619206968586225e-16, y, 4.779477332387385e-14);
  double c = fma(c89, y8, fma(fma(c67, y2, c45), y4, fma(c23, y2, c01)));
  // sin x = x sum y^k / (2k+1)!, k = 0..9
  double s01 = fma(0.008333333333333333, y, 0.16666666666666666);
  double s23 = fma(2.7557319223985893e-06, y, 0.0001984126984126984);
  double s45 = fma(1.6059043836821613e-10, y, 2.505210838544172e-08);
  double s67 = fma(2.8114572543455206e-15, y, 7.647163731819816e-13);
  double s89 = 8.22063524662433e-18;
  double sp = fma(s89, y8, fma(fma(s67, y2, s45), y4, fma(s23, y2, s01)));
  double sn = fma(x * y, sp, x);  // x + x^3 (1/3! - ...)
  // cos(q pi/2 + x): q=0 cos x, q=1 -sin x, q=2 -cos x, q=3 sin x
  double v = (quadrant & 1) ? sn : c;
  return ((quadrant + 1) & 2) ? -v : v;
}

// Standard normal by Box-Muller from two uniforms, computed in double so float32 and float64
// tensors drawn with the same seed agree to float32 rounding.
TS_HOST_DEVICE double normal_from(const Philox4& r) {
  double u1 = ((double)r.v[0] + 1.0) * (1.0 / 4294967297.0);  // (0, 1]: log never sees 0
  double u2 = (double)r.v[1] * (1.0 / 4294967296.0);
  return sqrt(-2.0 * det_log(u1)) * det_cos_2pi(u2);
}

// shift + scale * x with a single rounding: how rand and randn map their draws, alike everywhere.
TS_HOST_DEVICE double scale_shift(double x, double scale, double shift) { return fma(scale, x, shift); }

}  // namespace tessera
