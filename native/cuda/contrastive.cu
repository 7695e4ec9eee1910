// Fused contrastive losses on the GPU (CLIP / multi-positive InfoNCE, NT-Xent, SigLIP), forward
// and backward: the CUDA twins of native/cpu/contrastive.cpp, same contract (contrastive.h there):
// logits x_ij = t * a_i . b_j with t = exp(scale) (rounded to a's dtype, as the CPU does), never
// materialised as an N x M buffer; positives by offset ((i + offset) mod M, N == M) or by equal
// int32 ids; self_mask (NT-Xent) drops i == j from every softmax.
//
// The host part repeats every CPU check (it reads the one-element scale / bias / grad_out and the
// id vectors back from the device for that, exactly as the CPU reads them), counts the positives
// per row / column on the host (1 / |P| as doubles, as the CPU) and uploads those vectors and
// contiguous copies of the ids to tracked device scratch.
//
// KERNELS. Every kernel is a block of 256 threads (16 x 16) owning an "outer" tile of BM = 32
// rows of a (or of b for the column direction) and sweeping all "inner" tiles of 32 rows of the
// other side. The 32 x 32 logit tile is a SIMT tiled product: both sides staged through shared
// memory in chunks of 32 of the embedding dimension (any D), thread (ty, tx) holding outer rows
// ty*2 .. ty*2+1 and inner rows tx, tx + 16 in registers. Row reductions are xor-butterflies over
// the 16 lanes of a row.
//   softmax forward: ct_stats<Rows> (one block per 32 rows of a) keeps the online log-sum-exp of
//     each row exactly as the CPU (running max m in T, running sum in double, rescaled by
//     exp(m - m') in double when the tile max grows; the tile's exps exp(T(x - msafe)) summed in
//     T, then added in double) and the sum of its positive logits (double); ct_stats<Cols> does
//     the same per column of the logit matrix, sweeping row tiles (the column direction is a
//     second sweep over the rows, not per-thread partials merged afterwards). A final one-block
//     kernel sums the per-row / per-column losses in index order (tree in double) into out.
//   softmax / sigmoid backward: ct_grad<Rows> (one block per 32 rows of a and per 128 columns
//     of D) recomputes each logit tile, turns it into dlogits with the CPU's formulas (from the
//     saved lse vectors), keeps them in shared memory and accumulates grad_a rows += dlogits b
//     in registers (the block owns its rows and columns: no atomics); ct_grad<Cols> does the
//     same for grad_b (dlogits^T a), recomputing the transposed tile. grad = t * accumulated sum.
//     dscale (and dbias) are per-block partial sums in double (from the Rows pass, column chunk 0),
//     added in block order by the final kernel: deterministic.
//   sigmoid forward: ct_stats<Sigmoid> sums softplus(-z x) per row (T per tile, then double).
//
// PRECISION vs the CPU: the dot products accumulate in T in a different order (FMA, 32-wide
// chunks; the column pass computes b_j . a_i in its own order), exp / log1p / sigmoid are CUDA's
// (expf <= 2 ulp) rather than cpu/vec_math.h's, and tile sums use a tree. Results agree to a
// tolerance (float32 about 1e-5 relative on the loss and gradients, float64 about 1e-12), not bit
// for bit. Each kernel is deterministic run to run.
#include <cmath>
#include <limits>
#include <unordered_map>
#include <vector>

#include "core/storage.h"
#include "cuda/common.cuh"
#include "cuda/contrastive.h"
#include "cuda/cuda_api.h"

namespace tessera::cuda {

namespace {

constexpr int kTPB = 256;
constexpr int kBM = 32;   // outer / inner tile
constexpr int kDC = 32;   // embedding chunk of the logit product
constexpr int kHC = 128;  // gradient columns per block
constexpr int kQS = 16;   // inner rows per staged sub-block of the gradient product
constexpr int kRM = kBM / 16, kRN = kBM / 16, kRO = kHC / 16;
constexpr int kLDC = kDC + 1, kLDP = kBM + 1, kLDV = kHC + 1;
constexpr int kStage = 2 * kBM * kLDC;
static_assert(kQS * kLDV <= kStage, "sub-block must fit the staging buffer");

enum Kind { kRowsSoftmax = 0, kColsSoftmax = 1, kRowsSigmoid = 2 };

template <typename T>
struct Args {
  const T* A;  // a [n, d]
  const T* B;  // b [m, d]
  int64_t n, m, d;
  T t, bias;
  bool ids, self_mask, cols;
  int64_t offset;
  const int32_t* rid;
  const int32_t* cid;
  const double* rinv;
  const double* cinv;
  const T* lse_row;
  const T* lse_col;
  T* lse_out;       // stats: lse_row (rows) or lse_col (cols)
  double* loss;     // stats: per row / column loss (or softplus sum)
  double* partial;  // grad: per block (ds, dbias)
  T* G;             // grad: grad_a (rows) or grad_b (cols)
  double gr, gc;    // softmax backward: g wr / nr, g wc / nc
  T gn;             // sigmoid backward: g / n
  int64_t nz;
};

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog1p(float x) { return log1pf(x); }
__device__ __forceinline__ double dlog1p(double x) { return log1p(x); }

template <typename T>
__device__ __forceinline__ T softplus_t(T y) {
  return (y > T(0) ? y : T(0)) + dlog1p(dexp(-(y < T(0) ? -y : y)));
}
template <typename T>
__device__ __forceinline__ T sigmoid_t(T y) {
  if (y >= T(0)) return T(1) / (T(1) + dexp(-y));
  const T e = dexp(y);
  return e / (T(1) + e);
}

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

template <typename T, int R, int W>
__device__ __forceinline__ void load_tile(T* sm, int ld, const T* base, int64_t L, int64_t r0, int64_t d, int64_t c0) {
  for (int e = threadIdx.x; e < R * W; e += kTPB) {
    const int r = e / W, c = e % W;
    const int64_t row = r0 + r, col = c0 + c;
    sm[r * ld + c] = (row < L && col < d) ? base[row * d + col] : T(0);
  }
}

// acc[r][c] = outer[o0 + ty*2 + r] . inner[i0 + tx + 16c] (0 outside); leaves the block synced.
template <typename T>
__device__ __forceinline__ void logit_tile(T (&acc)[kRM][kRN], T* stage, const T* outer, int64_t Lo, int64_t o0,
                                           const T* inner, int64_t Li, int64_t i0, int64_t d) {
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  T* As = stage;
  T* Bs = stage + kBM * kLDC;
#pragma unroll
  for (int r = 0; r < kRM; ++r)
#pragma unroll
    for (int c = 0; c < kRN; ++c) acc[r][c] = T(0);
  for (int64_t d0 = 0; d0 < d; d0 += kDC) {
    load_tile<T, kBM, kDC>(As, kLDC, outer, Lo, o0, d, d0);
    load_tile<T, kBM, kDC>(Bs, kLDC, inner, Li, i0, d, d0);
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kDC; ++k) {
      T av[kRM], bv[kRN];
#pragma unroll
      for (int r = 0; r < kRM; ++r) av[r] = As[(ty * kRM + r) * kLDC + k];
#pragma unroll
      for (int c = 0; c < kRN; ++c) bv[c] = Bs[(tx + 16 * c) * kLDC + k];
#pragma unroll
      for (int r = 0; r < kRM; ++r)
#pragma unroll
        for (int c = 0; c < kRN; ++c) acc[r][c] += av[r] * bv[c];
    }
    __syncthreads();
  }
}

template <typename T>
__device__ __forceinline__ bool positive(const Args<T>& p, int64_t i, int64_t j) {
  return p.ids ? p.rid[i] == p.cid[j] : j == (i + p.offset) % p.m;
}

// Per outer row: online log-sum-exp and positive sum (softmax), or the softplus sum (sigmoid).
template <typename T, int K>
__global__ void __launch_bounds__(kTPB) ct_stats(Args<T> p) {
  constexpr bool Trans = K == kColsSoftmax;
  __shared__ T stage[kStage];
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const T* outer = Trans ? p.B : p.A;
  const T* inner = Trans ? p.A : p.B;
  const int64_t Lo = Trans ? p.m : p.n, Li = Trans ? p.n : p.m;
  const int64_t o0 = (int64_t)blockIdx.x * kBM;
  const T NINF = -std::numeric_limits<T>::infinity();
  T mrun[kRM];
  double sum[kRM], pos[kRM];
#pragma unroll
  for (int r = 0; r < kRM; ++r) mrun[r] = NINF, sum[r] = 0, pos[r] = 0;
  for (int64_t i0 = 0; i0 < Li; i0 += kBM) {
    T x[kRM][kRN];
    logit_tile<T>(x, stage, outer, Lo, o0, inner, Li, i0, p.d);
#pragma unroll
    for (int r = 0; r < kRM; ++r) {
      const int64_t o = o0 + ty * kRM + r;
      if (K == kRowsSigmoid) {
        T acc = T(0);
#pragma unroll
        for (int c = 0; c < kRN; ++c) {
          const int64_t in = i0 + tx + 16 * c;
          if (o < Lo && in < Li) {
            const T v = x[r][c] * p.t + p.bias;
            acc += softplus_t<T>(positive(p, o, in) ? -v : v);
          }
        }
        sum[r] += (double)row_sum16(acc);
      } else {
        T v[kRN];
        T mt = NINF;
#pragma unroll
        for (int c = 0; c < kRN; ++c) {
          const int64_t in = i0 + tx + 16 * c;
          const int64_t i = Trans ? in : o, j = Trans ? o : in;
          T val = NINF;
          if (o < Lo && in < Li) {
            val = (p.self_mask && i == j) ? NINF : x[r][c] * p.t;
            if (positive(p, i, j)) pos[r] += (double)val;
          }
          v[c] = val;
          mt = val > mt ? val : mt;
        }
        mt = row_max16(mt);
        if (mt > mrun[r]) {
          sum[r] *= exp((double)mrun[r] - (double)mt);
          mrun[r] = mt;
        }
        const T msafe = mrun[r] == NINF ? T(0) : mrun[r];
        T rs = T(0);
#pragma unroll
        for (int c = 0; c < kRN; ++c) rs += dexp(T(v[c] - msafe));
        sum[r] += (double)row_sum16(rs);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRM; ++r) {
    const int64_t o = o0 + ty * kRM + r;
    const double ps = row_sum16(pos[r]);
    if (o >= Lo || tx != 0) continue;
    if (K == kRowsSigmoid) {
      p.loss[o] = sum[r];
    } else {
      const double lse = (double)mrun[r] + log(sum[r]);
      p.lse_out[o] = T(lse);
      p.loss[o] = lse - ps * (Trans ? p.cinv[o] : p.rinv[o]);
    }
  }
}

// grad (rows: grad_a, cols: grad_b) = t * dlogits (b or a), for one outer tile and one column
// chunk; Rows blocks of chunk 0 also leave (dscale, dbias) partials.
template <typename T, bool Trans, bool Sig>
__global__ void __launch_bounds__(kTPB) ct_grad(Args<T> p) {
  __shared__ T stage[kStage];
  __shared__ T DL[kBM * kLDP];  // [outer][inner]
  __shared__ double red[2][kTPB];
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int64_t z = blockIdx.x % p.nz, ot = blockIdx.x / p.nz;
  const T* outer = Trans ? p.B : p.A;
  const T* inner = Trans ? p.A : p.B;
  const int64_t Lo = Trans ? p.m : p.n, Li = Trans ? p.n : p.m;
  const int64_t o0 = ot * kBM, c0 = z * kHC;
  double ds = 0, db = 0;
  T g[kRM][kRO];
#pragma unroll
  for (int r = 0; r < kRM; ++r)
#pragma unroll
    for (int c = 0; c < kRO; ++c) g[r][c] = T(0);
  for (int64_t i0 = 0; i0 < Li; i0 += kBM) {
    T x[kRM][kRN];
    logit_tile<T>(x, stage, outer, Lo, o0, inner, Li, i0, p.d);
#pragma unroll
    for (int r = 0; r < kRM; ++r) {
      const int64_t o = o0 + ty * kRM + r;
      T dsr = T(0), dbr = T(0);
#pragma unroll
      for (int c = 0; c < kRN; ++c) {
        const int64_t in = i0 + tx + 16 * c;
        const int64_t i = Trans ? in : o, j = Trans ? o : in;
        T dl = T(0);
        if (o < Lo && in < Li) {
          const bool pos = positive(p, i, j);
          if (Sig) {
            const T u = x[r][c] * p.t;
            const T v = u + p.bias;
            const T sg = p.gn * sigmoid_t<T>(pos ? -v : v);
            dl = pos ? -sg : sg;
            dbr += dl;
            dsr += dl * u;
          } else if (!(p.self_mask && i == j)) {
            const T v = x[r][c] * p.t;
            const double ri = p.rinv[i];
            const T cr = ri > 0 ? T(p.gr) : T(0);
            const T pr = T(p.gr * ri);
            T e = cr * dexp(T(v - p.lse_row[i]));
            T q = pr;
            if (p.cols) {
              const double ci = p.cinv[j];
              const T cc = ci > 0 ? T(p.gc) : T(0);
              e += cc * dexp(T(v - p.lse_col[j]));
              q = pr + T(p.gc * ci);
            }
            dl = e - (pos ? q : T(0));
            dsr += dl * v;
          }
        }
        DL[(ty * kRM + r) * kLDP + tx + 16 * c] = dl;
      }
      ds += (double)dsr;
      db += (double)dbr;
    }
    // g += DL . inner[:, c0 ..], inner rows staged in sub-blocks.
    for (int k0 = 0; k0 < kBM; k0 += kQS) {
      __syncthreads();
      load_tile<T, kQS, kHC>(stage, kLDV, inner, Li, i0 + k0, p.d, c0);
      __syncthreads();
#pragma unroll 4
      for (int k = 0; k < kQS; ++k) {
        T iv[kRO];
#pragma unroll
        for (int c = 0; c < kRO; ++c) iv[c] = stage[k * kLDV + tx + 16 * c];
#pragma unroll
        for (int r = 0; r < kRM; ++r) {
          const T w = DL[(ty * kRM + r) * kLDP + k0 + k];
#pragma unroll
          for (int c = 0; c < kRO; ++c) g[r][c] += w * iv[c];
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < kRM; ++r) {
    const int64_t o = o0 + ty * kRM + r;
    if (o >= Lo) continue;
#pragma unroll
    for (int c = 0; c < kRO; ++c) {
      const int64_t col = c0 + tx + 16 * c;
      if (col < p.d) p.G[o * p.d + col] = p.t * g[r][c];
    }
  }
  if (!Trans && z == 0) {
    red[0][threadIdx.x] = ds;
    red[1][threadIdx.x] = db;
    __syncthreads();
    for (int s = kTPB / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        red[0][threadIdx.x] += red[0][threadIdx.x + s];
        red[1][threadIdx.x] += red[1][threadIdx.x + s];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      p.partial[ot * 2 + 0] = red[0][0];
      p.partial[ot * 2 + 1] = red[1][0];
    }
  }
}

// One block: fixed-order tree sums of v[k * stride + off] for k < n where w (if given) > 0.
__device__ double block_sum(const double* v, int64_t n, int stride, int off, const double* w, double* sh) {
  double s = 0;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x)
    if (!w || w[k] > 0) s += v[k * stride + off];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

template <typename T>
__global__ void ct_finish_softmax(const double* row_loss, const double* col_loss, const double* rinv,
                                  const double* cinv, int64_t n, int64_t m, double wr, double wc, int64_t nvr,
                                  int64_t nvc, bool cols, T* out, T* lse_col) {
  __shared__ double sh[kTPB];
  double total = 0;
  const double sr = block_sum(row_loss, n, 1, 0, rinv, sh);
  if (wr > 0) total += wr * sr / (double)nvr;
  if (cols) {
    const double sc = block_sum(col_loss, m, 1, 0, cinv, sh);
    total += wc * sc / (double)nvc;
  } else {
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) lse_col[j] = T(0);
  }
  if (threadIdx.x == 0) out[0] = T(total);
}

template <typename T>
__global__ void ct_finish_sigmoid(const double* row_sum, int64_t n, T* out) {
  __shared__ double sh[kTPB];
  const double s = block_sum(row_sum, n, 1, 0, nullptr, sh);
  if (threadIdx.x == 0) out[0] = T(s / (double)n);
}

template <typename T>
__global__ void ct_finish_grad(const double* partial, int64_t nb, T* gs, T* gbias) {
  __shared__ double sh[kTPB];
  const double ds = block_sum(partial, nb, 2, 0, nullptr, sh);
  const double db = block_sum(partial, nb, 2, 1, nullptr, sh);
  if (threadIdx.x == 0) {
    gs[0] = T(ds);
    if (gbias) gbias[0] = T(db);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: the CPU twin's setup and checks.

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
  U* as(size_t byte_offset = 0) const {
    return reinterpret_cast<U*>(static_cast<char*>(s->data) + byte_offset);
  }
};

struct Setup {
  int64_t n = 0, m = 0, d = 0;
  double t = 1, bias = 0;
  bool ids = false, self_mask = false;
  int64_t offset = 0;
  double wr = 0, wc = 0;
  std::vector<int32_t> rid, cid;
  std::vector<double> rinv, cinv;
  int64_t nvr = 0, nvc = 0;
};

// One element of a device tensor (scale, bias, grad_out), as a double.
double device_scalar(const TensorRef& t) {
  if (t.dtype == DType::F32) {
    float v = 0;
    copy_to_host(&v, t.data<float>(), sizeof(float));
    return (double)v;
  }
  double v = 0;
  copy_to_host(&v, t.data<double>(), sizeof(double));
  return v;
}

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
  const double sv = device_scalar(c.t(2));
  TS_CHECK(std::isfinite(sv), c.op, ": the logit scale (log temperature) must be finite, got ", sv);
  s.t = std::exp(sv);
  const double tmax = f32 ? (double)std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
  TS_CHECK(s.t <= tmax, c.op, ": exp(scale) overflows ", dtype_name(a.dtype), " for scale ", sv);
  if (f32) s.t = (double)(float)s.t;
  if (with_bias) {
    c.expect_numel(3, 1, "bias");
    c.expect_same_dtype(0, 3, "a", "bias");
    s.bias = device_scalar(c.t(3));
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
  const int64_t st = t.strides[0];
  const int64_t span = len > 0 ? (len - 1) * st + 1 : 0;
  std::vector<int32_t> raw((size_t)(span > 0 ? span : 1));
  if (span > 0) copy_to_host(raw.data(), t.data<int32_t>(), (size_t)span * sizeof(int32_t));
  for (int64_t k = 0; k < len; ++k) out[(size_t)k] = raw[(size_t)(k * st)];
}

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
    TS_CHECK(offset == std::floor(offset) && offset >= 0 && offset < (double)s.m, c.op,
             ": offset must be an integer in [0, ", s.m, "), got ", offset);
    s.offset = (int64_t)offset;
    TS_CHECK(!self_mask || s.offset != 0, c.op, ": self_mask with offset 0 would mask every positive");
  }
}

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

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned grid_of(const OpCall& c, int64_t blocks) {
  TS_CHECK(blocks >= 1 && blocks <= 2147483647LL, c.op, ": problem too large for one launch (", blocks, " blocks)");
  return (unsigned)blocks;
}

// Device copies of the per-row / per-column vectors: rinv [n], cinv [m] (double), rid [n], cid [m]
// (int32, ids mode), plus `extra` doubles of workspace; all in one tracked block.
struct DeviceSetup {
  DeviceScratch mem;
  double *rinv, *cinv, *work;
  int32_t *rid = nullptr, *cid = nullptr;
  static size_t bytes(const Setup& s, int64_t extra) {
    return (size_t)(s.n + s.m + extra) * sizeof(double) + (s.ids ? (size_t)(s.n + s.m) * sizeof(int32_t) : 0);
  }
  DeviceSetup(const Setup& s, int64_t extra) : mem(bytes(s, extra)) {
    rinv = mem.as<double>();
    cinv = rinv + s.n;
    work = cinv + s.m;
    copy_to_device(rinv, s.rinv.data(), (size_t)s.n * sizeof(double));
    copy_to_device(cinv, s.cinv.data(), (size_t)s.m * sizeof(double));
    if (s.ids) {
      rid = mem.as<int32_t>((size_t)(s.n + s.m + extra) * sizeof(double));
      cid = rid + s.n;
      copy_to_device(rid, s.rid.data(), (size_t)s.n * sizeof(int32_t));
      copy_to_device(cid, s.cid.data(), (size_t)s.m * sizeof(int32_t));
    }
  }
};

template <typename T>
Args<T> base_args(const OpCall& c, const Setup& s, const DeviceSetup& ds) {
  Args<T> p{};
  p.A = c.t(0).data<T>();
  p.B = c.t(1).data<T>();
  p.n = s.n, p.m = s.m, p.d = s.d;
  p.t = T(s.t);
  p.bias = T(s.bias);
  p.ids = s.ids;
  p.self_mask = s.self_mask;
  p.cols = s.wc > 0;
  p.offset = s.offset;
  p.rid = ds.rid;
  p.cid = ds.cid;
  p.rinv = ds.rinv;
  p.cinv = ds.cinv;
  p.nz = cdiv(s.d, kHC);
  return p;
}

// grad_a and grad_b for the current dlogit definition; (dscale, dbias) partials into `partial`.
template <typename T, bool Sig>
void run_grads(const OpCall& c, Args<T> p, double* partial, T* GA, T* GB) {
  const int64_t nbr = cdiv(p.n, kBM), nbc = cdiv(p.m, kBM);
  p.partial = partial;
  p.G = GA;
  ct_grad<T, false, Sig><<<grid_of(c, nbr * p.nz), kTPB>>>(p);
  check_launch(c.op);
  p.G = GB;
  ct_grad<T, true, Sig><<<grid_of(c, nbc * p.nz), kTPB>>>(p);
  check_launch(c.op);
}

}  // namespace

void contrastive_softmax(OpCall& c) {
  // a, b, scale, out, lse_row, lse_col [, row_ids, col_ids]
  Setup s;
  TS_CHECK(c.tensors.size() >= 6, c.op, ": expected 6 or 8 tensors, got ", c.tensors.size());
  setup_softmax(c, s, 6, 6);
  expect_one(c, 3, "out");
  expect_vector(c, 4, s.n, "lse_row");
  expect_vector(c, 5, s.m, "lse_col");
  const bool cols = s.wc > 0;
  DeviceSetup ds(s, s.n + s.m);  // work: row losses [n], column losses [m]
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Args<T> p = base_args<T>(c, s, ds);
    double* row_loss = ds.work;
    double* col_loss = ds.work + s.n;
    p.lse_out = c.t(4).data<T>();
    p.loss = row_loss;
    ct_stats<T, kRowsSoftmax><<<grid_of(c, cdiv(s.n, kBM)), kTPB>>>(p);
    check_launch(c.op);
    if (cols) {
      p.lse_out = c.t(5).data<T>();
      p.loss = col_loss;
      ct_stats<T, kColsSoftmax><<<grid_of(c, cdiv(s.m, kBM)), kTPB>>>(p);
      check_launch(c.op);
    }
    ct_finish_softmax<T><<<1, kTPB>>>(row_loss, col_loss, ds.rinv, ds.cinv, s.n, s.m, s.wr, s.wc, s.nvr, s.nvc, cols,
                                      c.t(3).data<T>(), c.t(5).data<T>());
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
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
  const double gout = device_scalar(c.t(5));
  const int64_t nbr = cdiv(s.n, kBM);
  DeviceSetup ds(s, 2 * nbr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Args<T> p = base_args<T>(c, s, ds);
    p.lse_row = c.t(3).data<T>();
    p.lse_col = c.t(4).data<T>();
    p.gr = s.wr > 0 ? gout * s.wr / (double)s.nvr : 0.0;
    p.gc = cols ? gout * s.wc / (double)s.nvc : 0.0;
    run_grads<T, false>(c, p, ds.work, c.t(6).data<T>(), c.t(7).data<T>());
    ct_finish_grad<T><<<1, kTPB>>>(ds.work, nbr, c.t(8).data<T>(), nullptr);
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

void contrastive_sigmoid(OpCall& c) {
  // a, b, scale, bias, out [, row_ids, col_ids]
  Setup s;
  TS_CHECK(c.scalars.empty(), c.op, ": expected no scalars, got ", c.scalars.size());
  TS_CHECK(c.tensors.size() >= 5, c.op, ": expected 5 or 7 tensors, got ", c.tensors.size());
  check_embeddings(c, s, true);
  setup_positives(c, s, 5, 5, 0, false);
  expect_one(c, 4, "out");
  // The kernels read rinv / cinv only for the softmax; sigmoid needs only the ids.
  s.rinv.assign((size_t)s.n, 0.0);
  s.cinv.assign((size_t)s.m, 0.0);
  DeviceSetup ds(s, s.n);  // work: per-row softplus sums
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Args<T> p = base_args<T>(c, s, ds);
    p.loss = ds.work;
    ct_stats<T, kRowsSigmoid><<<grid_of(c, cdiv(s.n, kBM)), kTPB>>>(p);
    check_launch(c.op);
    ct_finish_sigmoid<T><<<1, kTPB>>>(ds.work, s.n, c.t(4).data<T>());
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
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
  const double gout = device_scalar(c.t(4));
  s.rinv.assign((size_t)s.n, 0.0);
  s.cinv.assign((size_t)s.m, 0.0);
  const int64_t nbr = cdiv(s.n, kBM);
  DeviceSetup ds(s, 2 * nbr);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Args<T> p = base_args<T>(c, s, ds);
    p.gn = T(gout / (double)s.n);
    run_grads<T, true>(c, p, ds.work, c.t(5).data<T>(), c.t(6).data<T>());
    ct_finish_grad<T><<<1, kTPB>>>(ds.work, nbr, c.t(7).data<T>(), c.t(8).data<T>());
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

}  // namespace tessera::cuda
