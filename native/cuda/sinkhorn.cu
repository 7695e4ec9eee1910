// Log-domain Sinkhorn (entropic OT) on the GPU: sinkhorn, sinkhorn_plan, sinkhorn_grad_points,
// klot, klot_backward. CPU twin: native/cpu/sinkhorn.cpp (read its top comment for the maths);
// same tensor / scalar contract (native/cpu/sinkhorn.h), same argument checks in the same order
// (so the same bad call fails with the same message), same algorithm step for step, so
// iteration counts, the eps schedule and the stopping decisions agree with the CPU.
//
// WHAT IS COMPUTED. Every cost is C_ij = alpha_i + beta_j + gamma S_ij (matrix: S = C, gamma =
// costScale; sqeuclidean: S = <x'_i, y'_j> on clouds centred on their joint mean, alpha_i =
// s |x'_i|^2, beta_j = s |y'_j|^2, gamma = -2s; negdot: S = <x_i, y_j>, gamma = -1). With
// kappa = -gamma / eps one Sinkhorn iteration is
//   v_j = (g_j - beta_j) / eps + log b_j;  f_i = lam (alpha_i - eps LSE_j(v_j + kappa S_ij))
//   w_i = (f_i - alpha_i) / eps + log a_i; g_j = lam (beta_j  - eps LSE_i(w_i + kappa S_ij))
// lam = rho / (rho + eps) (1 when balanced), exactly the CPU's update.
//
// HOST LOOP. All B problems of a batch advance in lockstep, one iteration per step; each has its
// own stage list (eps-scaling stages eps0 q^k > eps, itersPerStage each, then eps) built with the
// CPU's loop (eps0 defaults to the cost's range, reduced on the device and read back once), its
// own iteration counter k and a done flag. Per-problem step parameters (eps, lam, kappa, active)
// live in a small device array that is re-uploaded only when it changes (stage transitions, a
// problem finishing); finished problems are skipped by every kernel, so their potentials stay
// as measured. A step launches: set_v, the row LSE pass (with the plan statistics Eb, Es on a
// check step), on a check step the check kernel (per problem, one block: the L1 marginal error,
// mass, <P, C> and the dual / primal terms, as the CPU's check loop, in double) whose [B, 9]
// result is read back - only on the steps where the CPU checks (k >= 1, k % checkEvery == 0 at
// the final eps with tol > 0, or k == maxIter), so iteration counts agree - then update_f (+ w),
// the column LSE pass and update_g. Stats are assembled on the host exactly as the CPU does.
//
// KERNELS (256-thread blocks, grid-stride over "units", so any B, n, m fits the grid):
//   matrix row pass   one warp per (row, column split); lanes stride the row (coalesced), a
//                     per-lane online max / sum (and Eb, Es) in T, a warp butterfly in double.
//   matrix col pass   one block per (32 columns, row split): lane = column (a warp reads 128
//                     contiguous bytes of a row), the 8 warps take every 8th row; per-thread
//                     online state in T, merged in shared memory in double in warp order.
//   points (both)     one block per (32 outer points, inner split): the 32 x 64 tile of S is a
//                     SIMT product (outer / inner points staged through shared memory in chunks
//                     of 16 coordinates, each thread 2 x 4 dots in registers, any d), followed
//                     by the online LSE update of the thread's 2 rows; 16-lane butterflies in
//                     double at the end. The column pass is the same kernel with x and y swapped
//                     (S is symmetric in the roles), so C is never stored: memory O((n + m) d).
//   splits            when one unit per row / column tile would leave the GPU idle (few rows,
//                     small batch), the reduced dimension is split into a fixed number of
//                     ranges; partial (M, s, Eb, Es) go to scratch and a merge kernel combines
//                     them in split order. Deterministic: no atomics anywhere, so results are
//                     identical run to run.
//   plan              matrix: one thread per element; points: the S tile kernel, then out.
//   grad_points       one block per (32 outer points, 32-coordinate chunk of d): per 64-point
//                     inner tile, S -> P tile in shared memory, then P (32 x 64) times the raw
//                     inner coordinates (64 x 32) in T per tile, accumulated in double registers;
//                     row sums of P alike. dy is the same kernel with the roles swapped. For
//                     d > 32 the S tiles are recomputed per coordinate chunk (simple, no P store).
//   klot              prologue kernel (log marginals, scaled potentials, double), then a warp
//                     per row (double exps, as the CPU) and a per-problem tree sum in row order;
//                     klot_backward is one thread per element.
//
// PRECISION vs the CPU (agreement is to a tolerance, not bitwise):
//   - LSE sums: the CPU sums exp(z - M) over one tile (<= 4096 terms) in T, then in double,
//     with M the tile's exact max found first. Here each thread keeps an online max / sum in T
//     over its strided share (rescaling by exp(M_old - M_new) in T when the max grows; expf /
//     exp from the CUDA math library, <= 2 ulp, vs the CPU's exp_lse / vec_exp), and threads
//     combine in double through a butterfly / split merge. float32: ~1e-6 relative on the LSE,
//     which the iterations turn into ~1e-5 absolute on f, g (times |cost| / eps); float64: ~1e-13.
//   - S for point clouds: dot products in T with FMA in chunk order (the CPU's micro-kernels use
//     another order); the centring mean is a tree sum in double (the CPU's is sequential), so x'
//     may differ in the last bit of T.
//   - The check's sums over i (and j) are tree sums in double (the CPU: sequential).
//   Because the stopping decisions compare the marginal error with tol, a problem whose error
//   lands within rounding of tol at a check could stop one check earlier / later than the CPU;
//   tests should use tolerances that are not borderline (or fixed iteration counts, tol = 0).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <vector>

#include "core/storage.h"
#include "cuda/common.cuh"
#include "cuda/cuda_api.h"
#include "cuda/sinkhorn.h"

namespace tessera::cuda {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
enum Mode { kMatrix = 0, kSqEuclid = 1, kNegDot = 2 };
constexpr int kStats = 8;
constexpr int kAcc = 9;  // check sums: e, mass, rf, transport, fa, cg, gb, ma, mb

constexpr int kTPB = 256;  // threads per block, every kernel
constexpr int kTO = 32;    // outer points per block (points kernels)
constexpr int kTI = 64;    // inner points per tile
constexpr int kKC = 16;    // coordinates per staged chunk of the S tile
constexpr int kDC = 32;    // coordinates per gradient block
constexpr int kMaxSplits = 64;

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Per-problem parameters of the current step.
struct Step {
  double eps, lam, kappa;
  int active, pad;
};

// ---------------------------------------------------------------------------------------------
// Device helpers.
__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }

template <typename T>
__device__ __forceinline__ T ninf() {
  return -std::numeric_limits<T>::infinity();
}

// Online log-sum-exp state of one thread, in T: sum_k exp(z_k - M) with M the running max; with
// Stats also sum_k e_k bq_k and sum_k e_k S_k (the CPU's Eb / Es).
template <typename T, bool Stats>
struct Online {
  T M, s, eb, es;
  __device__ __forceinline__ void init() {
    M = ninf<T>();
    s = T(0);
    eb = T(0);
    es = T(0);
  }
  __device__ __forceinline__ void add(T z, T bq, T sv) {
    if (z > M) {
      const T sc = dexp(M - z);  // 0 on the first term (M = -inf)
      s = s * sc + T(1);
      if (Stats) {
        eb = eb * sc + bq;
        es = es * sc + sv;
      }
      M = z;
    } else if (z != ninf<T>()) {  // a -inf term contributes 0 (and must not make NaN); NaN propagates
      const T e = dexp(z - M);
      s += e;
      if (Stats) {
        eb += e * bq;
        es += e * sv;
      }
    }
  }
};

struct Acc {
  double M, s, eb, es;
};

template <typename T, bool Stats>
__device__ __forceinline__ Acc to_acc(const Online<T, Stats>& o) {
  return Acc{double(o.M), double(o.s), Stats ? double(o.eb) : 0.0, Stats ? double(o.es) : 0.0};
}

__device__ __forceinline__ void merge(Acc& a, const Acc& b) {
  if (b.M == -kInf) return;  // b holds no terms
  if (a.M == -kInf) {
    a = b;
    return;
  }
  const double M = a.M > b.M ? a.M : b.M;
  const double sa = exp(a.M - M), sb = exp(b.M - M);
  a.s = a.s * sa + b.s * sb;
  a.eb = a.eb * sa + b.eb * sb;
  a.es = a.es * sa + b.es * sb;
  a.M = M;
}

// Butterfly over lanes xor width/2 .. 1 (width 32: the warp; 16: each half-warp separately).
__device__ __forceinline__ void shfl_merge(Acc& a, int width) {
  for (int o = width / 2; o > 0; o >>= 1) {
    Acc b;
    b.M = __shfl_xor_sync(0xffffffffu, a.M, o);
    b.s = __shfl_xor_sync(0xffffffffu, a.s, o);
    b.eb = __shfl_xor_sync(0xffffffffu, a.eb, o);
    b.es = __shfl_xor_sync(0xffffffffu, a.es, o);
    merge(a, b);
  }
}

__device__ __forceinline__ double shfl_sum(double v, int width) {
  for (int o = width / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide sum of one double per thread (tree in shared memory, fixed order); all threads get it.
__device__ double block_sum(double v, double* sh) {
  const int t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (int o = kTPB / 2; o > 0; o >>= 1) {
    if (t < o) sh[t] += sh[t + o];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

// The S tile of outer points [o0, o0 + 32) x inner points [q0, q0 + 64): thread (ty, tx) gets
// acc[a][c] = <O_{o0 + 2ty + a}, I_{q0 + tx + 16c}> (zero for points past the edges). Must be
// called by the whole block (it synchronises); O, I are one problem's [no, d] / [ni, d].
template <typename T>
__device__ __forceinline__ void s_tile(const T* __restrict__ O, const T* __restrict__ I, int64_t no, int64_t ni,
                                       int64_t d, int64_t o0, int64_t q0, T (*Os)[kTO + 1], T (*Is)[kTI + 1],
                                       T (&acc)[2][4]) {
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
#pragma unroll
  for (int a = 0; a < 2; ++a)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[a][c] = T(0);
  for (int64_t k0 = 0; k0 < d; k0 += kKC) {
    for (int e = tid; e < kTO * kKC; e += kTPB) {
      const int r = e / kKC, kk = e % kKC;
      const int64_t o = o0 + r, k = k0 + kk;
      Os[kk][r] = (o < no && k < d) ? O[o * d + k] : T(0);
    }
    for (int e = tid; e < kTI * kKC; e += kTPB) {
      const int r = e / kKC, kk = e % kKC;
      const int64_t q = q0 + r, k = k0 + kk;
      Is[kk][r] = (q < ni && k < d) ? I[q * d + k] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kKC; ++kk) {  // zero padding past d adds exact zeros
      const T a0 = Os[kk][2 * ty], a1 = Os[kk][2 * ty + 1];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const T bq = Is[kk][tx + 16 * c];
        acc[0][c] = fma(a0, bq, acc[0][c]);
        acc[1][c] = fma(a1, bq, acc[1][c]);
      }
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------------
// Preparation kernels.

// mu[b, k] = mean over the n + m points of coordinate k (double, tree sum). One block per (b, k).
template <typename T>
__global__ void mean_kernel(const T* X, const T* Y, int64_t B, int64_t n, int64_t m, int64_t d, double* mu) {
  __shared__ double sh[kTPB];
  for (int64_t u = blockIdx.x; u < B * d; u += gridDim.x) {
    const int64_t b = u / d, k = u % d;
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += kTPB) s += double(X[(b * n + i) * d + k]);
    for (int64_t j = threadIdx.x; j < m; j += kTPB) s += double(Y[(b * m + j) * d + k]);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) mu[u] = s / double(n + m);
  }
}

// x'[b, i, :] = T(x - mu[b]) and alpha[b, i] = s |x'_i|^2 (double, coordinates in order, as the CPU).
template <typename T>
__global__ void center_kernel(const T* X, int64_t B, int64_t n, int64_t d, const double* mu, double s, T* Xc,
                              double* alpha, T* alphaT) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * n; r += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = r / n;
    double s2 = 0;
    for (int64_t k = 0; k < d; ++k) {
      const T v = T(double(X[r * d + k]) - mu[b * d + k]);
      Xc[r * d + k] = v;
      s2 += double(v) * double(v);
    }
    alpha[r] = s * s2;
    if (alphaT) alphaT[r] = T(s * s2);
  }
}

// log of a marginal with batch stride sa: la[b * len + i] = log(double(a[b * sa + i])).
template <typename T>
__global__ void log_kernel(const T* a, int64_t sa, int64_t B, int64_t len, double* la) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * len; r += (int64_t)gridDim.x * blockDim.x)
    la[r] = log(double(a[(r / len) * sa + r % len]));
}

// Per-(b, chunk) min / max of C (T compare, NaN ignored like the CPU's ternaries).
template <typename T>
__global__ void minmax_matrix(const T* C, int64_t B, int64_t nm, int chunks, double* out) {
  __shared__ T lo_s[kTPB], hi_s[kTPB];
  const int64_t per = ceil_div(nm, chunks);
  for (int64_t u = blockIdx.x; u < B * chunks; u += gridDim.x) {
    const int64_t b = u / chunks, ch = u % chunks;
    const int64_t e0 = ch * per, e1 = min(nm, e0 + per);
    T lo = std::numeric_limits<T>::infinity(), hi = -std::numeric_limits<T>::infinity();
    for (int64_t e = e0 + threadIdx.x; e < e1; e += kTPB) {
      const T v = C[b * nm + e];
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    lo_s[threadIdx.x] = lo;
    hi_s[threadIdx.x] = hi;
    __syncthreads();
    for (int o = kTPB / 2; o > 0; o >>= 1) {
      if (threadIdx.x < o) {
        const T l2 = lo_s[threadIdx.x + o], h2 = hi_s[threadIdx.x + o];
        lo_s[threadIdx.x] = l2 < lo_s[threadIdx.x] ? l2 : lo_s[threadIdx.x];
        hi_s[threadIdx.x] = h2 > hi_s[threadIdx.x] ? h2 : hi_s[threadIdx.x];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      out[2 * u] = double(lo_s[0]);
      out[2 * u + 1] = double(hi_s[0]);
    }
    __syncthreads();
  }
}

// Per-(b, k) min / max of the centred coordinates of both clouds (double, NaN ignored).
template <typename T>
__global__ void minmax_points(const T* Xc, const T* Yc, int64_t B, int64_t n, int64_t m, int64_t d, double* out) {
  __shared__ double lo_s[kTPB], hi_s[kTPB];
  for (int64_t u = blockIdx.x; u < B * d; u += gridDim.x) {
    const int64_t b = u / d, k = u % d;
    double lo = kInf, hi = -kInf;
    for (int64_t i = threadIdx.x; i < n; i += kTPB) {
      const double v = double(Xc[(b * n + i) * d + k]);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    for (int64_t j = threadIdx.x; j < m; j += kTPB) {
      const double v = double(Yc[(b * m + j) * d + k]);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    lo_s[threadIdx.x] = lo;
    hi_s[threadIdx.x] = hi;
    __syncthreads();
    for (int o = kTPB / 2; o > 0; o >>= 1) {
      if (threadIdx.x < o) {
        lo_s[threadIdx.x] = lo_s[threadIdx.x + o] < lo_s[threadIdx.x] ? lo_s[threadIdx.x + o] : lo_s[threadIdx.x];
        hi_s[threadIdx.x] = hi_s[threadIdx.x + o] > hi_s[threadIdx.x] ? hi_s[threadIdx.x + o] : hi_s[threadIdx.x];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      out[2 * u] = lo_s[0];
      out[2 * u + 1] = hi_s[0];
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------------
// Solver kernels.

// v[b, j] = T((g - beta) / eps + lb) for the active problems (also w from f, alpha, la).
template <typename T>
__global__ void set_vec(int64_t B, int64_t len, const double* g, const double* beta, const double* lb,
                        const Step* st, T* v) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * len; r += (int64_t)gridDim.x * blockDim.x) {
    const Step s = st[r / len];
    if (!s.active) continue;
    v[r] = T((g[r] - beta[r]) / s.eps + lb[r]);
  }
}

// Matrix row pass: one warp per (row, split).
template <typename T, bool Stats>
__global__ void row_lse_matrix(const T* __restrict__ C, int64_t B, int64_t n, int64_t m, const T* __restrict__ v,
                               const Step* st, int splits, int64_t cols_per, double* pM, double* pS, double* pEb,
                               double* pEs) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  const int64_t Bn = B * n, units = Bn * splits;
  for (int64_t u = blockIdx.x * wpb + (threadIdx.x >> 5); u < units; u += (int64_t)gridDim.x * wpb) {
    const int64_t row = u / splits;
    const int sp = int(u % splits);
    const int64_t b = row / n;
    if (!st[b].active) continue;  // warp-uniform
    const T kappa = T(st[b].kappa);
    const T* c = C + row * m;
    const T* vb = v + b * m;
    const int64_t j0 = sp * cols_per, j1 = min(m, j0 + cols_per);
    Online<T, Stats> o;
    o.init();
    for (int64_t j = j0 + lane; j < j1; j += 32) {
      const T s = c[j];
      o.add(vb[j] + kappa * s, T(0), s);
    }
    Acc a = to_acc(o);
    shfl_merge(a, 32);
    if (lane == 0) {
      const int64_t k = sp * Bn + row;
      pM[k] = a.M;
      pS[k] = a.s;
      if (Stats) {
        pEb[k] = a.eb;
        pEs[k] = a.es;
      }
    }
  }
}

// Matrix column pass: one block per (32 columns, row split); lane = column, warp = row phase.
template <typename T>
__global__ void col_lse_matrix(const T* __restrict__ C, int64_t B, int64_t n, int64_t m, const T* __restrict__ w,
                               const Step* st, int splits, int64_t rows_per, double* pM, double* pS) {
  __shared__ double shM[kTPB / 32][32], shS[kTPB / 32][32];
  const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
  const int64_t ct = ceil_div(m, 32), units = B * ct * splits, Bm = B * m;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int sp = int(u % splits);
    const int64_t t = u / splits, b = t / ct, j = (t % ct) * 32 + lane;
    if (!st[b].active) continue;  // block-uniform
    const T kappa = T(st[b].kappa);
    const int64_t i0 = sp * rows_per, i1 = min(n, i0 + rows_per);
    Online<T, false> o;
    o.init();
    if (j < m) {
      const T* cb = C + b * n * m + j;
      const T* wb = w + b * n;
      for (int64_t i = i0 + wp; i < i1; i += kTPB / 32) o.add(wb[i] + kappa * cb[i * m], T(0), T(0));
    }
    shM[wp][lane] = double(o.M);
    shS[wp][lane] = double(o.s);
    __syncthreads();
    if (wp == 0 && j < m) {
      Acc a{shM[0][lane], shS[0][lane], 0, 0};
      for (int q = 1; q < kTPB / 32; ++q) merge(a, Acc{shM[q][lane], shS[q][lane], 0, 0});
      pM[sp * Bm + b * m + j] = a.M;
      pS[sp * Bm + b * m + j] = a.s;
    }
    __syncthreads();
  }
}

// Point clouds, either pass: for every outer point o, LSE_q(vec_q + kappa <O_o, I_q>) over the
// inner points q of this block's split (row pass: O = x', I = y', vec = v; column pass: O = y',
// I = x', vec = w). With Stats (row pass of a check step) also Eb (with bT = beta) and Es.
template <typename T, bool Stats>
__global__ void __launch_bounds__(kTPB) lse_points(const T* __restrict__ O, const T* __restrict__ I, int64_t B,
                                                   int64_t no, int64_t ni, int64_t d, const T* __restrict__ vec,
                                                   const T* __restrict__ bT, const Step* st, int splits,
                                                   int64_t tiles_per, double* pM, double* pS, double* pEb,
                                                   double* pEs) {
  __shared__ T Os[kKC][kTO + 1];
  __shared__ T Is[kKC][kTI + 1];
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t ot = ceil_div(no, kTO), it = ceil_div(ni, kTI), units = B * ot * splits, Bno = B * no;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int sp = int(u % splits);
    const int64_t t = u / splits, b = t / ot, o0 = (t % ot) * kTO;
    if (!st[b].active) continue;  // block-uniform
    const T kappa = T(st[b].kappa);
    const T* Ob = O + b * no * d;
    const T* Ib = I + b * ni * d;
    const T* vb = vec + b * ni;
    const T* bb = bT ? bT + b * ni : nullptr;
    Online<T, Stats> on[2];
    on[0].init();
    on[1].init();
    const int64_t t1 = min(it, (sp + 1) * tiles_per);
    for (int64_t tt = sp * tiles_per; tt < t1; ++tt) {
      const int64_t q0 = tt * kTI;
      T acc[2][4];
      s_tile<T>(Ob, Ib, no, ni, d, o0, q0, Os, Is, acc);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t q = q0 + tx + 16 * c;
        if (q < ni) {
          const T vq = vb[q];
          const T bq = (Stats && bb) ? bb[q] : T(0);
          on[0].add(vq + kappa * acc[0][c], bq, acc[0][c]);
          on[1].add(vq + kappa * acc[1][c], bq, acc[1][c]);
        }
      }
    }
#pragma unroll
    for (int a = 0; a < 2; ++a) {
      Acc x = to_acc(on[a]);
      shfl_merge(x, 16);
      const int64_t o = o0 + 2 * ty + a;
      if (tx == 0 && o < no) {
        const int64_t k = sp * Bno + b * no + o;
        pM[k] = x.M;
        pS[k] = x.s;
        if (Stats) {
          pEb[k] = x.eb;
          pEs[k] = x.es;
        }
      }
    }
  }
}

// Combines the split partials (split-major [splits, B * len]) in split order.
__global__ void merge_splits(int64_t B, int64_t len, int splits, const Step* st, bool stats, const double* pM,
                             const double* pS, const double* pEb, const double* pEs, double* M, double* S,
                             double* Eb, double* Es) {
  const int64_t total = B * len;
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < total; r += (int64_t)gridDim.x * blockDim.x) {
    if (!st[r / len].active) continue;
    Acc a{pM[r], pS[r], stats ? pEb[r] : 0.0, stats ? pEs[r] : 0.0};
    for (int k = 1; k < splits; ++k) {
      const int64_t q = k * total + r;
      merge(a, Acc{pM[q], pS[q], stats ? pEb[q] : 0.0, stats ? pEs[q] : 0.0});
    }
    M[r] = a.M;
    S[r] = a.s;
    if (stats) {
      Eb[r] = a.eb;
      Es[r] = a.es;
    }
  }
}

// The CPU's check loop (marginal error and the statistics' sums), one block per active problem.
template <typename T>
__global__ void check_kernel(int64_t B, int64_t n, int64_t m, const T* a, int64_t sa, const T* bm, int64_t sb,
                             const double* f, const double* g, const double* alpha, const double* Mr,
                             const double* Sr, const double* Eb, const double* Es, double gamma, double eps,
                             double rho, bool balanced, const Step* st, double* acc) {
  __shared__ double sh[kTPB];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    if (!st[b].active) continue;  // block-uniform
    double e = 0, mass = 0, rf = 0, tr = 0, fa = 0, cg = 0, gb = 0, ma = 0, mb = 0;
    for (int64_t i = threadIdx.x; i < n; i += kTPB) {
      const int64_t r = b * n + i;
      const double fi = f[r], al = alpha[r];
      const double ft = (fi - al) / eps;
      const double lr = ft + Mr[r] + log(Sr[r]);
      const double ai = double(a[b * sa + i]);
      const double rr = ai * exp(lr);
      const double t = balanced ? ai : ai * exp(-fi / rho);
      e += fabs(rr - t);
      mass += rr;
      rf += rr * fi;
      tr += ai * exp(ft + Mr[r]) * (al * Sr[r] + Eb[r] + gamma * Es[r]);
      if (!balanced) rf += rho * (rr * log(rr / ai) - rr + ai);
      fa += balanced ? ai * fi : -rho * ai * (exp(-fi / rho) - 1);
      ma += ai;
    }
    for (int64_t j = threadIdx.x; j < m; j += kTPB) {
      const double bj = double(bm[b * sb + j]), gj = g[b * m + j];
      if (balanced) {
        cg += bj * gj;
        gb += bj * gj;
      } else {
        const double cc = bj * exp(-gj / rho);
        cg += cc * gj + rho * (cc * log(cc / bj) - cc + bj);
        gb += -rho * bj * (exp(-gj / rho) - 1);
      }
      mb += bj;
    }
    const double vals[kAcc] = {e, mass, rf, tr, fa, cg, gb, ma, mb};
    for (int k = 0; k < kAcc; ++k) {
      const double s = block_sum(vals[k], sh);
      if (threadIdx.x == 0) acc[b * kAcc + k] = s;
    }
  }
}

// f = lam (alpha - eps (Mr + log Sr)); w = T((f - alpha) / eps + la).
template <typename T>
__global__ void update_f(int64_t B, int64_t n, const double* alpha, const double* la, const double* Mr,
                         const double* Sr, const Step* st, double* f, T* w) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * n; r += (int64_t)gridDim.x * blockDim.x) {
    const Step s = st[r / n];
    if (!s.active) continue;
    const double fi = s.lam * (alpha[r] - s.eps * (Mr[r] + log(Sr[r])));
    f[r] = fi;
    w[r] = T((fi - alpha[r]) / s.eps + la[r]);
  }
}

// g = lam (beta - eps (Mc + log Sc)).
__global__ void update_g(int64_t B, int64_t m, const double* beta, const double* Mc, const double* Sc,
                         const Step* st, double* g) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * m; r += (int64_t)gridDim.x * blockDim.x) {
    const Step s = st[r / m];
    if (!s.active) continue;
    g[r] = s.lam * (beta[r] - s.eps * (Mc[r] + log(Sc[r])));
  }
}

template <typename T>
__global__ void to_T(const double* src, int64_t len, T* dst) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < len; r += (int64_t)gridDim.x * blockDim.x)
    dst[r] = T(src[r]);
}

// u[b, i] = (double(f) - alpha) / eps + log(double(a)) (the plan / gradient row constants).
template <typename T>
__global__ void duals_kernel(const T* f, const T* a, int64_t sa, const double* alpha, int64_t B, int64_t len,
                             double eps, double* u) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * len; r += (int64_t)gridDim.x * blockDim.x) {
    const double la = log(double(a[(r / len) * sa + r % len]));
    u[r] = (double(f[r]) - alpha[r]) / eps + la;
  }
}

// ---------------------------------------------------------------------------------------------
// Plan and gradient kernels.

template <typename T>
__global__ void plan_matrix(const T* C, int64_t B, int64_t n, int64_t m, const double* u, const double* v,
                            double kappa, const double* wt, double beta, T* out) {
  const int64_t nm = n * m, total = B * nm;
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < total; r += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = r / nm, e = r % nm, i = e / m, j = e % m;
    double val = wt[b] * exp(u[b * n + i] + v[b * m + j] + kappa * double(C[r]));
    if (beta != 0) val += beta * double(out[r]);
    out[r] = T(val);
  }
}

template <typename T>
__global__ void __launch_bounds__(kTPB) plan_points(const T* __restrict__ X, const T* __restrict__ Y, int64_t B,
                                                    int64_t n, int64_t m, int64_t d, const double* u,
                                                    const double* v, double kappa, const double* wt, double beta,
                                                    T* out) {
  __shared__ T Os[kKC][kTO + 1];
  __shared__ T Is[kKC][kTI + 1];
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t ot = ceil_div(n, kTO), it = ceil_div(m, kTI), units = B * ot * it;
  for (int64_t un = blockIdx.x; un < units; un += gridDim.x) {
    const int64_t b = un / (ot * it), rem = un % (ot * it), o0 = (rem / it) * kTO, q0 = (rem % it) * kTI;
    T acc[2][4];
    s_tile<T>(X + b * n * d, Y + b * m * d, n, m, d, o0, q0, Os, Is, acc);
    const double w = wt[b];
#pragma unroll
    for (int a = 0; a < 2; ++a) {
      const int64_t i = o0 + 2 * ty + a;
      if (i >= n) continue;
      const double ui = u[b * n + i];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t j = q0 + tx + 16 * c;
        if (j >= m) continue;
        const int64_t idx = (b * n + i) * m + j;
        double val = w * exp(ui + v[b * m + j] + kappa * double(acc[a][c]));
        if (beta != 0) val += beta * double(out[idx]);
        out[idx] = T(val);
      }
    }
  }
}

// dO_o = w (twos r_o O_o [sq] + gamma sum_q P_oq I_q), P_oq = T(exp(uo_o + vi_q + kappa S_oq)),
// r_o = sum_q P_oq; Sc operands (centred or raw) for S, raw coordinates for the formula.
template <typename T>
__global__ void __launch_bounds__(kTPB) grad_points_kernel(const T* __restrict__ Oc, const T* __restrict__ Ic,
                                                           const T* __restrict__ Oraw, const T* __restrict__ Iraw,
                                                           int64_t B, int64_t no, int64_t ni, int64_t d,
                                                           const double* uo, const double* vi, double kappa,
                                                           double gamma, double twos, bool sq, const double* wt,
                                                           T* dout) {
  __shared__ T Os[kKC][kTO + 1];
  __shared__ T Is[kKC][kTI + 1];
  __shared__ T Ps[kTO][kTI + 1];
  __shared__ T Ys[kTI][kDC + 1];
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int64_t dch = ceil_div(d, kDC), ot = ceil_div(no, kTO), it = ceil_div(ni, kTI), units = B * ot * dch;
  for (int64_t un = blockIdx.x; un < units; un += gridDim.x) {
    const int64_t dc = un % dch, t = un / dch, b = t / ot, o0 = (t % ot) * kTO, k0 = dc * kDC;
    double racc[2] = {0, 0};
    double dacc[2][2] = {{0, 0}, {0, 0}};
    const T* Ocb = Oc + b * no * d;
    const T* Icb = Ic + b * ni * d;
    const T* Irb = Iraw + b * ni * d;
    for (int64_t tt = 0; tt < it; ++tt) {
      const int64_t q0 = tt * kTI;
      T acc[2][4];
      s_tile<T>(Ocb, Icb, no, ni, d, o0, q0, Os, Is, acc);
#pragma unroll
      for (int a = 0; a < 2; ++a) {
        const int64_t o = o0 + 2 * ty + a;
        T rs = T(0);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t q = q0 + tx + 16 * c;
          T p = T(0);
          if (o < no && q < ni) p = T(exp(uo[b * no + o] + vi[b * ni + q] + kappa * double(acc[a][c])));
          Ps[2 * ty + a][tx + 16 * c] = p;
          rs += p;
        }
        racc[a] += double(rs);
      }
      for (int e = tid; e < kTI * kDC; e += kTPB) {
        const int r = e / kDC, kk = e % kDC;
        const int64_t q = q0 + r, k = k0 + kk;
        Ys[r][kk] = (q < ni && k < d) ? Irb[q * d + k] : T(0);
      }
      __syncthreads();
#pragma unroll
      for (int a = 0; a < 2; ++a)
#pragma unroll
        for (int cc = 0; cc < 2; ++cc) {
          T s = T(0);
#pragma unroll 8
          for (int q = 0; q < kTI; ++q) s = fma(Ps[2 * ty + a][q], Ys[q][tx + 16 * cc], s);
          dacc[a][cc] += double(s);
        }
      __syncthreads();
    }
    const double w = wt[b];
#pragma unroll
    for (int a = 0; a < 2; ++a) {
      const double r = shfl_sum(racc[a], 16);
      const int64_t o = o0 + 2 * ty + a;
      if (o >= no) continue;
#pragma unroll
      for (int cc = 0; cc < 2; ++cc) {
        const int64_t k = k0 + tx + 16 * cc;
        if (k >= d) continue;
        const int64_t idx = (b * no + o) * d + k;
        dout[idx] = T(w * ((sq ? twos * r * double(Oraw[idx]) : 0.0) + gamma * dacc[a][cc]));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// KLOT kernels.

template <typename T>
__global__ void klot_prep(const T* a, int64_t sa, const T* fs, const T* f, int64_t B, int64_t len, double es,
                          double e, double* us, double* u) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < B * len; r += (int64_t)gridDim.x * blockDim.x) {
    const double la = log(double(a[(r / len) * sa + r % len]));
    us[r] = double(fs[r]) / es + la;
    u[r] = double(f[r]) / e + la;
  }
}

// rowacc[b, i] = sum_j exp(lps) (lps - lp); one warp per row.
template <typename T>
__global__ void klot_rows(const T* __restrict__ Ks, const T* __restrict__ K, int64_t B, int64_t n, int64_t m,
                          const double* us, const double* u, const double* vs, const double* v, double ies,
                          double ie, double* rowacc) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  for (int64_t row = blockIdx.x * wpb + (threadIdx.x >> 5); row < B * n; row += (int64_t)gridDim.x * wpb) {
    const int64_t b = row / n;
    const double usi = us[row], ui = u[row];
    const T* ksi = Ks + row * m;
    const T* ki = K + row * m;
    const double* vsb = vs + b * m;
    const double* vb = v + b * m;
    double acc = 0;
    for (int64_t j = lane; j < m; j += 32) {
      const double lps = usi + vsb[j] + double(ksi[j]) * ies;
      const double lp = ui + vb[j] + double(ki[j]) * ie;
      acc += exp(lps) * (lps - lp);
    }
    acc = shfl_sum(acc, 32);
    if (lane == 0) rowacc[row] = acc;
  }
}

__global__ void klot_sum(const double* rowacc, int64_t B, int64_t n, double* out) {
  __shared__ double sh[kTPB];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    double s = 0;
    // Contiguous chunks per thread, then a tree: row order within a chunk, fixed across runs.
    const int64_t per = ceil_div(n, kTPB);
    for (int64_t i = threadIdx.x * per; i < min(n, (threadIdx.x + 1) * per); ++i) s += rowacc[b * n + i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) out[b] = s;
  }
}

template <typename T>
__global__ void klot_back(const T* Ks, const T* K, int64_t B, int64_t n, int64_t m, const double* us,
                          const double* u, const double* vs, const double* v, double ies, double ie, const double* w,
                          double e, T* gk) {
  const int64_t nm = n * m, total = B * nm;
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < total; r += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = r / nm, el = r % nm, i = el / m, j = el % m;
    const double lps = us[b * n + i] + vs[b * m + j] + double(Ks[r]) * ies;
    const double lp = u[b * n + i] + v[b * m + j] + double(K[r]) * ie;
    gk[r] = T((w[b] / e) * (exp(lp) - exp(lps)));
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

// Tracked device scratch (counted by memoryStats), carved by a bump allocator; a first pass with
// base == nullptr only measures.
struct DeviceScratch {
  Storage* s = nullptr;
  explicit DeviceScratch(size_t bytes) { s = storage_alloc(bytes < 256 ? 256 : bytes, Device::CUDA, false); }
  ~DeviceScratch() {
    storage_release(s);
    delete s;
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  char* data() const { return static_cast<char*>(s->data); }
};

struct Arena {
  char* base = nullptr;
  size_t used = 0;
  template <typename U>
  U* take(int64_t count) {
    U* r = base ? reinterpret_cast<U*>(base + used) : nullptr;
    used += (size_t(std::max<int64_t>(count, 1)) * sizeof(U) + 255) / 256 * 256;
    return r;
  }
};

unsigned grid_for(int64_t units) {
  const int64_t cap = 65535LL * 32;
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>(units, cap));
}
unsigned grid_elems(int64_t n) { return blocks_for(n); }

int sm_count() {
  static int cached = 0;
  if (cached > 0) return cached;
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    v = 0;
  }
  cached = v > 0 ? v : 80;
  return cached;
}

void to_device(void* dst, const void* src, size_t bytes, const char* what) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
}
void to_host(void* dst, const void* src, size_t bytes, const char* what) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), what);
}

// ---- argument checks: the CPU twin's, character for character -------------------------------
struct Shape3 {
  int64_t B, n, m, d;
};

int64_t marginal_stride(OpCall& c, size_t i, const char* name, int64_t B, int64_t len, DType dt) {
  const TensorRef& t = c.t(i);
  TS_CHECK(t.dtype == dt, c.op, ": ", name, " must be ", dtype_name(dt), ", got ", t.describe());
  TS_CHECK(t.ndim == 2 && t.shape[0] == B && t.shape[1] == len, c.op, ": ", name, " must have shape [", B, ", ", len,
           "], got ", t.describe());
  TS_CHECK(len <= 1 || t.strides[1] == 1, c.op, ": ", name, " must have unit inner stride, got ", t.describe());
  TS_CHECK(B <= 1 || t.strides[0] == len || t.strides[0] == 0, c.op, ": ", name,
           " must be contiguous or batch-broadcast (batch stride 0), got ", t.describe());
  return B <= 1 ? 0 : t.strides[0];
}

void expect_shape(OpCall& c, size_t i, const char* name, std::initializer_list<int64_t> dims, DType dt) {
  const TensorRef& t = c.t(i);
  TS_CHECK(t.dtype == dt, c.op, ": ", name, " must be ", dtype_name(dt), ", got ", t.describe());
  bool ok = t.ndim == (int)dims.size();
  int k = 0;
  for (int64_t v : dims) ok = ok && t.shape[k++] == v;
  if (!ok) {
    std::ostringstream os;
    os << "[";
    k = 0;
    for (int64_t v : dims) os << (k++ ? ", " : "") << v;
    os << "]";
    fail(c.op, ": ", name, " must have shape ", os.str(), ", got ", t.describe());
  }
  c.expect_contiguous(i, name);
}

size_t check_sources(OpCall& c, int mode, Shape3& sh) {
  TS_CHECK(mode == kMatrix || mode == kSqEuclid || mode == kNegDot, c.op, ": mode must be 0, 1 or 2, got ", mode);
  c.expect_float(0, mode == kMatrix ? "C" : "x");
  if (mode == kMatrix) {
    c.expect_ndim(0, 3, "C");
    c.expect_contiguous(0, "C");
    sh = {c.t(0).shape[0], c.t(0).shape[1], c.t(0).shape[2], 0};
    return 1;
  }
  c.expect_ndim(0, 3, "x");
  c.expect_ndim(1, 3, "y");
  c.expect_same_dtype(0, 1, "x", "y");
  c.expect_contiguous(0, "x");
  c.expect_contiguous(1, "y");
  const TensorRef &x = c.t(0), &y = c.t(1);
  TS_CHECK(x.shape[0] == y.shape[0] && x.shape[2] == y.shape[2], c.op, ": x ", x.describe(), " and y ", y.describe(),
           " must have the same batch size and dimension");
  sh = {x.shape[0], x.shape[1], y.shape[1], x.shape[2]};
  return 2;
}

template <typename F>
void dispatch_float(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else fail(op, ": expected a float32 or float64 tensor, got ", dtype_name(d));
}

// ---- the cost structure of all B problems on the device --------------------------------------
template <typename T>
struct Cost {
  int mode = kMatrix;
  int64_t B = 0, n = 0, m = 0, d = 0;
  double gamma = 1, scale = 1;
  bool has_beta = false;
  const T* C = nullptr;                         // matrix [B, n, m]
  const T* x = nullptr;                         // raw points [B, n, d]
  const T* y = nullptr;                         // raw points [B, m, d]
  const T* xs = nullptr;                        // S operands: centred (sqeuclidean) or raw (negdot)
  const T* ys = nullptr;
  T* xc = nullptr;                              // centred storage (sqeuclidean)
  T* yc = nullptr;
  double* mu = nullptr;                         // [B, d]
  double* alpha = nullptr;                      // [B, n]
  double* beta = nullptr;                       // [B, m]
  T* betaT = nullptr;                           // [B, m] (sqeuclidean)
};

template <typename T>
void cost_layout(Arena& A, Cost<T>& p) {
  const int64_t B = p.B, n = p.n, m = p.m, d = p.d;
  if (p.mode == kSqEuclid) {
    p.xc = A.take<T>(B * n * d);
    p.yc = A.take<T>(B * m * d);
    p.mu = A.take<double>(B * d);
    p.betaT = A.take<T>(B * m);
  }
  p.alpha = A.take<double>(B * n);
  p.beta = A.take<double>(B * m);
}

// The CPU's prepare() for every problem: alpha / beta (zero unless sqeuclidean), centring.
template <typename T>
void cost_prepare(Cost<T>& p, const T* src0, const T* src1, double costScale, const char* op) {
  const int64_t B = p.B, n = p.n, m = p.m, d = p.d;
  p.scale = costScale;
  p.has_beta = false;
  check(cudaMemset(p.alpha, 0, size_t(B * n) * sizeof(double)), op);
  check(cudaMemset(p.beta, 0, size_t(B * m) * sizeof(double)), op);
  if (p.mode == kMatrix) {
    p.C = src0;
    p.gamma = costScale;
    return;
  }
  p.x = src0;
  p.y = src1;
  if (p.mode == kNegDot) {
    p.gamma = -1.0;
    p.xs = p.x;
    p.ys = p.y;
    return;
  }
  p.gamma = -2.0 * costScale;
  p.has_beta = true;
  if (B * d > 0) {
    mean_kernel<T><<<grid_for(B * d), kTPB>>>(p.x, p.y, B, n, m, d, p.mu);
    check_launch(op);
  }
  center_kernel<T><<<grid_elems(B * n), kThreads>>>(p.x, B, n, d, p.mu, costScale, p.xc, p.alpha, nullptr);
  check_launch(op);
  center_kernel<T><<<grid_elems(B * m), kThreads>>>(p.y, B, m, d, p.mu, costScale, p.yc, p.beta, p.betaT);
  check_launch(op);
  p.xs = p.xc;
  p.ys = p.yc;
}

// The cost's range per problem (the default eps0), as the CPU's cost_range.
template <typename T>
std::vector<double> cost_ranges(const Cost<T>& p, const char* op) {
  const int64_t B = p.B;
  std::vector<double> r(B, 2.0);
  if (p.mode == kNegDot) return r;
  if (p.mode == kMatrix) {
    const int64_t nm = p.n * p.m;
    const int chunks = (int)std::max<int64_t>(1, std::min<int64_t>(64, ceil_div(nm, 1 << 15)));
    DeviceScratch tmp(size_t(B * chunks * 2) * sizeof(double));
    double* dev = reinterpret_cast<double*>(tmp.data());
    minmax_matrix<T><<<grid_for(B * chunks), kTPB>>>(p.C, B, nm, chunks, dev);
    check_launch(op);
    std::vector<double> h(size_t(B * chunks * 2));
    to_host(h.data(), dev, h.size() * sizeof(double), op);
    for (int64_t b = 0; b < B; ++b) {
      double lo = kInf, hi = -kInf;
      for (int k = 0; k < chunks; ++k) {
        lo = std::min(lo, h[(b * chunks + k) * 2]);
        hi = std::max(hi, h[(b * chunks + k) * 2 + 1]);
      }
      r[b] = (hi - lo) * std::fabs(p.scale);
    }
    return r;
  }
  const int64_t d = p.d;
  std::vector<double> h(size_t(std::max<int64_t>(B * d, 1) * 2));
  if (B * d > 0) {
    DeviceScratch tmp(size_t(B * d * 2) * sizeof(double));
    double* dev = reinterpret_cast<double*>(tmp.data());
    minmax_points<T><<<grid_for(B * d), kTPB>>>(p.xc, p.yc, B, p.n, p.m, d, dev);
    check_launch(op);
    to_host(h.data(), dev, size_t(B * d * 2) * sizeof(double), op);
  }
  for (int64_t b = 0; b < B; ++b) {
    double diam2 = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double lo = h[(b * d + k) * 2], hi = h[(b * d + k) * 2 + 1];
      diam2 += (hi - lo) * (hi - lo);
    }
    r[b] = p.scale * diam2;
  }
  return r;
}

// Split geometry of one LSE pass.
struct Pass {
  int splits = 1;
  int64_t per = 0;  // columns (matrix rows), rows (matrix columns) or inner tiles (points) per split
};

Pass row_pass_geom(int mode, int64_t B, int64_t n, int64_t m) {
  const int64_t sms = sm_count();
  Pass g;
  if (mode == kMatrix) {  // warps = B n; aim for ~48 resident warps per SM
    const int64_t want = ceil_div(sms * 48, std::max<int64_t>(1, B * n));
    const int64_t s = std::max<int64_t>(1, std::min<int64_t>({want, std::max<int64_t>(1, m / 1024), kMaxSplits}));
    g.per = ceil_div(ceil_div(m, s), 32) * 32;
    g.splits = (int)ceil_div(m, g.per);
  } else {
    const int64_t units = B * ceil_div(n, kTO), it = ceil_div(m, kTI);
    const int64_t s = std::max<int64_t>(1, std::min<int64_t>({ceil_div(sms * 8, std::max<int64_t>(1, units)), it, kMaxSplits}));
    g.per = ceil_div(it, s);
    g.splits = (int)ceil_div(it, g.per);
  }
  return g;
}

Pass col_pass_geom(int mode, int64_t B, int64_t n, int64_t m) {
  const int64_t sms = sm_count();
  Pass g;
  if (mode == kMatrix) {  // blocks = B ceil(m / 32); aim for ~8 blocks per SM
    const int64_t units = B * ceil_div(m, 32);
    const int64_t s = std::max<int64_t>(1, std::min<int64_t>({ceil_div(sms * 8, std::max<int64_t>(1, units)),
                                                              std::max<int64_t>(1, n / 256), kMaxSplits}));
    g.per = ceil_div(n, s);
    g.splits = (int)ceil_div(n, g.per);
  } else {
    return row_pass_geom(kSqEuclid, B, m, n);  // roles swapped
  }
  return g;
}

struct SolveOpts {
  double eps, eps0, factor, tol, rho;
  int64_t itersPerStage, maxIter, checkEvery;
};

// Per-problem host state of the lockstep loop.
struct HostProb {
  std::vector<double> stages;
  size_t s = 0;
  int64_t k = 0, iters = 0;
  bool done = false, converged = false, check = false, last = false;
  double err = std::numeric_limits<double>::quiet_NaN();
  double eps0 = 0;
};

template <typename T>
void sinkhorn_typed(OpCall& c, int mode, size_t ns, const Shape3& sh, const SolveOpts& o, double costScale) {
  const DType dt = c.t(0).dtype;
  const int64_t sa = marginal_stride(c, ns, "a", sh.B, sh.n, dt);
  const int64_t sb = marginal_stride(c, ns + 1, "b", sh.B, sh.m, dt);
  expect_shape(c, ns + 2, "f", {sh.B, sh.n}, dt);
  expect_shape(c, ns + 3, "g", {sh.B, sh.m}, dt);
  expect_shape(c, ns + 4, "stats", {sh.B, kStats}, DType::F64);
  const char* op = c.op;
  const int64_t B = sh.B, n = sh.n, m = sh.m;
  const T* src0 = c.t(0).data<T>();
  const T* src1 = mode == kMatrix ? nullptr : c.t(1).data<T>();
  const T* A = c.t(ns).data<T>();
  const T* Bm = c.t(ns + 1).data<T>();
  T* F = c.t(ns + 2).data<T>();
  T* G = c.t(ns + 3).data<T>();
  double* stats = c.t(ns + 4).data<double>();
  const bool balanced = std::isinf(o.rho);

  const Pass rp = row_pass_geom(mode, B, n, m), cp = col_pass_geom(mode, B, n, m);
  Cost<T> p;
  p.mode = mode;
  p.B = B;
  p.n = n;
  p.m = m;
  p.d = sh.d;
  double *la = nullptr, *lb = nullptr, *f = nullptr, *g = nullptr, *Mr = nullptr, *Sr = nullptr, *Eb = nullptr,
         *Es = nullptr, *Mc = nullptr, *Sc = nullptr, *acc = nullptr, *part = nullptr;
  T *v = nullptr, *w = nullptr;
  Step* st = nullptr;
  const int64_t partLen = std::max<int64_t>(rp.splits > 1 ? rp.splits * B * n * 4 : 0, cp.splits > 1 ? cp.splits * B * m * 4 : 0);
  auto carve = [&](Arena& Ar) {
    cost_layout(Ar, p);
    la = Ar.take<double>(B * n);
    f = Ar.take<double>(B * n);
    Mr = Ar.take<double>(B * n);
    Sr = Ar.take<double>(B * n);
    Eb = Ar.take<double>(B * n);
    Es = Ar.take<double>(B * n);
    lb = Ar.take<double>(B * m);
    g = Ar.take<double>(B * m);
    Mc = Ar.take<double>(B * m);
    Sc = Ar.take<double>(B * m);
    acc = Ar.take<double>(B * kAcc);
    part = Ar.take<double>(partLen);
    v = Ar.take<T>(B * m);
    w = Ar.take<T>(B * n);
    st = Ar.take<Step>(B);
  };
  Arena measure;
  carve(measure);
  DeviceScratch scratch(measure.used);
  Arena Ar{scratch.data(), 0};
  carve(Ar);

  cost_prepare(p, src0, src1, costScale, op);
  log_kernel<T><<<grid_elems(B * n), kThreads>>>(A, sa, B, n, la);
  check_launch(op);
  log_kernel<T><<<grid_elems(B * m), kThreads>>>(Bm, sb, B, m, lb);
  check_launch(op);
  check(cudaMemset(f, 0, size_t(B * n) * sizeof(double)), op);
  check(cudaMemset(g, 0, size_t(B * m) * sizeof(double)), op);
  check(cudaMemset(Eb, 0, size_t(B * n) * sizeof(double)), op);
  check(cudaMemset(Es, 0, size_t(B * n) * sizeof(double)), op);

  // Stage lists, exactly as the CPU builds them.
  std::vector<HostProb> hp(B);
  {
    std::vector<double> ranges;
    const bool scaling = o.factor > 0 && o.factor < 1;
    if (scaling && !(o.eps0 > 0)) ranges = cost_ranges(p, op);
    for (int64_t b = 0; b < B; ++b) {
      HostProb& h = hp[b];
      double eps0 = o.eps;
      if (scaling) {
        eps0 = o.eps0 > 0 ? o.eps0 : ranges[b];
        if (!(eps0 > 0) || !std::isfinite(eps0)) eps0 = o.eps;
        int nst = 0;
        for (double e = eps0; e > o.eps && nst < 255; e *= o.factor, ++nst) h.stages.push_back(e);
      }
      h.stages.push_back(o.eps);
      h.eps0 = eps0;
    }
  }

  std::vector<Step> hst(B), uploaded(B);
  bool have_uploaded = false;
  auto upload = [&]() {
    if (have_uploaded && std::memcmp(hst.data(), uploaded.data(), size_t(B) * sizeof(Step)) == 0) return;
    to_device(st, hst.data(), size_t(B) * sizeof(Step), op);
    uploaded = hst;
    have_uploaded = true;
  };
  std::vector<double> hacc(size_t(B * kAcc));
  std::vector<double> hstats(size_t(B * kStats), 0.0);

  // The LSE passes (partials through `part` when split).
  auto row_pass = [&](bool withStats) {
    const bool split = rp.splits > 1;
    double* pM = split ? part : Mr;
    double* pS = split ? part + rp.splits * B * n : Sr;
    double* pEb = split ? part + 2 * rp.splits * B * n : Eb;
    double* pEs = split ? part + 3 * rp.splits * B * n : Es;
    if (mode == kMatrix) {
      const unsigned grid = grid_for(ceil_div(B * n * rp.splits, kTPB / 32));
      if (withStats)
        row_lse_matrix<T, true><<<grid, kTPB>>>(p.C, B, n, m, v, st, rp.splits, rp.per, pM, pS, pEb, pEs);
      else
        row_lse_matrix<T, false><<<grid, kTPB>>>(p.C, B, n, m, v, st, rp.splits, rp.per, pM, pS, pEb, pEs);
    } else {
      const unsigned grid = grid_for(B * ceil_div(n, kTO) * rp.splits);
      if (withStats)
        lse_points<T, true><<<grid, kTPB>>>(p.xs, p.ys, B, n, m, p.d, v, p.has_beta ? p.betaT : nullptr, st,
                                            rp.splits, rp.per, pM, pS, pEb, pEs);
      else
        lse_points<T, false><<<grid, kTPB>>>(p.xs, p.ys, B, n, m, p.d, v, nullptr, st, rp.splits, rp.per, pM, pS,
                                             pEb, pEs);
    }
    check_launch(op);
    if (split) {
      merge_splits<<<grid_elems(B * n), kThreads>>>(B, n, rp.splits, st, withStats, pM, pS, pEb, pEs, Mr, Sr, Eb, Es);
      check_launch(op);
    }
  };
  auto col_pass = [&]() {
    const bool split = cp.splits > 1;
    double* pM = split ? part : Mc;
    double* pS = split ? part + cp.splits * B * m : Sc;
    if (mode == kMatrix) {
      col_lse_matrix<T><<<grid_for(B * ceil_div(m, 32) * cp.splits), kTPB>>>(p.C, B, n, m, w, st, cp.splits, cp.per,
                                                                            pM, pS);
    } else {
      lse_points<T, false><<<grid_for(B * ceil_div(m, kTO) * cp.splits), kTPB>>>(
          p.ys, p.xs, B, m, n, p.d, w, nullptr, st, cp.splits, cp.per, pM, pS, nullptr, nullptr);
    }
    check_launch(op);
    if (split) {
      merge_splits<<<grid_elems(B * m), kThreads>>>(B, m, cp.splits, st, false, pM, pS, nullptr, nullptr, Mc, Sc,
                                                    nullptr, nullptr);
      check_launch(op);
    }
  };

  int64_t remaining = B;
  while (remaining > 0) {
    // This step's parameters for every problem (the CPU's loop head, per problem).
    bool anyCheck = false;
    for (int64_t b = 0; b < B; ++b) {
      HostProb& h = hp[b];
      Step& s = hst[b];
      if (h.done) {
        s.active = 0;
        continue;
      }
      while (h.s + 1 < h.stages.size() && h.k == o.itersPerStage) {  // end of an annealing stage
        ++h.s;
        h.k = 0;
      }
      const bool final = h.s + 1 == h.stages.size();
      const double eps = h.stages[h.s];
      h.last = final && h.k == o.maxIter;
      h.check = final && (h.last || (o.tol > 0 && h.k >= 1 && h.k % o.checkEvery == 0));
      anyCheck = anyCheck || h.check;
      s.eps = eps;
      s.lam = balanced ? 1.0 : o.rho / (o.rho + eps);
      s.kappa = double(T(-p.gamma / eps));
      s.active = 1;
      s.pad = 0;
    }
    upload();
    set_vec<T><<<grid_elems(B * m), kThreads>>>(B, m, g, p.beta, lb, st, v);
    check_launch(op);
    row_pass(anyCheck);
    if (anyCheck) {
      check_kernel<T><<<grid_for(B), kTPB>>>(B, n, m, A, sa, Bm, sb, f, g, p.alpha, Mr, Sr, Eb, Es, p.gamma, o.eps,
                                             o.rho, balanced, st, acc);
      check_launch(op);
      to_host(hacc.data(), acc, hacc.size() * sizeof(double), op);
      for (int64_t b = 0; b < B; ++b) {
        HostProb& h = hp[b];
        if (h.done || !h.check) continue;
        const double* q = &hacc[size_t(b * kAcc)];
        const double e = q[0], mass = q[1], rf = q[2], transport = q[3], fa = q[4], cg = q[5], gb = q[6];
        const double ma = q[7], mb = q[8];
        h.err = e;
        if (o.tol > 0 && e < o.tol) h.converged = true;
        if (h.converged || h.last) {
          const double massTerm = o.eps * (mass - ma * mb);
          double* out = &hstats[size_t(b * kStats)];
          out[0] = double(h.iters);
          out[1] = h.err;
          out[2] = transport;
          out[3] = fa + gb - massTerm;
          out[4] = rf + cg - massTerm;
          out[5] = mass;
          out[6] = h.eps0;
          out[7] = h.converged ? 1.0 : 0.0;
          h.done = true;
          hst[b].active = 0;
          --remaining;
        }
      }
      if (remaining == 0) break;
      upload();
    }
    update_f<T><<<grid_elems(B * n), kThreads>>>(B, n, p.alpha, la, Mr, Sr, st, f, w);
    check_launch(op);
    col_pass();
    update_g<<<grid_elems(B * m), kThreads>>>(B, m, p.beta, Mc, Sc, st, g);
    check_launch(op);
    for (int64_t b = 0; b < B; ++b)
      if (!hp[b].done) {
        ++hp[b].iters;
        ++hp[b].k;
      }
  }
  to_T<T><<<grid_elems(B * n), kThreads>>>(f, B * n, F);
  check_launch(op);
  to_T<T><<<grid_elems(B * m), kThreads>>>(g, B * m, G);
  check_launch(op);
  to_device(stats, hstats.data(), hstats.size() * sizeof(double), op);
}

template <typename T>
void plan_typed(OpCall& c, int mode, size_t ns, const Shape3& sh, double costScale, double eps, double beta) {
  const DType dt = c.t(0).dtype;
  const int64_t sa = marginal_stride(c, ns, "a", sh.B, sh.n, dt);
  const int64_t sb = marginal_stride(c, ns + 1, "b", sh.B, sh.m, dt);
  expect_shape(c, ns + 2, "f", {sh.B, sh.n}, dt);
  expect_shape(c, ns + 3, "g", {sh.B, sh.m}, dt);
  expect_shape(c, ns + 4, "w", {sh.B}, DType::F64);
  expect_shape(c, ns + 5, "out", {sh.B, sh.n, sh.m}, dt);
  const char* op = c.op;
  const int64_t B = sh.B, n = sh.n, m = sh.m, d = sh.d;
  Cost<T> p;
  p.mode = mode;
  p.B = B;
  p.n = n;
  p.m = m;
  p.d = d;
  double *u = nullptr, *v = nullptr;
  auto carve = [&](Arena& Ar) {
    cost_layout(Ar, p);
    u = Ar.take<double>(B * n);
    v = Ar.take<double>(B * m);
  };
  Arena measure;
  carve(measure);
  DeviceScratch scratch(measure.used);
  Arena Ar{scratch.data(), 0};
  carve(Ar);
  cost_prepare(p, c.t(0).data<T>(), mode == kMatrix ? nullptr : c.t(1).data<T>(), costScale, op);
  duals_kernel<T><<<grid_elems(B * n), kThreads>>>(c.t(ns + 2).data<T>(), c.t(ns).data<T>(), sa, p.alpha, B, n, eps, u);
  check_launch(op);
  duals_kernel<T><<<grid_elems(B * m), kThreads>>>(c.t(ns + 3).data<T>(), c.t(ns + 1).data<T>(), sb, p.beta, B, m, eps, v);
  check_launch(op);
  const double kappa = -p.gamma / eps;
  const double* wt = c.t(ns + 4).data<double>();
  T* out = c.t(ns + 5).data<T>();
  if (mode == kMatrix)
    plan_matrix<T><<<grid_elems(B * n * m), kThreads>>>(p.C, B, n, m, u, v, kappa, wt, beta, out);
  else
    plan_points<T><<<grid_for(B * ceil_div(n, kTO) * ceil_div(m, kTI)), kTPB>>>(p.xs, p.ys, B, n, m, d, u, v, kappa,
                                                                              wt, beta, out);
  check_launch(op);
}

template <typename T>
void grad_points_typed(OpCall& c, int mode, const Shape3& sh, double costScale, double eps, int which) {
  const DType dt = c.t(0).dtype;
  const int64_t sa = marginal_stride(c, 2, "a", sh.B, sh.n, dt);
  const int64_t sb = marginal_stride(c, 3, "b", sh.B, sh.m, dt);
  expect_shape(c, 4, "f", {sh.B, sh.n}, dt);
  expect_shape(c, 5, "g", {sh.B, sh.m}, dt);
  expect_shape(c, 6, "w", {sh.B}, DType::F64);
  expect_shape(c, 7, "dx", {sh.B, sh.n, sh.d}, dt);
  expect_shape(c, 8, "dy", {sh.B, sh.m, sh.d}, dt);
  const char* op = c.op;
  const int64_t B = sh.B, n = sh.n, m = sh.m, d = sh.d;
  Cost<T> p;
  p.mode = mode;
  p.B = B;
  p.n = n;
  p.m = m;
  p.d = d;
  double *u = nullptr, *v = nullptr;
  auto carve = [&](Arena& Ar) {
    cost_layout(Ar, p);
    u = Ar.take<double>(B * n);
    v = Ar.take<double>(B * m);
  };
  Arena measure;
  carve(measure);
  DeviceScratch scratch(measure.used);
  Arena Ar{scratch.data(), 0};
  carve(Ar);
  cost_prepare(p, c.t(0).data<T>(), c.t(1).data<T>(), costScale, op);
  duals_kernel<T><<<grid_elems(B * n), kThreads>>>(c.t(4).data<T>(), c.t(2).data<T>(), sa, p.alpha, B, n, eps, u);
  check_launch(op);
  duals_kernel<T><<<grid_elems(B * m), kThreads>>>(c.t(5).data<T>(), c.t(3).data<T>(), sb, p.beta, B, m, eps, v);
  check_launch(op);
  const double kappa = -p.gamma / eps, twos = 2.0 * p.scale;
  const bool sq = mode == kSqEuclid;
  const double* wt = c.t(6).data<double>();
  const int64_t dch = ceil_div(d, kDC);
  if ((which & 1) && d > 0) {
    grad_points_kernel<T><<<grid_for(B * ceil_div(n, kTO) * dch), kTPB>>>(
        p.xs, p.ys, p.x, p.y, B, n, m, d, u, v, kappa, p.gamma, twos, sq, wt, c.t(7).data<T>());
    check_launch(op);
  }
  if ((which & 2) && d > 0) {
    grad_points_kernel<T><<<grid_for(B * ceil_div(m, kTO) * dch), kTPB>>>(
        p.ys, p.xs, p.y, p.x, B, m, n, d, v, u, kappa, p.gamma, twos, sq, wt, c.t(8).data<T>());
    check_launch(op);
  }
}

template <typename T, bool Backward>
void klot_typed(OpCall& c) {
  const TensorRef &Ks = c.t(0), &K = c.t(1);
  const DType dt = Ks.dtype;
  const int64_t B = Ks.shape[0], n = Ks.shape[1], m = Ks.shape[2];
  expect_shape(c, 1, "K", {B, n, m}, dt);
  const int64_t sa = marginal_stride(c, 2, "a", B, n, dt);
  const int64_t sb = marginal_stride(c, 3, "b", B, m, dt);
  expect_shape(c, 4, "fStar", {B, n}, dt);
  expect_shape(c, 5, "gStar", {B, m}, dt);
  expect_shape(c, 6, "f", {B, n}, dt);
  expect_shape(c, 7, "g", {B, m}, dt);
  if (Backward) {
    expect_shape(c, 8, "w", {B}, DType::F64);
    expect_shape(c, 9, "gradK", {B, n, m}, dt);
  } else {
    expect_shape(c, 8, "out", {B}, DType::F64);
  }
  const double es = c.s(0), e = c.s(1);
  TS_CHECK(es > 0 && e > 0 && std::isfinite(es) && std::isfinite(e), c.op, ": epsStar and eps must be finite and > 0, got ",
           es, " and ", e);
  if (B == 0) return;
  const char* op = c.op;
  DeviceScratch scratch(size_t(2 * B * (n + m) + B * n + 4) * sizeof(double));
  double* us = reinterpret_cast<double*>(scratch.data());
  double* u = us + B * n;
  double* vs = u + B * n;
  double* v = vs + B * m;
  double* rowacc = v + B * m;
  if (B * n > 0) {
    klot_prep<T><<<grid_elems(B * n), kThreads>>>(c.t(2).data<T>(), sa, c.t(4).data<T>(), c.t(6).data<T>(), B, n, es,
                                                  e, us, u);
    check_launch(op);
  }
  if (B * m > 0) {
    klot_prep<T><<<grid_elems(B * m), kThreads>>>(c.t(3).data<T>(), sb, c.t(5).data<T>(), c.t(7).data<T>(), B, m, es,
                                                  e, vs, v);
    check_launch(op);
  }
  const double ies = 1.0 / es, ie = 1.0 / e;
  if (Backward) {
    if (B * n * m == 0) return;
    klot_back<T><<<grid_elems(B * n * m), kThreads>>>(Ks.data<T>(), K.data<T>(), B, n, m, us, u, vs, v, ies, ie,
                                                      c.t(8).data<double>(), e, c.t(9).data<T>());
    check_launch(op);
  } else {
    if (B * n > 0) {
      klot_rows<T><<<grid_for(ceil_div(B * n, kTPB / 32)), kTPB>>>(Ks.data<T>(), K.data<T>(), B, n, m, us, u, vs, v,
                                                                   ies, ie, rowacc);
      check_launch(op);
    }
    klot_sum<<<grid_for(B), kTPB>>>(rowacc, B, n, c.t(8).data<double>());
    check_launch(op);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
void sinkhorn(OpCall& c) {
  TS_CHECK(c.scalars.size() == 10, c.op, ": expected 10 scalars, got ", c.scalars.size());
  const int mode = (int)c.si(0);
  Shape3 sh;
  TS_CHECK(mode >= 0 && mode <= 2, c.op, ": mode must be 0, 1 or 2, got ", mode);
  const size_t ns = mode == kMatrix ? 1 : 2;
  TS_CHECK(c.tensors.size() == ns + 5, c.op, ": expected ", ns + 5, " tensors for mode ", mode, ", got ",
           c.tensors.size());
  check_sources(c, mode, sh);
  SolveOpts o;
  const double costScale = c.s(1);
  o.eps = c.s(2);
  o.eps0 = c.s(3);
  o.factor = c.s(4);
  o.itersPerStage = c.si(5);
  o.maxIter = c.si(6);
  o.tol = c.s(7);
  o.checkEvery = c.si(8);
  o.rho = c.s(9);
  TS_CHECK(std::isfinite(costScale), c.op, ": costScale must be finite, got ", costScale);
  TS_CHECK(o.eps > 0 && std::isfinite(o.eps), c.op, ": eps must be finite and > 0, got ", o.eps);
  TS_CHECK(o.maxIter >= 0 && o.itersPerStage >= 1 && o.checkEvery >= 1, c.op,
           ": need maxIter >= 0, itersPerStage >= 1, checkEvery >= 1, got ", o.maxIter, ", ", o.itersPerStage, ", ",
           o.checkEvery);
  TS_CHECK(o.rho > 0, c.op, ": rho must be > 0 (+inf for balanced), got ", o.rho);
  TS_CHECK(!(o.tol != o.tol), c.op, ": tol must be a number");
  if (sh.B == 0 || sh.n == 0 || sh.m == 0) {
    TS_CHECK(sh.n > 0 && sh.m > 0, c.op, ": empty problem (n = ", sh.n, ", m = ", sh.m, ")");
    return;
  }
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    sinkhorn_typed<T>(c, mode, ns, sh, o, costScale);
  });
}

void sinkhorn_plan(OpCall& c) {
  TS_CHECK(c.scalars.size() == 4, c.op, ": expected 4 scalars, got ", c.scalars.size());
  const int mode = (int)c.si(0);
  TS_CHECK(mode >= 0 && mode <= 2, c.op, ": mode must be 0, 1 or 2, got ", mode);
  const size_t ns = mode == kMatrix ? 1 : 2;
  TS_CHECK(c.tensors.size() == ns + 6, c.op, ": expected ", ns + 6, " tensors for mode ", mode, ", got ",
           c.tensors.size());
  Shape3 sh;
  check_sources(c, mode, sh);
  const double costScale = c.s(1), eps = c.s(2), beta = c.s(3);
  TS_CHECK(eps > 0 && std::isfinite(eps), c.op, ": eps must be finite and > 0, got ", eps);
  if (sh.B == 0 || sh.n == 0 || sh.m == 0) return;
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    plan_typed<T>(c, mode, ns, sh, costScale, eps, beta);
  });
}

void sinkhorn_grad_points(OpCall& c) {
  c.expect_count(9, 4);
  const int mode = (int)c.si(0);
  TS_CHECK(mode == kSqEuclid || mode == kNegDot, c.op, ": mode must be 1 or 2, got ", mode);
  Shape3 sh;
  check_sources(c, mode, sh);
  const double costScale = c.s(1), eps = c.s(2);
  const int which = (int)c.si(3);
  TS_CHECK(eps > 0 && std::isfinite(eps), c.op, ": eps must be finite and > 0, got ", eps);
  TS_CHECK(which >= 0 && which <= 3, c.op, ": which must be 0..3 (bit 0: dx, bit 1: dy), got ", which);
  if (sh.B == 0 || sh.n == 0 || sh.m == 0) return;
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    grad_points_typed<T>(c, mode, sh, costScale, eps, which);
  });
}

void klot(OpCall& c) {
  c.expect_count(9, 2);
  c.expect_float(0, "Kstar");
  c.expect_ndim(0, 3, "Kstar");
  c.expect_contiguous(0, "Kstar");
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) { klot_typed<decltype(tag), false>(c); });
}

void klot_backward(OpCall& c) {
  c.expect_count(10, 2);
  c.expect_float(0, "Kstar");
  c.expect_ndim(0, 3, "Kstar");
  c.expect_contiguous(0, "Kstar");
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) { klot_typed<decltype(tag), true>(c); });
}

}  // namespace tessera::cuda
