// Flash attention (FlashAttention-2, Dao 2023) on the CPU, forward and backward; contract in
// flash_attention.h. O = softmax(S) V with S = scale * Q K^T (+ masks), per (batch, head).
//
// ALGORITHM. Queries are cut into blocks of Bq rows and keys into blocks of Bk rows (both 96 by
// default: a multiple of every micro-kernel's MR and NR; smaller when the sequence is shorter).
// Neither the [Lq, Lk] scores nor the probabilities ever exist in memory beyond one Bq x Bk tile.
//
//   forward, for each query block Qi (in parallel over (batch, head, query block)):
//     m = -inf, l = 0, O~ = 0                       running row max, row sum, unnormalised output
//     for each key block Kj, Vj (causal: only blocks with a key <= the block's last query;
//                                 key padding: blocks whose keys are all padded are skipped):
//       S    = scale * Qi Kj^T, blocked entries -inf         (one Bq x Bk tile)
//       m'   = max(m, rowmax(S));  alpha = exp(m - m')      (m' = -inf -> use 0: no inf - inf)
//       P    = exp(S - m');        l = alpha * l + rowsum(P)
//       O~   = alpha * O~ + P Vj;  m = m'
//     O = O~ / l,  L = m + log(l)                   (FA-2: rescale by 1/l once, at the end)
//     L is saved as the pair (m, 1/l), L = m - log(1/l), so that the backward forms
//     P = exp(S - m) * (1/l) with the same roundings as the forward and the composition
//     (exp(S - L) in float32 has the rounding error of the larger argument |S - L|, and a row-wide
//     one from rounding L, both up to a few 1e-7 relative in P).
//     A row with every key blocked has l = 0: O = 0 and L = -inf, saved as m = -inf (the marker
//     the backward reads), and no NaN is ever formed.
//
//   backward (FA-2), with D_i = rowsum(dO_i * O_i) and the saved L = (m, 1/l):
//     for each key block Kj, Vj:                    dKj = dVj = 0
//       for each query block Qi (causal: only blocks with a query >= the block's first key):
//         S  = scale * Qi Kj^T (+ masks);  P = exp(S - m_i) / l_i   *recomputed*, not stored
//         dVj += P^T dOi
//         dP  = dOi Vj^T;  dS = P * (dP - D_i)
//         dQi += scale * dS Kj;  dKj += scale * dS^T Qi
//     Rows with L = -inf use m = +inf and 1/l = 0, so P = 0 there and every gradient they touch
//     is exactly 0.
//     Recomputing S and P costs one extra Bq x Bk x hd GEMM per tile (5 GEMMs in the backward
//     instead of 4) and saves the O(Lq * Lk) memory of storing P.
//
// PARALLELISM AND DETERMINISM. Two modes, chosen per call from B*H and the thread count.
//   Head mode (B*H >= 2 * threads, or one thread): a unit is a whole head, taken dynamically.
//     The thread packs that head's operands lazily into its own cache; in the backward it also
//     accumulates the head's dQ in a private buffer and writes it out at the end. Nothing is
//     shared between threads at all.
//   Shared mode (fewer heads than that): the operands of every head (K, V^T in the forward; Q, dO
//     panels, D and L in the backward) are packed once, in parallel, into one shared buffer, and
//     the units get finer so that every thread has work: forward units are (head, query block);
//     backward units are (head, segment of key blocks), nseg = min(key blocks, B*H >= threads ?
//     2 : ceil(threads / (B*H))) segments of about equal work per head (causal: counted in
//     tiles). A unit owns dK, dV of its key blocks; dQ, the one shared result, goes to a partial
//     per unit, and a second parallel pass adds a head's partials in segment order.
// Forward units own their output rows (causal: the heaviest query block of a head is taken
// first). Every sum is taken in a fixed order, so results do not depend on scheduling; they
// depend on the thread count only through nseg (backward dQ, shared mode).
//
// TILES ON THE MATMUL MICRO-KERNELS. Every product is a run of the register-blocked micro-kernels
// of cpu/matmul_kernels.h (MR x NR tiles of C from packed A and B panels; AVX-512 8 x 48 float32
// / 8 x 24 float64, AVX2 6 x 16 / 6 x 8, or a generic 4 x 2-vector kernel here), so the tiles run
// at GEMM speed. The orientation of each product is chosen so that the softmax work runs along
// the vector lanes and the tiles come out of one product already in the packed layout the next
// one reads:
//   forward  S^T = K Q^T (keys = rows, queries = lanes). The column-wise (per query) max, exp and
//            sum are then plain vector loops over queries, and the tile, stored in NR-wide query
//            panels, *is* the packed B operand of O^T += V^T P^T. O^T is transposed to O once per
//            query block.
//   backward S = Q K^T and dP = dO V^T (queries = rows, keys = lanes), so P and dS are in the
//            packed-B layout of dV^T += dO^T P and dK^T += Q^T dS; dQ^T += K^T dS^T needs dS^T,
//            made by one SIMD 8 x 8 transpose of the tile. dK^T, dV^T, dQ^T are transposed on
//            write-out.
// Packed operands are built once per head per call (see the modes above), so packing is O(L hd)
// against O(L^2 hd) multiply-adds.
// Exponentials use the vectorised exp of cpu/vec_exp.h (0.78 ulp float32). The row sums l and
// D_i accumulate in double.
//
// MEMORY. No [Lq, Lk] buffer. Head mode: per thread one head's packed operands (2 L hd
// forward, about 4 L hd backward) plus its dQ buffer and a few Bq x Bk tiles. Shared mode: the
// packed operands of all heads (about the size of k + v forward, of 2 q + 2 grad_out backward)
// plus, in the backward, nseg * B*H dQ partials of Lq x hd (about threads * Lq * hd). All of it
// comes from the tracked host allocator (core/storage.h), so memoryStats() reports it; it is
// released before the op returns.
//
// Environment (tuning and tests only): TESSERA_MATMUL_KERNEL=generic|avx2|avx512 caps the
// micro-kernel as for matmul; TESSERA_FA_BLOCK=<n> sets Bq = Bk (rounded to a multiple of
// lcm(MR, NR)).
#include "cpu/flash_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/storage.h"
#include "cpu/cpu_features.h"
#include "cpu/matmul_kernels.h"
#include "cpu/parallel.h"
#include "cpu/strided.h"
#include "cpu/vec_exp.h"

namespace tessera::cpu {

namespace {

using matmul_detail::GemmKernel;
using matmul_detail::MicroKernel;
using matmul_detail::TransposePack;

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t rup(int64_t a, int64_t b) { return cdiv(a, b) * b; }
int64_t gcd64(int64_t a, int64_t b) { return b == 0 ? a : gcd64(b, a % b); }

// ---------------------------------------------------------------------------------------------
// Micro-kernel selection (the matmul ones; a generic fallback for CPUs without AVX2).

// C (MR x NV*L, rows ldc apart) = A B + beta C from packed panels; GCC/Clang vector extensions.
template <typename T, int MR, int NV>
void ukernel_generic(int64_t k, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc, T beta) {
  typedef T V __attribute__((vector_size(16)));
  constexpr int L = 16 / sizeof(T);
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t p = 0; p < k; ++p) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + v * L, sizeof(V));
    for (int r = 0; r < MR; ++r) {
      const V av = V{} + a[r];
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
    a += MR;
    b += NV * L;
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      T t[L];
      std::memcpy(t, &acc[r][v], sizeof(V));
      T* cr = c + r * ldc + v * L;
      for (int j = 0; j < L; ++j) cr[j] = beta == T(0) ? t[j] : t[j] + beta * cr[j];
    }
}

template <typename T>
struct Kern {
  MicroKernel<T> fn = nullptr;
  TransposePack<T> tp = nullptr;  // SIMD transposing pack (null: scalar loop)
  int mr = 0, nr = 0;
  int lanes = 1;
  MicroKernel<T> narrow[4] = {nullptr, nullptr, nullptr, nullptr};  // first v vectors of a panel only

  // The kernel for a panel whose first `cols` columns are needed, and how many it computes: a
  // narrow variant when one covers them (short sequences: 17 keys need 32 of 48 columns).
  MicroKernel<T> for_cols(int64_t cols, int64_t* width) const {
    const int64_t nv = cdiv(cols, lanes);
    if (nv * lanes < nr && nv < 4 && narrow[nv]) {
      *width = nv * lanes;
      return narrow[nv];
    }
    *width = nr;
    return fn;
  }
};

SimdLevel kernel_level() {
  static const SimdLevel level = [] {
    SimdLevel l = simd_level();
    if (const char* env = std::getenv("TESSERA_MATMUL_KERNEL")) {
      SimdLevel want = l;
      if (!std::strcmp(env, "generic")) want = SimdLevel::Generic;
      else if (!std::strcmp(env, "avx2")) want = SimdLevel::AVX2;
      else if (!std::strcmp(env, "avx512")) want = SimdLevel::AVX512;
      if ((int)want < (int)l) l = want;
    }
    return l;
  }();
  return level;
}

template <typename T>
Kern<T> from_gemm(const GemmKernel<T>& g) {
  Kern<T> k;
  k.fn = g.fn;
  k.tp = g.tpack;
  k.mr = g.mr;
  k.nr = g.nr;
  k.lanes = g.lanes;
  for (int v = 0; v < 4; ++v) k.narrow[v] = g.narrow[v];
  return k;
}

template <typename T>
Kern<T> select_kern();

template <>
Kern<float> select_kern<float>() {
  static const Kern<float> k = [] {
    const SimdLevel l = kernel_level();
    if (l == SimdLevel::AVX512 && matmul_detail::avx512_f32().fn) return from_gemm(matmul_detail::avx512_f32());
    if ((int)l >= (int)SimdLevel::AVX2 && matmul_detail::avx2_f32().fn) return from_gemm(matmul_detail::avx2_f32());
    Kern<float> g;
    g.fn = &ukernel_generic<float, 4, 2>;
    g.mr = 4;
    g.nr = 8;
    return g;
  }();
  return k;
}

template <>
Kern<double> select_kern<double>() {
  static const Kern<double> k = [] {
    const SimdLevel l = kernel_level();
    if (l == SimdLevel::AVX512 && matmul_detail::avx512_f64().fn) return from_gemm(matmul_detail::avx512_f64());
    if ((int)l >= (int)SimdLevel::AVX2 && matmul_detail::avx2_f64().fn) return from_gemm(matmul_detail::avx2_f64());
    Kern<double> g;
    g.fn = &ukernel_generic<double, 4, 2>;
    g.mr = 4;
    g.nr = 4;
    return g;
  }();
  return k;
}

constexpr int kMaxNR = 64;  // widest NR of any kernel (48)

// Block size: TESSERA_FA_BLOCK or 96, a multiple of lcm(MR, NR), no larger than needed for len.
int64_t block_size(int mr, int nr, int64_t len) {
  static const int64_t want = [] {
    const char* e = std::getenv("TESSERA_FA_BLOCK");
    const int64_t v = e ? std::atoll(e) : 0;
    return v > 0 ? v : int64_t(96);
  }();
  const int64_t unit = (int64_t)mr / gcd64(mr, nr) * nr;
  const int64_t b = std::max(unit, want / unit * unit);
  return std::min(b, rup(std::max<int64_t>(len, 1), unit));
}

// ---------------------------------------------------------------------------------------------
// Packing helpers.

// Transposing pack: out[p * R + r] = src[r * ld + p] for r < rows (0 for rows <= r < R), p < kc.
template <typename T>
void tpack(const Kern<T>& kr, const T* src, int64_t ld, int R, int64_t rows, int64_t kc, T* out) {
  if (kr.tp && kc >= 8) {
    if (rows == R) {
      kr.tp(src, ld, R, kc, out);
      return;
    }
    // A partial panel (short sequences, edges): copy its rows into a zero-padded R-row block
    // and use the SIMD transpose on that (the scalar loop below is ~3x slower).
    constexpr int64_t kTmp = 8192;
    if (R * kc <= kTmp) {
      alignas(64) T tmp[kTmp];
      for (int64_t r = 0; r < rows; ++r) std::memcpy(tmp + r * kc, src + r * ld, sizeof(T) * kc);
      std::memset(tmp + rows * kc, 0, sizeof(T) * (R - rows) * kc);
      kr.tp(tmp, kc, R, kc, out);
      return;
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    T* o = out + p * R;
    for (int64_t r = 0; r < rows; ++r) o[r] = src[r * ld + p];
    for (int64_t r = rows; r < R; ++r) o[r] = T(0);
  }
}

// Straight pack: out[p * R + r] = src[p * ld + r] for r < cols (0 for cols <= r < R), p < kc.
template <typename T>
void cpack(const T* src, int64_t ld, int R, int64_t cols, int64_t kc, T* out) {
  for (int64_t p = 0; p < kc; ++p) {
    const T* s = src + p * ld;
    T* o = out + p * R;
    if (cols == R) {
#pragma omp simd
      for (int r = 0; r < R; ++r) o[r] = s[r];
    } else {
      for (int64_t r = 0; r < cols; ++r) o[r] = s[r];
      for (int64_t r = cols; r < R; ++r) o[r] = T(0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor access and scratch memory.

template <typename T>
struct Mat {  // [B, H, L, d] with unit stride on d
  T* p;
  int64_t sb, sh, sl;
  T* row(int64_t b, int64_t h, int64_t l) const { return p + b * sb + h * sh + l * sl; }
};

template <typename T>
Mat<T> mat_of(const TensorRef& t) {
  return {t.data<T>(), t.strides[0], t.strides[1], t.strides[2]};
}

struct Lse {  // [B, H, L, 2]: (m, 1/l), the log-sum-exp L = m - log(1/l)
  int64_t sb, sh, sl, s2;
  int64_t at(int64_t b, int64_t h, int64_t l) const { return b * sb + h * sh + l * sl; }
};

// Host memory from the tracked allocator (memoryStats() sees it), freed on scope exit.
struct Scratch {
  Storage* s = nullptr;
  Scratch(size_t bytes, bool zero) { s = storage_alloc(std::max<size_t>(bytes, 64), Device::CPU, zero); }
  ~Scratch() {
    storage_release(s);
    delete s;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  char* data() const { return static_cast<char*>(s->data); }
};

// Bump allocation of 64-byte aligned arrays from a base pointer (null: only measure).
struct Bump {
  char* base;
  size_t used = 0;
  template <typename U>
  U* take(int64_t n) {
    U* r = base ? reinterpret_cast<U*>(base + used) : nullptr;
    used += (size_t)rup(std::max<int64_t>(n, 1) * (int64_t)sizeof(U), 64);
    return r;
  }
};

// The key padding mask as an additive bias (0 or -inf) per (batch, key), and per (batch, key
// block) whether every key of the block is padded. Stored in shared scratch.
template <typename T>
struct KeyMask {
  const T* bias = nullptr;      // [B * Lk], null when there is no mask
  const uint8_t* full = nullptr;  // [B * nkb]
};

template <typename T>
KeyMask<T> build_mask(const TensorRef* m, int64_t B, int64_t Lk, int64_t Bk, int64_t nkb, Bump& bump) {
  KeyMask<T> km;
  if (!m) return km;
  T* bias = bump.take<T>(B * Lk);
  uint8_t* full = bump.take<uint8_t>(B * nkb);
  if (!bump.base) return km;
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < Lk; ++j) {
      const int64_t off = m->offset + b * m->strides[0] + j * m->strides[1];
      bool blocked;
      if (m->dtype == DType::F32) blocked = static_cast<const float*>(m->storage->data)[off] != 0.0f;
      else if (m->dtype == DType::F64) blocked = static_cast<const double*>(m->storage->data)[off] != 0.0;
      else blocked = static_cast<const int32_t*>(m->storage->data)[off] != 0;
      bias[b * Lk + j] = blocked ? ninf : T(0);
    }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t jb = 0; jb < nkb; ++jb) {
      bool all = true;
      for (int64_t j = jb * Bk; j < std::min(Lk, (jb + 1) * Bk) && all; ++j) all = bias[b * Lk + j] != T(0);
      full[b * nkb + jb] = all;
    }
  km.bias = bias;
  km.full = full;
  return km;
}

// Below this many multiply-adds a call runs on the calling thread only.
constexpr int64_t kParallelMinWork = int64_t(1) << 20;

// ---------------------------------------------------------------------------------------------
// Forward.

template <typename T>
struct Fwd {
  Kern<T> kr;
  Mat<T> q, k, v, o;
  T* lse;
  Lse ls;
  KeyMask<T> mask;
  int64_t B, H, Lq, Lk, hd, hdv;
  int64_t Bq, Bk, nqb, nkb, hdvp, Lkp;
  bool causal;
  T scale;
  T *sharedK = nullptr, *sharedV = nullptr;  // every head's packed K / V^T (shared mode), else null
  int64_t kv_head() const { return Lkp * (hd + hdvp); }  // elements of one head's packed K and V^T
};

template <typename T>
struct FwdScratch {
  T *Kp, *Vt, *Qb, *St, *Ot, *m, *alpha, *msafe, *cs;
  double* l;
  int64_t* ktag;  // ktag[j] = the head whose key block j is in Kp / Vt, or -1
  void carve(Bump& bp, const Fwd<T>& a) {
    Kp = a.sharedK ? nullptr : bp.take<T>(a.Lkp * a.hd);
    Vt = a.sharedK ? nullptr : bp.take<T>(a.hdvp * a.Lkp);
    Qb = bp.take<T>(a.hd * a.Bq);
    St = bp.take<T>(a.Bk * a.Bq);
    Ot = bp.take<T>(a.hdvp * a.Bq);
    m = bp.take<T>(a.Bq);
    alpha = bp.take<T>(a.Bq);
    msafe = bp.take<T>(a.Bq);
    cs = bp.take<T>(a.Bq);
    l = bp.take<double>(a.Bq);
    ktag = bp.take<int64_t>(a.nkb);
  }
};

// Packed K (MR-row panels of keys along hd: A operand of S^T = K Q^T) and V^T (MR-row panels of
// value dims along keys: A operand of O^T += V^T P^T) for key block j of head bh.
template <typename T>
void fwd_pack_kv(const Fwd<T>& a, T* Kp, T* Vt, int64_t b, int64_t h, int64_t j) {
  const int MR = a.kr.mr;
  const int64_t j0 = j * a.Bk, kb = std::min(a.Bk, a.Lk - j0);
  for (int64_t r = 0; r < kb; r += MR)
    tpack(a.kr, a.k.row(b, h, j0 + r), a.k.sl, MR, std::min<int64_t>(MR, kb - r), a.hd, Kp + (j0 + r) * a.hd);
  for (int64_t c = 0; c < a.hdvp; c += MR)
    cpack(a.v.row(b, h, j0) + c, a.v.sl, MR, std::min<int64_t>(MR, a.hdv - c), kb, Vt + c * a.Lkp + j0 * MR);
}

template <typename T>
void fwd_unit(const Fwd<T>& a, FwdScratch<T>& s, int64_t bh, int64_t qi) {
  const Kern<T>& kr = a.kr;
  const int MR = kr.mr, NR = kr.nr;
  const int64_t b = bh / a.H, h = bh % a.H;
  const int64_t Bq = a.Bq, Bk = a.Bk, hd = a.hd, hdv = a.hdv;
  const int64_t i0 = qi * Bq, qb = std::min(Bq, a.Lq - i0);
  const int64_t nqp = cdiv(qb, NR);
  // The last query panel may be partial: a narrow kernel computes only the columns it needs.
  int64_t wlast;
  const MicroKernel<T> fnlast = kr.for_cols(qb - (nqp - 1) * NR, &wlast);
  const int64_t ncols = (nqp - 1) * NR + wlast;
  auto fn_g = [&](int64_t g) { return g == nqp - 1 ? fnlast : kr.fn; };
  const T ninf = -std::numeric_limits<T>::infinity();
  // This head's packed K and V^T: pre-packed for all heads (shared mode), or this thread's cache.
  T* const Kp = a.sharedK ? a.sharedK + bh * a.Lkp * hd : s.Kp;
  T* const Vt = a.sharedV ? a.sharedV + bh * a.hdvp * a.Lkp : s.Vt;

  // Q block, scaled, as NR-query panels along hd (B operand of S^T = K Q^T).
  for (int64_t g = 0; g < nqp; ++g)
    tpack(kr, a.q.row(b, h, i0 + g * NR), a.q.sl, NR, std::min<int64_t>(NR, qb - g * NR), hd, s.Qb + g * hd * NR);
  {
    T* qb_ = s.Qb;
    const T sc = a.scale;
    const int64_t n = nqp * hd * NR;
#pragma omp simd
    for (int64_t x = 0; x < n; ++x) qb_[x] *= sc;
  }
  for (int64_t c = 0; c < ncols; ++c) {
    s.m[c] = ninf;
    s.l[c] = 0;
  }
  for (int64_t r = 0; r < a.hdvp; ++r) std::memset(s.Ot + r * Bq, 0, sizeof(T) * ncols);

  int64_t jend = a.nkb;
  if (a.causal) jend = std::min(a.nkb, (i0 + qb - 1) / Bk + 1);
  for (int64_t j = 0; j < jend; ++j) {
    if (a.mask.full && a.mask.full[b * a.nkb + j]) continue;
    const int64_t j0 = j * Bk, kb = std::min(Bk, a.Lk - j0);
    if (!a.sharedK && s.ktag[j] != bh) {
      fwd_pack_kv(a, s.Kp, s.Vt, b, h, j);
      s.ktag[j] = bh;
    }
    // S^T tile: keys = rows, queries = columns, stored as NR-query panels [g][p][NR].
    for (int64_t g = 0; g < nqp; ++g)
      for (int64_t r = 0; r < kb; r += MR)
        fn_g(g)(hd, Kp + (j0 + r) * hd, s.Qb + g * hd * NR, s.St + g * Bk * NR + r * NR, NR, T(0));
    const T* kbias = a.mask.bias ? a.mask.bias + b * a.Lk + j0 : nullptr;
    for (int64_t g = 0; g < nqp; ++g) {
      T* st = s.St + g * Bk * NR;
      T* mg = s.m + g * NR;
      T* al = s.alpha + g * NR;
      T* ms = s.msafe + g * NR;
      T* cs = s.cs + g * NR;
      double* lg = s.l + g * NR;
      const int64_t q0 = i0 + g * NR;  // first query of the panel
      const bool causal_tile = a.causal && j0 + kb - 1 > q0;
      const int W = g == nqp - 1 ? (int)wlast : NR;  // columns computed in this panel
      T mx[kMaxNR];
      for (int c = 0; c < W; ++c) mx[c] = mg[c];
      // Masks, then the running max per query (column).
      for (int64_t p = 0; p < kb; ++p) {
        T* sp = st + p * NR;
        const T bias = kbias ? kbias[p] : T(0);
        if (causal_tile) {
          const int64_t cut = j0 + p - q0;  // lanes c < cut are queries before key j0 + p
#pragma omp simd
          for (int c = 0; c < W; ++c) {
            const T v = c < cut ? ninf : sp[c] + bias;
            sp[c] = v;
            mx[c] = v > mx[c] ? v : mx[c];
          }
        } else {
#pragma omp simd
          for (int c = 0; c < W; ++c) {
            const T v = sp[c] + bias;
            sp[c] = v;
            mx[c] = v > mx[c] ? v : mx[c];
          }
        }
      }
#pragma omp simd
      for (int c = 0; c < W; ++c) {
        const T msf = mx[c] == ninf ? T(0) : mx[c];  // all blocked so far: exp(-inf - 0) = 0, no NaN
        ms[c] = msf;
        al[c] = vec_exp(T(mg[c] - msf));
        mg[c] = mx[c];
        cs[c] = T(0);
      }
      // P = exp(S - m'), in place (the tile is now the packed B operand of O^T += V^T P^T).
      for (int64_t p = 0; p < kb; ++p) {
        T* sp = st + p * NR;
#pragma omp simd
        for (int c = 0; c < W; ++c) {
          const T e = vec_exp(T(sp[c] - ms[c]));
          sp[c] = e;
          cs[c] += e;
        }
      }
      for (int c = 0; c < W; ++c) lg[c] = lg[c] * (double)al[c] + (double)cs[c];
    }
    // O^T = alpha * O^T + V^T P^T
    for (int64_t r = 0; r < hdv; ++r) {
      T* orow = s.Ot + r * Bq;
      const T* al = s.alpha;
#pragma omp simd
      for (int64_t c = 0; c < ncols; ++c) orow[c] *= al[c];
    }
    for (int64_t r = 0; r < a.hdvp; r += MR)
      for (int64_t g = 0; g < nqp; ++g)
        fn_g(g)(kb, Vt + r * a.Lkp + j0 * MR, s.St + g * Bk * NR, s.Ot + r * Bq + g * NR, Bq, T(1));
  }
  // O = O^T^T / l, saved (m, 1/l); rows with nothing visible: O = 0, m = -inf.
  for (int64_t i = 0; i < qb; ++i) {
    T* orow = a.o.row(b, h, i0 + i);
    const double l = s.l[i];
    T* lse = a.lse + a.ls.at(b, h, i0 + i);
    if (l == 0.0) {
      for (int64_t c = 0; c < hdv; ++c) orow[c] = T(0);
      lse[0] = ninf;
      lse[a.ls.s2] = T(0);
    } else {
      const T inv = T(1.0 / l);
      for (int64_t c = 0; c < hdv; ++c) orow[c] = s.Ot[c * Bq + i] * inv;
      lse[0] = s.m[i];
      lse[a.ls.s2] = inv;
    }
  }
}

template <typename T>
void forward_run(Fwd<T>& a, const TensorRef* mask) {
  const Kern<T>& kr = a.kr;
  a.Bq = block_size(kr.mr, kr.nr, a.Lq);
  a.Bk = block_size(kr.mr, kr.nr, a.Lk);
  a.nqb = cdiv(a.Lq, a.Bq);
  a.nkb = cdiv(a.Lk, a.Bk);
  a.hdvp = rup(a.hdv, kr.mr);
  a.Lkp = a.nkb * a.Bk;
  const int64_t BH = a.B * a.H;
  if (BH * a.nqb == 0) return;
  int nt = num_threads();
  if (BH * a.Lq * a.Lk * (a.hd + a.hdv) < kParallelMinWork) nt = 1;
  // Head mode (B*H >= 2 * threads, or one thread): a unit is a whole head, whose packed K and V^T
  // each thread caches (threads * one head of memory). Shared mode (few heads, many threads):
  // every head's K and V^T are packed once, in parallel, into a shared buffer (the size of k and
  // v), and a unit is one query block, so that all threads have work and none repacks a head.
  const bool shared_kv = nt > 1 && BH < 2 * (int64_t)nt;
  const int64_t units = shared_kv ? BH * a.nqb : BH;
  nt = (int)std::min<int64_t>(nt, units);

  Bump shared{nullptr};
  build_mask<T>(mask, a.B, a.Lk, a.Bk, a.nkb, shared);
  if (shared_kv) shared.take<T>(BH * a.kv_head());
  Bump per{nullptr};
  FwdScratch<T> probe;
  if (shared_kv) a.sharedK = a.sharedV = reinterpret_cast<T*>(64);  // carve() only tests them
  probe.carve(per, a);
  a.sharedK = a.sharedV = nullptr;
  const size_t per_bytes = per.used;
  Scratch mem(shared.used + per_bytes * nt, false);
  Bump sb{mem.data()};
  a.mask = build_mask<T>(mask, a.B, a.Lk, a.Bk, a.nkb, sb);
  if (shared_kv) {
    a.sharedK = sb.take<T>(BH * a.kv_head());
    a.sharedV = a.sharedK + BH * a.Lkp * a.hd;
  }
  char* thread_base = mem.data() + shared.used;

  // Query block k of a head, causal: the heaviest first.
  auto qblock = [&](int64_t k) { return a.causal ? a.nqb - 1 - k : k; };
  auto body = [&](FwdScratch<T>& s, int64_t u) {
    if (shared_kv) {
      fwd_unit(a, s, u / a.nqb, qblock(u % a.nqb));
    } else {
      for (int64_t k = 0; k < a.nqb; ++k) fwd_unit(a, s, u, qblock(k));
    }
  };
  auto init = [&](int t, FwdScratch<T>& s) {
    Bump tb{thread_base + per_bytes * t};
    s.carve(tb, a);
    for (int64_t j = 0; j < a.nkb; ++j) s.ktag[j] = -1;
  };
  auto prepack = [&](int64_t w) {  // shared mode: key block w % nkb of head w / nkb
    const int64_t bh = w / a.nkb;
    fwd_pack_kv(a, a.sharedK + bh * a.Lkp * a.hd, a.sharedV + bh * a.hdvp * a.Lkp, bh / a.H, bh % a.H, w % a.nkb);
  };
  if (nt == 1) {
    FwdScratch<T> s;
    init(0, s);
    if (shared_kv)
      for (int64_t w = 0; w < BH * a.nkb; ++w) prepack(w);
    for (int64_t u = 0; u < units; ++u) body(s, u);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    FwdScratch<T> s;
    init(omp_get_thread_num(), s);
    if (shared_kv) {
#pragma omp for schedule(dynamic, 4)
      for (int64_t w = 0; w < BH * a.nkb; ++w) prepack(w);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) body(s, u);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward.

template <typename T>
struct Bwd {
  Kern<T> kr;
  Mat<T> q, k, v, o, dout, dq, dk, dv;
  const T* lse;
  Lse ls;
  KeyMask<T> mask;
  int64_t B, H, Lq, Lk, hd, hdv;
  int64_t Bq, Bk, nqb, nkb, hdp, hdvp, Lqp, nseg;
  bool causal;
  T scale;
  T* sharedQ = nullptr;  // every head's HeadQ (shared mode), else null
  int64_t q_head() const { return Lqp * (hd + hdp + hdv + hdvp + 3); }  // elements of one HeadQ
};

// One head's query-side operands, filled per query block (see bwd_pack_q).
template <typename T>
struct HeadQ {
  T *Qa, *Qt, *dOa, *dOt, *Dv, *Ls, *Linv;
  static HeadQ at(const Bwd<T>& a, T* p) {
    HeadQ h;
    h.Qa = p;
    h.Qt = h.Qa + a.Lqp * a.hd;
    h.dOa = h.Qt + a.hdp * a.Lqp;
    h.dOt = h.dOa + a.Lqp * a.hdv;
    h.Dv = h.dOt + a.hdvp * a.Lqp;
    h.Ls = h.Dv + a.Lqp;
    h.Linv = h.Ls + a.Lqp;
    return h;
  }
};

template <typename T>
struct BwdScratch {
  HeadQ<T> head;    // this thread's cache of one head (head mode; unused in shared mode)
  int64_t* qtag;    // qtag[i] = the head whose query block i is in `head`, or -1
  T *Kb, *Vb, *Kt, *kbb, *Sb, *dPb, *dSt, *dKt, *dVt, *dQt;
  void carve(Bump& bp, const Bwd<T>& a) {
    T* h = a.sharedQ ? nullptr : bp.take<T>(a.q_head());
    head = HeadQ<T>::at(a, h);
    qtag = bp.take<int64_t>(a.nqb);
    Kb = bp.take<T>(a.Bk * a.hd);
    Vb = bp.take<T>(a.Bk * a.hdv);
    Kt = bp.take<T>(a.hdp * a.Bk);
    kbb = bp.take<T>(a.Bk);
    Sb = bp.take<T>(a.Bq * a.Bk);
    dPb = bp.take<T>(a.Bq * a.Bk);
    dSt = bp.take<T>(a.Bk * a.Bq);
    dKt = bp.take<T>(a.hdp * a.Bk);
    dVt = bp.take<T>(a.hdvp * a.Bk);
    dQt = a.nseg == 1 ? bp.take<T>(a.hdp * a.Lqp) : nullptr;
  }
};

// Query block qi of head (b, h): Q (scaled) and dO as MR-query panels along hd / hdv (A operands
// of S = Q K^T and dP = dO V^T), Q^T and dO^T as MR-row panels along queries (A operands of
// dK^T += Q^T dS and dV^T += dO^T P), D_i = rowsum(dO_i * O_i) and the safe L (+inf for -inf).
template <typename T>
void bwd_pack_q(const Bwd<T>& a, const HeadQ<T>& s, int64_t b, int64_t h, int64_t qi) {
  const Kern<T>& kr = a.kr;
  const int MR = kr.mr;
  const int64_t i0 = qi * a.Bq, qb = std::min(a.Bq, a.Lq - i0);
  for (int64_t r = 0; r < qb; r += MR) {
    const int64_t rows = std::min<int64_t>(MR, qb - r);
    tpack(kr, a.q.row(b, h, i0 + r), a.q.sl, MR, rows, a.hd, s.Qa + (i0 + r) * a.hd);
    tpack(kr, a.dout.row(b, h, i0 + r), a.dout.sl, MR, rows, a.hdv, s.dOa + (i0 + r) * a.hdv);
  }
  {
    T* qa = s.Qa + i0 * a.hd;
    const int64_t n = rup(qb, MR) * a.hd;
    const T sc = a.scale;
#pragma omp simd
    for (int64_t x = 0; x < n; ++x) qa[x] *= sc;
  }
  for (int64_t c = 0; c < a.hdp; c += MR)
    cpack(a.q.row(b, h, i0) + c, a.q.sl, MR, std::min<int64_t>(MR, a.hd - c), qb, s.Qt + c * a.Lqp + i0 * MR);
  for (int64_t c = 0; c < a.hdvp; c += MR)
    cpack(a.dout.row(b, h, i0) + c, a.dout.sl, MR, std::min<int64_t>(MR, a.hdv - c), qb, s.dOt + c * a.Lqp + i0 * MR);
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < a.Bq; ++i) {
    if (i >= qb) {
      s.Dv[i0 + i] = T(0);
      s.Ls[i0 + i] = inf;
      s.Linv[i0 + i] = T(0);
      continue;
    }
    const T* dor = a.dout.row(b, h, i0 + i);
    const T* orow = a.o.row(b, h, i0 + i);
    double d = 0;
#pragma omp simd reduction(+ : d)
    for (int64_t c = 0; c < a.hdv; ++c) d += (double)dor[c] * (double)orow[c];
    const T* lse = a.lse + a.ls.at(b, h, i0 + i);
    s.Dv[i0 + i] = T(d);
    s.Ls[i0 + i] = lse[0] == -inf ? inf : lse[0];  // nothing visible: P = exp(-inf) * 0 = 0
    s.Linv[i0 + i] = lse[0] == -inf ? T(0) : lse[a.ls.s2];
  }
}

// Key blocks [j_begin, j_end) of head bh: dK, dV of those blocks (written out) and their
// contribution to dQ^T (added into dQt, [hdp, Lqp] row-major).
template <typename T>
void bwd_unit(const Bwd<T>& a, BwdScratch<T>& s, int64_t bh, int64_t j_begin, int64_t j_end, T* dQt) {
  const Kern<T>& kr = a.kr;
  const int MR = kr.mr, NR = kr.nr;
  const int64_t b = bh / a.H, h = bh % a.H;
  const int64_t Bq = a.Bq, Bk = a.Bk, hd = a.hd, hdv = a.hdv, Lqp = a.Lqp;
  const T ninf = -std::numeric_limits<T>::infinity();
  const T scale = a.scale;
  const HeadQ<T> hq = a.sharedQ ? HeadQ<T>::at(a, a.sharedQ + bh * a.q_head()) : s.head;
  std::memset(dQt, 0, sizeof(T) * a.hdp * Lqp);

  for (int64_t j = j_begin; j < j_end; ++j) {
    const int64_t j0 = j * Bk, kb = std::min(Bk, a.Lk - j0);
    if (a.mask.full && a.mask.full[b * a.nkb + j]) {  // every key padded: no gradient
      for (int64_t p = 0; p < kb; ++p) {
        std::memset(a.dk.row(b, h, j0 + p), 0, sizeof(T) * hd);
        std::memset(a.dv.row(b, h, j0 + p), 0, sizeof(T) * hdv);
      }
      continue;
    }
    const int64_t nkp = cdiv(kb, NR);
    // The last key panel may be partial: a narrow kernel computes only the columns it needs.
    int64_t wk_last;
    const MicroKernel<T> fnk_last = kr.for_cols(kb - (nkp - 1) * NR, &wk_last);
    auto fn_k = [&](int64_t kp) { return kp == nkp - 1 ? fnk_last : kr.fn; };
    // K^T and V^T as NR-key panels (B operands of S and dP), K as MR-row panels of hd along
    // keys (A operand of dQ^T += K^T dS^T); the key bias (padding, and -inf past Lk).
    for (int64_t p = 0; p < kb; p += NR) {
      const int64_t rows = std::min<int64_t>(NR, kb - p);
      tpack(kr, a.k.row(b, h, j0 + p), a.k.sl, NR, rows, hd, s.Kb + p * hd);
      tpack(kr, a.v.row(b, h, j0 + p), a.v.sl, NR, rows, hdv, s.Vb + p * hdv);
    }
    for (int64_t c = 0; c < a.hdp; c += MR)
      cpack(a.k.row(b, h, j0) + c, a.k.sl, MR, std::min<int64_t>(MR, hd - c), kb, s.Kt + c * Bk);
    for (int64_t p = 0; p < nkp * NR; ++p)
      s.kbb[p] = p >= kb ? ninf : a.mask.bias ? a.mask.bias[b * a.Lk + j0 + p] : T(0);
    std::memset(s.dKt, 0, sizeof(T) * a.hdp * Bk);
    std::memset(s.dVt, 0, sizeof(T) * a.hdvp * Bk);

    const int64_t qstart = a.causal ? j0 / Bq : 0;
    for (int64_t qi = qstart; qi < a.nqb; ++qi) {
      if (!a.sharedQ && s.qtag[qi] != bh) {
        bwd_pack_q(a, s.head, b, h, qi);
        s.qtag[qi] = bh;
      }
      const int64_t i0 = qi * Bq, qb = std::min(Bq, a.Lq - i0);
      const int64_t rows = rup(qb, MR);
      // S = scale Q K^T and dP = dO V^T: queries = rows, keys = lanes, NR-key panels [q][i][NR].
      for (int64_t kp = 0; kp < nkp; ++kp)
        for (int64_t r = 0; r < rows; r += MR) {
          fn_k(kp)(hd, hq.Qa + (i0 + r) * hd, s.Kb + kp * NR * hd, s.Sb + kp * Bq * NR + r * NR, NR, T(0));
          fn_k(kp)(hdv, hq.dOa + (i0 + r) * hdv, s.Vb + kp * NR * hdv, s.dPb + kp * Bq * NR + r * NR, NR, T(0));
        }
      // P = exp(S - L) (masked), dS = scale * P (dP - D): P over S, dS over dP.
      for (int64_t kp = 0; kp < nkp; ++kp) {
        const T* bias = s.kbb + kp * NR;
        const int64_t k0 = j0 + kp * NR;  // first key of the panel
        const int W = kp == nkp - 1 ? (int)wk_last : NR;  // columns computed in this panel
        for (int64_t i = 0; i < rows; ++i) {
          T* sp = s.Sb + kp * Bq * NR + i * NR;
          T* dp = s.dPb + kp * Bq * NR + i * NR;
          const T m = hq.Ls[i0 + i], inv = hq.Linv[i0 + i], D = hq.Dv[i0 + i];
          const int64_t cut = i0 + i - k0;  // lanes c > cut are keys after this query
          if (a.causal && cut < W - 1) {
#pragma omp simd
            for (int c = 0; c < W; ++c) {
              const T sv = c > cut ? ninf : sp[c] + bias[c];
              const T P = vec_exp(T(sv - m)) * inv;
              sp[c] = P;
              dp[c] = P * (dp[c] - D) * scale;
            }
          } else {
#pragma omp simd
            for (int c = 0; c < W; ++c) {
              const T P = vec_exp(T(sp[c] + bias[c] - m)) * inv;
              sp[c] = P;
              dp[c] = P * (dp[c] - D) * scale;
            }
          }
        }
      }
      // dV^T += dO^T P and dK^T += Q^T dS (k = the block's queries).
      for (int64_t c = 0; c < a.hdvp; c += MR)
        for (int64_t kp = 0; kp < nkp; ++kp)
          fn_k(kp)(qb, hq.dOt + c * Lqp + i0 * MR, s.Sb + kp * Bq * NR, s.dVt + c * Bk + kp * NR, Bk, T(1));
      for (int64_t c = 0; c < a.hdp; c += MR)
        for (int64_t kp = 0; kp < nkp; ++kp)
          fn_k(kp)(qb, hq.Qt + c * Lqp + i0 * MR, s.dPb + kp * Bq * NR, s.dKt + c * Bk + kp * NR, Bk, T(1));
      // dS^T as NR-query panels along keys, then dQ^T += K^T dS^T (k = the block's keys).
      const int64_t nqp = cdiv(qb, NR);
      int64_t wq_last;
      const MicroKernel<T> fnq_last = kr.for_cols(qb - (nqp - 1) * NR, &wq_last);
      for (int64_t g = 0; g < nqp; ++g)
        for (int64_t kp = 0; kp < nkp; ++kp)
          tpack(kr, s.dPb + kp * Bq * NR + g * NR * NR, NR, NR, NR, std::min<int64_t>(NR, kb - kp * NR),
                s.dSt + g * Bk * NR + kp * NR * NR);
      for (int64_t c = 0; c < a.hdp; c += MR)
        for (int64_t g = 0; g < nqp; ++g)
          (g == nqp - 1 ? fnq_last : kr.fn)(kb, s.Kt + c * Bk, s.dSt + g * Bk * NR, dQt + c * Lqp + i0 + g * NR, Lqp, T(1));
    }
    for (int64_t p = 0; p < kb; ++p) {
      T* dkr = a.dk.row(b, h, j0 + p);
      T* dvr = a.dv.row(b, h, j0 + p);
      for (int64_t c = 0; c < hd; ++c) dkr[c] = s.dKt[c * Bk + p];
      for (int64_t c = 0; c < hdv; ++c) dvr[c] = s.dVt[c * Bk + p];
    }
  }
}

template <typename T>
void backward_run(Bwd<T>& a, const TensorRef* mask) {
  const Kern<T>& kr = a.kr;
  a.Bq = block_size(kr.mr, kr.nr, a.Lq);
  a.Bk = block_size(kr.mr, kr.nr, a.Lk);
  a.nqb = cdiv(a.Lq, a.Bq);
  a.nkb = cdiv(a.Lk, a.Bk);
  a.hdp = rup(a.hd, kr.mr);
  a.hdvp = rup(a.hdv, kr.mr);
  a.Lqp = a.nqb * a.Bq;
  const int64_t BH = a.B * a.H;
  if (BH == 0) return;
  if (a.Lq == 0 || a.Lk == 0) {  // no query sees any key: every gradient is zero
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / a.H, h = bh % a.H;
      for (int64_t i = 0; i < a.Lq; ++i) std::memset(a.dq.row(b, h, i), 0, sizeof(T) * a.hd);
      for (int64_t j = 0; j < a.Lk; ++j) {
        std::memset(a.dk.row(b, h, j), 0, sizeof(T) * a.hd);
        std::memset(a.dv.row(b, h, j), 0, sizeof(T) * a.hdv);
      }
    }
    return;
  }
  int nt = num_threads();
  if (BH * a.Lq * a.Lk * (a.hd + a.hdv) < kParallelMinWork) nt = 1;
  // Head mode (B*H >= 2 * threads, or one thread): a unit is a whole head; each thread caches
  // the packed Q / dO of its current head and accumulates that head's dQ privately. Shared mode
  // (few heads, many threads): every head's Q / dO operands are packed once, in parallel, into a
  // shared buffer (about twice the size of q and grad_out), and a head's key blocks are split
  // into nseg segments (about one unit per thread) with dQ partials summed afterwards.
  const bool shared_q = nt > 1 && BH < 2 * (int64_t)nt;
  a.nseg = !shared_q ? 1 : std::min<int64_t>(a.nkb, BH >= nt ? 2 : cdiv(nt, BH));
  const int64_t units = BH * a.nseg;
  nt = (int)std::min<int64_t>(nt, units);

  // Segment boundaries over key blocks, balanced by tiles (causal: key block j meets the query
  // blocks from j0 / Bq on).
  std::vector<int64_t> seg(a.nseg + 1, a.nkb);
  {
    std::vector<int64_t> cost(a.nkb);
    int64_t total = 0;
    for (int64_t j = 0; j < a.nkb; ++j) total += cost[j] = a.causal ? a.nqb - (j * a.Bk) / a.Bq : a.nqb;
    seg[0] = 0;
    int64_t acc = 0, s = 1;
    for (int64_t j = 0; j < a.nkb && s < a.nseg; ++j) {
      acc += cost[j];
      while (s < a.nseg && acc * a.nseg >= total * s) seg[s++] = j + 1;
    }
  }

  Bump shared{nullptr};
  build_mask<T>(mask, a.B, a.Lk, a.Bk, a.nkb, shared);
  if (a.nseg > 1) shared.take<T>(units * a.hdp * a.Lqp);
  if (shared_q) shared.take<T>(BH * a.q_head());
  Bump per{nullptr};
  BwdScratch<T> probe;
  if (shared_q) a.sharedQ = reinterpret_cast<T*>(64);  // carve() only tests it
  probe.carve(per, a);
  a.sharedQ = nullptr;
  const size_t per_bytes = per.used;
  // Zeroed once: tile rows past a short last query block are read (into unused columns) before
  // they are ever written, and must hold finite numbers.
  Scratch mem(shared.used + per_bytes * nt, true);
  Bump sb{mem.data()};
  a.mask = build_mask<T>(mask, a.B, a.Lk, a.Bk, a.nkb, sb);
  T* partial = a.nseg > 1 ? sb.take<T>(units * a.hdp * a.Lqp) : nullptr;
  if (shared_q) a.sharedQ = sb.take<T>(BH * a.q_head());
  char* thread_base = mem.data() + shared.used;

  auto write_dq = [&](int64_t bh, const T* dQt) {
    const int64_t b = bh / a.H, h = bh % a.H;
    for (int64_t i = 0; i < a.Lq; ++i) {
      T* r = a.dq.row(b, h, i);
      for (int64_t c = 0; c < a.hd; ++c) r[c] = dQt[c * a.Lqp + i];
    }
  };
  auto unit = [&](BwdScratch<T>& s, int64_t u) {
    const int64_t bh = u / a.nseg, sg = u % a.nseg;
    T* dQt = a.nseg == 1 ? s.dQt : partial + u * a.hdp * a.Lqp;
    bwd_unit(a, s, bh, seg[sg], seg[sg + 1], dQt);
    if (a.nseg == 1) write_dq(bh, dQt);
  };
  // Sum of a head's dQ partials, in segment order, for query block qi.
  auto merge = [&](int64_t w) {
    const int64_t bh = w / a.nqb, qi = w % a.nqb;
    const int64_t b = bh / a.H, h = bh % a.H;
    const int64_t i0 = qi * a.Bq, qb = std::min(a.Bq, a.Lq - i0);
    const T* base = partial + bh * a.nseg * a.hdp * a.Lqp;
    for (int64_t i = i0; i < i0 + qb; ++i) {
      T* r = a.dq.row(b, h, i);
      for (int64_t c = 0; c < a.hd; ++c) {
        T acc = T(0);
        for (int64_t sg = 0; sg < a.nseg; ++sg) acc += base[sg * a.hdp * a.Lqp + c * a.Lqp + i];
        r[c] = acc;
      }
    }
  };
  auto init = [&](int t, BwdScratch<T>& s) {
    Bump tb{thread_base + per_bytes * t};
    s.carve(tb, a);
    for (int64_t i = 0; i < a.nqb; ++i) s.qtag[i] = -1;
  };
  auto prepack = [&](int64_t w) {  // shared mode: query block w % nqb of head w / nqb
    const int64_t bh = w / a.nqb;
    bwd_pack_q(a, HeadQ<T>::at(a, a.sharedQ + bh * a.q_head()), bh / a.H, bh % a.H, w % a.nqb);
  };
  if (nt == 1) {
    BwdScratch<T> s;
    init(0, s);
    if (shared_q)
      for (int64_t w = 0; w < BH * a.nqb; ++w) prepack(w);
    for (int64_t u = 0; u < units; ++u) unit(s, u);
    if (a.nseg > 1)
      for (int64_t w = 0; w < BH * a.nqb; ++w) merge(w);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    BwdScratch<T> s;
    init(omp_get_thread_num(), s);
    if (shared_q) {
#pragma omp for schedule(dynamic, 4)
      for (int64_t w = 0; w < BH * a.nqb; ++w) prepack(w);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) unit(s, u);
    if (a.nseg > 1) {
#pragma omp for schedule(static)
      for (int64_t w = 0; w < BH * a.nqb; ++w) merge(w);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks (all before any parallel region).

struct Shape {
  int64_t B, H, Lq, Lk, hd, hdv;
};

void check_unit_last(const OpCall& c, size_t i, const char* name) {
  const TensorRef& t = c.t(i);
  TS_CHECK(t.shape[3] <= 1 || t.strides[3] == 1, c.op, ": ", name, " ", t.describe(),
           " must have unit stride along its last dim (head dim)");
}

void check_shape(const OpCall& c, size_t i, const char* name, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  const TensorRef& t = c.t(i);
  TS_CHECK(t.shape[0] == d0 && t.shape[1] == d1 && t.shape[2] == d2 && t.shape[3] == d3, c.op, ": ", name, " ",
           t.describe(), " must have shape [", d0, ", ", d1, ", ", d2, ", ", d3, "]");
}

Shape check_qkv(const OpCall& c) {
  const char* names[3] = {"q", "k", "v"};
  for (size_t i = 0; i < 3; ++i) {
    c.expect_ndim(i, 4, names[i]);
    check_unit_last(c, i, names[i]);
    if (i > 0) c.expect_same_dtype(0, i, "q", names[i]);
  }
  c.expect_float(0, "q");
  const TensorRef &q = c.t(0), &k = c.t(1), &v = c.t(2);
  Shape s{q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3]};
  TS_CHECK(k.shape[0] == s.B && k.shape[1] == s.H && k.shape[3] == s.hd, c.op, ": q ", q.describe(), " and k ",
           k.describe(), " must agree in batch, heads and head dim ([B, H, Lq, hd] and [B, H, Lk, hd])");
  TS_CHECK(v.shape[0] == s.B && v.shape[1] == s.H && v.shape[2] == s.Lk, c.op, ": k ", k.describe(), " and v ",
           v.describe(), " must agree in batch, heads and keys ([B, H, Lk, hd] and [B, H, Lk, hdv])");
  return s;
}

void check_out(const OpCall& c, size_t i, const char* name, size_t n_inputs) {
  c.expect_same_dtype(0, i, "q", name);
  for (size_t j = 0; j < n_inputs; ++j)
    TS_CHECK(c.t(i).storage != c.t(j).storage || c.t(i).numel() == 0 || c.t(j).numel() == 0, c.op, ": output ", name,
             " ", c.t(i).describe(), " shares memory with input ", j, " ", c.t(j).describe(),
             "; outputs must be separate buffers");
}

const TensorRef* check_mask(const OpCall& c, size_t i, const Shape& s) {
  const TensorRef& m = c.t(i);
  TS_CHECK(m.ndim == 2 && m.shape[0] == s.B && m.shape[1] == s.Lk, c.op, ": key padding mask ", m.describe(),
           " must have shape [B, Lk] = [", s.B, ", ", s.Lk, "]");
  return &m;
}

bool flag(const OpCall& c, size_t i) { return c.s(i) != 0; }

}  // namespace

void flash_attention(OpCall& c) {
  TS_CHECK(c.scalars.size() == 3, c.op, ": expected 3 scalars (scale, causal, has_mask), got ", c.scalars.size());
  const bool has_mask = flag(c, 2);
  c.expect_count(has_mask ? 6 : 5, 3);
  const Shape s = check_qkv(c);
  c.expect_ndim(3, 4, "out");
  check_shape(c, 3, "out", s.B, s.H, s.Lq, s.hdv);
  check_unit_last(c, 3, "out");
  check_out(c, 3, "out", 3);
  c.expect_ndim(4, 4, "lse");
  TS_CHECK(c.t(4).shape[0] == s.B && c.t(4).shape[1] == s.H && c.t(4).shape[2] == s.Lq && c.t(4).shape[3] == 2, c.op, ": lse ",
           c.t(4).describe(), " must have shape [", s.B, ", ", s.H, ", ", s.Lq, ", 2]");
  check_out(c, 4, "lse", 3);
  const TensorRef* mask = has_mask ? check_mask(c, 5, s) : nullptr;
  const double scale = c.s(0);
  TS_CHECK(std::isfinite(scale), c.op, ": scale must be finite, got ", scale);
  const bool causal = flag(c, 1);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    Fwd<T> a{};
    a.kr = select_kern<T>();
    a.q = mat_of<T>(c.t(0));
    a.k = mat_of<T>(c.t(1));
    a.v = mat_of<T>(c.t(2));
    a.o = mat_of<T>(c.t(3));
    a.lse = c.t(4).data<T>();
    a.ls = {c.t(4).strides[0], c.t(4).strides[1], c.t(4).strides[2], c.t(4).strides[3]};
    a.B = s.B, a.H = s.H, a.Lq = s.Lq, a.Lk = s.Lk, a.hd = s.hd, a.hdv = s.hdv;
    a.causal = causal;
    a.scale = T(scale);
    forward_run(a, mask);
  });
}

void flash_attention_backward(OpCall& c) {
  TS_CHECK(c.scalars.size() == 3, c.op, ": expected 3 scalars (scale, causal, has_mask), got ", c.scalars.size());
  const bool has_mask = flag(c, 2);
  c.expect_count(has_mask ? 10 : 9, 3);
  const Shape s = check_qkv(c);
  const char* names[] = {"q", "k", "v", "out", "lse", "grad_out", "dq", "dk", "dv"};
  c.expect_ndim(3, 4, "out");
  check_shape(c, 3, "out", s.B, s.H, s.Lq, s.hdv);
  check_unit_last(c, 3, "out");
  c.expect_same_dtype(0, 3, "q", "out");
  c.expect_ndim(4, 4, "lse");
  TS_CHECK(c.t(4).shape[0] == s.B && c.t(4).shape[1] == s.H && c.t(4).shape[2] == s.Lq && c.t(4).shape[3] == 2, c.op, ": lse ",
           c.t(4).describe(), " must have shape [", s.B, ", ", s.H, ", ", s.Lq, ", 2]");
  c.expect_same_dtype(0, 4, "q", "lse");
  c.expect_ndim(5, 4, "grad_out");
  check_shape(c, 5, "grad_out", s.B, s.H, s.Lq, s.hdv);
  check_unit_last(c, 5, "grad_out");
  c.expect_same_dtype(0, 5, "q", "grad_out");
  const int64_t dims[3][4] = {{s.B, s.H, s.Lq, s.hd}, {s.B, s.H, s.Lk, s.hd}, {s.B, s.H, s.Lk, s.hdv}};
  for (size_t i = 6; i < 9; ++i) {
    c.expect_ndim(i, 4, names[i]);
    check_shape(c, i, names[i], dims[i - 6][0], dims[i - 6][1], dims[i - 6][2], dims[i - 6][3]);
    check_unit_last(c, i, names[i]);
    check_out(c, i, names[i], 6);
    for (size_t j = 6; j < i; ++j)
      TS_CHECK(c.t(i).storage != c.t(j).storage || c.t(i).numel() == 0 || c.t(j).numel() == 0, c.op, ": outputs ",
               names[j], " and ", names[i], " share memory");
  }
  const TensorRef* mask = has_mask ? check_mask(c, 9, s) : nullptr;
  const double scale = c.s(0);
  TS_CHECK(std::isfinite(scale), c.op, ": scale must be finite, got ", scale);
  const bool causal = flag(c, 1);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    Bwd<T> a{};
    a.kr = select_kern<T>();
    a.q = mat_of<T>(c.t(0));
    a.k = mat_of<T>(c.t(1));
    a.v = mat_of<T>(c.t(2));
    a.o = mat_of<T>(c.t(3));
    a.lse = c.t(4).data<T>();
    a.ls = {c.t(4).strides[0], c.t(4).strides[1], c.t(4).strides[2], c.t(4).strides[3]};
    a.dout = mat_of<T>(c.t(5));
    a.dq = mat_of<T>(c.t(6));
    a.dk = mat_of<T>(c.t(7));
    a.dv = mat_of<T>(c.t(8));
    a.B = s.B, a.H = s.H, a.Lq = s.Lq, a.Lk = s.Lk, a.hd = s.hd, a.hdv = s.hdv;
    a.causal = causal;
    a.scale = T(scale);
    backward_run(a, mask);
  });
}

}  // namespace tessera::cpu
