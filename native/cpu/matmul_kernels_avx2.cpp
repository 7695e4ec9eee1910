// AVX2 + FMA matmul micro-kernels (ymm, 16 vector registers), compiled through function target
// attributes so they exist in portable builds too; matmul.cpp calls them on CPUs without AVX-512.
#include "cpu/matmul_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>

namespace tessera::cpu::matmul_detail {
namespace {

#define TS_MM_TARGET "avx2,fma"
#define TS_MM_INLINE __attribute__((target(TS_MM_TARGET), always_inline)) inline

struct Ymm32 {
  using T = float;
  using V = __m256;
  static constexpr int L = 8;
  static TS_MM_INLINE V zero() { return _mm256_setzero_ps(); }
  static TS_MM_INLINE V set1(T x) { return _mm256_set1_ps(x); }
  static TS_MM_INLINE V load(const T* p) { return _mm256_loadu_ps(p); }
  static TS_MM_INLINE V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static TS_MM_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static TS_MM_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static TS_MM_INLINE void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static TS_MM_INLINE T hsum(V v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
};

struct Ymm64 {
  using T = double;
  using V = __m256d;
  static constexpr int L = 4;
  static TS_MM_INLINE V zero() { return _mm256_setzero_pd(); }
  static TS_MM_INLINE V set1(T x) { return _mm256_set1_pd(x); }
  static TS_MM_INLINE V load(const T* p) { return _mm256_loadu_pd(p); }
  static TS_MM_INLINE V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static TS_MM_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static TS_MM_INLINE V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static TS_MM_INLINE void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static TS_MM_INLINE T hsum(V v) {
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
};

#include "cpu/matmul_kernels_body.h"

// Transposing pack in 8 x 8 (float) / 4 x 4 (double) register blocks: load 8 rows of 8
// consecutive k values, transpose in registers, store 8 runs of 8 values of one k each. The
// scalar loop does one element per load/store pair with R-strided stores; this moves 64 per 24
// shuffles. Rows past the last full block and the k tail use the scalar loop.
__attribute__((target(TS_MM_TARGET))) void tpack_f32(const float* src, int64_t ld, int R, int64_t kc, float* out) {
  const int R8 = R & ~7;
  const int64_t k8 = kc & ~int64_t(7);
  for (int r = 0; r < R8; r += 8) {
    const float* s = src + r * ld;
    for (int64_t p = 0; p < k8; p += 8) {
      __m256 r0 = _mm256_loadu_ps(s + 0 * ld + p), r1 = _mm256_loadu_ps(s + 1 * ld + p);
      __m256 r2 = _mm256_loadu_ps(s + 2 * ld + p), r3 = _mm256_loadu_ps(s + 3 * ld + p);
      __m256 r4 = _mm256_loadu_ps(s + 4 * ld + p), r5 = _mm256_loadu_ps(s + 5 * ld + p);
      __m256 r6 = _mm256_loadu_ps(s + 6 * ld + p), r7 = _mm256_loadu_ps(s + 7 * ld + p);
      __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* o = out + p * R + r;
      _mm256_storeu_ps(o + 0 * R, _mm256_permute2f128_ps(s0, s4, 0x20));
      _mm256_storeu_ps(o + 1 * R, _mm256_permute2f128_ps(s1, s5, 0x20));
      _mm256_storeu_ps(o + 2 * R, _mm256_permute2f128_ps(s2, s6, 0x20));
      _mm256_storeu_ps(o + 3 * R, _mm256_permute2f128_ps(s3, s7, 0x20));
      _mm256_storeu_ps(o + 4 * R, _mm256_permute2f128_ps(s0, s4, 0x31));
      _mm256_storeu_ps(o + 5 * R, _mm256_permute2f128_ps(s1, s5, 0x31));
      _mm256_storeu_ps(o + 6 * R, _mm256_permute2f128_ps(s2, s6, 0x31));
      _mm256_storeu_ps(o + 7 * R, _mm256_permute2f128_ps(s3, s7, 0x31));
    }
  }
  for (int r = R8; r < R; ++r)
    for (int64_t p = 0; p < k8; ++p) out[p * R + r] = src[r * ld + p];
  for (int64_t p = k8; p < kc; ++p)
    for (int r = 0; r < R; ++r) out[p * R + r] = src[r * ld + p];
}

__attribute__((target(TS_MM_TARGET))) void tpack_f64(const double* src, int64_t ld, int R, int64_t kc, double* out) {
  const int R4 = R & ~3;
  const int64_t k4 = kc & ~int64_t(3);
  for (int r = 0; r < R4; r += 4) {
    const double* s = src + r * ld;
    for (int64_t p = 0; p < k4; p += 4) {
      __m256d r0 = _mm256_loadu_pd(s + 0 * ld + p), r1 = _mm256_loadu_pd(s + 1 * ld + p);
      __m256d r2 = _mm256_loadu_pd(s + 2 * ld + p), r3 = _mm256_loadu_pd(s + 3 * ld + p);
      __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
      __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
      double* o = out + p * R + r;
      _mm256_storeu_pd(o + 0 * R, _mm256_permute2f128_pd(t0, t2, 0x20));
      _mm256_storeu_pd(o + 1 * R, _mm256_permute2f128_pd(t1, t3, 0x20));
      _mm256_storeu_pd(o + 2 * R, _mm256_permute2f128_pd(t0, t2, 0x31));
      _mm256_storeu_pd(o + 3 * R, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
  }
  for (int r = R4; r < R; ++r)
    for (int64_t p = 0; p < k4; ++p) out[p * R + r] = src[r * ld + p];
  for (int64_t p = k4; p < kc; ++p)
    for (int r = 0; r < R; ++r) out[p * R + r] = src[r * ld + p];
}

#undef TS_MM_INLINE
#undef TS_MM_TARGET

}  // namespace

TransposePack<float> avx2_tpack_f32() { return &tpack_f32; }
TransposePack<double> avx2_tpack_f64() { return &tpack_f64; }

// float32: the classic Haswell 6 x 16 tile = 12 ymm accumulators + 2 B vectors + 1 broadcast.
GemmKernel<float> avx2_f32() {
  GemmKernel<float> k;
  k.fn = &ukernel<Ymm32, 6, 2>;
  k.narrow[1] = &ukernel<Ymm32, 6, 1, 2>;
  k.lanes = 8;
  k.tpack = &tpack_f32;
  k.smallm = &smallm<Ymm32, 2, 4>;
  k.small_m = 8;
  k.mr = 6;
  k.nr = 16;
  k.mc = 120;
  k.kc = 256;
  k.name = "avx2 6x16";
  return k;
}

// float64: 6 x 8, the same register shape with 4 lanes.
GemmKernel<double> avx2_f64() {
  GemmKernel<double> k;
  k.fn = &ukernel<Ymm64, 6, 2>;
  k.narrow[1] = &ukernel<Ymm64, 6, 1, 2>;
  k.lanes = 4;
  k.tpack = &tpack_f64;
  k.smallm = &smallm<Ymm64, 2, 4>;
  k.small_m = 8;
  k.mr = 6;
  k.nr = 8;
  k.mc = 96;
  k.kc = 256;
  k.name = "avx2 6x8";
  return k;
}

}  // namespace tessera::cpu::matmul_detail

#else  // not x86: no AVX2 kernels

namespace tessera::cpu::matmul_detail {
GemmKernel<float> avx2_f32() { return {}; }
GemmKernel<double> avx2_f64() { return {}; }
TransposePack<float> avx2_tpack_f32() { return nullptr; }
TransposePack<double> avx2_tpack_f64() { return nullptr; }
}  // namespace tessera::cpu::matmul_detail

#endif
