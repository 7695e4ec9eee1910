// The register-blocked micro-kernel template, shared by the AVX-512 and AVX2 kernel files. It is
// written once against a small vector "traits" type VT (zero/load/bcast/fma/store) and included
// by each instruction-set file with TS_MM_TARGET set to that file's target string, so every
// instantiation is compiled for exactly one instruction set (an AVX2 kernel must not pick up
// EVEX/zmm code) and needs no -march flag. Deliberately no include guard: included once per file.
//
// Tile: MR rows x NV vectors of VT::L lanes (NR = NV * L columns), MR * NV accumulators held in
// registers for the whole k loop. BS (vectors per packed B row) is NV except for the narrow
// variants that compute only the first NV vectors of a wider panel (N edge tiles). Per k step: NV vector loads of packed B, MR broadcasts of packed
// A (folded into the FMA as a memory operand), MR * NV FMAs. C is touched once, at the end.
#ifndef TS_MM_TARGET
#error "define TS_MM_TARGET before including matmul_kernels_body.h"
#endif

template <typename VT, int MR, int NV, int BS = NV>
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
      b += BS * L;
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
    b += BS * L;
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

// ---------------------------------------------------------------------------------------------
// Small-M path (M up to a few rows: matrix-vector-like products). Packing B would cost a full
// extra pass over B for very little reuse, so these read B in place and keep only a few rows of
// C in registers. Columns [j0, j1) of C (row-major, ldc) for all M rows; C = A*B + beta*C, and
// beta == 0 never reads C.

// B row-major (unit column stride, rows ldb apart): B is streamed row by row, KU rows at a time,
// into MRS rows of C kept in memory (they stay in L1/L2). Walking down a column block of B instead
// would touch a new page every row (a TLB miss per load once B is large).
template <typename VT, int MRS, int KU>
__attribute__((target(TS_MM_TARGET))) void smallm_rowb_rows(int64_t K, const typename VT::T* a, int64_t rsa,
                                                           int64_t csa, const typename VT::T* b, int64_t ldb,
                                                           typename VT::T* c, int64_t ldc, typename VT::T beta,
                                                           int64_t n) {
  using T = typename VT::T;
  using V = typename VT::V;
  constexpr int L = VT::L;
  const int64_t nv = n / L * L;
  for (int64_t p0 = 0; p0 < K; p0 += KU) {
    const int ku = (int)std::min<int64_t>(KU, K - p0);
    const bool first = p0 == 0;
    T as[MRS][KU];
    V av[MRS][KU];
#pragma GCC unroll 8
    for (int r = 0; r < MRS; ++r)
#pragma GCC unroll 8
      for (int u = 0; u < KU; ++u) {
        as[r][u] = u < ku ? a[r * rsa + (p0 + u) * csa] : T(0);
        av[r][u] = VT::set1(as[r][u]);
      }
    const T* bp = b + p0 * ldb;
    const V bb = VT::set1(beta);
    if (ku == KU) {
      for (int64_t j = 0; j < nv; j += L) {
        V acc[MRS];
#pragma GCC unroll 8
        for (int r = 0; r < MRS; ++r)
          acc[r] = !first ? VT::load(c + r * ldc + j)
                          : (beta == T(0) ? VT::zero() : VT::mul(bb, VT::load(c + r * ldc + j)));
#pragma GCC unroll 8
        for (int u = 0; u < KU; ++u) {
          const V bv = VT::load(bp + u * ldb + j);
#pragma GCC unroll 8
          for (int r = 0; r < MRS; ++r) acc[r] = VT::fma(av[r][u], bv, acc[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MRS; ++r) VT::store(c + r * ldc + j, acc[r]);
      }
    } else {
      for (int64_t j = 0; j < nv; j += L) {
        V acc[MRS];
#pragma GCC unroll 8
        for (int r = 0; r < MRS; ++r)
          acc[r] = !first ? VT::load(c + r * ldc + j)
                          : (beta == T(0) ? VT::zero() : VT::mul(bb, VT::load(c + r * ldc + j)));
        for (int u = 0; u < ku; ++u) {
          const V bv = VT::load(bp + u * ldb + j);
#pragma GCC unroll 8
          for (int r = 0; r < MRS; ++r) acc[r] = VT::fma(av[r][u], bv, acc[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MRS; ++r) VT::store(c + r * ldc + j, acc[r]);
      }
    }
    for (int64_t j = nv; j < n; ++j)
      for (int r = 0; r < MRS; ++r) {
        T s = !first ? c[r * ldc + j] : (beta == T(0) ? T(0) : beta * c[r * ldc + j]);
        for (int u = 0; u < ku; ++u) s += as[r][u] * bp[u * ldb + j];
        c[r * ldc + j] = s;
      }
  }
}

// B column-major (unit row stride, columns ldb apart) and A rows contiguous along k (lda apart):
// each C element is a dot product along k; MRS rows x NCOL columns of vector partial sums.
template <typename VT, int MRS, int NCOL>
__attribute__((target(TS_MM_TARGET))) void smallm_colb_block(int64_t K, const typename VT::T* a, int64_t lda,
                                                            const typename VT::T* b, int64_t ldb,
                                                            typename VT::T* c, int64_t ldc, typename VT::T beta) {
  using T = typename VT::T;
  using V = typename VT::V;
  constexpr int L = VT::L;
  V acc[MRS][NCOL];
#pragma GCC unroll 8
  for (int r = 0; r < MRS; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NCOL; ++j) acc[r][j] = VT::zero();
  int64_t p = 0;
  for (; p + L <= K; p += L) {
    V av[MRS];
#pragma GCC unroll 8
    for (int r = 0; r < MRS; ++r) av[r] = VT::load(a + r * lda + p);
#pragma GCC unroll 8
    for (int j = 0; j < NCOL; ++j) {
      const V bv = VT::load(b + j * ldb + p);
#pragma GCC unroll 8
      for (int r = 0; r < MRS; ++r) acc[r][j] = VT::fma(av[r], bv, acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MRS; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NCOL; ++j) {
      T s = VT::hsum(acc[r][j]);
      for (int64_t q = p; q < K; ++q) s += a[r * lda + q] * b[j * ldb + q];
      T* cp = c + r * ldc + j;
      *cp = beta == T(0) ? s : s + beta * *cp;
    }
}

// Columns [j0, j1) of an M-row product, M small. Layout: rowb (csb == 1) or colb (rsb == 1 and
// csa == 1, the caller guarantees it).
template <typename VT, int MRS, int NCOL>
__attribute__((target(TS_MM_TARGET))) void smallm(int64_t M, int64_t K, const typename VT::T* a, int64_t rsa,
                                                 int64_t csa, const typename VT::T* b, int64_t rsb, int64_t csb,
                                                 typename VT::T* c, int64_t ldc, typename VT::T beta, int64_t j0,
                                                 int64_t j1) {
  if (csb == 1) {
    int64_t i = 0;
    for (; i + MRS <= M; i += MRS)
      smallm_rowb_rows<VT, MRS, 4>(K, a + i * rsa, rsa, csa, b + j0, rsb, c + i * ldc + j0, ldc, beta, j1 - j0);
    for (; i < M; ++i)
      smallm_rowb_rows<VT, 1, 4>(K, a + i * rsa, rsa, csa, b + j0, rsb, c + i * ldc + j0, ldc, beta, j1 - j0);
  } else {
    int64_t j = j0;
    for (; j + NCOL <= j1; j += NCOL) {
      int64_t i = 0;
      for (; i + MRS <= M; i += MRS)
        smallm_colb_block<VT, MRS, NCOL>(K, a + i * rsa, rsa, b + j * csb, csb, c + i * ldc + j, ldc, beta);
      for (; i < M; ++i) smallm_colb_block<VT, 1, NCOL>(K, a + i * rsa, rsa, b + j * csb, csb, c + i * ldc + j, ldc, beta);
    }
    for (; j < j1; ++j)
      for (int64_t i = 0; i < M; ++i)
        smallm_colb_block<VT, 1, 1>(K, a + i * rsa, rsa, b + j * csb, csb, c + i * ldc + j, ldc, beta);
  }
}
