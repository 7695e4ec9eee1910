// AVX2 + FMA matmul micro-kernels (ymm, 16 vector registers), compiled through function target
// attributes so they exist in portable builds too; matmul.cpp calls them on CPUs without AVX-512.
#include "cpu/matmul_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

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
  static TS_MM_INLINE void store(T* p, V v) { _mm256_storeu_ps(p, v); }
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
  static TS_MM_INLINE void store(T* p, V v) { _mm256_storeu_pd(p, v); }
};

#include "cpu/matmul_kernels_body.h"

#undef TS_MM_INLINE
#undef TS_MM_TARGET

}  // namespace

// float32: the classic Haswell 6 x 16 tile = 12 ymm accumulators + 2 B vectors + 1 broadcast.
GemmKernel<float> avx2_f32() {
  GemmKernel<float> k;
  k.fn = &ukernel<Ymm32, 6, 2>;
  k.mr = 6;
  k.nr = 16;
  k.mc = 120;
  k.kc = 256;
  k.nc = 4096;
  k.name = "avx2 6x16";
  return k;
}

// float64: 6 x 8, the same register shape with 4 lanes.
GemmKernel<double> avx2_f64() {
  GemmKernel<double> k;
  k.fn = &ukernel<Ymm64, 6, 2>;
  k.mr = 6;
  k.nr = 8;
  k.mc = 96;
  k.kc = 256;
  k.nc = 2048;
  k.name = "avx2 6x8";
  return k;
}

}  // namespace tessera::cpu::matmul_detail

#else  // not x86: no AVX2 kernels

namespace tessera::cpu::matmul_detail {
GemmKernel<float> avx2_f32() { return {}; }
GemmKernel<double> avx2_f64() { return {}; }
}  // namespace tessera::cpu::matmul_detail

#endif
