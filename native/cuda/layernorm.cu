// Layer norm over the rows of a contiguous [rows, n] tensor, forward and backward, on the GPU.
// CPU twin: native/cpu/layernorm.cpp (same tensors, scalars, checks and saved-statistics
// layout: mean[rows] and rstd[rows] = 1 / sqrt(biased var + eps), stored in the element type).
//
// Forward, one thread group per row (a warp when n <= 1024, 8 rows per 256-thread block; else the
// whole block): a sum pass for the mean, a second pass for sum((x - mean)^2) (the two-pass
// variance, as the CPU: no E[x^2] - E[x]^2 cancellation), both accumulated in double, then the
// output pass out = T((x - mean) * rstd) [* w] [+ b], x_hat formed in double and rounded once,
// the affine in the element type, exactly the CPU's sequence. Rows with n = 0 still get
// mean 0 and rstd 1 / sqrt(eps).
//
// Backward (gw = g * w, x_hat = (x - mean) * rstd, all in double as the CPU):
//   dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat)): the same row groups, one reduction
//        pass and one write pass;
//   dweight = sum over rows of g * x_hat, dbias = sum over rows of g: a deterministic two-stage
//        column reduction without atomics. Stage 1: blocks of 32 columns x 8 row-threads, one
//        block per (column tile, row block), the rows split into nb blocks (nb a function of the
//        shape only: <= 512 and nb * n <= 2^22); each thread sums its rows in order, the 8
//        threads of a column are combined in a fixed order and the block writes one double
//        partial per column to scratch. Stage 2: one thread per column sums the nb partials in
//        block order and rounds once. Coalesced: a warp reads 32 consecutive elements of a row.
//
// Precision vs the CPU: the statistics are doubles in both and the rounding points are the
// same, but the summation orders differ (trees / other row partitions vs the CPU's simd lanes and
// its 64-block partition), so results agree to double rounding before the final rounding: tests
// use float32 rtol ~1e-5 and float64 rtol ~1e-12 instead of bit equality. Deterministic run to run.
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/layernorm.h"

namespace tessera::cuda {

namespace {

struct Scratch {  // per-call device scratch, stream-ordered on the legacy default stream
  void* ptr = nullptr;
  bool async = false;
  Scratch(size_t bytes, const char* op) {
    if (bytes == 0) return;
    if (cudaMallocAsync(&ptr, bytes, 0) == cudaSuccess) {
      async = true;
      return;
    }
    cudaGetLastError();
    ptr = nullptr;
    check(cudaMalloc(&ptr, bytes), op);
  }
  ~Scratch() {
    if (!ptr) return;
    if (async) cudaFreeAsync(ptr, 0);
    else cudaFree(ptr);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

unsigned grid_for(int64_t blocks) {
  return (unsigned)(blocks < 1 ? 1 : (blocks > (int64_t)1 << 20 ? (int64_t)1 << 20 : blocks));
}

void check_vec(OpCall& c, size_t i, int64_t n, const char* name) {
  c.expect_numel(i, n, name);
  c.expect_contiguous(i, name);
  c.expect_same_dtype(0, i, "x", name);
}

bool flag(OpCall& c, size_t i, const char* name) {
  const double v = c.s(i);
  TS_CHECK(v == 0 || v == 1, c.op, ": scalar ", name, " must be 0 or 1, got ", v);
  return v == 1;
}

// Sum over a group of TPR threads (a warp or the whole block); every thread gets the result.
template <int TPR>
__device__ __forceinline__ double sum_allreduce(double v, double* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if constexpr (TPR > 32) {
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = sh[0];
#pragma unroll
    for (int w = 1; w < TPR / 32; ++w) v += sh[w];
  }
  return v;
}

template <typename T, int TPR>
__global__ void __launch_bounds__(kThreads) ln_forward(const T* __restrict__ x, T* __restrict__ out,
                                                      T* __restrict__ mean, T* __restrict__ rstd,
                                                      const T* __restrict__ w, const T* __restrict__ b, int64_t rows,
                                                      int64_t n, double eps) {
  constexpr int RPB = kThreads / TPR;
  __shared__ double sh[kThreads / 32];
  const int lane = threadIdx.x % TPR;
  for (int64_t base = (int64_t)blockIdx.x * RPB; base < rows; base += (int64_t)gridDim.x * RPB) {
    const int64_t row = base + threadIdx.x / TPR;
    if constexpr (TPR == 32) {
      if (row >= rows) continue;  // whole warps; no block-wide barrier on this path
    }
    const T* xi = x + row * n;
    T* oi = out + row * n;
    double s = 0;
    for (int64_t i = lane; i < n; i += TPR) s += (double)xi[i];
    s = sum_allreduce<TPR>(s, sh);
    const double mu = n > 0 ? s / (double)n : 0.0;
    double ss = 0;
    for (int64_t i = lane; i < n; i += TPR) {
      const double d = (double)xi[i] - mu;
      ss += d * d;
    }
    ss = sum_allreduce<TPR>(ss, sh);
    const double var = n > 0 ? ss / (double)n : 0.0;
    const double rs = 1.0 / ::sqrt(var + eps);
    if (lane == 0) {
      mean[row] = T(mu);
      rstd[row] = T(rs);
    }
    for (int64_t i = lane; i < n; i += TPR) {
      T v = T(((double)xi[i] - mu) * rs);
      if (w) v *= w[i];
      if (b) v += b[i];
      oi[i] = v;
    }
  }
}

template <typename T, int TPR>
__global__ void __launch_bounds__(kThreads) ln_backward_dx(const T* __restrict__ x, const T* __restrict__ mean,
                                                          const T* __restrict__ rstd, const T* __restrict__ g,
                                                          const T* __restrict__ w, T* __restrict__ dx, int64_t rows,
                                                          int64_t n) {
  constexpr int RPB = kThreads / TPR;
  __shared__ double sh[kThreads / 32];
  const int lane = threadIdx.x % TPR;
  for (int64_t base = (int64_t)blockIdx.x * RPB; base < rows; base += (int64_t)gridDim.x * RPB) {
    const int64_t row = base + threadIdx.x / TPR;
    if constexpr (TPR == 32) {
      if (row >= rows) continue;
    }
    const T* xi = x + row * n;
    const T* gi = g + row * n;
    const double mu = (double)mean[row], rs = (double)rstd[row];
    double sg = 0, sgx = 0;
    for (int64_t i = lane; i < n; i += TPR) {
      double gw = (double)gi[i];
      if (w) gw *= (double)w[i];
      sg += gw;
      sgx += gw * (((double)xi[i] - mu) * rs);
    }
    sg = sum_allreduce<TPR>(sg, sh);
    sgx = sum_allreduce<TPR>(sgx, sh);
    const double mg = sg / (double)n, mgx = sgx / (double)n;
    T* di = dx + row * n;
    for (int64_t i = lane; i < n; i += TPR) {
      double gw = (double)gi[i];
      if (w) gw *= (double)w[i];
      const double xh = ((double)xi[i] - mu) * rs;
      di[i] = T(rs * (gw - mg - xh * mgx));
    }
  }
}

constexpr int kColTile = 32, kRowThreads = 8;

// Stage 1 of dweight/dbias: block (kColTile, kRowThreads) = (column tile blockIdx.x, row block
// blockIdx.y); partial sums of g * x_hat and g over the block's rows into pw/pb[blockIdx.y * n + j].
template <typename T>
__global__ void __launch_bounds__(kColTile* kRowThreads) ln_backward_partials(
    const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ rstd, const T* __restrict__ g,
    double* __restrict__ pw, double* __restrict__ pb, int64_t rows, int64_t n, int64_t nb) {
  __shared__ double shw[kRowThreads][kColTile];
  __shared__ double shb[kRowThreads][kColTile];
  const int64_t j = (int64_t)blockIdx.x * kColTile + threadIdx.x;
  const int64_t blk = blockIdx.y;
  const int64_t r0 = rows * blk / nb, r1 = rows * (blk + 1) / nb;
  double aw = 0, ab = 0;
  if (j < n) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) {
      const double mu = (double)mean[r], rs = (double)rstd[r];
      const double gv = (double)g[r * n + j];
      aw += gv * (((double)x[r * n + j] - mu) * rs);
      ab += gv;
    }
  }
  shw[threadIdx.y][threadIdx.x] = aw;
  shb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && j < n) {
    double sw = shw[0][threadIdx.x], sb = shb[0][threadIdx.x];
#pragma unroll
    for (int k = 1; k < kRowThreads; ++k) {
      sw += shw[k][threadIdx.x];
      sb += shb[k][threadIdx.x];
    }
    pw[blk * n + j] = sw;
    pb[blk * n + j] = sb;
  }
}

// Stage 2: dw[j] / db[j] = the nb partials of column j summed in block order (either output may be null).
template <typename T>
__global__ void ln_backward_finish(const double* __restrict__ pw, const double* __restrict__ pb, T* __restrict__ dw,
                                   T* __restrict__ db, int64_t n, int64_t nb) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < n; j += (int64_t)gridDim.x * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t k = 0; k < nb; ++k) {
      sw += pw[k * n + j];
      sb += pb[k * n + j];
    }
    if (dw) dw[j] = T(sw);
    if (db) db[j] = T(sb);
  }
}

template <typename T>
__global__ void zero_fill(T* a, T* b, int64_t n) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < n; j += (int64_t)gridDim.x * blockDim.x) {
    if (a) a[j] = T(0);
    if (b) b[j] = T(0);
  }
}

constexpr int64_t kWarpRowMax = 1024;  // rows up to this long get one warp, longer ones a block

}  // namespace

void layer_norm(OpCall& c) {
  TS_CHECK(c.scalars.size() == 3, c.op, ": expected 3 scalars (eps, has_weight, has_bias), got ", c.scalars.size());
  const double eps = c.s(0);
  const bool hw = flag(c, 1, "has_weight"), hb = flag(c, 2, "has_bias");
  TS_CHECK(std::isfinite(eps) && eps >= 0, c.op, ": eps must be a finite number >= 0, got ", eps);
  c.expect_count(4 + (hw ? 1 : 0) + (hb ? 1 : 0), 3);
  c.expect_float(0, "x");
  c.expect_ndim(0, 2, "x (as [rows, n])");
  c.expect_contiguous(0, "x");
  c.expect_same_shape(0, 1, "x", "out");
  c.expect_contiguous(1, "out");
  c.expect_same_dtype(0, 1, "x", "out");
  const int64_t rows = c.t(0).shape[0], n = c.t(0).shape[1];
  check_vec(c, 2, rows, "mean");
  check_vec(c, 3, rows, "rstd");
  size_t next = 4;
  const size_t iw = hw ? next++ : 0, ib = hb ? next++ : 0;
  if (hw) check_vec(c, iw, n, "weight");
  if (hb) check_vec(c, ib, n, "bias");
  if (rows == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = c.t(0).data<T>();
    T* out = c.t(1).data<T>();
    T* mean = c.t(2).data<T>();
    T* rstd = c.t(3).data<T>();
    const T* w = hw ? c.t(iw).data<T>() : nullptr;
    const T* b = hb ? c.t(ib).data<T>() : nullptr;
    if (n <= kWarpRowMax)
      ln_forward<T, 32><<<grid_for((rows + 7) / 8), kThreads>>>(x, out, mean, rstd, w, b, rows, n, eps);
    else
      ln_forward<T, kThreads><<<grid_for(rows), kThreads>>>(x, out, mean, rstd, w, b, rows, n, eps);
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

void layer_norm_backward(OpCall& c) {
  TS_CHECK(c.scalars.size() == 4, c.op,
           ": expected 4 scalars (has_weight, want_grad_x, want_grad_weight, want_grad_bias), got ", c.scalars.size());
  const bool hw = flag(c, 0, "has_weight");
  const bool want_dx = flag(c, 1, "want_grad_x"), want_dw = flag(c, 2, "want_grad_weight"),
             want_db = flag(c, 3, "want_grad_bias");
  c.expect_count(4 + (hw ? 1 : 0) + (want_dx ? 1 : 0) + (want_dw ? 1 : 0) + (want_db ? 1 : 0), 4);
  c.expect_float(0, "x");
  c.expect_ndim(0, 2, "x (as [rows, n])");
  c.expect_contiguous(0, "x");
  const int64_t rows = c.t(0).shape[0], n = c.t(0).shape[1];
  check_vec(c, 1, rows, "mean");
  check_vec(c, 2, rows, "rstd");
  c.expect_same_shape(0, 3, "x", "grad_out");
  c.expect_contiguous(3, "grad_out");
  c.expect_same_dtype(0, 3, "x", "grad_out");
  size_t next = 4;
  const size_t iw = hw ? next++ : 0;
  const size_t idx = want_dx ? next++ : 0;
  const size_t idw = want_dw ? next++ : 0;
  const size_t idb = want_db ? next++ : 0;
  if (hw) check_vec(c, iw, n, "weight");
  if (want_dx) {
    c.expect_same_shape(0, idx, "x", "grad_x");
    c.expect_contiguous(idx, "grad_x");
    c.expect_same_dtype(0, idx, "x", "grad_x");
  }
  if (want_dw) check_vec(c, idw, n, "grad_weight");
  if (want_db) check_vec(c, idb, n, "grad_bias");
  if (n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = c.t(0).data<T>();
    const T* mean = c.t(1).data<T>();
    const T* rstd = c.t(2).data<T>();
    const T* g = c.t(3).data<T>();
    const T* w = hw ? c.t(iw).data<T>() : nullptr;
    T* dx = want_dx ? c.t(idx).data<T>() : nullptr;
    T* dw = want_dw ? c.t(idw).data<T>() : nullptr;
    T* db = want_db ? c.t(idb).data<T>() : nullptr;
    if (want_dx && rows > 0) {
      if (n <= kWarpRowMax)
        ln_backward_dx<T, 32><<<grid_for((rows + 7) / 8), kThreads>>>(x, mean, rstd, g, w, dx, rows, n);
      else
        ln_backward_dx<T, kThreads><<<grid_for(rows), kThreads>>>(x, mean, rstd, g, w, dx, rows, n);
      check_launch(c.op);
    }
    if (!want_dw && !want_db) return;
    if (rows == 0) {  // no rows: the sums are empty
      zero_fill<T><<<blocks_for(n), kThreads>>>(dw, db, n);
      check_launch(c.op);
      return;
    }
    // Row blocks: a function of the shape only, so the result does not depend on the device.
    int64_t nb = (rows + 31) / 32;
    if (nb > 512) nb = 512;
    const int64_t cap = ((int64_t)1 << 22) / n;
    if (nb > cap) nb = cap;
    if (nb < 1) nb = 1;
    Scratch part(sizeof(double) * (size_t)(2 * nb * n), c.op);
    double* pw = part.as<double>();
    double* pb = pw + nb * n;
    const dim3 grid((unsigned)((n + kColTile - 1) / kColTile), (unsigned)nb);
    ln_backward_partials<T><<<grid, dim3(kColTile, kRowThreads)>>>(x, mean, rstd, g, pw, pb, rows, n, nb);
    check_launch(c.op);
    ln_backward_finish<T><<<blocks_for(n), kThreads>>>(pw, pb, dw, db, n, nb);
    check_launch(c.op);
  };
  if (c.t(0).dtype == DType::F32) run(float{});
  else run(double{});
}

}  // namespace tessera::cuda
