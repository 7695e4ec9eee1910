// AVX-512 matmul micro-kernels (zmm, 32 vector registers), compiled through function target
// attributes so they exist in portable builds too; matmul.cpp only calls them when
// cpu::simd_level() reports AVX-512. Shapes and blocking are explained at the top of matmul.cpp.
#include "cpu/matmul_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>

namespace tessera::cpu::matmul_detail {
namespace {

#define TS_MM_TARGET "avx512f,avx2,fma"
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
  static TS_MM_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static TS_MM_INLINE void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  // Through memory: GCC 12 warns (-Wuninitialized) inside _mm512_reduce_add_ps and the lane
  // extract/shuffle intrinsics; this runs once per dot product, outside the k loop.
  static TS_MM_INLINE T hsum(V v) {
    alignas(64) T t[L];
    _mm512_store_ps(t, v);
    T s = 0;
    for (int i = 0; i < L; ++i) s += t[i];
    return s;
  }
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
  static TS_MM_INLINE V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static TS_MM_INLINE void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static TS_MM_INLINE T hsum(V v) {
    alignas(64) T t[L];
    _mm512_store_pd(t, v);
    T s = 0;
    for (int i = 0; i < L; ++i) s += t[i];
    return s;
  }
};

#include "cpu/matmul_kernels_body.h"

#undef TS_MM_INLINE
#undef TS_MM_TARGET

}  // namespace

// float32: 8 x 48 tile = 24 zmm accumulators + 3 B vectors + 1 broadcast (of 32 registers). Per k
// step 3 vector loads + 8 broadcasts feed 24 FMAs. Measured on Zen 5 against 12 x 32, 14 x 32,
// 6 x 64 and 4 x 64: 8 x 48 was fastest (it also packs row-major A with whole 8 x 8 transposes).
GemmKernel<float> avx512_f32() {
  GemmKernel<float> k;
  k.fn = &ukernel<Zmm32, 8, 3>;
  k.narrow[1] = &ukernel<Zmm32, 8, 1, 3>;
  k.narrow[2] = &ukernel<Zmm32, 8, 2, 3>;
  k.lanes = 16;
  k.tpack = avx2_tpack_f32();
  k.smallm = &smallm<Zmm32, 4, 4>;
  k.small_m = 16;
  k.mr = 8;
  k.nr = 48;
  k.mc = 192;
  k.kc = 384;
  k.name = "avx512 8x48";
  return k;
}

// float64: 8 x 24, the same register shape with 8 lanes.
GemmKernel<double> avx512_f64() {
  GemmKernel<double> k;
  k.fn = &ukernel<Zmm64, 8, 3>;
  k.narrow[1] = &ukernel<Zmm64, 8, 1, 3>;
  k.narrow[2] = &ukernel<Zmm64, 8, 2, 3>;
  k.lanes = 8;
  k.tpack = avx2_tpack_f64();
  k.smallm = &smallm<Zmm64, 4, 4>;
  k.small_m = 16;
  k.mr = 8;
  k.nr = 24;
  k.mc = 192;
  k.kc = 384;
  k.name = "avx512 8x24";
  return k;
}

}  // namespace tessera::cpu::matmul_detail

#else  // not x86: no AVX-512 kernels

namespace tessera::cpu::matmul_detail {
GemmKernel<float> avx512_f32() { return {}; }
GemmKernel<double> avx512_f64() { return {}; }
}  // namespace tessera::cpu::matmul_detail

#endif
