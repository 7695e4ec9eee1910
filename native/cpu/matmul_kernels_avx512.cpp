// AVX-512 matmul micro-kernels (zmm, 32 vector registers), compiled through function target
// attributes so they exist in portable builds too; matmul.cpp only calls them when
// cpu::simd_level() reports AVX-512. Shapes and blocking are explained at the top of matmul.cpp.
#include "cpu/matmul_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace tessera::cpu::matmul_detail {
namespace {

#define TS_MM_TARGET "avx512f,avx512dq,avx2,fma"
#define TS_MM_INLINE __attribute__((target(TS_MM_TARGET), always_inline)) inline

struct Zmm32 {
  using T = float;
  using V = __m512;
  static constexpr int L = 16;
  static TS_MM_INLINE V zero() { return _mm512_setzero_ps(); }
  static TS_MM_INLINE V set1(T x) { return _mm512_set1_ps(x); }
  static TS_MM_INLINE V load(const T* p) { return _mm512_loadu_ps(p); }
  static TS_MM_INLINE V bcast(const T* p) { return _mm512_set1_ps(*p); }
  static TS_MM_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static TS_MM_INLINE void store(T* p, V v) { _mm512_storeu_ps(p, v); }
};

struct Zmm64 {
  using T = double;
  using V = __m512d;
  static constexpr int L = 8;
  static TS_MM_INLINE V zero() { return _mm512_setzero_pd(); }
  static TS_MM_INLINE V set1(T x) { return _mm512_set1_pd(x); }
  static TS_MM_INLINE V load(const T* p) { return _mm512_loadu_pd(p); }
  static TS_MM_INLINE V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static TS_MM_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static TS_MM_INLINE void store(T* p, V v) { _mm512_storeu_pd(p, v); }
};

#include "cpu/matmul_kernels_body.h"

#undef TS_MM_INLINE
#undef TS_MM_TARGET

}  // namespace

// float32: 12 x 32 tile = 24 zmm accumulators + 2 B vectors + 1 broadcast (of 32 registers).
GemmKernel<float> avx512_f32() {
  GemmKernel<float> k;
  k.fn = &ukernel<Zmm32, 12, 2>;
  k.mr = 12;
  k.nr = 32;
  k.mc = 192;
  k.kc = 256;
  k.nc = 4096;
  k.name = "avx512 12x32";
  return k;
}

// float64: 12 x 16 tile, the same register shape with 8 lanes.
GemmKernel<double> avx512_f64() {
  GemmKernel<double> k;
  k.fn = &ukernel<Zmm64, 12, 2>;
  k.mr = 12;
  k.nr = 16;
  k.mc = 192;
  k.kc = 256;
  k.nc = 2048;
  k.name = "avx512 12x16";
  return k;
}

}  // namespace tessera::cpu::matmul_detail

#else  // not x86: no AVX-512 kernels

namespace tessera::cpu::matmul_detail {
GemmKernel<float> avx512_f32() { return {}; }
GemmKernel<double> avx512_f64() { return {}; }
}  // namespace tessera::cpu::matmul_detail

#endif
