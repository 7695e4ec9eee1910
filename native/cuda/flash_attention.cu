// Flash attention on the GPU (FlashAttention-2 structure), forward and backward: the CUDA twins
// of native/cpu/flash_attention.cpp, with the same contract (native/cpu/flash_attention.h):
//
//   flash_attention           (q, k, v, out, lse [, mask])  [scale, causal, has_mask]
//   flash_attention_backward  (q, k, v, out, lse, grad_out, dq, dk, dv [, mask])
//                             [scale, causal, has_mask]
//
// q [B,H,Lq,hd], k [B,H,Lk,hd], v [B,H,Lk,hdv]; any strides on the first three dims, unit stride
// on the last. lse [B,H,Lq,2] holds (m, 1/l) per query row exactly as the CPU writes it; m = -inf
// marks a row with every key blocked (zero output, zero gradients, never NaN). Key padding mask
// [B,Lk] (float32/float64/int32, any strides, nonzero = padded); causal blocks key j > query i.
// Every argument check of the CPU twin is repeated here, before anything is launched.
//
// FORWARD (fa_fwd): one block of 256 threads per (batch*head, query tile of BM rows, value-column
// chunk of HC columns). The threads form a 16 x 16 grid: thread (ty, tx) owns query rows
// ty*RM .. ty*RM+RM-1 of the tile and, of every key tile, the keys tx + 16c (c < BM/16), and of
// the output chunk the columns tx + 16c (c < HC/16), in registers. For each key tile:
//   S = (scale q) k^T, a SIMT tiled product: q and k are staged through shared memory in chunks
//   of DC = 32 head-dim columns (any head dim works; the padding column avoids bank conflicts);
//   masks (padding, causal, keys past Lk) set S = -inf; the running row max m and row sum l are
//   updated exactly as the CPU does (m' = max(m, rowmax S), msafe = m' or 0 when m' = -inf,
//   alpha = exp(m - msafe), P = exp(S - msafe), l = alpha l + rowsum P with l in double),
//   row reductions are xor-butterflies over the 16 lanes that share a row (every lane ends with
//   the same bits); O = alpha O + P V with P in shared memory and V streamed through shared
//   memory in sub-blocks of KS keys. At the end O / l and (m, 1/l) are written (l == 0: O = 0,
//   lse = (-inf, 0)). float32: BM = 64, HC = 128; float64: BM = 32, HC = 128 (static shared
//   memory below 48 KiB). When hdv > HC, the grid has ceil(hdv / HC) column chunks; each
//   recomputes the same S, m, l (bit-identical: same operations in the same order) and only
//   chunk 0 writes lse.
//
// BACKWARD: fa_bwd_prep (one warp per query row) computes D = rowsum(dO * O) in double (stored
// in q's dtype as the CPU does), the "safe" row max (+inf where m = -inf) and 1/l (0 there), and
// zeroes that row of dq. fa_bwd: one block per (batch*head, key tile of BM = 32 keys, column
// chunk of HC = 128), looping over the query tiles (causal: from the first one that can see the
// tile). Per query tile it recomputes S = (scale q) k^T and dP = dO v^T (chunked over hd / hdv),
// P = exp(S - m) * (1/l) (0 where blocked), dS = P * (dP - D) * scale (the CPU's order), keeps
// P and dS in shared memory, and accumulates in registers the block's own dV += P^T dO and
// dK += dS^T q (no atomics: the block owns those key rows). dQ += dS k is added to dq with
// atomicAdd (float / double atomics, sm_60+), one add per (query, column) per key tile; so dq's
// summation order depends on scheduling and is not bitwise reproducible run to run.
//
// PRECISION vs the CPU: the products accumulate in T in a different order (FMA, 32-wide chunks)
// than the CPU micro-kernels; exp is CUDA's expf (<= 2 ulp) / exp instead of the CPU's vec_exp
// (0.78 ulp float32); the row sums use a tree instead of a sequential sum (then l in double as on
// the CPU). Results therefore agree to a tolerance (float32 ~1e-5 relative, float64 ~1e-12), not
// bit for bit.
#include <cmath>
#include <limits>

#include "core/storage.h"
#include "cuda/common.cuh"
#include "cuda/flash_attention.h"

namespace tessera::cuda {

namespace {

constexpr int kTPB = 256;  // 16 x 16 threads
constexpr int kDC = 32;    // head-dim chunk of the S / dP products

template <typename T>
struct Mat {  // [B, H, L, d] with unit stride on d
  T* p;
  int64_t sb, sh, sl;
};

template <typename T>
Mat<T> mat_of(const TensorRef& t) {
  return {t.data<T>(), t.strides[0], t.strides[1], t.strides[2]};
}

struct MaskArg {
  const void* p = nullptr;
  int kind = 0;  // 0 none, 1 float32, 2 float64, 3 int32
  int64_t sb = 0, sk = 0;
};

__device__ __forceinline__ bool key_padded(const MaskArg& m, int64_t b, int64_t j) {
  if (m.kind == 0) return false;
  const int64_t off = b * m.sb + j * m.sk;
  if (m.kind == 1) return static_cast<const float*>(m.p)[off] != 0.0f;
  if (m.kind == 2) return static_cast<const double*>(m.p)[off] != 0.0;
  return static_cast<const int32_t*>(m.p)[off] != 0;
}

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }

template <typename T>
__device__ __forceinline__ T ninf() {
  return -std::numeric_limits<T>::infinity();
}

// Row reductions over the 16 lanes that share ty (xor butterfly: every lane gets the same bits).
template <typename T>
__device__ __forceinline__ T row_max16(T v) {
#pragma unroll
  for (int off = 8; off >= 1; off >>= 1) {
    T o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  return v;
}
template <typename T>
__device__ __forceinline__ T row_sum16(T v) {
#pragma unroll
  for (int off = 8; off >= 1; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// sm[r * ld + c] = base[(r0 + r) * sl + c0 + c] * (scale ? sc : 1) for r < R, c < W; zero outside
// [0, L) x [0, d).
template <typename T, int R, int W>
__device__ __forceinline__ void load_tile(T* sm, int ld, const T* base, int64_t sl, int64_t L, int64_t r0, int64_t d,
                                          int64_t c0, bool scale, T sc) {
  for (int e = threadIdx.x; e < R * W; e += kTPB) {
    const int r = e / W, c = e % W;
    const int64_t row = r0 + r, col = c0 + c;
    T v = T(0);
    if (row < L && col < d) {
      v = base[row * sl + col];
      if (scale) v = v * sc;
    }
    sm[r * ld + c] = v;
  }
}

// acc[r][c] += sum_{t < DC} A[(ty*RM + r) * LDA + t] * Bm[(tx + 16c) * LDA + t] over staged chunks.
// Leaves the block synchronised; `stage` must hold 2 * BM * (kDC + 1) elements.
template <typename T, int BM>
__device__ __forceinline__ void tile_product(T (&acc)[BM / 16][BM / 16], T* stage, const T* abase, int64_t asl,
                                             int64_t La, int64_t a0, const T* bbase, int64_t bsl, int64_t Lb,
                                             int64_t b0, int64_t d, bool scale_a, T sc) {
  constexpr int RM = BM / 16, RN = BM / 16, LD = kDC + 1;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  T* As = stage;
  T* Bs = stage + BM * LD;
#pragma unroll
  for (int r = 0; r < RM; ++r)
#pragma unroll
    for (int c = 0; c < RN; ++c) acc[r][c] = T(0);
  for (int64_t d0 = 0; d0 < d; d0 += kDC) {
    load_tile<T, BM, kDC>(As, LD, abase, asl, La, a0, d, d0, scale_a, sc);
    load_tile<T, BM, kDC>(Bs, LD, bbase, bsl, Lb, b0, d, d0, false, T(1));
    __syncthreads();
#pragma unroll 8
    for (int t = 0; t < kDC; ++t) {
      T av[RM], bv[RN];
#pragma unroll
      for (int r = 0; r < RM; ++r) av[r] = As[(ty * RM + r) * LD + t];
#pragma unroll
      for (int c = 0; c < RN; ++c) bv[c] = Bs[(tx + 16 * c) * LD + t];
#pragma unroll
      for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < RN; ++c) acc[r][c] += av[r] * bv[c];
    }
    __syncthreads();
  }
}

template <typename T>
struct FwdArgs {
  Mat<T> q, k, v, o;
  T* lse;
  int64_t lsb, lsh, lsl, ls2;
  MaskArg mask;
  int64_t B, H, Lq, Lk, hd, hdv, nqb, nkb, nz;
  bool causal;
  T scale;
};

template <typename T>
struct FwdCfg;
template <>
struct FwdCfg<float> {
  static constexpr int BM = 64, HC = 128, KS = 32;
};
template <>
struct FwdCfg<double> {
  static constexpr int BM = 32, HC = 128, KS = 16;
};

template <typename T>
__global__ void __launch_bounds__(kTPB) fa_fwd(FwdArgs<T> a) {
  constexpr int BM = FwdCfg<T>::BM, HC = FwdCfg<T>::HC, KS = FwdCfg<T>::KS;
  constexpr int RM = BM / 16, RN = BM / 16, RO = HC / 16, LDP = BM + 1, LDV = HC + 1;
  constexpr int STAGE = 2 * BM * (kDC + 1);
  static_assert(KS * LDV <= STAGE, "V sub-block must fit the staging buffer");
  static_assert(BM % KS == 0, "KS must divide BM");
  __shared__ T stage[STAGE];
  __shared__ T Ps[BM * LDP];
  __shared__ bool kok[BM];

  int64_t x = blockIdx.x;
  const int64_t z = x % a.nz;
  x /= a.nz;
  const int64_t qi = x % a.nqb;
  const int64_t bh = x / a.nqb;
  const int64_t b = bh / a.H, h = bh % a.H;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int64_t i0 = qi * BM, c0 = z * HC;
  const T* qb = a.q.p + b * a.q.sb + h * a.q.sh;
  const T* kb = a.k.p + b * a.k.sb + h * a.k.sh;
  const T* vb = a.v.p + b * a.v.sb + h * a.v.sh;
  const T NINF = ninf<T>();

  T m[RM];
  double l[RM];
  T o[RM][RO];
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    m[r] = NINF;
    l[r] = 0.0;
#pragma unroll
    for (int c = 0; c < RO; ++c) o[r][c] = T(0);
  }

  int64_t jend = a.nkb;
  if (a.causal) {
    const int64_t last_q = (i0 + BM < a.Lq ? i0 + BM : a.Lq) - 1;
    const int64_t lim = last_q / BM + 1;
    jend = lim < jend ? lim : jend;
  }
  for (int64_t j = 0; j < jend; ++j) {
    const int64_t j0 = j * BM;
    if (threadIdx.x < BM) {
      const int64_t key = j0 + threadIdx.x;
      kok[threadIdx.x] = key < a.Lk && !key_padded(a.mask, b, key);
    }
    __syncthreads();
    T s[RM][RN];
    tile_product<T, BM>(s, stage, qb, a.q.sl, a.Lq, i0, kb, a.k.sl, a.Lk, j0, a.hd, true, a.scale);
    // Masks, running max, P = exp(S - msafe), row sums, rescale O.
#pragma unroll
    for (int r = 0; r < RM; ++r) {
      const int64_t i = i0 + ty * RM + r;
      T mx = m[r];
#pragma unroll
      for (int c = 0; c < RN; ++c) {
        const int kc = tx + 16 * c;
        const bool blocked = !kok[kc] || (a.causal && j0 + kc > i);
        const T v = blocked ? NINF : s[r][c];
        s[r][c] = v;
        mx = v > mx ? v : mx;
      }
      mx = row_max16(mx);
      const T msf = mx == NINF ? T(0) : mx;
      const T alpha = dexp(T(m[r] - msf));
      m[r] = mx;
      T cs = T(0);
#pragma unroll
      for (int c = 0; c < RN; ++c) {
        const T e = dexp(T(s[r][c] - msf));
        cs += e;
        Ps[(ty * RM + r) * LDP + tx + 16 * c] = e;
      }
      cs = row_sum16(cs);
      l[r] = l[r] * (double)alpha + (double)cs;
#pragma unroll
      for (int c = 0; c < RO; ++c) o[r][c] *= alpha;
    }
    // O += P V, V streamed in sub-blocks of KS keys (the columns of this block's chunk).
    for (int k0 = 0; k0 < BM; k0 += KS) {
      load_tile<T, KS, HC>(stage, LDV, vb, a.v.sl, a.Lk, j0 + k0, a.hdv, c0, false, T(1));
      __syncthreads();
#pragma unroll 4
      for (int t = 0; t < KS; ++t) {
        T vv[RO];
#pragma unroll
        for (int c = 0; c < RO; ++c) vv[c] = stage[t * LDV + tx + 16 * c];
#pragma unroll
        for (int r = 0; r < RM; ++r) {
          const T p = Ps[(ty * RM + r) * LDP + k0 + t];
#pragma unroll
          for (int c = 0; c < RO; ++c) o[r][c] += p * vv[c];
        }
      }
      __syncthreads();
    }
  }
  // O / l and (m, 1/l); rows with nothing visible: O = 0, lse = (-inf, 0).
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int64_t i = i0 + ty * RM + r;
    if (i >= a.Lq) continue;
    T* orow = a.o.p + b * a.o.sb + h * a.o.sh + i * a.o.sl;
    T* lse = a.lse + b * a.lsb + h * a.lsh + i * a.lsl;
    const bool empty = l[r] == 0.0;
    const T inv = empty ? T(0) : T(1.0 / l[r]);
#pragma unroll
    for (int c = 0; c < RO; ++c) {
      const int64_t col = c0 + tx + 16 * c;
      if (col < a.hdv) orow[col] = empty ? T(0) : o[r][c] * inv;
    }
    if (z == 0 && tx == 0) {
      lse[0] = empty ? NINF : m[r];
      lse[a.ls2] = inv;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward.

template <typename T>
struct BwdArgs {
  Mat<T> q, k, v, o, dout, dq, dk, dv;
  const T* lse;
  int64_t lsb, lsh, lsl, ls2;
  MaskArg mask;
  T* stats;  // [B*H*Lq][3]: D, safe m (+inf where m = -inf), 1/l (0 there)
  int64_t B, H, Lq, Lk, hd, hdv, nqb, nkb, nz;
  bool causal;
  T scale;
};

// One warp per query row: D = rowsum(dO * O) in double, the safe (m, 1/l), and dq row = 0.
template <typename T>
__global__ void fa_bwd_prep(BwdArgs<T> a) {
  const int64_t rows = a.B * a.H * a.Lq;
  const int lane = threadIdx.x % 32;
  const int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
  const int64_t nwarps = (int64_t)gridDim.x * blockDim.x / 32;
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t w = warp; w < rows; w += nwarps) {
    const int64_t i = w % a.Lq, bh = w / a.Lq, b = bh / a.H, h = bh % a.H;
    const T* dor = a.dout.p + b * a.dout.sb + h * a.dout.sh + i * a.dout.sl;
    const T* orow = a.o.p + b * a.o.sb + h * a.o.sh + i * a.o.sl;
    double d = 0;
    for (int64_t c = lane; c < a.hdv; c += 32) d += (double)dor[c] * (double)orow[c];
#pragma unroll
    for (int off = 16; off >= 1; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
    T* dqr = a.dq.p + b * a.dq.sb + h * a.dq.sh + i * a.dq.sl;
    for (int64_t c = lane; c < a.hd; c += 32) dqr[c] = T(0);
    if (lane == 0) {
      const T* lse = a.lse + b * a.lsb + h * a.lsh + i * a.lsl;
      const bool none = lse[0] == -inf;
      a.stats[w * 3 + 0] = T(d);
      a.stats[w * 3 + 1] = none ? inf : lse[0];
      a.stats[w * 3 + 2] = none ? T(0) : lse[a.ls2];
    }
  }
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }

constexpr int kBwdBM = 32, kBwdHC = 128, kBwdQS = 16;

template <typename T>
__global__ void __launch_bounds__(kTPB) fa_bwd(BwdArgs<T> a) {
  constexpr int BM = kBwdBM, HC = kBwdHC, QS = kBwdQS;
  constexpr int RM = BM / 16, RN = BM / 16, RO = HC / 16, LDP = BM + 1, LDV = HC + 1;
  constexpr int STAGE = 2 * BM * (kDC + 1);
  static_assert(QS * LDV <= STAGE, "sub-block must fit the staging buffer");
  static_assert(BM % QS == 0, "QS must divide BM");
  __shared__ T stage[STAGE];
  __shared__ T Ps[BM * LDP];   // [query][key]
  __shared__ T dSs[BM * LDP];  // [query][key]
  __shared__ T sD[BM], sM[BM], sInv[BM];
  __shared__ bool kok[BM];

  int64_t x = blockIdx.x;
  const int64_t z = x % a.nz;
  x /= a.nz;
  const int64_t kt = x % a.nkb;
  const int64_t bh = x / a.nkb;
  const int64_t b = bh / a.H, h = bh % a.H;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int64_t j0 = kt * BM, c0 = z * HC;
  const bool do_k = c0 < a.hd, do_v = c0 < a.hdv;
  const T* qb = a.q.p + b * a.q.sb + h * a.q.sh;
  const T* kb = a.k.p + b * a.k.sb + h * a.k.sh;
  const T* vb = a.v.p + b * a.v.sb + h * a.v.sh;
  const T* dob = a.dout.p + b * a.dout.sb + h * a.dout.sh;
  T* dqb = a.dq.p + b * a.dq.sb + h * a.dq.sh;
  const T* st = a.stats + bh * a.Lq * 3;

  if (threadIdx.x < BM) {
    const int64_t key = j0 + threadIdx.x;
    kok[threadIdx.x] = key < a.Lk && !key_padded(a.mask, b, key);
  }
  T dk[RM][RO], dv[RM][RO];  // keys ty*RM + r, columns c0 + tx + 16c
#pragma unroll
  for (int r = 0; r < RM; ++r)
#pragma unroll
    for (int c = 0; c < RO; ++c) dk[r][c] = dv[r][c] = T(0);

  const int64_t qstart = a.causal ? j0 / BM : 0;  // query tiles are BM rows too
  for (int64_t qi = qstart; qi < a.nqb; ++qi) {
    const int64_t i0 = qi * BM;
    if (threadIdx.x < BM) {
      const int64_t i = i0 + threadIdx.x;
      const bool in = i < a.Lq;
      sD[threadIdx.x] = in ? st[i * 3 + 0] : T(0);
      sM[threadIdx.x] = in ? st[i * 3 + 1] : std::numeric_limits<T>::infinity();
      sInv[threadIdx.x] = in ? st[i * 3 + 2] : T(0);
    }
    __syncthreads();
    T s[RM][RN], dp[RM][RN];
    tile_product<T, BM>(s, stage, qb, a.q.sl, a.Lq, i0, kb, a.k.sl, a.Lk, j0, a.hd, true, a.scale);
    tile_product<T, BM>(dp, stage, dob, a.dout.sl, a.Lq, i0, vb, a.v.sl, a.Lk, j0, a.hdv, false, T(1));
#pragma unroll
    for (int r = 0; r < RM; ++r) {
      const int ir = ty * RM + r;
      const int64_t i = i0 + ir;
      const T mrow = sM[ir], inv = sInv[ir], D = sD[ir];
#pragma unroll
      for (int c = 0; c < RN; ++c) {
        const int kc = tx + 16 * c;
        const bool blocked = !kok[kc] || (a.causal && j0 + kc > i);
        const T P = blocked ? T(0) : dexp(T(s[r][c] - mrow)) * inv;
        Ps[ir * LDP + kc] = P;
        dSs[ir * LDP + kc] = P * (dp[r][c] - D) * a.scale;
      }
    }
    // dV += P^T dO and dK += dS^T q (this block's keys, columns c0 ..): queries in sub-blocks.
    for (int pass = 0; pass < 2; ++pass) {
      if (pass == 0 ? !do_v : !do_k) continue;
      const T* src = pass == 0 ? dob : qb;
      const int64_t sl = pass == 0 ? a.dout.sl : a.q.sl, d = pass == 0 ? a.hdv : a.hd;
      const T* W = pass == 0 ? Ps : dSs;
      for (int q0 = 0; q0 < BM; q0 += QS) {
        __syncthreads();
        load_tile<T, QS, HC>(stage, LDV, src, sl, a.Lq, i0 + q0, d, c0, false, T(1));
        __syncthreads();
#pragma unroll 4
        for (int t = 0; t < QS; ++t) {
          T xv[RO];
#pragma unroll
          for (int c = 0; c < RO; ++c) xv[c] = stage[t * LDV + tx + 16 * c];
#pragma unroll
          for (int r = 0; r < RM; ++r) {
            const T w = W[(q0 + t) * LDP + ty * RM + r];
#pragma unroll
            for (int c = 0; c < RO; ++c) {
              if (pass == 0) dv[r][c] += w * xv[c];
              else dk[r][c] += w * xv[c];
            }
          }
        }
      }
    }
    // dQ += dS k (queries ty*RM + r, columns c0 + tx + 16c), keys in sub-blocks; atomics into dq.
    if (do_k) {
      T dq[RM][RO];
#pragma unroll
      for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < RO; ++c) dq[r][c] = T(0);
      for (int k0 = 0; k0 < BM; k0 += QS) {
        __syncthreads();
        load_tile<T, QS, HC>(stage, LDV, kb, a.k.sl, a.Lk, j0 + k0, a.hd, c0, false, T(1));
        __syncthreads();
#pragma unroll 4
        for (int t = 0; t < QS; ++t) {
          T kv[RO];
#pragma unroll
          for (int c = 0; c < RO; ++c) kv[c] = stage[t * LDV + tx + 16 * c];
#pragma unroll
          for (int r = 0; r < RM; ++r) {
            const T w = dSs[(ty * RM + r) * LDP + k0 + t];
#pragma unroll
            for (int c = 0; c < RO; ++c) dq[r][c] += w * kv[c];
          }
        }
      }
#pragma unroll
      for (int r = 0; r < RM; ++r) {
        const int64_t i = i0 + ty * RM + r;
        if (i >= a.Lq) continue;
#pragma unroll
        for (int c = 0; c < RO; ++c) {
          const int64_t col = c0 + tx + 16 * c;
          if (col < a.hd) atomic_add(dqb + i * a.dq.sl + col, dq[r][c]);
        }
      }
    }
    __syncthreads();  // Ps, dSs, stats and stage are rewritten by the next query tile
  }
#pragma unroll
  for (int r = 0; r < RM; ++r) {
    const int64_t j = j0 + ty * RM + r;
    if (j >= a.Lk) continue;
    T* dkr = a.dk.p + b * a.dk.sb + h * a.dk.sh + j * a.dk.sl;
    T* dvr = a.dv.p + b * a.dv.sb + h * a.dv.sh + j * a.dv.sl;
#pragma unroll
    for (int c = 0; c < RO; ++c) {
      const int64_t col = c0 + tx + 16 * c;
      if (col < a.hd) dkr[col] = dk[r][c];
      if (col < a.hdv) dvr[col] = dv[r][c];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks: the CPU twin's, message for message.

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

MaskArg mask_arg(const OpCall& c, const TensorRef* m) {
  MaskArg a;
  if (!m) return a;
  TS_CHECK(m->dtype == DType::F32 || m->dtype == DType::F64 || m->dtype == DType::I32, c.op,
           ": key padding mask must be float32, float64 or int32, got ", m->describe());
  a.p = m->raw();
  a.kind = m->dtype == DType::F32 ? 1 : m->dtype == DType::F64 ? 2 : 3;
  a.sb = m->strides[0];
  a.sk = m->strides[1];
  return a;
}

bool flag(const OpCall& c, size_t i) { return c.s(i) != 0; }

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned grid_of(const OpCall& c, int64_t blocks) {
  TS_CHECK(blocks <= 2147483647LL, c.op, ": problem too large for one launch (", blocks, " blocks)");
  return (unsigned)blocks;
}

// Device scratch from the tracked allocator (memoryStats() sees it), freed on scope exit.
struct DeviceScratch {
  Storage* s = nullptr;
  explicit DeviceScratch(size_t bytes) { s = storage_alloc(bytes < 64 ? 64 : bytes, Device::CUDA, false); }
  ~DeviceScratch() {
    storage_release(s);
    delete s;
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  template <typename U>
  U* as() const {
    return static_cast<U*>(s->data);
  }
};

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
  TS_CHECK(c.t(4).shape[0] == s.B && c.t(4).shape[1] == s.H && c.t(4).shape[2] == s.Lq && c.t(4).shape[3] == 2, c.op,
           ": lse ", c.t(4).describe(), " must have shape [", s.B, ", ", s.H, ", ", s.Lq, ", 2]");
  check_out(c, 4, "lse", 3);
  const TensorRef* mask = has_mask ? check_mask(c, 5, s) : nullptr;
  const double scale = c.s(0);
  TS_CHECK(std::isfinite(scale), c.op, ": scale must be finite, got ", scale);
  const bool causal = flag(c, 1);
  const MaskArg margs = mask_arg(c, mask);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    constexpr int BM = FwdCfg<T>::BM, HC = FwdCfg<T>::HC;
    FwdArgs<T> a{};
    a.q = mat_of<T>(c.t(0));
    a.k = mat_of<T>(c.t(1));
    a.v = mat_of<T>(c.t(2));
    a.o = mat_of<T>(c.t(3));
    const TensorRef& l = c.t(4);
    a.lse = l.data<T>();
    a.lsb = l.strides[0], a.lsh = l.strides[1], a.lsl = l.strides[2], a.ls2 = l.strides[3];
    a.mask = margs;
    a.B = s.B, a.H = s.H, a.Lq = s.Lq, a.Lk = s.Lk, a.hd = s.hd, a.hdv = s.hdv;
    a.nqb = cdiv(s.Lq, BM);
    a.nkb = cdiv(s.Lk, BM);
    a.nz = s.hdv > HC ? cdiv(s.hdv, HC) : 1;
    a.causal = causal;
    a.scale = T(scale);
    const int64_t blocks = s.B * s.H * a.nqb * a.nz;
    if (blocks == 0) return;
    fa_fwd<T><<<grid_of(c, blocks), kTPB>>>(a);
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
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
  TS_CHECK(c.t(4).shape[0] == s.B && c.t(4).shape[1] == s.H && c.t(4).shape[2] == s.Lq && c.t(4).shape[3] == 2, c.op,
           ": lse ", c.t(4).describe(), " must have shape [", s.B, ", ", s.H, ", ", s.Lq, ", 2]");
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
  const MaskArg margs = mask_arg(c, mask);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    BwdArgs<T> a{};
    a.q = mat_of<T>(c.t(0));
    a.k = mat_of<T>(c.t(1));
    a.v = mat_of<T>(c.t(2));
    a.o = mat_of<T>(c.t(3));
    const TensorRef& l = c.t(4);
    a.lse = l.data<T>();
    a.lsb = l.strides[0], a.lsh = l.strides[1], a.lsl = l.strides[2], a.ls2 = l.strides[3];
    a.dout = mat_of<T>(c.t(5));
    a.dq = mat_of<T>(c.t(6));
    a.dk = mat_of<T>(c.t(7));
    a.dv = mat_of<T>(c.t(8));
    a.mask = margs;
    a.B = s.B, a.H = s.H, a.Lq = s.Lq, a.Lk = s.Lk, a.hd = s.hd, a.hdv = s.hdv;
    a.nqb = cdiv(s.Lq, kBwdBM);
    a.nkb = cdiv(s.Lk, kBwdBM);
    const int64_t wide = s.hd > s.hdv ? s.hd : s.hdv;
    a.nz = wide > kBwdHC ? cdiv(wide, kBwdHC) : 1;
    a.causal = causal;
    a.scale = T(scale);
    const int64_t rows = s.B * s.H * s.Lq;
    DeviceScratch stats((size_t)(rows > 0 ? rows : 1) * 3 * sizeof(T));
    a.stats = stats.as<T>();
    if (rows > 0) {
      const int64_t want = cdiv(rows * 32, kThreads);
      fa_bwd_prep<T><<<(unsigned)(want < 65535LL * 16 ? want : 65535LL * 16), kThreads>>>(a);
      check_launch(c.op);
    }
    const int64_t blocks = s.B * s.H * a.nkb * a.nz;
    if (blocks > 0) {
      fa_bwd<T><<<grid_of(c, blocks), kTPB>>>(a);
      check_launch(c.op);
    }
    // The scratch is freed when this scope ends: it goes back to the caching allocator, and any
    // later reuse is ordered after these kernels because all work runs on the legacy default stream.
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

}  // namespace tessera::cuda
