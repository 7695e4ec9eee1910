// Layer norm over the rows of a contiguous [rows, n] tensor.
//
// Why this shape: normalising over the trailing dims of a contiguous tensor is normalising each
// row of its [rows, n] flattening, so a row is a unit-stride run and rows are independent:
// parallel_for over rows, flat `omp simd` loops within a row.
//
// Forward, per row: sum pass (mean), then a second pass for sum((x - mean)^2) (the two-pass
// variance: the one-pass E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std), then
// the output pass. All statistics are accumulated in double, and for float32 x_hat is formed
// in double before rounding, so a large common offset does not cost output precision. The row
// is in cache after the first pass. mean and rstd are written out for the backward.
//
// Backward, per row (gw = g * w, x_hat = (x - mean) * rstd):
//   dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat))       one reduction pass, one write pass
//   dweight = sum over rows of g * x_hat, dbias = sum over rows of g
// dweight/dbias are a reduction over rows, which must be deterministic. The rows are split into
// a fixed number of blocks that depends only on the shape (never on the thread count); each
// block accumulates its rows, in order, into its own double partial row (fused into the dx
// pass, so x and g are read once), and the partials are then summed over blocks in block order.
// For very wide rows (n > 2^17), where per-block partials would be large and few blocks would
// leave threads idle, dx is a row-parallel pass and dweight/dbias a column-parallel pass that
// walks all rows in order per column block. Both orders are fixed, so the bits of dweight do
// not change with OMP_NUM_THREADS. Per-call scratch is one allocation, never per element.
#include "cpu/layernorm.h"

#include <cmath>
#include <vector>

#include "cpu/strided.h"

namespace tessera::cpu {

namespace {

int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n)); }

void check_vec(OpCall& c, size_t i, int64_t n, const char* name) {
  c.expect_numel(i, n, name);
  c.expect_contiguous(i, name);
  c.expect_same_dtype(0, i, "x", name);
}

template <typename T, bool HW, bool HB>
void forward_rows(const T* x, T* out, T* mean, T* rstd, const T* w, const T* b, int64_t rows, int64_t n,
                  double eps) {
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const T* xi = x + row * n;
      T* oi = out + row * n;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) s += (double)xi[i];
      const double mu = n > 0 ? s / (double)n : 0.0;
      double ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < n; ++i) {
        const double d = (double)xi[i] - mu;
        ss += d * d;
      }
      const double var = n > 0 ? ss / (double)n : 0.0;
      const double rs = 1.0 / std::sqrt(var + eps);
      mean[row] = T(mu);
      rstd[row] = T(rs);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        T v = T(((double)xi[i] - mu) * rs);
        if constexpr (HW) v *= w[i];
        if constexpr (HB) v += b[i];
        oi[i] = v;
      }
    }
  });
}

struct BwdArgs {
  int64_t rows, n;
  bool want_dx, want_dw, want_db;
};

// One row of the backward: dx (if wanted) and this row's terms added to the partial sums pw/pb
// (either may be null).
template <typename T, bool HW>
inline void backward_row(const T* x, const T* mean, const T* rstd, const T* g, const T* w, T* dx, int64_t row,
                         const BwdArgs& a, double* pw, double* pb) {
  const int64_t n = a.n;
  const T* xi = x + row * n;
  const T* gi = g + row * n;
  const double mu = (double)mean[row], rs = (double)rstd[row];
  if (a.want_dx) {
    double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t i = 0; i < n; ++i) {
      double gw = (double)gi[i];
      if constexpr (HW) gw *= (double)w[i];
      sg += gw;
      sgx += gw * (((double)xi[i] - mu) * rs);
    }
    const double mg = sg / (double)n, mgx = sgx / (double)n;
    T* di = dx + row * n;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      double gw = (double)gi[i];
      if constexpr (HW) gw *= (double)w[i];
      const double xh = ((double)xi[i] - mu) * rs;
      di[i] = T(rs * (gw - mg - xh * mgx));
    }
  }
  if (pw) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) pw[i] += (double)gi[i] * (((double)xi[i] - mu) * rs);
  }
  if (pb) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) pb[i] += (double)gi[i];
  }
}

template <typename T, bool HW>
void backward_typed(const T* x, const T* mean, const T* rstd, const T* g, const T* w, T* dx, T* dw, T* db,
                    const BwdArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  const bool reduce = a.want_dw || a.want_db;
  if (!reduce) {
    parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) backward_row<T, HW>(x, mean, rstd, g, w, dx, r, a, nullptr, nullptr);
    });
    return;
  }
  if (rows == 0) {
    for (int64_t j = 0; j < n; ++j) {
      if (a.want_dw) dw[j] = T(0);
      if (a.want_db) db[j] = T(0);
    }
    return;
  }

  constexpr int64_t kWide = int64_t(1) << 17;
  if (n > kWide) {
    // Wide rows: dx row-parallel, then dweight/dbias column-parallel, each column block walking
    // every row in order.
    if (a.want_dx) {
      parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) backward_row<T, HW>(x, mean, rstd, g, w, dx, r, a, nullptr, nullptr);
      });
    }
    constexpr int64_t kCols = 512;
    const int64_t nblk = (n + kCols - 1) / kCols;
    parallel_for(nblk, 1, [&](int64_t b0, int64_t b1) {
      double accw[kCols], accb[kCols];
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t j0 = blk * kCols, len = std::min(kCols, n - j0);
        for (int64_t j = 0; j < len; ++j) accw[j] = accb[j] = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const T* xi = x + r * n + j0;
          const T* gi = g + r * n + j0;
          const double mu = (double)mean[r], rs = (double)rstd[r];
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) {
            accw[j] += (double)gi[j] * (((double)xi[j] - mu) * rs);
            accb[j] += (double)gi[j];
          }
        }
        for (int64_t j = 0; j < len; ++j) {
          if (a.want_dw) dw[j0 + j] = T(accw[j]);
          if (a.want_db) db[j0 + j] = T(accb[j]);
        }
      }
    });
    return;
  }

  // Fixed partition of the rows into nb blocks, a function of the shape only: up to 64 blocks,
  // at least 4 rows each (so the partials stay well under the size of x and g), and at most
  // 2^20 partial sums per array (8 MiB).
  const int64_t nb = std::max<int64_t>(
      1, std::min<int64_t>({64, (rows + 3) / 4, (int64_t(1) << 20) / std::max<int64_t>(1, n)}));
  const int64_t stride = n;  // one partial row per block
  std::vector<double> part((size_t)(nb * stride * ((a.want_dw ? 1 : 0) + (a.want_db ? 1 : 0))), 0.0);
  double* pw_base = a.want_dw ? part.data() : nullptr;
  double* pb_base = a.want_db ? part.data() + (a.want_dw ? nb * stride : 0) : nullptr;
  const int64_t rows_per_block = (rows + nb - 1) / nb;
  parallel_for(nb, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, rows_per_block * n)), [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = rows * blk / nb, r1 = rows * (blk + 1) / nb;
      double* pw = pw_base ? pw_base + blk * stride : nullptr;
      double* pb = pb_base ? pb_base + blk * stride : nullptr;
      for (int64_t r = r0; r < r1; ++r) backward_row<T, HW>(x, mean, rstd, g, w, dx, r, a, pw, pb);
    }
  });
  // Sum the partials over blocks, in block order, vectorised over columns.
  constexpr int64_t kCols = 256;
  const int64_t ncol = (n + kCols - 1) / kCols;
  parallel_for(ncol, std::max<int64_t>(1, 32768 / (kCols * nb)), [&](int64_t c0, int64_t c1) {
    double acc[kCols];
    for (int64_t cb = c0; cb < c1; ++cb) {
      const int64_t j0 = cb * kCols, len = std::min(kCols, n - j0);
      for (int which = 0; which < 2; ++which) {
        const double* base = which == 0 ? pw_base : pb_base;
        T* dst = which == 0 ? dw : db;
        if (!base) continue;
        for (int64_t j = 0; j < len; ++j) acc[j] = 0;
        for (int64_t blk = 0; blk < nb; ++blk) {
          const double* p = base + blk * stride + j0;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) acc[j] += p[j];
        }
        for (int64_t j = 0; j < len; ++j) dst[j0 + j] = T(acc[j]);
      }
    }
  });
}

bool flag(OpCall& c, size_t i, const char* name) {
  const double v = c.s(i);
  TS_CHECK(v == 0 || v == 1, c.op, ": scalar ", name, " must be 0 or 1, got ", v);
  return v == 1;
}

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
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = c.t(0).data<T>();
    T* out = c.t(1).data<T>();
    T* mean = c.t(2).data<T>();
    T* rstd = c.t(3).data<T>();
    const T* w = hw ? c.t(iw).data<T>() : nullptr;
    const T* b = hb ? c.t(ib).data<T>() : nullptr;
    if (hw && hb) forward_rows<T, true, true>(x, out, mean, rstd, w, b, rows, n, eps);
    else if (hw) forward_rows<T, true, false>(x, out, mean, rstd, w, b, rows, n, eps);
    else if (hb) forward_rows<T, false, true>(x, out, mean, rstd, w, b, rows, n, eps);
    else forward_rows<T, false, false>(x, out, mean, rstd, w, b, rows, n, eps);
  });
}

void layer_norm_backward(OpCall& c) {
  TS_CHECK(c.scalars.size() == 4, c.op,
           ": expected 4 scalars (has_weight, want_grad_x, want_grad_weight, want_grad_bias), got ", c.scalars.size());
  const bool hw = flag(c, 0, "has_weight");
  BwdArgs a{0, 0, flag(c, 1, "want_grad_x"), flag(c, 2, "want_grad_weight"), flag(c, 3, "want_grad_bias")};
  c.expect_count(4 + (hw ? 1 : 0) + (a.want_dx ? 1 : 0) + (a.want_dw ? 1 : 0) + (a.want_db ? 1 : 0), 4);
  c.expect_float(0, "x");
  c.expect_ndim(0, 2, "x (as [rows, n])");
  c.expect_contiguous(0, "x");
  a.rows = c.t(0).shape[0];
  a.n = c.t(0).shape[1];
  check_vec(c, 1, a.rows, "mean");
  check_vec(c, 2, a.rows, "rstd");
  c.expect_same_shape(0, 3, "x", "grad_out");
  c.expect_contiguous(3, "grad_out");
  c.expect_same_dtype(0, 3, "x", "grad_out");
  size_t next = 4;
  const size_t iw = hw ? next++ : 0;
  const size_t idx = a.want_dx ? next++ : 0;
  const size_t idw = a.want_dw ? next++ : 0;
  const size_t idb = a.want_db ? next++ : 0;
  if (hw) check_vec(c, iw, a.n, "weight");
  if (a.want_dx) {
    c.expect_same_shape(0, idx, "x", "grad_x");
    c.expect_contiguous(idx, "grad_x");
    c.expect_same_dtype(0, idx, "x", "grad_x");
  }
  if (a.want_dw) check_vec(c, idw, a.n, "grad_weight");
  if (a.want_db) check_vec(c, idb, a.n, "grad_bias");
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = c.t(0).data<T>();
    const T* mean = c.t(1).data<T>();
    const T* rstd = c.t(2).data<T>();
    const T* g = c.t(3).data<T>();
    const T* w = hw ? c.t(iw).data<T>() : nullptr;
    T* dx = a.want_dx ? c.t(idx).data<T>() : nullptr;
    T* dw = a.want_dw ? c.t(idw).data<T>() : nullptr;
    T* db = a.want_db ? c.t(idb).data<T>() : nullptr;
    if (hw) backward_typed<T, true>(x, mean, rstd, g, w, dx, dw, db, a);
    else backward_typed<T, false>(x, mean, rstd, g, w, dx, dw, db, a);
  });
}

}  // namespace tessera::cpu
