// The register-blocked micro-kernel template, shared by the AVX-512 and AVX2 kernel files. It is
// written once against a small vector "traits" type VT (zero/load/bcast/fma/store) and included
// by each instruction-set file with TS_MM_TARGET set to that file's target string, so every
// instantiation is compiled for exactly one instruction set (an AVX2 kernel must not pick up
// EVEX/zmm code) and needs no -march flag. Deliberately no include guard: included once per file.
//
// Tile: MR rows x NV vectors of VT::L lanes (NR = NV * L columns), MR * NV accumulators held in
// registers for the whole k loop. Per k step: NV vector loads of packed B, MR broadcasts of packed
// A (folded into the FMA as a memory operand), MR * NV FMAs. C is touched once, at the end.
#ifndef TS_MM_TARGET
#error "define TS_MM_TARGET before including matmul_kernels_body.h"
#endif

template <typename VT, int MR, int NV>
__attribute__((target(TS_MM_TARGET))) void ukernel(int64_t k, const typename VT::T* __restrict a,
                                                   const typename VT::T* __restrict b,
                                                   typename VT::T* __restrict c, int64_t ldc,
                                                   typename VT::T beta) {
  using V = typename VT::V;
  constexpr int L = VT::L;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = VT::zero();
  }
  // The tile of C is written at the end; start pulling its lines in now.
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV * L * (int)sizeof(typename VT::T); v += 64)
      _mm_prefetch((const char*)(c + r * ldc) + v, _MM_HINT_T0);
  }

  int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = VT::load(b + v * L);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        V av = VT::bcast(a + r);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = VT::fma(av, bv[v], acc[r][v]);
      }
      a += MR;
      b += NV * L;
    }
  }
  for (; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = VT::load(b + v * L);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      V av = VT::bcast(a + r);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = VT::fma(av, bv[v], acc[r][v]);
    }
    a += MR;
    b += NV * L;
  }

  if (beta == typename VT::T(0)) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) VT::store(c + r * ldc + v * L, acc[r][v]);
    }
  } else {
    const V bb = VT::set1(beta);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        typename VT::T* cp = c + r * ldc + v * L;
        VT::store(cp, VT::fma(bb, VT::load(cp), acc[r][v]));
      }
    }
  }
}
