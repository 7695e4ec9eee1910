// Log-domain Sinkhorn (entropic optimal transport) with the cost computed on the fly.
//
// PROBLEM. Marginals a [n], b [m] (> 0), cost C [n, m], temperature eps > 0. The entropic OT
// value OT_eps = min_P <P, C> + eps KL(P || a b^T) has the dual
//   max_{f, g} <f, a> + <g, b> - eps <exp((f_i + g_j - C_ij) / eps) - 1, a_i b_j>
// and the optimal plan P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps). Sinkhorn is block
// coordinate ascent on the dual, in the log domain (no overflow for any eps):
//   f_i = -eps LSE_j((g_j - C_ij) / eps + log b_j)      (the rows of P then sum to a)
//   g_j = -eps LSE_i((f_i - C_ij) / eps + log a_i)      (the columns of P then sum to b)
// Unbalanced (KL-relaxed marginals, rho KL(P 1 || a) + rho KL(P^T 1 || b) instead of the
// constraints): each update is multiplied by lambda = rho / (rho + eps).
//
// COST STRUCTURE. Every supported cost is C_ij = alpha_i + beta_j + gamma S_ij:
//   matrix       S = C, alpha = beta = 0, gamma = costScale
//   sqeuclidean  S = <x'_i, y'_j> with x', y' centred on the mean of both clouds (the cost is
//                translation invariant; centring removes most of the cancellation of
//                |x|^2 + |y|^2 - 2<x, y>), alpha_i = s |x'_i|^2, beta_j = s |y'_j|^2, gamma = -2s
//   negdot       S = <x_i, y_j>, alpha = beta = 0, gamma = -1
// alpha_i is constant along a row, so it leaves the row LSE: with v_j = (g_j - beta_j) / eps +
// log b_j and kappa = -gamma / eps,
//   f_i = lambda (alpha_i - eps LSE_j(v_j + kappa S_ij)),
// and the column update is the same with w_i = (f_i - alpha_i) / eps + log a_i. So one
// half-iteration is, per element, one multiply-add, a max and an exp.
//
// TILES. Work is cut into tiles of rows x columns. For point clouds S is computed per tile by the
// matmul micro-kernels (cpu/matmul_kernels.h: AVX-512 8x48 f32 / 8x24 f64, AVX2, or a plain
// fallback) from x and y packed once per solve into the kernels' panel layout, into a per-thread
// 64 x 384 buffer: S, C and P are never stored whole, so memory is O((n + m) d) plus one tile per
// thread. For a cost matrix the tile is a window of C shaped for streaming: 256 KiB (it stays in
// L2 between the two sweeps below) made of long row runs (16 x 4096 for the row pass, 32 x 2048
// for the column pass), so the hardware prefetcher sees sequential reads (64 x 512 tiles of 2 KiB
// runs, stalled on their first touch, were ~1.35x slower at n = 8192). A row pass keeps per row a
// running max M and sum s = sum exp(z - M) (double), merged tile by tile (one scalar exp per row
// per tile for the rescale); a column pass keeps the same per column, vectorised across the
// tile's columns (one exp per column per tile of >= 32 rows). Within a tile: one sweep for the
// max, one for the exps (exp_lse below: float32 without range handling, clamped so that no
// result is denormal; vec_exp for float64), summed in T over at most one tile's row or column
// before entering the double accumulators.
// Threads take tiles dynamically: a row pass splits rows (disjoint outputs) unless there are
// fewer row strips than threads, then it splits columns in a fixed assignment and merges
// per-thread partial (M, s) arrays (deterministic: results do not depend on timing); a column
// pass does the reverse. Small problems in a batch run one problem per thread.
//
// STOPPING. The row pass of iteration k + 1 also gives the row marginal of the plan after
// iteration k (the columns are exact after a g update): r_i = a_i exp(f_i / eps + LSE_i - ...),
// so the L1 marginal error sum_i |r_i - t_i| (t = a, or a exp(-f / rho) when unbalanced, the
// fixed-point condition there) costs no extra pass. It is checked every `checkEvery` iterations
// of the final stage; when it is below tol the solver stops and keeps the potentials that were
// measured. At maxIter one more row pass (no update) measures the final error. The check pass
// also accumulates sum_j P_ij C_ij, from which the stats (transport cost, dual value, primal
// objective, mass) follow in O(n + m).
//
// EPS-SCALING. Optional: stages at eps0, eps0 q, eps0 q^2, ... (all > eps), `itersPerStage`
// iterations each, warm-starting the next, then the target eps until convergence or maxIter.
// eps0 defaults to the cost's range: max C - min C (matrix), s * diameter^2 of the joint
// bounding box (sqeuclidean), 2 (negdot of unit vectors).
//
// GRADIENTS (envelope theorem; the caller differentiates the dual value): d OT / d C = P, so
// sinkhorn_plan writes w P (materialising n x m only because that is the gradient's shape), and
// sinkhorn_grad_points forms dx_i = w sum_j P_ij d C_ij / d x_i tile by tile without storing P:
// for sqeuclidean dx_i = 2 s w (r_i x_i - sum_j P_ij y_j), for negdot dx_i = -w sum_j P_ij y_j
// (and dy alike, in a second pass over column strips). klot / klot_backward are fused passes over
// two cost matrices and their potentials. Everything that can fail is checked before any
// parallel region; scratch comes from the tracked host allocator (memoryStats counts it).
#include "cpu/sinkhorn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/storage.h"
#include "cpu/cpu_features.h"
#include "cpu/matmul_kernels.h"
#include "cpu/parallel.h"
#include "cpu/strided.h"
#include "cpu/vec_exp.h"

namespace tessera::cpu {

namespace {

using matmul_detail::MicroKernel;

constexpr double kInf = std::numeric_limits<double>::infinity();
enum Mode { kMatrix = 0, kSqEuclid = 1, kNegDot = 2 };
constexpr int kStats = 8;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------------
// Scratch memory from the tracked host allocator, carved up by a bump allocator. A first pass
// with base == nullptr only measures.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : s_(storage_alloc(std::max<size_t>(bytes, 64), Device::CPU, false)) {}
  ~Scratch() {
    storage_release(s_);
    delete s_;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  char* data() const { return static_cast<char*>(s_->data); }

 private:
  Storage* s_;
};

struct Arena {
  char* base = nullptr;
  size_t used = 0;
  template <typename U>
  U* take(int64_t count) {
    U* r = base ? reinterpret_cast<U*>(base + used) : nullptr;
    used += (size_t(std::max<int64_t>(count, 1)) * sizeof(U) + 63) / 64 * 64;
    return r;
  }
};

// ---------------------------------------------------------------------------------------------
// Micro-kernels: the matmul ones (same selection rules, including the TESSERA_MATMUL_KERNEL cap),
// or a plain one the compiler vectorises.
template <typename T, int MR, int NR>
void ukernel_plain(int64_t k, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc, T) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < k; ++p)
    for (int r = 0; r < MR; ++r) {
      const T ar = a[p * MR + r];
#pragma omp simd
      for (int j = 0; j < NR; ++j) acc[r][j] += ar * b[p * NR + j];
    }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) c[r * ldc + j] = acc[r][j];
}

template <typename T>
struct Kern {
  MicroKernel<T> fn = nullptr;
  int mr = 0, nr = 0;
};

SimdLevel kernel_level() {
  static const SimdLevel level = [] {
    SimdLevel l = simd_level();
    if (const char* env = std::getenv("TESSERA_MATMUL_KERNEL")) {
      SimdLevel want = l;
      if (!std::strcmp(env, "generic")) want = SimdLevel::Generic;
      else if (!std::strcmp(env, "avx2")) want = SimdLevel::AVX2;
      if ((int)want < (int)l) l = want;
    }
    return l;
  }();
  return level;
}

template <typename T>
Kern<T> from_gemm(const matmul_detail::GemmKernel<T>& g) {
  return Kern<T>{g.fn, g.mr, g.nr};
}

template <typename T>
Kern<T> pick_kernel();
template <>
Kern<float> pick_kernel<float>() {
  static const Kern<float> k = [] {
    const SimdLevel l = kernel_level();
    if (l == SimdLevel::AVX512 && matmul_detail::avx512_f32().fn) return from_gemm(matmul_detail::avx512_f32());
    if ((int)l >= (int)SimdLevel::AVX2 && matmul_detail::avx2_f32().fn) return from_gemm(matmul_detail::avx2_f32());
    return Kern<float>{&ukernel_plain<float, 4, 16>, 4, 16};
  }();
  return k;
}
template <>
Kern<double> pick_kernel<double>() {
  static const Kern<double> k = [] {
    const SimdLevel l = kernel_level();
    if (l == SimdLevel::AVX512 && matmul_detail::avx512_f64().fn) return from_gemm(matmul_detail::avx512_f64());
    if ((int)l >= (int)SimdLevel::AVX2 && matmul_detail::avx2_f64().fn) return from_gemm(matmul_detail::avx2_f64());
    return Kern<double>{&ukernel_plain<double, 4, 8>, 4, 8};
  }();
  return k;
}

// ---------------------------------------------------------------------------------------------
// One problem of the batch, prepared: the cost's structure and where its tiles come from.
template <typename T>
struct Prob {
  int mode = kMatrix;
  int64_t n = 0, m = 0, d = 0;
  const T* C = nullptr;                      // matrix: n x m, row-major
  const T* x = nullptr;                      // points: raw n x d
  const T* y = nullptr;                      // points: raw m x d
  T* xp = nullptr;                           // points: x' in MR-row panels (d x MR each)
  T* yp = nullptr;                           // points: y' in NR-row panels (d x NR each)
  double* mu = nullptr;                      // points: [d] centre
  double* alpha = nullptr;                   // [n] (zeros unless sqeuclidean)
  double* beta = nullptr;                    // [m]
  T* betaT = nullptr;                        // beta as T (stats pass)
  double gamma = 1, scale = 1;               // cost = alpha_i + beta_j + gamma S_ij
  bool has_beta = false;
  Kern<T> k;
  // Tile rows / columns. Point clouds: one R x W shape, aligned to the micro-kernel's panels.
  // Cost matrix: the tile is a window of C, shaped so each row run is long (the hardware
  // prefetcher streams it) and the tile stays in L2 between its two sweeps (max, then exp):
  // rows pass Rr x Wr, columns pass Rc x Wc.
  int64_t R = 64, W = 512;
  int64_t Rr = 64, Wr = 512, Rc = 64, Wc = 512;
};

// Per-thread scratch: an R x W tile and three W vectors; partial accumulators for merges.
template <typename T>
struct ThreadScratch {
  T* tile;
  T* cm;
  T* cs;
  T* tm;
  double* part;  // 4 * max(n, m): partial M, s, Eb, Es of this thread
};

// Everything one solve (or plan / gradient pass) needs for one problem.
template <typename T>
struct Work {
  double *f, *g, *la, *lb, *Mr, *Sr, *Eb, *Es, *Mc, *Sc;
  T *v, *w;
  int nt = 1;
  ThreadScratch<T> ts[64];
};

template <typename T>
void geometry(Prob<T>& p, int mode, int64_t n, int64_t m, int64_t d, int nt) {
  p.mode = mode;
  p.n = n;
  p.m = m;
  p.d = d;
  if (mode == kMatrix) {
    const int64_t bytes = 256 * 1024 / sizeof(T);  // elements of C per tile
    p.Wr = std::min<int64_t>(m, bytes / 16);
    p.Rr = std::max<int64_t>(16, bytes / std::max<int64_t>(p.Wr, 1));
    p.Wc = std::min<int64_t>(m, bytes / 32);
    p.Rc = std::max<int64_t>(32, bytes / std::max<int64_t>(p.Wc, 1));
    p.R = p.Rr;
    p.W = p.Wr;
  } else {
    p.k = pick_kernel<T>();
    p.R = p.Rr = p.Rc = p.k.mr * ceil_div(64, p.k.mr);
    // ~384 columns, fewer when m is small so that the column pass has >= 4 tiles per thread
    // (1024 points on 2 threads: 8 tiles of 144, not 3 of 384 shared 2:1).
    const int64_t panels = std::max<int64_t>(1, 384 / p.k.nr);
    const int64_t want = ceil_div(ceil_div(m, 4 * std::max(nt, 1)), p.k.nr);
    p.W = p.Wr = p.Wc = p.k.nr * std::min(panels, std::max<int64_t>(1, want));
  }
}

// Lays out a problem's buffers (packed points, alpha/beta) and the work arrays for nt threads.
template <typename T>
void layout(Arena& A, Prob<T>& p, Work<T>& w, int nt) {
  const int64_t n = p.n, m = p.m, nm = std::max(n, m);
  if (p.mode != kMatrix) {
    p.xp = A.take<T>(ceil_div(n, p.k.mr) * p.k.mr * p.d);
    p.yp = A.take<T>(ceil_div(m, p.k.nr) * p.k.nr * p.d);
    p.mu = A.take<double>(p.d);
  }
  p.alpha = A.take<double>(n);
  p.beta = A.take<double>(m);
  p.betaT = A.take<T>(m);
  w.f = A.take<double>(n);
  w.la = A.take<double>(n);
  w.Mr = A.take<double>(n);
  w.Sr = A.take<double>(n);
  w.Eb = A.take<double>(n);
  w.Es = A.take<double>(n);
  w.g = A.take<double>(m);
  w.lb = A.take<double>(m);
  w.Mc = A.take<double>(m);
  w.Sc = A.take<double>(m);
  w.v = A.take<T>(m);
  w.w = A.take<T>(n);
  w.nt = nt;
  for (int t = 0; t < nt; ++t) {
    w.ts[t].tile = p.mode == kMatrix ? nullptr : A.take<T>(p.R * p.W);
    w.ts[t].cm = A.take<T>(p.Wc);
    w.ts[t].cs = A.take<T>(p.Wc);
    w.ts[t].tm = A.take<T>(p.Wc);
    w.ts[t].part = nt > 1 ? A.take<double>(4 * nm) : nullptr;
  }
}

// Fills the cost structure of problem p from its source tensors (packing, centring, alpha/beta).
template <typename T>
void prepare(Prob<T>& p, const T* src0, const T* src1, double costScale) {
  const int64_t n = p.n, m = p.m, d = p.d;
  std::fill(p.alpha, p.alpha + n, 0.0);
  std::fill(p.beta, p.beta + m, 0.0);
  std::fill(p.betaT, p.betaT + m, T(0));
  p.has_beta = false;
  p.scale = costScale;
  if (p.mode == kMatrix) {
    p.C = src0;
    p.gamma = costScale;
    return;
  }
  p.x = src0;
  p.y = src1;
  const bool sq = p.mode == kSqEuclid;
  p.gamma = sq ? -2.0 * costScale : -1.0;
  // Centre (sqeuclidean only) on the mean of both clouds, accumulated in double.
  double* mu = p.mu;
  std::fill(mu, mu + d, 0.0);
  if (sq && n + m > 0) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < d; ++k) mu[k] += p.x[i * d + k];
    for (int64_t j = 0; j < m; ++j)
      for (int64_t k = 0; k < d; ++k) mu[k] += p.y[j * d + k];
    for (int64_t k = 0; k < d; ++k) mu[k] /= double(n + m);
  }
  auto pack = [&](const T* src, int64_t rows, int R, T* out, double* norm2) {
    const int64_t panels = ceil_div(rows, R);
    for (int64_t q = 0; q < panels; ++q) {
      T* o = out + q * d * R;
      for (int r = 0; r < R; ++r) {
        const int64_t i = q * R + r;
        double s2 = 0;
        for (int64_t k = 0; k < d; ++k) {
          T v = T(0);
          if (i < rows) v = sq ? T(double(src[i * d + k]) - mu[k]) : src[i * d + k];
          o[k * R + r] = v;
          s2 += double(v) * double(v);
        }
        if (i < rows && sq) norm2[i] = costScale * s2;
      }
    }
  };
  pack(p.x, n, p.k.mr, p.xp, p.alpha);
  pack(p.y, m, p.k.nr, p.yp, p.beta);
  if (sq) {
    p.has_beta = true;
    for (int64_t j = 0; j < m; ++j) p.betaT[j] = T(p.beta[j]);
  }
}

// The tile S[i0 : i0 + rows, j0 : j0 + cols] (i0 a multiple of R, j0 of W): a window of C, or
// x' y'^T computed into buf by the micro-kernel (whole panels; rows/cols past the edge are
// computed from the zero padding and ignored).
template <typename T>
const T* tile(const Prob<T>& p, int64_t i0, int64_t rows, int64_t j0, int64_t cols, T* buf, int64_t& lds) {
  if (p.mode == kMatrix) {
    lds = p.m;
    return p.C + i0 * p.m + j0;
  }
  const int MR = p.k.mr, NR = p.k.nr;
  lds = p.W;
  const int64_t rp = ceil_div(rows, MR), cp = ceil_div(cols, NR);
  if (p.d == 0) {
    for (int64_t r = 0; r < rp * MR; ++r) std::fill(buf + r * lds, buf + r * lds + cp * NR, T(0));
    return buf;
  }
  for (int64_t q = 0; q < cp; ++q) {
    const T* bpan = p.yp + (j0 / NR + q) * p.d * NR;
    for (int64_t r = 0; r < rp; ++r) {
      const T* apan = p.xp + (i0 / MR + r) * p.d * MR;
      p.k.fn(p.d, apan, bpan, buf + r * MR * lds + q * NR, lds, T(0));
    }
  }
  return buf;
}

// exp(x) for the shifted exponents of an LSE (x <= 0 up to rounding; only accuracy relative to
// the largest term, exp(0) = 1, matters). float: vm::exp's reduction and polynomial without its
// range handling, with x clamped at -87 so that every result is a normal float (no denormal
// slow paths; exp(-87) = 1.6e-38 is negligible next to 1). 1-2 ulp, half of vm::exp's work.
// double: vec_exp.
TS_VM_INLINE float exp_lse(float x) {
  using namespace vm::detail;
  x = x > -87.0f ? x : -87.0f;
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
  const float t = fmla(x, kLog2e, kShift);
  const float n = t - kShift;
  float r = fmla(n, -kLn2Hi, x);
  r = fmla(n, -kLn2Lo, r);
  float q = fmla(1.381459879e-03f, r, 8.368716575e-03f);
  q = fmla(q, r, 4.166838899e-02f);
  q = fmla(q, r, 1.666652113e-01f);
  q = fmla(q, r, 4.999999404e-01f);
  const float p = fmla(q, r * r, r) + 1.0f;
  const uint32_t ni = bits(t) - bits(kShift);  // n in [-126, 1]: 2^n is a normal float
  return p * from_bits((ni + 127u) << 23);
}
TS_VM_INLINE double exp_lse(double x) { return vec_exp(x); }

// Runs body(unit, thread) for units [0, units) on up to nt threads: taken dynamically when every
// unit writes its own outputs, in a fixed (static) assignment when threads accumulate partial
// results to be merged, so that the rounding, and the result, does not depend on timing.
template <typename F>
void run_units(int nt, int64_t units, F&& body, bool fixed = false) {
  const int threads = (int)std::min<int64_t>(nt, units);
  if (threads <= 1) {
    for (int64_t u = 0; u < units; ++u) body(u, 0);
    return;
  }
  if (fixed) {
#pragma omp parallel num_threads(threads)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      for (int64_t u = units * tid / nth; u < units * (tid + 1) / nth; ++u) body(u, tid);
    }
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) body(u, tid);
  }
}

// ---------------------------------------------------------------------------------------------
// Row pass: for every row i, (M_i, s_i) with LSE_j(v_j + kappa S_ij) = M_i + log s_i; with Stats
// also Eb_i = sum_j e_ij beta_j and Es_i = sum_j e_ij S_ij, e_ij = exp(v_j + kappa S_ij - M_i).
template <typename T, bool Stats>
void row_update(const T* S, int64_t lds, int64_t rows, int64_t cols, const T* v, const T* bT, bool has_b, T kappa,
                double* M, double* Ssum, double* Eb, double* Es) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = S + r * lds;
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < cols; ++j) {
      const T z = v[j] + kappa * s[j];
      mx = z > mx ? z : mx;
    }
    double Mi = M[r];
    if (mx > Mi) {
      const double sc = std::exp(Mi - double(mx));
      Ssum[r] *= sc;
      if constexpr (Stats) {
        Eb[r] *= sc;
        Es[r] *= sc;
      }
      Mi = mx;
      M[r] = Mi;
    }
    const T mt = T(Mi);
    T acc = 0;
    if constexpr (!Stats) {
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < cols; ++j) acc += exp_lse(T(v[j] + kappa * s[j] - mt));
    } else {
      T ab = 0, as = 0;
      if (has_b) {
#pragma omp simd reduction(+ : acc, ab, as)
        for (int64_t j = 0; j < cols; ++j) {
          const T e = exp_lse(T(v[j] + kappa * s[j] - mt));
          acc += e;
          ab += e * bT[j];
          as += e * s[j];
        }
      } else {
#pragma omp simd reduction(+ : acc, as)
        for (int64_t j = 0; j < cols; ++j) {
          const T e = exp_lse(T(v[j] + kappa * s[j] - mt));
          acc += e;
          as += e * s[j];
        }
      }
      Eb[r] += ab;
      Es[r] += as;
    }
    Ssum[r] += acc;
  }
}

// Merges nt partial (M, s[, Eb, Es]) arrays of length len into the outputs.
template <bool Stats>
void merge_partials(int nt, int64_t len, double* const* part, double* M, double* S, double* Eb, double* Es) {
  for (int64_t i = 0; i < len; ++i) {
    double mx = -kInf;
    for (int t = 0; t < nt; ++t) mx = std::max(mx, part[t][i]);
    double s = 0, eb = 0, es = 0;
    for (int t = 0; t < nt; ++t) {
      const double pm = part[t][i];
      if (pm == -kInf) continue;
      const double sc = std::exp(pm - mx);
      s += part[t][len + i] * sc;
      if constexpr (Stats) {
        eb += part[t][2 * len + i] * sc;
        es += part[t][3 * len + i] * sc;
      }
    }
    M[i] = mx;
    S[i] = s;
    if constexpr (Stats) {
      Eb[i] = eb;
      Es[i] = es;
    }
  }
}

template <typename T, bool Stats>
void row_pass(const Prob<T>& p, Work<T>& w, T kappa) {
  const int64_t n = p.n, m = p.m, R = p.Rr, W = p.Wr;
  const int64_t strips = ceil_div(n, R), tiles = ceil_div(m, W);
  std::fill(w.Mr, w.Mr + n, -kInf);
  std::fill(w.Sr, w.Sr + n, 0.0);
  if (Stats) {
    std::fill(w.Eb, w.Eb + n, 0.0);
    std::fill(w.Es, w.Es + n, 0.0);
  }
  const int nt = w.nt;
  if (nt == 1 || strips >= nt || tiles < 2) {  // split rows: every row has one owner
    run_units(nt, strips, [&](int64_t u, int tid) {
      const int64_t i0 = u * R, rows = std::min(R, n - i0);
      for (int64_t j0 = 0; j0 < m; j0 += W) {
        const int64_t cols = std::min(W, m - j0);
        int64_t lds;
        const T* S = tile(p, i0, rows, j0, cols, w.ts[tid].tile, lds);
        row_update<T, Stats>(S, lds, rows, cols, w.v + j0, p.betaT + j0, p.has_beta, kappa, w.Mr + i0, w.Sr + i0,
                             w.Eb + i0, w.Es + i0);
      }
    });
    return;
  }
  // Few rows: split columns; each thread accumulates partial row sums, merged afterwards.
  double* parts[64];
  for (int t = 0; t < nt; ++t) {
    parts[t] = w.ts[t].part;
    std::fill(parts[t], parts[t] + n, -kInf);
    std::fill(parts[t] + n, parts[t] + 4 * n, 0.0);
  }
  run_units(nt, tiles, [&](int64_t u, int tid) {
    const int64_t j0 = u * W, cols = std::min(W, m - j0);
    double* pt = parts[tid];
    for (int64_t i0 = 0; i0 < n; i0 += R) {
      const int64_t rows = std::min(R, n - i0);
      int64_t lds;
      const T* S = tile(p, i0, rows, j0, cols, w.ts[tid].tile, lds);
      row_update<T, Stats>(S, lds, rows, cols, w.v + j0, p.betaT + j0, p.has_beta, kappa, pt + i0, pt + n + i0,
                           pt + 2 * n + i0, pt + 3 * n + i0);
    }
  }, /*fixed=*/true);
  merge_partials<Stats>(std::min<int64_t>(nt, tiles), n, parts, w.Mr, w.Sr, w.Eb, w.Es);
}

// Column pass: for every column j, (M_j, s_j) with LSE_i(w_i + kappa S_ij) = M_j + log s_j.
template <typename T>
void col_update(const T* S, int64_t lds, int64_t rows, int64_t cols, const T* wv, T kappa, double* M, double* Ssum,
                T* cm, T* cs, T* tm) {
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < cols; ++j) cm[j] = ninf;
  for (int64_t r = 0; r < rows; ++r) {
    const T wr = wv[r];
    const T* s = S + r * lds;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      const T z = wr + kappa * s[j];
      cm[j] = z > cm[j] ? z : cm[j];
    }
  }
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) {
    const double c = double(cm[j]);
    const double nm = c > M[j] ? c : M[j];
    Ssum[j] *= vec_exp(M[j] - nm);
    M[j] = nm;
    tm[j] = T(nm);
    cs[j] = T(0);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T wr = wv[r];
    const T* s = S + r * lds;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) cs[j] += exp_lse(T(wr + kappa * s[j] - tm[j]));
  }
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) Ssum[j] += double(cs[j]);
}

template <typename T>
void col_pass(const Prob<T>& p, Work<T>& w, T kappa) {
  const int64_t n = p.n, m = p.m, R = p.Rc, W = p.Wc;
  const int64_t strips = ceil_div(n, R), tiles = ceil_div(m, W);
  std::fill(w.Mc, w.Mc + m, -kInf);
  std::fill(w.Sc, w.Sc + m, 0.0);
  const int nt = w.nt;
  if (nt == 1 || tiles >= nt || strips < 2) {  // split columns: every column has one owner
    run_units(nt, tiles, [&](int64_t u, int tid) {
      const int64_t j0 = u * W, cols = std::min(W, m - j0);
      const ThreadScratch<T>& ts = w.ts[tid];
      for (int64_t i0 = 0; i0 < n; i0 += R) {
        const int64_t rows = std::min(R, n - i0);
        int64_t lds;
        const T* S = tile(p, i0, rows, j0, cols, ts.tile, lds);
        col_update<T>(S, lds, rows, cols, w.w + i0, kappa, w.Mc + j0, w.Sc + j0, ts.cm, ts.cs, ts.tm);
      }
    });
    return;
  }
  double* parts[64];
  for (int t = 0; t < nt; ++t) {
    parts[t] = w.ts[t].part;
    std::fill(parts[t], parts[t] + m, -kInf);
    std::fill(parts[t] + m, parts[t] + 2 * m, 0.0);
  }
  run_units(nt, strips, [&](int64_t u, int tid) {
    const int64_t i0 = u * R, rows = std::min(R, n - i0);
    const ThreadScratch<T>& ts = w.ts[tid];
    for (int64_t j0 = 0; j0 < m; j0 += W) {
      const int64_t cols = std::min(W, m - j0);
      int64_t lds;
      const T* S = tile(p, i0, rows, j0, cols, ts.tile, lds);
      col_update<T>(S, lds, rows, cols, w.w + i0, kappa, parts[tid] + j0, parts[tid] + m + j0, ts.cm, ts.cs, ts.tm);
    }
  }, /*fixed=*/true);
  merge_partials<false>(std::min<int64_t>(nt, strips), m, parts, w.Mc, w.Sc, nullptr, nullptr);
}

// ---------------------------------------------------------------------------------------------
// The solver for one problem.
struct SolveOpts {
  double eps, eps0, factor, tol, rho;
  int64_t itersPerStage, maxIter, checkEvery;
};

// The cost's range, for the default eps0.
template <typename T>
double cost_range(const Prob<T>& p, int nt) {
  if (p.mode == kNegDot) return 2.0;
  if (p.mode == kMatrix) {
    const int64_t total = p.n * p.m;
    double lo = kInf, hi = -kInf;
    const int threads = total < (int64_t(1) << 16) ? 1 : nt;
#pragma omp parallel for num_threads(threads) reduction(min : lo) reduction(max : hi) if (threads > 1)
    for (int64_t i = 0; i < p.n; ++i) {
      const T* row = p.C + i * p.m;
      T rl = std::numeric_limits<T>::infinity(), rh = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(min : rl) reduction(max : rh)
      for (int64_t j = 0; j < p.m; ++j) {
        rl = row[j] < rl ? row[j] : rl;
        rh = row[j] > rh ? row[j] : rh;
      }
      lo = std::min(lo, double(rl));
      hi = std::max(hi, double(rh));
    }
    return (hi - lo) * std::fabs(p.scale);
  }
  // sqeuclidean: s * (diameter of the joint bounding box)^2, from the packed centred points
  // (padding zeros only widen the box to include the mean, which lies inside it anyway).
  double diam2 = 0;
  for (int64_t k = 0; k < p.d; ++k) {
    double lo = kInf, hi = -kInf;
    for (int64_t i = 0; i < p.n; ++i) {
      const double v = p.xp[(i / p.k.mr) * p.d * p.k.mr + k * p.k.mr + i % p.k.mr];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    for (int64_t j = 0; j < p.m; ++j) {
      const double v = p.yp[(j / p.k.nr) * p.d * p.k.nr + k * p.k.nr + j % p.k.nr];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    diam2 += (hi - lo) * (hi - lo);
  }
  return p.scale * diam2;
}

// Solves one prepared problem. a, b: marginals (T); f, g, stats: outputs.
template <typename T>
void solve(const Prob<T>& p, Work<T>& w, const T* a, const T* b, const SolveOpts& o, T* fout, T* gout, double* st) {
  const int64_t n = p.n, m = p.m;
  const bool balanced = std::isinf(o.rho);
  double ma = 0, mb = 0;
  for (int64_t i = 0; i < n; ++i) {
    w.la[i] = std::log(double(a[i]));
    ma += double(a[i]);
  }
  for (int64_t j = 0; j < m; ++j) {
    w.lb[j] = std::log(double(b[j]));
    mb += double(b[j]);
  }
  std::fill(w.f, w.f + n, 0.0);
  std::fill(w.g, w.g + m, 0.0);

  // Stages: eps0 q^k > eps (itersPerStage each), then eps.
  double eps0 = o.eps;
  double stages[256];
  int nstages = 0;
  if (o.factor > 0 && o.factor < 1) {
    eps0 = o.eps0 > 0 ? o.eps0 : cost_range(p, w.nt);
    if (!(eps0 > 0) || !std::isfinite(eps0)) eps0 = o.eps;
    for (double e = eps0; e > o.eps && nstages < 255; e *= o.factor) stages[nstages++] = e;
  }
  stages[nstages++] = o.eps;

  int64_t iters = 0;
  double err = std::numeric_limits<double>::quiet_NaN();
  bool converged = false;
  for (int s = 0; s < nstages; ++s) {
    const double eps = stages[s];
    const bool final = s == nstages - 1;
    const double lam = balanced ? 1.0 : o.rho / (o.rho + eps);
    const T kappa = T(-p.gamma / eps);
    for (int64_t k = 0;; ++k) {
      if (!final && k == o.itersPerStage) break;
      const bool last = final && k == o.maxIter;
      const bool check = final && (last || (o.tol > 0 && k >= 1 && k % o.checkEvery == 0));
      // f half-step (and, on a check, the marginal error and statistics of the current plan)
      for (int64_t j = 0; j < m; ++j) w.v[j] = T((w.g[j] - p.beta[j]) / eps + w.lb[j]);
      if (check) row_pass<T, true>(p, w, kappa);
      else row_pass<T, false>(p, w, kappa);
      if (check) {
        double e = 0, mass = 0, transport = 0, rf = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double ft = (w.f[i] - p.alpha[i]) / eps;
          const double lr = ft + w.Mr[i] + std::log(w.Sr[i]);
          const double ai = double(a[i]);
          const double r = ai * std::exp(lr);
          const double t = balanced ? ai : ai * std::exp(-w.f[i] / o.rho);
          e += std::fabs(r - t);
          mass += r;
          rf += r * w.f[i];
          transport += ai * std::exp(ft + w.Mr[i]) * (p.alpha[i] * w.Sr[i] + w.Eb[i] + p.gamma * w.Es[i]);
          if (!balanced) rf += o.rho * (r * std::log(r / ai) - r + ai);  // rho KL(r || a), see below
        }
        err = e;
        if (o.tol > 0 && e < o.tol) converged = true;
        if (converged || last) {
          // Column marginal after the last g update: c = b (balanced) or b exp(-g / rho).
          double cg = 0, fa = 0, gb = 0;
          for (int64_t i = 0; i < n; ++i)
            fa += balanced ? double(a[i]) * w.f[i] : -o.rho * double(a[i]) * (std::exp(-w.f[i] / o.rho) - 1);
          for (int64_t j = 0; j < m; ++j) {
            const double bj = double(b[j]);
            if (balanced) {
              cg += bj * w.g[j];
              gb += bj * w.g[j];
            } else {
              const double c = bj * std::exp(-w.g[j] / o.rho);
              cg += c * w.g[j] + o.rho * (c * std::log(c / bj) - c + bj);
              gb += -o.rho * bj * (std::exp(-w.g[j] / o.rho) - 1);
            }
          }
          const double massTerm = eps * (mass - ma * mb);
          st[0] = double(iters);
          st[1] = err;
          st[2] = transport;
          st[3] = fa + gb - massTerm;        // dual value at (f, g): the differentiated scalar
          st[4] = rf + cg - massTerm;        // primal objective of P (+ rho KL terms)
          st[5] = mass;
          st[6] = eps0;
          st[7] = converged ? 1.0 : 0.0;
          break;
        }
      }
      for (int64_t i = 0; i < n; ++i) w.f[i] = lam * (p.alpha[i] - eps * (w.Mr[i] + std::log(w.Sr[i])));
      // g half-step
      for (int64_t i = 0; i < n; ++i) w.w[i] = T((w.f[i] - p.alpha[i]) / eps + w.la[i]);
      col_pass<T>(p, w, kappa);
      for (int64_t j = 0; j < m; ++j) w.g[j] = lam * (p.beta[j] - eps * (w.Mc[j] + std::log(w.Sc[j])));
      ++iters;
    }
  }
  for (int64_t i = 0; i < n; ++i) fout[i] = T(w.f[i]);
  for (int64_t j = 0; j < m; ++j) gout[j] = T(w.g[j]);
}

// ---------------------------------------------------------------------------------------------
// Argument checking shared by the ops.
struct Shape3 {
  int64_t B, n, m, d;
};

// a [B, n] with inner stride 1 and batch stride n or 0 (shared); returns the batch stride.
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

// Sources: (C) or (x, y); returns the number of source tensors and the problem shape.
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

// Threads for one problem, and whether the batch runs one problem per thread instead.
struct Threads {
  int inner = 1, outer = 1;
};
Threads plan_threads(const Shape3& sh) {
  const int nt = std::max(1, std::min(num_threads(), 64));
  const double work = double(sh.n) * double(sh.m) * double(std::max<int64_t>(sh.d, 4));
  Threads t;
  if (work < double(1 << 18)) {
    t.inner = 1;
    t.outer = (int)std::min<int64_t>(nt, sh.B);
  } else {
    t.inner = nt;
    t.outer = 1;
  }
  return t;
}

// Runs body(b, prob, work) for every batch entry, with problem buffers laid out per worker.
template <typename T, typename F>
void for_batch(const Shape3& sh, int mode, F&& body) {
  const Threads th = plan_threads(sh);
  Prob<T> proto;
  geometry(proto, mode, sh.n, sh.m, sh.d, th.inner);
  Arena measure;
  {
    Prob<T> p = proto;
    Work<T> w;
    layout(measure, p, w, th.inner);
  }
  const size_t per = measure.used;
  Scratch scratch(per * th.outer);
  auto worker = [&](int slot, int64_t b) {
    Arena A{scratch.data() + per * slot, 0};
    Prob<T> p = proto;
    Work<T> w;
    layout(A, p, w, th.inner);
    body(b, p, w);
  };
  if (th.outer <= 1) {
    for (int64_t b = 0; b < sh.B; ++b) worker(0, b);
    return;
  }
#pragma omp parallel for num_threads(th.outer) schedule(dynamic, 1)
  for (int64_t b = 0; b < sh.B; ++b) worker(omp_get_thread_num(), b);
}

template <typename T>
void check_potentials(OpCall& c, size_t fi, const Shape3& sh, DType dt, const char* fname, const char* gname) {
  expect_shape(c, fi, fname, {sh.B, sh.n}, dt);
  expect_shape(c, fi + 1, gname, {sh.B, sh.m}, dt);
}

// ---------------------------------------------------------------------------------------------
template <typename T>
void sinkhorn_typed(OpCall& c, int mode, size_t ns, const Shape3& sh, const SolveOpts& o, double costScale) {
  const DType dt = c.t(0).dtype;
  const int64_t sa = marginal_stride(c, ns, "a", sh.B, sh.n, dt);
  const int64_t sb = marginal_stride(c, ns + 1, "b", sh.B, sh.m, dt);
  check_potentials<T>(c, ns + 2, sh, dt, "f", "g");
  expect_shape(c, ns + 4, "stats", {sh.B, kStats}, DType::F64);
  const T* src0 = c.t(0).data<T>();
  const T* src1 = mode == kMatrix ? nullptr : c.t(1).data<T>();
  const T* A = c.t(ns).data<T>();
  const T* Bm = c.t(ns + 1).data<T>();
  T* F = c.t(ns + 2).data<T>();
  T* G = c.t(ns + 3).data<T>();
  double* st = c.t(ns + 4).data<double>();
  const int64_t s0 = mode == kMatrix ? sh.n * sh.m : sh.n * sh.d, s1 = sh.m * sh.d;
  for_batch<T>(sh, mode, [&](int64_t b, Prob<T>& p, Work<T>& w) {
    prepare(p, src0 + b * s0, src1 ? src1 + b * s1 : nullptr, costScale);
    solve(p, w, A + b * sa, Bm + b * sb, o, F + b * sh.n, G + b * sh.m, st + b * kStats);
  });
}

// Loads potentials and marginals into the work arrays: la, lb, f, g (double).
template <typename T>
void load_duals(Work<T>& w, int64_t n, int64_t m, const T* a, const T* b, const T* f, const T* g) {
  for (int64_t i = 0; i < n; ++i) {
    w.la[i] = std::log(double(a[i]));
    w.f[i] = double(f[i]);
  }
  for (int64_t j = 0; j < m; ++j) {
    w.lb[j] = std::log(double(b[j]));
    w.g[j] = double(g[j]);
  }
}

// out = weight * P + beta * out for one problem; P from (f, g) at eps.
template <typename T>
void plan_problem(const Prob<T>& p, Work<T>& w, double eps, double weight, double beta, T* out) {
  const int64_t n = p.n, m = p.m, R = p.R, W = p.W;
  const double kappa = -p.gamma / eps;
  double* u = w.Mr;  // row constants, double
  double* v = w.Mc;  // column constants, double
  for (int64_t i = 0; i < n; ++i) u[i] = (w.f[i] - p.alpha[i]) / eps + w.la[i];
  for (int64_t j = 0; j < m; ++j) v[j] = (w.g[j] - p.beta[j]) / eps + w.lb[j];
  run_units(w.nt, ceil_div(n, R), [&](int64_t un, int tid) {
    const int64_t i0 = un * R, rows = std::min(R, n - i0);
    for (int64_t j0 = 0; j0 < m; j0 += W) {
      const int64_t cols = std::min(W, m - j0);
      int64_t lds;
      const T* S = tile(p, i0, rows, j0, cols, w.ts[tid].tile, lds);
      for (int64_t r = 0; r < rows; ++r) {
        const double ui = u[i0 + r];
        const T* s = S + r * lds;
        T* o = out + (i0 + r) * m + j0;
        const double* vj = v + j0;
        if (beta == 0) {
#pragma omp simd
          for (int64_t j = 0; j < cols; ++j) o[j] = T(weight * vec_exp(ui + vj[j] + kappa * double(s[j])));
        } else {
#pragma omp simd
          for (int64_t j = 0; j < cols; ++j)
            o[j] = T(weight * vec_exp(ui + vj[j] + kappa * double(s[j])) + beta * double(o[j]));
        }
      }
    }
  });
}

template <typename T>
void plan_typed(OpCall& c, int mode, size_t ns, const Shape3& sh, double costScale, double eps, double beta) {
  const DType dt = c.t(0).dtype;
  const int64_t sa = marginal_stride(c, ns, "a", sh.B, sh.n, dt);
  const int64_t sb = marginal_stride(c, ns + 1, "b", sh.B, sh.m, dt);
  check_potentials<T>(c, ns + 2, sh, dt, "f", "g");
  expect_shape(c, ns + 4, "w", {sh.B}, DType::F64);
  expect_shape(c, ns + 5, "out", {sh.B, sh.n, sh.m}, dt);
  const T* src0 = c.t(0).data<T>();
  const T* src1 = mode == kMatrix ? nullptr : c.t(1).data<T>();
  const T *A = c.t(ns).data<T>(), *Bm = c.t(ns + 1).data<T>();
  const T *F = c.t(ns + 2).data<T>(), *G = c.t(ns + 3).data<T>();
  const double* wt = c.t(ns + 4).data<double>();
  T* out = c.t(ns + 5).data<T>();
  const int64_t s0 = mode == kMatrix ? sh.n * sh.m : sh.n * sh.d, s1 = sh.m * sh.d;
  for_batch<T>(sh, mode, [&](int64_t b, Prob<T>& p, Work<T>& w) {
    prepare(p, src0 + b * s0, src1 ? src1 + b * s1 : nullptr, costScale);
    load_duals(w, sh.n, sh.m, A + b * sa, Bm + b * sb, F + b * sh.n, G + b * sh.m);
    plan_problem(p, w, eps, wt[b], beta, out + b * sh.n * sh.m);
  });
}

// Gradient of weight * OT w.r.t. the points, tile by tile: P never stored.
//   rows:    dx_i = weight (2 s r_i x_i [sqeuclidean] + gamma sum_j P_ij y_j)
//   columns: dy_j = weight (2 s c_j y_j [sqeuclidean] + gamma sum_i P_ij x_i)
// (gamma = -2s or -1; raw, uncentred coordinates: the centring cancels in r_i x_i - sum P y).
template <typename T>
void grad_points_problem(const Prob<T>& p, Work<T>& w, double eps, double weight, T* dx, T* dy, int which, double* gscratch,
                         int64_t gstride) {
  const int64_t n = p.n, m = p.m, d = p.d, R = p.R, W = p.W;
  const bool sq = p.mode == kSqEuclid;
  const double kappa = -p.gamma / eps, twos = 2.0 * p.scale;
  double* u = w.Mr;
  double* v = w.Mc;
  for (int64_t i = 0; i < n; ++i) u[i] = (w.f[i] - p.alpha[i]) / eps + w.la[i];
  for (int64_t j = 0; j < m; ++j) v[j] = (w.g[j] - p.beta[j]) / eps + w.lb[j];
  // P tile in place of S (T), and its row or column sums.
  auto plan_tile = [&](T* buf, const T* S, int64_t lds, int64_t i0, int64_t rows, int64_t j0, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const double ui = u[i0 + r];
      const T* s = S + r * lds;
      T* o = buf + r * W;
      const double* vj = v + j0;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) o[j] = T(vec_exp(ui + vj[j] + kappa * double(s[j])));
    }
  };
  constexpr int64_t kChunk = 32;
  // dx: units are row strips.
  if (which & 1) run_units(w.nt, ceil_div(n, R), [&](int64_t un, int tid) {
    const int64_t i0 = un * R, rows = std::min(R, n - i0);
    double* racc = gscratch + tid * gstride;  // [R]
    double* dacc = racc + R;                  // [R, d]
    std::fill(racc, racc + R + R * d, 0.0);
    T* P = w.ts[tid].tile;
    T* accT = reinterpret_cast<T*>(dacc + R * d);  // [d] in T
    for (int64_t j0 = 0; j0 < m; j0 += W) {
      const int64_t cols = std::min(W, m - j0);
      int64_t lds;
      const T* S = tile(p, i0, rows, j0, cols, P, lds);
      plan_tile(P, S, lds, i0, rows, j0, cols);
      for (int64_t r = 0; r < rows; ++r) {
        const T* pr = P + r * W;
        T rs = 0;
#pragma omp simd reduction(+ : rs)
        for (int64_t j = 0; j < cols; ++j) rs += pr[j];
        racc[r] += double(rs);
      }
      for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
        const int64_t c1 = std::min(cols, c0 + kChunk);
        for (int64_t r = 0; r < rows; ++r) {
          const T* pr = P + r * W;
          std::fill(accT, accT + d, T(0));
          for (int64_t j = c0; j < c1; ++j) {
            const T pj = pr[j];
            const T* yj = p.y + (j0 + j) * d;
#pragma omp simd
            for (int64_t k = 0; k < d; ++k) accT[k] += pj * yj[k];
          }
          double* dr = dacc + r * d;
          for (int64_t k = 0; k < d; ++k) dr[k] += double(accT[k]);
        }
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const T* xi = p.x + (i0 + r) * d;
      T* o = dx + (i0 + r) * d;
      for (int64_t k = 0; k < d; ++k)
        o[k] = T(weight * ((sq ? twos * racc[r] * double(xi[k]) : 0.0) + p.gamma * dacc[r * d + k]));
    }
  });
  // dy: units are column tiles.
  if (which & 2) run_units(w.nt, ceil_div(m, W), [&](int64_t un, int tid) {
    const int64_t j0 = un * W, cols = std::min(W, m - j0);
    double* cacc = gscratch + tid * gstride;  // [W]
    double* dacc = cacc + W;                  // [W, d]
    T* accT = reinterpret_cast<T*>(dacc + W * d);
    std::fill(cacc, cacc + W + W * d, 0.0);
    T* P = w.ts[tid].tile;
    for (int64_t i0 = 0; i0 < n; i0 += R) {
      const int64_t rows = std::min(R, n - i0);
      int64_t lds;
      const T* S = tile(p, i0, rows, j0, cols, P, lds);
      plan_tile(P, S, lds, i0, rows, j0, cols);
      for (int64_t j = 0; j < cols; ++j) {
        std::fill(accT, accT + d, T(0));
        T cs = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const T pj = P[r * W + j];
          cs += pj;
          const T* xi = p.x + (i0 + r) * d;
#pragma omp simd
          for (int64_t k = 0; k < d; ++k) accT[k] += pj * xi[k];
        }
        cacc[j] += double(cs);
        double* dr = dacc + j * d;
        for (int64_t k = 0; k < d; ++k) dr[k] += double(accT[k]);
      }
    }
    for (int64_t j = 0; j < cols; ++j) {
      const T* yj = p.y + (j0 + j) * d;
      T* o = dy + (j0 + j) * d;
      for (int64_t k = 0; k < d; ++k)
        o[k] = T(weight * ((sq ? twos * cacc[j] * double(yj[k]) : 0.0) + p.gamma * dacc[j * d + k]));
    }
  });
}

template <typename T>
void grad_points_typed(OpCall& c, int mode, const Shape3& sh, double costScale, double eps, int which) {
  const DType dt = c.t(0).dtype;
  const int64_t sa = marginal_stride(c, 2, "a", sh.B, sh.n, dt);
  const int64_t sb = marginal_stride(c, 3, "b", sh.B, sh.m, dt);
  check_potentials<T>(c, 4, sh, dt, "f", "g");
  expect_shape(c, 6, "w", {sh.B}, DType::F64);
  expect_shape(c, 7, "dx", {sh.B, sh.n, sh.d}, dt);
  expect_shape(c, 8, "dy", {sh.B, sh.m, sh.d}, dt);
  const T *X = c.t(0).data<T>(), *Y = c.t(1).data<T>();
  const T *A = c.t(2).data<T>(), *Bm = c.t(3).data<T>();
  const T *F = c.t(4).data<T>(), *G = c.t(5).data<T>();
  const double* wt = c.t(6).data<double>();
  T *DX = c.t(7).data<T>(), *DY = c.t(8).data<T>();
  const Threads th = plan_threads(sh);
  Prob<T> proto;
  geometry(proto, mode, sh.n, sh.m, sh.d, th.inner);
  // Per thread: max(R, W) (1 + d) doubles plus d T for the accumulators.
  const int64_t gstride = (std::max(proto.R, proto.W) * (1 + sh.d) + sh.d + 8);
  Scratch gs(size_t(gstride) * sizeof(double) * th.inner * th.outer);
  for_batch<T>(sh, mode, [&](int64_t b, Prob<T>& p, Work<T>& w) {
    prepare(p, X + b * sh.n * sh.d, Y + b * sh.m * sh.d, costScale);
    load_duals(w, sh.n, sh.m, A + b * sa, Bm + b * sb, F + b * sh.n, G + b * sh.m);
    const int slot = th.outer > 1 ? omp_get_thread_num() : 0;
    double* mine = reinterpret_cast<double*>(gs.data()) + size_t(slot) * th.inner * gstride;
    grad_points_problem(p, w, eps, wt[b], DX + b * sh.n * sh.d, DY + b * sh.m * sh.d, which, mine, gstride);
  });
}

// KLOT: one fused pass over both similarity matrices. Per element, in double:
//   lps = (fs_i + Ks_ij) / epsStar + log a_i + (gs_j / epsStar + log b_j)   (log P*_ij)
//   lp  = (f_i + K_ij) / eps + log a_i + (g_j / eps + log b_j)               (log P_ij)
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
  Scratch scratch(size_t(2 * (n + m)) * sizeof(double));
  double* us = reinterpret_cast<double*>(scratch.data());
  double* u = us + n;
  double* vs = u + n;
  double* v = vs + m;
  for (int64_t b = 0; b < B; ++b) {
    const T* a = c.t(2).data<T>() + b * sa;
    const T* bb = c.t(3).data<T>() + b * sb;
    const T* fs = c.t(4).data<T>() + b * n;
    const T* gs = c.t(5).data<T>() + b * m;
    const T* f = c.t(6).data<T>() + b * n;
    const T* g = c.t(7).data<T>() + b * m;
    for (int64_t i = 0; i < n; ++i) {
      const double la = std::log(double(a[i]));
      us[i] = double(fs[i]) / es + la;
      u[i] = double(f[i]) / e + la;
    }
    for (int64_t j = 0; j < m; ++j) {
      const double lb = std::log(double(bb[j]));
      vs[j] = double(gs[j]) / es + lb;
      v[j] = double(g[j]) / e + lb;
    }
    const T* ks = Ks.data<T>() + b * n * m;
    const T* kk = K.data<T>() + b * n * m;
    const double ies = 1.0 / es, ie = 1.0 / e;
    if (Backward) {
      const double wt = c.t(8).data<double>()[b] / e;
      T* gk = c.t(9).data<T>() + b * n * m;
      parallel_for(n, std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
          const T* ksi = ks + i * m;
          const T* ki = kk + i * m;
          T* o = gk + i * m;
          const double usi = us[i], ui = u[i];
#pragma omp simd
          for (int64_t j = 0; j < m; ++j) {
            const double lps = usi + vs[j] + double(ksi[j]) * ies;
            const double lp = ui + v[j] + double(ki[j]) * ie;
            o[j] = T(wt * (vec_exp(lp) - vec_exp(lps)));
          }
        }
      });
    } else {
      double total = 0;
      const int threads = n * m < (int64_t(1) << 15) ? 1 : num_threads();
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static) if (threads > 1)
      for (int64_t i = 0; i < n; ++i) {
        const T* ksi = ks + i * m;
        const T* ki = kk + i * m;
        const double usi = us[i], ui = u[i];
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < m; ++j) {
          const double lps = usi + vs[j] + double(ksi[j]) * ies;
          const double lp = ui + v[j] + double(ki[j]) * ie;
          acc += vec_exp(lps) * (lps - lp);
        }
        total += acc;
      }
      c.t(8).data<double>()[b] = total;
    }
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

}  // namespace tessera::cpu
