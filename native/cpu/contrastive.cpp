// Fused contrastive losses (CLIP / multi-positive InfoNCE, NT-Xent, SigLIP) that never hold the
// N x M logit matrix. Contract in contrastive.h; TypeScript side in lib/losses/contrastive.ts.
//
// THE PROBLEM. logits = t * a b^T (t = exp(scale)) is N x M: 1 GiB of float32 at N = M = 16384,
// and the composed loss (matmul, two cross-entropies, their backward) writes and reads several
// such buffers. Everything the loss and its gradient need from the matrix is O(N + M):
//   softmax losses: per row the log-sum-exp lse_r_i and the sum of its positive logits, per column
//                   lse_c_j and its positive sum;
//   sigmoid loss:   nothing at all (each element's term is independent).
//
// TILING. The matrix is produced tile by tile: a tile is TR rows x TC columns (128 x 192 with the
// AVX-512 kernel, other kernels round to their register tile), computed on the fly as a small GEMM
// by the matmul micro-kernels (cpu/matmul_kernels.h: the same AVX-512 8 x 48 / AVX2 6 x 16
// register-blocked kernels as the matmul op, or a plain C++ fallback). The rows of a (K = D) are
// packed into MR-row panels once per row block, the rows of b into NR-column panels once per
// column tile and "super-block" (up to 4 row blocks, 512 rows, share each packed b tile, which
// halves the packing cost), and the micro-kernel writes the TR x TC tile into a per-thread
// scratch buffer that stays in L2. The tile is consumed while it is hot and overwritten by the
// next one. D > 384 (the kernel's K block) is split into equal K blocks, as the matmul op does.
//
// FORWARD (softmax). Thread p owns a contiguous range of rows and sweeps all column tiles for
// each of its row blocks. Per tile: scale by t (and set self-pairs to -inf for NT-Xent), then
//   pass 1: tile max per row and per column, and the positive logits (equal ids: a vectorised
//           compare against the column ids; offset mode: one element per row);
//   online log-sum-exp: a row's running (max m, sum s) becomes (m', s e^(m - m') + sum_j
//           e^(x_ij - m')) with m' = max(m, tile max); a column's the same with its own max, so
//           every element pays two exps (row and column references differ, and using one for
//           both would underflow where the other matters);
//   pass 2: the exps, summed per row (float per tile, then into a double) and per column.
// Row statistics live in the row block's registers/scratch; column statistics are per thread
// (max, sum, positive sum: O(threads x M)) and are merged at the end: M_j = max_p m_pj, S_j =
// sum_p s_pj e^(m_pj - M_j), lse_c_j = M_j + log S_j. Loss per row = lse_r_i - (sum of its
// positive logits) / |P_i|, per column likewise; the total is summed serially in index order, so
// a result depends only on the thread count, not on scheduling.
//
// BACKWARD (softmax). With g the upstream gradient, wr/wc the direction weights and nr/nc the
// number of rows/columns that have a positive,
//   dlogit_ij = g wr/nr (e^(x_ij - lse_r_i) - [ij positive]/|P_i|)    (row i has a positive)
//             + g wc/nc (e^(x_ij - lse_c_j) - [ij positive]/|P'_j|)   (column j has one)
// which needs only the saved lse vectors: each tile is recomputed (one more GEMM), turned into
// dlogits in place, and consumed by two more GEMMs: dA_block += dlogits B_tile and
// dB_tile = dlogits^T A_block (dlogits packed both ways from the tile), while
// dscale += sum dlogit_ij x_ij (d x / d scale = x). grad_a = t dA, grad_b = t dB. Writes to grad_b
// would race between threads, so the backward runs P rounds (P threads): rows and columns are cut
// into P chunks each, and in round r thread p handles (row chunk p, column chunk (p + r) mod P).
// Within a round no two threads share a row chunk or a column chunk, so both gradients are
// written in place with no per-thread copies and no atomics; a barrier separates rounds. (Within
// a super-block the dB tile accumulates over its row blocks before it is added to grad_b.) Extra
// memory: O(N + M) (the saved lse, the per-row/column counts) plus O(threads x (tile + M)) scratch
// (about 2 MiB per thread at D = 256), never O(N M). The scratch is allocated through the storage
// allocator, so memoryStats() sees it.
//
// SIGMOID (SigLIP). loss = (1/N) sum_ij softplus(-z_ij x_ij), x = t a.b + bias: forward sums
// per tile (softplus(y) = max(y, 0) + log1p(e^-|y|)); backward recomputes the tile with
// dlogit_ij = (g/N) (-z_ij) sigmoid(-z_ij x_ij) and then runs the same GEMMs and rounds; dbias
// = sum dlogit, dscale = sum dlogit (x - bias).
//
// Everything that can fail (argument checks, ids, allocation) happens before the parallel
// regions; nothing inside them throws. exp/log1p/sigmoid are the vectorisable float32 versions of
// cpu/vec_math.h (vec_exp for float64), so the per-tile passes are `omp simd` loops. Those loops
// (and the packing) are compiled for the build's target: a portable build (TESSERA_PORTABLE=ON,
// baseline x86-64) runs them with SSE2 and is markedly slower (on a 16-core Xeon: 1.3x -> 2x the
// logit GEMM's time in the forward, 3.7x -> 7x in the backward), while the GEMMs still dispatch to
// AVX-512 at run time.
#include "cpu/contrastive.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <unordered_map>
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
using matmul_detail::TransposePack;

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t rup(int64_t a, int64_t b) { return cdiv(a, b) * b; }

// ---------------------------------------------------------------------------------------------
// Tile GEMM: the matmul micro-kernels on packed operands.

// Fallback micro-kernel for CPUs without AVX2 (plain loops; the compiler vectorises them).
template <typename T, int MR, int NR>
void ukernel_plain(int64_t k, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc, T beta) {
  T acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = T(0);
  for (int64_t p = 0; p < k; ++p)
    for (int r = 0; r < MR; ++r) {
      const T av = a[p * MR + r];
      for (int j = 0; j < NR; ++j) acc[r][j] += av * b[p * NR + j];
    }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) c[r * ldc + j] = beta == T(0) ? acc[r][j] : acc[r][j] + beta * c[r * ldc + j];
}

// The CPU's level, capped by TESSERA_MATMUL_KERNEL (as the matmul op, so tests can force a kernel).
SimdLevel capped_level() {
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
const GemmKernel<T>& tile_kernel() {
  static const GemmKernel<T> kernel = [] {
    const SimdLevel l = capped_level();
    if constexpr (std::is_same_v<T, float>) {
      if (l == SimdLevel::AVX512 && matmul_detail::avx512_f32().fn) return matmul_detail::avx512_f32();
      if ((int)l >= (int)SimdLevel::AVX2 && matmul_detail::avx2_f32().fn) return matmul_detail::avx2_f32();
    } else {
      if (l == SimdLevel::AVX512 && matmul_detail::avx512_f64().fn) return matmul_detail::avx512_f64();
      if ((int)l >= (int)SimdLevel::AVX2 && matmul_detail::avx2_f64().fn) return matmul_detail::avx2_f64();
    }
    GemmKernel<T> g;
    constexpr int NR = 32 / sizeof(T);
    g.fn = &ukernel_plain<T, 4, NR>;
    g.lanes = 1;
    g.mr = 4;
    g.nr = NR;
    g.mc = 128;
    g.kc = 256;
    g.name = "plain";
    return g;
  }();
  return kernel;
}

// K split into equal blocks of at most kc (as the matmul driver does).
inline int64_t kblock(int64_t K, int kc) { return cdiv(K, cdiv(K, kc)); }

// Pack R rows of a matrix whose rows run along k (row r at src + r * ld, K values) into W-row
// panels: K block [pc, pc + kc) starts at out + pc * rup(R, W), its panel q at q * W * kc, element
// (k = p, row r) at p * W + r. Rows past R are zero. (An A operand from row-major rows, or a B
// operand from b's rows, i.e. b^T.)
template <typename T>
void pack_rows(const T* src, int64_t ld, int64_t R, int64_t K, int W, int64_t kcb, TransposePack<T> tp, T* out) {
  const int64_t Rpad = rup(R, W);
  for (int64_t pc = 0; pc < K; pc += kcb) {
    const int64_t kc = std::min(kcb, K - pc);
    T* blk = out + pc * Rpad;
    for (int64_t r0 = 0; r0 < R; r0 += W) {
      T* o = blk + r0 * kc;
      const int64_t rr = std::min<int64_t>(W, R - r0);
      const T* s = src + r0 * ld + pc;
      if (rr == W && tp) {
        tp(s, ld, W, kc, o);
        continue;
      }
      for (int64_t p = 0; p < kc; ++p) {
        for (int64_t r = 0; r < rr; ++r) o[p * W + r] = s[r * ld + p];
        for (int64_t r = rr; r < W; ++r) o[p * W + r] = T(0);
      }
    }
  }
}

// Pack C columns of a matrix whose rows are the k index (element (p, c) at src[p * ld + c], K
// rows) into W-column panels, same layout as pack_rows. (A K x N B operand from row-major rows,
// or an A operand that is the transpose of a row-major tile.)
template <typename T>
void pack_cols(const T* src, int64_t ld, int64_t C, int64_t K, int W, int64_t kcb, T* out) {
  const int64_t Cpad = rup(C, W);
  for (int64_t pc = 0; pc < K; pc += kcb) {
    const int64_t kc = std::min(kcb, K - pc);
    T* blk = out + pc * Cpad;
    for (int64_t c0 = 0; c0 < C; c0 += W) {
      T* o = blk + c0 * kc;
      const int64_t cc = std::min<int64_t>(W, C - c0);
      const T* s = src + pc * ld + c0;
      if (cc == W) {
        for (int64_t p = 0; p < kc; ++p) std::memcpy(o + p * W, s + p * ld, sizeof(T) * W);
      } else {
        for (int64_t p = 0; p < kc; ++p) {
          for (int64_t c = 0; c < cc; ++c) o[p * W + c] = s[p * ld + c];
          for (int64_t c = cc; c < W; ++c) o[p * W + c] = T(0);
        }
      }
    }
  }
}

// C (mpad x npad, rows ldc apart) = Apack @ Bpack (+ C when accumulate). mpad, npad: multiples of
// MR, NR; both operands packed with K block kcb.
template <typename T>
void gemm_packed(const GemmKernel<T>& k, int64_t mpad, int64_t npad, int64_t K, int64_t kcb, const T* ap, const T* bp,
                 T* C, int64_t ldc, bool accumulate) {
  for (int64_t pc = 0; pc < K; pc += kcb) {
    const int64_t kc = std::min(kcb, K - pc);
    const T beta = (pc == 0 && !accumulate) ? T(0) : T(1);
    const T* ab = ap + pc * mpad;
    const T* bb = bp + pc * npad;
    for (int64_t j = 0; j < npad; j += k.nr) {
      const T* bpan = bb + j * kc;
      for (int64_t i = 0; i < mpad; i += k.mr) k.fn(kc, ab + i * kc, bpan, C + i * ldc + j, ldc, beta);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Problem setup, validated before any parallel work.

struct Setup {
  int64_t n = 0, m = 0, d = 0;
  double t = 1, bias = 0;
  bool ids = false, self_mask = false;
  int64_t offset = 0;
  double wr = 0, wc = 0;
  std::vector<int32_t> rid, cid;   // ids mode: contiguous copies
  std::vector<double> rinv, cinv;  // softmax: 1 / |positives| per row / column, 0 when none
  int64_t nvr = 0, nvc = 0;        // rows / columns with at least one positive
};

template <typename T>
T scalar_value(const TensorRef& t) {
  return *t.data<T>();
}

// a [N, D], b [M, D] contiguous floats, scale (and bias) one element of the same dtype.
void check_embeddings(OpCall& c, Setup& s, bool with_bias) {
  c.expect_float(0, "a");
  c.expect_ndim(0, 2, "a (as [N, D])");
  c.expect_ndim(1, 2, "b (as [M, D])");
  c.expect_same_dtype(0, 1, "a", "b");
  c.expect_contiguous(0, "a");
  c.expect_contiguous(1, "b");
  const TensorRef &a = c.t(0), &b = c.t(1);
  TS_CHECK(a.shape[1] == b.shape[1], c.op, ": a ", a.describe(), " and b ", b.describe(),
           " must have the same embedding size D");
  TS_CHECK(a.shape[0] >= 1 && b.shape[0] >= 1 && a.shape[1] >= 1, c.op, ": a ", a.describe(), " and b ",
           b.describe(), " must have at least one row and D >= 1");
  s.n = a.shape[0];
  s.m = b.shape[0];
  s.d = a.shape[1];
  c.expect_numel(2, 1, "scale");
  c.expect_same_dtype(0, 2, "a", "scale");
  const bool f32 = a.dtype == DType::F32;
  const double sv = f32 ? (double)scalar_value<float>(c.t(2)) : scalar_value<double>(c.t(2));
  TS_CHECK(std::isfinite(sv), c.op, ": the logit scale (log temperature) must be finite, got ", sv);
  s.t = std::exp(sv);
  const double tmax = f32 ? (double)std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
  TS_CHECK(s.t <= tmax, c.op, ": exp(scale) overflows ", dtype_name(a.dtype), " for scale ", sv);
  if (f32) s.t = (double)(float)s.t;
  if (with_bias) {
    c.expect_numel(3, 1, "bias");
    c.expect_same_dtype(0, 3, "a", "bias");
    s.bias = f32 ? (double)scalar_value<float>(c.t(3)) : scalar_value<double>(c.t(3));
    TS_CHECK(std::isfinite(s.bias), c.op, ": the logit bias must be finite, got ", s.bias);
  }
}

void read_ids(OpCall& c, size_t i, int64_t len, const char* name, const char* of, std::vector<int32_t>& out) {
  c.expect_dtype(i, DType::I32, name);
  c.expect_ndim(i, 1, name);
  const TensorRef& t = c.t(i);
  TS_CHECK(t.shape[0] == len, c.op, ": ", name, " ", t.describe(), " must have one id per row of ", of, " (", len,
           " entries)");
  out.resize((size_t)len);
  const int32_t* p = t.data<int32_t>();
  for (int64_t k = 0; k < len; ++k) out[(size_t)k] = p[k * t.strides[0]];
}

// Positives: ids (tensors ids_at, ids_at + 1) when the call has them, else offset mode.
void setup_positives(OpCall& c, Setup& s, size_t base, size_t ids_at, double offset, bool self_mask) {
  TS_CHECK(c.tensors.size() == base || c.tensors.size() == base + 2, c.op, ": expected ", base, " or ", base + 2,
           " tensors, got ", c.tensors.size());
  s.ids = c.tensors.size() == base + 2;
  s.self_mask = self_mask;
  if (s.ids) {
    read_ids(c, ids_at, s.n, "row_ids", "a", s.rid);
    read_ids(c, ids_at + 1, s.m, "col_ids", "b", s.cid);
    TS_CHECK(!self_mask, c.op, ": self_mask is only supported with offset positives");
  } else {
    TS_CHECK(s.n == s.m, c.op, ": without ids, row i's positive is column (i + offset) mod M, which needs N == M; got a ",
             c.t(0).describe(), " and b ", c.t(1).describe(), " (pass row and column ids for N != M)");
    TS_CHECK(offset == std::floor(offset) && offset >= 0 && offset < (double)s.m, c.op, ": offset must be an integer in [0, ",
             s.m, "), got ", offset);
    s.offset = (int64_t)offset;
    TS_CHECK(!self_mask || s.offset != 0, c.op, ": self_mask with offset 0 would mask every positive");
  }
}

// 1 / |P| per row and column, and how many rows / columns have a positive.
void count_positives(Setup& s) {
  s.rinv.assign((size_t)s.n, 0.0);
  s.cinv.assign((size_t)s.m, 0.0);
  if (!s.ids) {
    std::fill(s.rinv.begin(), s.rinv.end(), 1.0);
    std::fill(s.cinv.begin(), s.cinv.end(), 1.0);
    s.nvr = s.n;
    s.nvc = s.m;
    return;
  }
  std::unordered_map<int32_t, int64_t> rows, cols;
  for (int32_t v : s.rid) ++rows[v];
  for (int32_t v : s.cid) ++cols[v];
  s.nvr = s.nvc = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    auto it = cols.find(s.rid[(size_t)i]);
    if (it != cols.end()) {
      s.rinv[(size_t)i] = 1.0 / (double)it->second;
      ++s.nvr;
    }
  }
  for (int64_t j = 0; j < s.m; ++j) {
    auto it = rows.find(s.cid[(size_t)j]);
    if (it != rows.end()) {
      s.cinv[(size_t)j] = 1.0 / (double)it->second;
      ++s.nvc;
    }
  }
}

void setup_softmax(OpCall& c, Setup& s, size_t base, size_t ids_at) {
  TS_CHECK(c.scalars.size() == 4, c.op, ": expected 4 scalars [offset, row_weight, col_weight, self_mask], got ",
           c.scalars.size());
  check_embeddings(c, s, false);
  s.wr = c.s(1);
  s.wc = c.s(2);
  TS_CHECK(std::isfinite(s.wr) && std::isfinite(s.wc) && s.wr >= 0 && s.wc >= 0 && s.wr + s.wc > 0, c.op,
           ": direction weights must be finite, >= 0 and not both 0, got ", s.wr, " and ", s.wc);
  setup_positives(c, s, base, ids_at, c.s(0), c.s(3) != 0);
  count_positives(s);
  TS_CHECK(s.wr == 0 || s.nvr > 0, c.op, ": no row of a has a positive (no row id occurs among the column ids)");
  TS_CHECK(s.wc == 0 || s.nvc > 0, c.op, ": no row of b has a positive (no column id occurs among the row ids)");
}

void expect_vector(OpCall& c, size_t i, int64_t n, const char* name) {
  c.expect_ndim(i, 1, name);
  c.expect_numel(i, n, name);
  c.expect_contiguous(i, name);
  c.expect_same_dtype(0, i, "a", name);
}

void expect_grad(OpCall& c, size_t i, size_t like, const char* name, const char* like_name) {
  c.expect_same_shape(like, i, like_name, name);
  c.expect_contiguous(i, name);
  c.expect_same_dtype(0, i, "a", name);
}

void expect_one(OpCall& c, size_t i, const char* name) {
  c.expect_numel(i, 1, name);
  c.expect_same_dtype(0, i, "a", name);
}

// Threads for a problem: one below ~2^18 multiply-adds (the pool's wake-up costs more), and never
// more than N (threads own row chunks).
int plan_threads(const Setup& s) {
  int nt = num_threads();
  if ((double)s.n * (double)s.m * (double)s.d < double(1 << 18)) nt = 1;
  nt = (int)std::min<int64_t>(nt, s.n);
  return std::max(1, nt);
}

// Per-thread scratch, carved out of one block from the storage allocator (so memoryStats() counts
// it). A Carver with base nullptr only measures.
struct Carver {
  char* base;
  size_t used = 0;
  template <typename U>
  U* take(int64_t count) {
    U* p = base ? reinterpret_cast<U*>(base + used) : nullptr;
    used += (size_t)rup(std::max<int64_t>(count, 1) * (int64_t)sizeof(U), 64);
    return p;
  }
};

class Scratch {
 public:
  explicit Scratch(size_t bytes) : s_(storage_alloc(bytes, Device::CPU, false)) {}
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

template <typename T>
struct Geom {
  const GemmKernel<T>* k;
  int64_t n, m, d;
  int MR, NR;
  int64_t TR, TC;  // tile rows (multiple of MR), tile columns (multiple of NR; also the tile's row stride)
  int64_t TCm;     // TC rounded up to MR (the tile transposed, as an A operand)
  int64_t SB;      // row blocks per super-block: they share each packed b tile
  int64_t kcb;     // K block of the logit GEMM (K = D)
  int64_t dpad;    // D rounded up to NR (gradient GEMMs' N)
};

template <typename T>
Geom<T> make_geom(const Setup& s, int nt) {
  Geom<T> g;
  g.k = &tile_kernel<T>();
  g.n = s.n;
  g.m = s.m;
  g.d = s.d;
  g.MR = g.k->mr;
  g.NR = g.k->nr;
  g.TR = rup(128, g.MR);
  g.TC = rup(192, g.NR);
  g.TCm = rup(g.TC, g.MR);
  g.kcb = kblock(s.d, g.k->kc);
  g.dpad = rup(s.d, g.NR);
  // Up to 4 row blocks (512 rows) share a packed b tile, as long as their packed rows and gradient
  // accumulators (about 3 TR x D values each) stay within ~2 MiB per thread, and no more than a
  // thread's share of the rows (nt threads own about N / nt rows each).
  const int64_t per_block = 3 * g.TR * g.dpad * (int64_t)sizeof(T);
  g.SB = std::max<int64_t>(1, std::min<int64_t>({4, (int64_t(2) << 20) / per_block, cdiv(cdiv(s.n, nt), g.TR)}));
  return g;
}

// Buffers every sweep uses: packed a rows (K = D) of each row block of a super-block, packed b
// rows (K = D) of the current column tile, the logit tile.
template <typename T>
struct TileBufs {
  T *pa, *pb, *x;
  int64_t pa_stride;
  void carve(Carver& cv, const Geom<T>& g) {
    pa_stride = rup(g.TR * g.d, 16);
    pa = cv.take<T>(g.SB * pa_stride);
    pb = cv.take<T>(g.TC * g.d);
    x = cv.take<T>(g.TR * g.TC);
  }
  void pack_a(const Geom<T>& g, const T* A, int64_t i0, int64_t tr, int64_t blk) {
    pack_rows(A + i0 * g.d, g.d, tr, g.d, g.MR, g.kcb, g.k->tpack, pa + blk * pa_stride);
  }
  void pack_b(const Geom<T>& g, const T* B, int64_t j0, int64_t tc) {
    pack_rows(B + j0 * g.d, g.d, tc, g.d, g.NR, g.kcb, g.k->tpack, pb);
  }
  // The raw tile a[row block blk] . b[j0:j0+tc]^T into x (rows TC apart): pa and pb packed.
  void logits(const Geom<T>& g, int64_t tr, int64_t tc, int64_t blk) {
    gemm_packed(*g.k, rup(tr, g.MR), rup(tc, g.NR), g.d, g.kcb, pa + blk * pa_stride, pb, x, g.TC, false);
  }
};

// Row blocks [i0 + k TR, ...) of the super-block starting at i0 within [.., r1): count and sizes.
inline int64_t sub_blocks(int64_t i0, int64_t r1, int64_t TR, int64_t SB) {
  return std::min(SB, cdiv(r1 - i0, TR));
}

inline int64_t chunk_begin(int64_t n, int p, int P) { return n * p / P; }

// ---------------------------------------------------------------------------------------------
// Softmax forward.

template <typename T>
struct SoftmaxFwdBufs {
  TileBufs<T> tile;
  T* rmax;               // per row of the super-block: running max
  double *rsum, *rpos;   // ... running sum of exps, sum of positive logits
  T *trm, *msr;          // per tile row: tile max, safe running max
  T *cmx, *mcs, *cst, *cpt;  // per tile column: tile max, safe running max, exp sums, positive sums
  T* cmax;               // per column of b (this thread's rows only): running max
  double *csum, *cpos;   // ... running sum of exps, positive logits
  void carve(Carver& cv, const Geom<T>& g, bool cols) {
    tile.carve(cv, g);
    rmax = cv.take<T>(g.SB * g.TR);
    rsum = cv.take<double>(g.SB * g.TR);
    rpos = cv.take<double>(g.SB * g.TR);
    trm = cv.take<T>(g.TR);
    msr = cv.take<T>(g.TR);
    cmx = cv.take<T>(g.TC);
    mcs = cv.take<T>(g.TC);
    cst = cv.take<T>(g.TC);
    cpt = cv.take<T>(g.TC);
    const int64_t mc = cols ? g.m : 0;
    cmax = cv.take<T>(mc);
    csum = cv.take<double>(mc);
    cpos = cv.take<double>(mc);
  }
};

// One tile of the forward: rows [i0, i0 + tr) (running statistics rmax/rsum/rpos), columns
// [j0, j0 + tc); the raw dot products are in w.tile.x.
template <typename T, bool Ids, bool Cols>
void softmax_forward_tile(const Setup& s, const Geom<T>& g, int64_t i0, int64_t tr, int64_t j0, int64_t tc,
                          SoftmaxFwdBufs<T>& w, T* rmax, double* rsum, double* rpos) {
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const T t = T(s.t);
  const int64_t ld = g.TC;
  T* X = w.tile.x;
  if (s.self_mask)
    for (int64_t i = 0; i < tr; ++i) {
      const int64_t gi = i0 + i;
      if (gi >= j0 && gi < j0 + tc) X[i * ld + (gi - j0)] = ninf;
    }
  // Pass 1: scale; row and column maxima; positive logits.
  T* cm = w.cmx;
  T* cp = w.cpt;
  if constexpr (Cols) {
    std::fill(cm, cm + tc, ninf);
    if constexpr (Ids) std::fill(cp, cp + tc, T(0));
  }
  for (int64_t i = 0; i < tr; ++i) {
    T* x = X + i * ld;
    T rm = ninf;
    if constexpr (Cols) {
#pragma omp simd reduction(max : rm)
      for (int64_t j = 0; j < tc; ++j) {
        const T v = x[j] * t;
        x[j] = v;
        rm = v > rm ? v : rm;
        cm[j] = v > cm[j] ? v : cm[j];
      }
    } else {
#pragma omp simd reduction(max : rm)
      for (int64_t j = 0; j < tc; ++j) {
        const T v = x[j] * t;
        x[j] = v;
        rm = v > rm ? v : rm;
      }
    }
    w.trm[i] = rm;
    if constexpr (Ids) {
      const int32_t ri = s.rid[(size_t)(i0 + i)];
      const int32_t* cj = s.cid.data() + j0;
      T rp = 0;
      if constexpr (Cols) {
#pragma omp simd reduction(+ : rp)
        for (int64_t j = 0; j < tc; ++j) {
          const T p = cj[j] == ri ? x[j] : T(0);
          rp += p;
          cp[j] += p;
        }
      } else {
#pragma omp simd reduction(+ : rp)
        for (int64_t j = 0; j < tc; ++j) rp += cj[j] == ri ? x[j] : T(0);
      }
      rpos[i] += rp;
    } else {
      const int64_t pj = (i0 + i + s.offset) % g.m;
      if (pj >= j0 && pj < j0 + tc) {
        const T v = x[pj - j0];
        rpos[i] += v;
        if constexpr (Cols) w.cpos[pj] += v;
      }
    }
  }
  // Online log-sum-exp: move each running max up to the tile's, rescaling its sum.
  for (int64_t i = 0; i < tr; ++i) {
    const T mt = w.trm[i];
    if (mt > rmax[i]) {
      rsum[i] *= vec_exp((double)rmax[i] - (double)mt);
      rmax[i] = mt;
    }
    w.msr[i] = rmax[i] == ninf ? T(0) : rmax[i];  // all -inf so far: exp(-inf - 0) = 0
  }
  if constexpr (Cols) {
    for (int64_t j = 0; j < tc; ++j) {
      const int64_t gj = j0 + j;
      const T mt = cm[j];
      if (mt > w.cmax[gj]) {
        w.csum[gj] *= vec_exp((double)w.cmax[gj] - (double)mt);
        w.cmax[gj] = mt;
      }
      w.mcs[j] = w.cmax[gj] == ninf ? T(0) : w.cmax[gj];
      w.cst[j] = 0;
      if constexpr (Ids) w.cpos[gj] += (double)cp[j];
    }
  }
  // Pass 2: the exps, against the row's and the column's running maxima.
  for (int64_t i = 0; i < tr; ++i) {
    const T* x = X + i * ld;
    const T mi = w.msr[i];
    T rs = 0;
    if constexpr (Cols) {
      T* cs = w.cst;
      const T* mc = w.mcs;
#pragma omp simd reduction(+ : rs)
      for (int64_t j = 0; j < tc; ++j) {
        const T v = x[j];
        rs += vec_exp(T(v - mi));
        cs[j] += vec_exp(T(v - mc[j]));
      }
    } else {
#pragma omp simd reduction(+ : rs)
      for (int64_t j = 0; j < tc; ++j) rs += vec_exp(T(x[j] - mi));
    }
    rsum[i] += (double)rs;
  }
  if constexpr (Cols)
    for (int64_t j = 0; j < tc; ++j) w.csum[j0 + j] += (double)w.cst[j];
}

// Rows [r0, r1) against every column: super-blocks of SB row blocks share each packed b tile.
template <typename T, bool Ids, bool Cols>
void softmax_forward_rows(const Setup& s, const Geom<T>& g, const T* A, const T* B, int64_t r0, int64_t r1,
                          SoftmaxFwdBufs<T>& w, T* lse_row, double* row_loss) {
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  if constexpr (Cols) {
    std::fill(w.cmax, w.cmax + g.m, ninf);
    std::fill(w.csum, w.csum + g.m, 0.0);
    std::fill(w.cpos, w.cpos + g.m, 0.0);
  }
  for (int64_t s0 = r0; s0 < r1; s0 += g.SB * g.TR) {
    const int64_t nb = sub_blocks(s0, r1, g.TR, g.SB);
    const int64_t rows = std::min(nb * g.TR, r1 - s0);
    for (int64_t k = 0; k < nb; ++k) {
      const int64_t i0 = s0 + k * g.TR;
      w.tile.pack_a(g, A, i0, std::min(g.TR, r1 - i0), k);
    }
    std::fill(w.rmax, w.rmax + rows, ninf);
    std::fill(w.rsum, w.rsum + rows, 0.0);
    std::fill(w.rpos, w.rpos + rows, 0.0);
    for (int64_t j0 = 0; j0 < g.m; j0 += g.TC) {
      const int64_t tc = std::min(g.TC, g.m - j0);
      w.tile.pack_b(g, B, j0, tc);
      for (int64_t k = 0; k < nb; ++k) {
        const int64_t i0 = s0 + k * g.TR, tr = std::min(g.TR, r1 - i0);
        w.tile.logits(g, tr, tc, k);
        softmax_forward_tile<T, Ids, Cols>(s, g, i0, tr, j0, tc, w, w.rmax + k * g.TR, w.rsum + k * g.TR,
                                           w.rpos + k * g.TR);
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t gi = s0 + i;
      const double lse = (double)w.rmax[i] + std::log(w.rsum[i]);
      lse_row[gi] = T(lse);
      row_loss[gi] = lse - w.rpos[i] * s.rinv[(size_t)gi];
    }
  }
}

template <typename T, bool Ids, bool Cols>
void softmax_forward_typed(OpCall& c, const Setup& s) {
  const int nt = plan_threads(s);
  const Geom<T> g = make_geom<T>(s, nt);
  const T* A = c.t(0).data<T>();
  const T* B = c.t(1).data<T>();
  T* out = c.t(3).data<T>();
  T* lse_row = c.t(4).data<T>();
  T* lse_col = c.t(5).data<T>();

  Carver measure{nullptr};
  SoftmaxFwdBufs<T> probe;
  probe.carve(measure, g, Cols);
  const size_t stride = measure.used;
  Carver shared_measure{nullptr};
  shared_measure.take<double>(s.n);
  shared_measure.take<double>(s.m);
  Scratch scratch(stride * (size_t)nt + shared_measure.used);
  Carver shared{scratch.data() + stride * (size_t)nt};
  double* row_loss = shared.take<double>(s.n);
  double* col_loss = shared.take<double>(s.m);
  std::vector<SoftmaxFwdBufs<T>> bufs((size_t)nt);
  for (int p = 0; p < nt; ++p) {
    Carver cv{scratch.data() + stride * (size_t)p};
    bufs[(size_t)p].carve(cv, g, Cols);
  }

  int used = 1;
  if (nt == 1) {
    softmax_forward_rows<T, Ids, Cols>(s, g, A, B, 0, s.n, bufs[0], lse_row, row_loss);
  } else {
#pragma omp parallel num_threads(nt)
    {
      const int p = omp_get_thread_num(), P = omp_get_num_threads();
      if (p == 0) used = P;
      softmax_forward_rows<T, Ids, Cols>(s, g, A, B, chunk_begin(s.n, p, P), chunk_begin(s.n, p + 1, P),
                                         bufs[(size_t)p], lse_row, row_loss);
    }
  }

  // Merge the per-thread column statistics (threads in order: deterministic for a thread count).
  if constexpr (Cols) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    parallel_for(s.m, 2048, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        T mx = ninf;
        for (int p = 0; p < used; ++p) mx = std::max(mx, bufs[(size_t)p].cmax[j]);
        const double ms = mx == ninf ? 0.0 : (double)mx;
        double sum = 0, pos = 0;
        for (int p = 0; p < used; ++p) {
          sum += bufs[(size_t)p].csum[j] * vec_exp((double)bufs[(size_t)p].cmax[j] - ms);
          pos += bufs[(size_t)p].cpos[j];
        }
        const double lse = ms + std::log(sum);
        lse_col[j] = T(lse);
        col_loss[j] = lse - pos * s.cinv[(size_t)j];
      }
    });
  } else {
    std::fill(lse_col, lse_col + s.m, T(0));
  }

  double total = 0;
  if (s.wr > 0) {
    double sr = 0;
    for (int64_t i = 0; i < s.n; ++i)
      if (s.rinv[(size_t)i] > 0) sr += row_loss[i];
    total += s.wr * sr / (double)s.nvr;
  }
  if constexpr (Cols) {
    double sc = 0;
    for (int64_t j = 0; j < s.m; ++j)
      if (s.cinv[(size_t)j] > 0) sc += col_loss[j];
    total += s.wc * sc / (double)s.nvc;
  }
  out[0] = T(total);
}

// ---------------------------------------------------------------------------------------------
// Backward sweep, shared by both losses: recompute each tile, let `grad` turn it into dlogits
// in place (adding to the thread's dscale / dbias), then grad_a += t dlogits b, grad_b += t
// dlogits^T a, in P rounds (see the top of the file).

template <typename T>
struct BwdBufs {
  TileBufs<T> tile;
  T *pa_da, *pb_da, *pa_db, *pb_db, *da, *db;
  int64_t blk;                     // stride of pb_db and da per row block of a super-block
  T *cr, *pr, *lr, *cc, *pc, *lc;  // per-row / per-column coefficients for `grad`
  void carve(Carver& cv, const Geom<T>& g) {
    tile.carve(cv, g);
    blk = rup(g.TR * g.dpad, 16);
    pa_da = cv.take<T>(g.TR * g.TC);
    pb_da = cv.take<T>(g.TC * g.dpad);
    pa_db = cv.take<T>(g.TCm * g.TR);
    pb_db = cv.take<T>(g.SB * blk);
    da = cv.take<T>(g.SB * blk);
    db = cv.take<T>(g.TCm * g.dpad);
    cr = cv.take<T>(g.TR);
    pr = cv.take<T>(g.TR);
    lr = cv.take<T>(g.TR);
    cc = cv.take<T>(g.TC);
    pc = cv.take<T>(g.TC);
    lc = cv.take<T>(g.TC);
  }
};

struct GradAcc {
  double ds = 0, dbias = 0;
  char pad[48];  // keep threads' accumulators on separate cache lines
};

// Rows [r0, r1) x columns [c0, c1): super-blocks of SB row blocks share each packed b tile (both
// packings) and accumulate one dB tile before it is added to grad_b.
template <typename T, typename Grad>
void backward_block(const Geom<T>& g, const T* A, const T* B, T t, T* GA, T* GB, int64_t r0, int64_t r1, int64_t c0,
                    int64_t c1, BwdBufs<T>& w, GradAcc& acc, Grad& grad) {
  const GemmKernel<T>& k = *g.k;
  const int64_t d = g.d;
  for (int64_t s0 = r0; s0 < r1; s0 += g.SB * g.TR) {
    const int64_t nb = sub_blocks(s0, r1, g.TR, g.SB);
    for (int64_t q = 0; q < nb; ++q) {
      const int64_t i0 = s0 + q * g.TR, tr = std::min(g.TR, r1 - i0);
      w.tile.pack_a(g, A, i0, tr, q);
      pack_cols(A + i0 * d, d, d, tr, g.NR, kblock(tr, k.kc), w.pb_db + q * w.blk);
    }
    bool first = true;
    for (int64_t j0 = c0; j0 < c1; j0 += g.TC) {
      const int64_t tc = std::min(g.TC, c1 - j0);
      const int64_t kbc = kblock(tc, k.kc);
      w.tile.pack_b(g, B, j0, tc);
      pack_cols(B + j0 * d, d, d, tc, g.NR, kbc, w.pb_da);
      for (int64_t q = 0; q < nb; ++q) {
        const int64_t i0 = s0 + q * g.TR, tr = std::min(g.TR, r1 - i0);
        w.tile.logits(g, tr, tc, q);
        grad(i0, tr, j0, tc, g.TC, w, acc);
        const T* X = w.tile.x;
        // dA_block (+)= dlogits @ b[j0:j0+tc]
        pack_rows(X, g.TC, tr, tc, g.MR, kbc, k.tpack, w.pa_da);
        gemm_packed(k, rup(tr, g.MR), g.dpad, tc, kbc, w.pa_da, w.pb_da, w.da + q * w.blk, g.dpad, !first);
        // dB_tile (+)= dlogits^T @ a[i0:i0+tr]
        const int64_t kbr = kblock(tr, k.kc);
        pack_cols(X, g.TC, tc, tr, g.MR, kbr, w.pa_db);
        gemm_packed(k, rup(tc, g.MR), g.dpad, tr, kbr, w.pa_db, w.pb_db + q * w.blk, w.db, g.dpad, q > 0);
      }
      first = false;
      // grad_b[j0:j0+tc] += t dB_tile (this thread owns these columns in this round)
      for (int64_t j = 0; j < tc; ++j) {
        T* o = GB + (j0 + j) * d;
        const T* src = w.db + j * g.dpad;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[c] += t * src[c];
      }
    }
    if (!first)
      for (int64_t i = 0; i < std::min(nb * g.TR, r1 - s0); ++i) {
        T* o = GA + (s0 + i) * d;
        const T* src = w.da + (i / g.TR) * w.blk + (i % g.TR) * g.dpad;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[c] += t * src[c];
      }
  }
}

// Runs the whole backward; returns (dscale, dbias) summed over threads in order.
template <typename T, typename Grad>
GradAcc backward_sweep(const Setup& s, const T* A, const T* B, T* GA, T* GB, Grad&& grad) {
  const int nt = plan_threads(s);
  const Geom<T> g = make_geom<T>(s, nt);
  const T t = T(s.t);
  Carver measure{nullptr};
  BwdBufs<T> probe;
  probe.carve(measure, g);
  const size_t stride = measure.used;
  Scratch scratch(stride * (size_t)nt);
  std::vector<BwdBufs<T>> bufs((size_t)nt);
  for (int p = 0; p < nt; ++p) {
    Carver cv{scratch.data() + stride * (size_t)p};
    bufs[(size_t)p].carve(cv, g);
  }
  std::vector<GradAcc> accs((size_t)nt);
  if (nt == 1) {
    std::fill(GA, GA + s.n * s.d, T(0));
    std::fill(GB, GB + s.m * s.d, T(0));
    backward_block(g, A, B, t, GA, GB, 0, s.n, 0, s.m, bufs[0], accs[0], grad);
  } else {
#pragma omp parallel num_threads(nt)
    {
      const int p = omp_get_thread_num(), P = omp_get_num_threads();
      const int64_t r0 = chunk_begin(s.n, p, P), r1 = chunk_begin(s.n, p + 1, P);
      std::fill(GA + r0 * s.d, GA + r1 * s.d, T(0));
      std::fill(GB + chunk_begin(s.m, p, P) * s.d, GB + chunk_begin(s.m, p + 1, P) * s.d, T(0));
#pragma omp barrier
      for (int r = 0; r < P; ++r) {
        const int q = (p + r) % P;
        const int64_t c0 = chunk_begin(s.m, q, P), c1 = chunk_begin(s.m, q + 1, P);
        if (r0 < r1 && c0 < c1) backward_block(g, A, B, t, GA, GB, r0, r1, c0, c1, bufs[(size_t)p], accs[(size_t)p], grad);
#pragma omp barrier
      }
    }
  }
  GradAcc total;
  for (const GradAcc& a : accs) {
    total.ds += a.ds;
    total.dbias += a.dbias;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Softmax backward: dlogits from the saved log-sum-exps.

template <typename T, bool Ids, bool Cols>
void softmax_backward_typed(OpCall& c, const Setup& s) {
  const T* A = c.t(0).data<T>();
  const T* B = c.t(1).data<T>();
  const T* lse_row = c.t(3).data<T>();
  const T* lse_col = c.t(4).data<T>();
  const double gout = (double)*c.t(5).data<T>();
  T* GA = c.t(6).data<T>();
  T* GB = c.t(7).data<T>();
  T* GS = c.t(8).data<T>();
  const T t_scale = T(s.t);
  const double gr = s.wr > 0 ? gout * s.wr / (double)s.nvr : 0.0;
  const double gc = Cols ? gout * s.wc / (double)s.nvc : 0.0;

  auto grad = [&](int64_t i0, int64_t tr, int64_t j0, int64_t tc, int64_t ld, BwdBufs<T>& w, GradAcc& acc) {
    // Captured by reference, t would be reloaded (as a gather!) in every vector iteration, since
    // the stores to x might alias it: work on local copies.
    const T t = t_scale;
    T* X = w.tile.x;
    if constexpr (Cols) {
      for (int64_t j = 0; j < tc; ++j) {
        const double ci = s.cinv[(size_t)(j0 + j)];
        w.cc[j] = ci > 0 ? T(gc) : T(0);
        w.pc[j] = T(gc * ci);
        w.lc[j] = lse_col[j0 + j];
      }
    }
    const T* cc = w.cc;
    const T* pc = w.pc;
    const T* lc = w.lc;
    double ds = 0;
    for (int64_t i = 0; i < tr; ++i) {
      const int64_t gi = i0 + i;
      T* x = X + i * ld;
      const double ri_inv = s.rinv[(size_t)gi];
      const T cr = ri_inv > 0 ? T(gr) : T(0);
      const T pr = T(gr * ri_inv);
      const T lr = lse_row[gi];
      T dsr = 0;
      if constexpr (Ids) {
        const int32_t ri = s.rid[(size_t)gi];
        const int32_t* cj = s.cid.data() + j0;
#pragma omp simd reduction(+ : dsr)
        for (int64_t j = 0; j < tc; ++j) {
          const T v = x[j] * t;
          T e = cr * vec_exp(T(v - lr));
          if constexpr (Cols) e += cc[j] * vec_exp(T(v - lc[j]));
          const T q = Cols ? pr + pc[j] : pr;
          const T dl = e - (cj[j] == ri ? q : T(0));
          dsr += dl * v;
          x[j] = dl;
        }
      } else {
        // The positive (if in this tile) is matched by index inside the loop, so that its
        // d = e - q and d * v are formed like every other element (no cancellation afterwards).
        int64_t pj = (gi + s.offset) % s.m - j0;
        if (pj < 0 || pj >= tc) pj = -1;
        const T qr = pr;
        int64_t sj = -1;
        if (s.self_mask && gi >= j0 && gi < j0 + tc) {
          sj = gi - j0;
          x[sj] = T(0);  // excluded pair: computed as 0 below (a finite d * 0 in dscale), then zeroed
        }
#pragma omp simd reduction(+ : dsr)
        for (int64_t j = 0; j < tc; ++j) {
          const T v = x[j] * t;
          T e = cr * vec_exp(T(v - lr));
          if constexpr (Cols) e += cc[j] * vec_exp(T(v - lc[j]));
          const T q = Cols ? qr + pc[j] : qr;
          const T dl = e - (j == pj ? q : T(0));
          dsr += dl * v;
          x[j] = dl;
        }
        if (sj >= 0) x[sj] = T(0);
      }
      ds += (double)dsr;
    }
    acc.ds += ds;
  };
  const GradAcc total = backward_sweep<T>(s, A, B, GA, GB, grad);
  GS[0] = T(total.ds);
}

// ---------------------------------------------------------------------------------------------
// Sigmoid (SigLIP).

template <typename T>
inline T softplus_t(T y) {
  if constexpr (std::is_same_v<T, float>) {
    return std::max(y, 0.0f) + vm::log1p(vm::exp(-vm::detail::abs(y)));
  } else {
    return std::max(y, 0.0) + std::log1p(std::exp(-std::abs(y)));
  }
}

template <typename T>
inline T sigmoid_t(T y) {
  if constexpr (std::is_same_v<T, float>) {
    return vm::sigmoid(y);
  } else {
    if (y >= 0) return 1.0 / (1.0 + std::exp(-y));
    const double e = std::exp(y);
    return e / (1.0 + e);
  }
}

template <typename T, bool Ids>
double sigmoid_forward_rows(const Setup& s, const Geom<T>& g, const T* A, const T* B, int64_t r0, int64_t r1,
                            TileBufs<T>& w) {
  const T t = T(s.t), bias = T(s.bias);
  double total = 0;
  for (int64_t s0 = r0; s0 < r1; s0 += g.SB * g.TR) {
    const int64_t nb = sub_blocks(s0, r1, g.TR, g.SB);
    for (int64_t q = 0; q < nb; ++q) w.pack_a(g, A, s0 + q * g.TR, std::min(g.TR, r1 - s0 - q * g.TR), q);
    for (int64_t j0 = 0; j0 < g.m; j0 += g.TC) {
      const int64_t tc = std::min(g.TC, g.m - j0);
      w.pack_b(g, B, j0, tc);
      for (int64_t q = 0; q < nb; ++q) {
        const int64_t i0 = s0 + q * g.TR, tr = std::min(g.TR, r1 - i0);
        w.logits(g, tr, tc, q);
        for (int64_t i = 0; i < tr; ++i) {
          const int64_t gi = i0 + i;
          const T* x = w.x + i * g.TC;
          T acc = 0;
          if constexpr (Ids) {
            const int32_t ri = s.rid[(size_t)gi];
            const int32_t* cj = s.cid.data() + j0;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < tc; ++j) {
              const T v = x[j] * t + bias;
              acc += softplus_t<T>(cj[j] == ri ? -v : v);
            }
            total += (double)acc;
          } else {
            const int64_t pj = gi - j0;  // the diagonal pair is the positive: softplus(-v) there
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < tc; ++j) {
              const T v = x[j] * t + bias;
              acc += softplus_t<T>(j == pj ? -v : v);
            }
            total += (double)acc;
          }
        }
      }
    }
  }
  return total;
}

template <typename T, bool Ids>
void sigmoid_forward_typed(OpCall& c, const Setup& s) {
  const int nt = plan_threads(s);
  const Geom<T> g = make_geom<T>(s, nt);
  const T* A = c.t(0).data<T>();
  const T* B = c.t(1).data<T>();
  T* out = c.t(4).data<T>();
  Carver measure{nullptr};
  TileBufs<T> probe;
  probe.carve(measure, g);
  const size_t stride = measure.used;
  Scratch scratch(stride * (size_t)nt);
  std::vector<TileBufs<T>> bufs((size_t)nt);
  for (int p = 0; p < nt; ++p) {
    Carver cv{scratch.data() + stride * (size_t)p};
    bufs[(size_t)p].carve(cv, g);
  }
  std::vector<GradAcc> part((size_t)nt);
  if (nt == 1) {
    part[0].ds = sigmoid_forward_rows<T, Ids>(s, g, A, B, 0, s.n, bufs[0]);
  } else {
#pragma omp parallel num_threads(nt)
    {
      const int p = omp_get_thread_num(), P = omp_get_num_threads();
      part[(size_t)p].ds =
          sigmoid_forward_rows<T, Ids>(s, g, A, B, chunk_begin(s.n, p, P), chunk_begin(s.n, p + 1, P), bufs[(size_t)p]);
    }
  }
  double total = 0;
  for (const GradAcc& a : part) total += a.ds;
  out[0] = T(total / (double)s.n);
}

template <typename T, bool Ids>
void sigmoid_backward_typed(OpCall& c, const Setup& s) {
  const T* A = c.t(0).data<T>();
  const T* B = c.t(1).data<T>();
  const double gout = (double)*c.t(4).data<T>();
  T* GA = c.t(5).data<T>();
  T* GB = c.t(6).data<T>();
  T* GS = c.t(7).data<T>();
  T* GBias = c.t(8).data<T>();
  const T t_scale = T(s.t), bias_value = T(s.bias);
  const T gn_value = T(gout / (double)s.n);

  auto grad = [&](int64_t i0, int64_t tr, int64_t j0, int64_t tc, int64_t ld, BwdBufs<T>& w, GradAcc& acc) {
    const T t = t_scale, bias = bias_value, gn = gn_value;  // locals: see softmax_backward_typed
    T* X = w.tile.x;
    double ds = 0, db = 0;
    for (int64_t i = 0; i < tr; ++i) {
      const int64_t gi = i0 + i;
      T* x = X + i * ld;
      T dsr = 0, dbr = 0;
      if constexpr (Ids) {
        const int32_t ri = s.rid[(size_t)gi];
        const int32_t* cj = s.cid.data() + j0;
#pragma omp simd reduction(+ : dsr, dbr)
        for (int64_t j = 0; j < tc; ++j) {
          const T u = x[j] * t;
          const T v = u + bias;
          const bool pos = cj[j] == ri;
          const T sg = gn * sigmoid_t<T>(pos ? -v : v);  // d softplus(-z v) / dv = -z sigmoid(-z v)
          const T dl = pos ? -sg : sg;
          dbr += dl;
          dsr += dl * u;
          x[j] = dl;
        }
      } else {
        // The diagonal positive is matched by index inside the loop (-sigmoid(-v) there), so no
        // term is corrected afterwards (that would cancel badly where sigmoid(v) ~ 1).
        const int64_t pj = gi - j0;
#pragma omp simd reduction(+ : dsr, dbr)
        for (int64_t j = 0; j < tc; ++j) {
          const T u = x[j] * t;
          const T v = u + bias;
          const bool pos = j == pj;
          const T sg = gn * sigmoid_t<T>(pos ? -v : v);
          const T dl = pos ? -sg : sg;
          dbr += dl;
          dsr += dl * u;
          x[j] = dl;
        }
      }
      ds += (double)dsr;
      db += (double)dbr;
    }
    acc.ds += ds;
    acc.dbias += db;
  };
  const GradAcc total = backward_sweep<T>(s, A, B, GA, GB, grad);
  GS[0] = T(total.ds);
  GBias[0] = T(total.dbias);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points.

void contrastive_softmax(OpCall& c) {
  // a, b, scale, out, lse_row, lse_col [, row_ids, col_ids]
  Setup s;
  TS_CHECK(c.tensors.size() >= 6, c.op, ": expected 6 or 8 tensors, got ", c.tensors.size());
  setup_softmax(c, s, 6, 6);
  expect_one(c, 3, "out");
  expect_vector(c, 4, s.n, "lse_row");
  expect_vector(c, 5, s.m, "lse_col");
  const bool cols = s.wc > 0;
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    if (s.ids) {
      if (cols) softmax_forward_typed<T, true, true>(c, s);
      else softmax_forward_typed<T, true, false>(c, s);
    } else {
      if (cols) softmax_forward_typed<T, false, true>(c, s);
      else softmax_forward_typed<T, false, false>(c, s);
    }
  });
}

void contrastive_softmax_backward(OpCall& c) {
  // a, b, scale, lse_row, lse_col, grad_out, grad_a, grad_b, grad_scale [, row_ids, col_ids]
  Setup s;
  TS_CHECK(c.tensors.size() >= 9, c.op, ": expected 9 or 11 tensors, got ", c.tensors.size());
  setup_softmax(c, s, 9, 9);
  expect_vector(c, 3, s.n, "lse_row");
  expect_vector(c, 4, s.m, "lse_col");
  expect_one(c, 5, "grad_out");
  expect_grad(c, 6, 0, "grad_a", "a");
  expect_grad(c, 7, 1, "grad_b", "b");
  expect_one(c, 8, "grad_scale");
  const bool cols = s.wc > 0;
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    if (s.ids) {
      if (cols) softmax_backward_typed<T, true, true>(c, s);
      else softmax_backward_typed<T, true, false>(c, s);
    } else {
      if (cols) softmax_backward_typed<T, false, true>(c, s);
      else softmax_backward_typed<T, false, false>(c, s);
    }
  });
}

void contrastive_sigmoid(OpCall& c) {
  // a, b, scale, bias, out [, row_ids, col_ids]
  Setup s;
  TS_CHECK(c.scalars.empty(), c.op, ": expected no scalars, got ", c.scalars.size());
  TS_CHECK(c.tensors.size() >= 5, c.op, ": expected 5 or 7 tensors, got ", c.tensors.size());
  check_embeddings(c, s, true);
  setup_positives(c, s, 5, 5, 0, false);
  expect_one(c, 4, "out");
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    if (s.ids) sigmoid_forward_typed<T, true>(c, s);
    else sigmoid_forward_typed<T, false>(c, s);
  });
}

void contrastive_sigmoid_backward(OpCall& c) {
  // a, b, scale, bias, grad_out, grad_a, grad_b, grad_scale, grad_bias [, row_ids, col_ids]
  Setup s;
  TS_CHECK(c.scalars.empty(), c.op, ": expected no scalars, got ", c.scalars.size());
  TS_CHECK(c.tensors.size() >= 9, c.op, ": expected 9 or 11 tensors, got ", c.tensors.size());
  check_embeddings(c, s, true);
  setup_positives(c, s, 9, 9, 0, false);
  expect_one(c, 4, "grad_out");
  expect_grad(c, 5, 0, "grad_a", "a");
  expect_grad(c, 6, 1, "grad_b", "b");
  expect_one(c, 7, "grad_scale");
  expect_one(c, 8, "grad_bias");
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    if (s.ids) sigmoid_backward_typed<T, true>(c, s);
    else sigmoid_backward_typed<T, false>(c, s);
  });
}

}  // namespace tessera::cpu
