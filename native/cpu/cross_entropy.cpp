// Cross-entropy over the rows of contiguous [N, C] logits with int32 targets.
//
// Why this shape: composing log_softmax + gather + mean would write an [N, C] log-probability
// tensor only to read one element per row back. Fused, the forward reads each row twice (max
// pass; then one pass accumulating sum(exp(x - max)) and, for label smoothing, sum(x)) and
// writes one loss and one log-sum-exp per row:
//   loss_i = lse_i - (1 - eps) * x[i, t_i] - (eps / C) * sum_c x[i, c]
// (= (1 - eps) * nll + eps * mean_c(-log p_c), PyTorch's label smoothing). lse is saved, so the
// backward is one elementwise pass per row:
//   dx[i, c] = scale_i * (exp(x[i, c] - lse_i) - eps / C - (1 - eps) * [c == t_i])
// with scale_i = g_i ('none'), g ('sum') or g / count ('mean', count = rows not ignored).
// Ignored rows contribute 0 loss, 0 gradient and are left out of count; 'mean' with every row
// ignored is 0 / 0 = NaN, as PyTorch.
//
// Targets are validated serially, before any parallel region (an exception must not escape an
// OpenMP thread, and no target may ever index outside its row), by both kernels: a target
// tensor can be changed between forward and backward. Rows are spread over threads; sums use
// double; the 'mean'/'sum' total is added up serially in row order, so it is deterministic.
// exp is vec_exp (cpu/vec_exp.h) so the per-row passes vectorise.
#include "cpu/cross_entropy.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/strided.h"
#include "cpu/vec_exp.h"

namespace tessera::cpu {

namespace {

enum Reduction { kNone = 0, kMean = 1, kSum = 2 };

struct Params {
  int64_t n, c;
  int64_t ignore;
  double eps;
  Reduction reduction;
};

Params check_common(OpCall& c, size_t ntensors) {
  c.expect_count(ntensors, 3);
  c.expect_float(0, "logits");
  c.expect_ndim(0, 2, "logits (as [N, C])");
  c.expect_contiguous(0, "logits");
  c.expect_dtype(1, DType::I32, "targets");
  c.expect_ndim(1, 1, "targets");
  Params p;
  p.n = c.t(0).shape[0];
  p.c = c.t(0).shape[1];
  TS_CHECK(c.t(1).shape[0] == p.n, c.op, ": targets ", c.t(1).describe(), " must have one entry per row of logits ",
           c.t(0).describe());
  p.ignore = c.si(0);
  p.eps = c.s(1);
  TS_CHECK(p.eps >= 0 && p.eps <= 1, c.op, ": label smoothing must be in [0, 1], got ", p.eps);
  const double red = c.s(2);
  TS_CHECK(red == 0 || red == 1 || red == 2, c.op, ": reduction code must be 0 (none), 1 (mean) or 2 (sum), got ", red);
  p.reduction = (Reduction)(int)red;
  return p;
}

// Serial scan of the targets: throws on the first out-of-range one; returns the number of rows
// that are not ignored.
int64_t validate_targets(const OpCall& c, const Params& p) {
  const TensorRef& t = c.t(1);
  const int32_t* tg = t.data<int32_t>();
  const int64_t ts = t.strides[0];
  int64_t count = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    const int64_t v = tg[i * ts];
    if (v == p.ignore) continue;
    if (v < 0 || v >= p.c)
      fail(c.op, ": target ", v, " at row ", i, " is out of range: expected a class index in [0, ", p.c,
           ") or ignore_index (", p.ignore, ")");
    ++count;
  }
  return count;
}

int64_t row_grain(int64_t c) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, c)); }

template <typename T>
void forward_typed(OpCall& c, const Params& p, int64_t count) {
  const T* x = c.t(0).data<T>();
  const int32_t* tg = c.t(1).data<int32_t>();
  const int64_t ts = c.t(1).strides[0];
  T* out = c.t(2).data<T>();
  T* lse_out = c.t(3).data<T>();
  const bool smooth = p.eps > 0;
  std::vector<double> losses(p.reduction == kNone ? 0 : (size_t)p.n);
  double* lp = losses.data();
  parallel_for(p.n, row_grain(p.c), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t t = tg[i * ts];
      double loss = 0, lse = 0;
      if (t != p.ignore) {
        const T* xi = x + i * p.c;
        const int64_t C = p.c;
        T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
        for (int64_t j = 0; j < C; ++j) m = xi[j] > m ? xi[j] : m;
        double s = 0, sx = 0;
        if constexpr (std::is_same_v<T, double>) {
          if (smooth) {
#pragma omp simd reduction(+ : s, sx)
            for (int64_t j = 0; j < C; ++j) {
              s += vec_exp(xi[j] - m);
              sx += xi[j];
            }
          } else {
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < C; ++j) s += vec_exp(xi[j] - m);
          }
        } else {
          // float: sum exp in float blocks of 256 (16 lanes x 16 terms), each block added to a
          // double; converting inside the vec_exp loop defeats GCC's vectoriser.
          for (int64_t j0 = 0; j0 < C; j0 += 256) {
            const int64_t j1 = std::min<int64_t>(C, j0 + 256);
            float bs = 0;
#pragma omp simd reduction(+ : bs)
            for (int64_t j = j0; j < j1; ++j) bs += vec_exp(T(xi[j] - m));
            s += bs;
          }
          if (smooth) {
#pragma omp simd reduction(+ : sx)
            for (int64_t j = 0; j < C; ++j) sx += (double)xi[j];
          }
        }
        lse = (double)m + std::log(s);
        loss = lse - (1.0 - p.eps) * (double)xi[t];
        if (smooth) loss -= p.eps / (double)C * sx;
      }
      lse_out[i] = T(lse);
      if (p.reduction == kNone) out[i] = T(loss);
      else lp[i] = loss;
    }
  });
  if (p.reduction != kNone) {
    double total = 0;
    for (int64_t i = 0; i < p.n; ++i) total += lp[i];
    if (p.reduction == kMean) total = count > 0 ? total / (double)count : std::numeric_limits<double>::quiet_NaN();
    out[0] = T(total);
  }
}

template <typename T>
void backward_typed(OpCall& c, const Params& p, int64_t count) {
  const T* x = c.t(0).data<T>();
  const int32_t* tg = c.t(1).data<int32_t>();
  const int64_t ts = c.t(1).strides[0];
  const T* lse = c.t(2).data<T>();
  const T* g = c.t(3).data<T>();
  const int64_t gs = p.reduction == kNone ? c.t(3).strides[0] : 0;
  T* dx = c.t(4).data<T>();
  const double base = p.reduction == kMean ? (count > 0 ? 1.0 / (double)count : 0.0) : 1.0;
  const T off = T(p.eps / (double)p.c);
  parallel_for(p.n, row_grain(p.c), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t t = tg[i * ts];
      T* di = dx + i * p.c;
      const int64_t C = p.c;
      if (t == p.ignore) {
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) di[j] = T(0);
        continue;
      }
      const double sc = (double)g[i * gs] * base;
      const T scale = T(sc);
      const T* xi = x + i * C;
      const T l = lse[i];
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) di[j] = scale * (vec_exp(T(xi[j] - l)) - off);
      di[t] -= T(sc * (1.0 - p.eps));
    }
  });
}

}  // namespace

void cross_entropy(OpCall& c) {
  const Params p = check_common(c, 4);
  if (p.reduction == kNone) {
    c.expect_ndim(2, 1, "out");
    c.expect_numel(2, p.n, "out");
    c.expect_contiguous(2, "out");
  } else {
    c.expect_numel(2, 1, "out");
  }
  c.expect_same_dtype(0, 2, "logits", "out");
  c.expect_ndim(3, 1, "lse");
  c.expect_numel(3, p.n, "lse");
  c.expect_contiguous(3, "lse");
  c.expect_same_dtype(0, 3, "logits", "lse");
  const int64_t count = validate_targets(c, p);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) { forward_typed<decltype(tag)>(c, p, count); });
}

void cross_entropy_backward(OpCall& c) {
  const Params p = check_common(c, 5);
  c.expect_ndim(2, 1, "lse");
  c.expect_numel(2, p.n, "lse");
  c.expect_contiguous(2, "lse");
  c.expect_same_dtype(0, 2, "logits", "lse");
  if (p.reduction == kNone) {
    c.expect_ndim(3, 1, "grad_out");
    c.expect_numel(3, p.n, "grad_out");
  } else {
    c.expect_numel(3, 1, "grad_out");
  }
  c.expect_same_dtype(0, 3, "logits", "grad_out");
  c.expect_same_shape(0, 4, "logits", "grad_logits");
  c.expect_contiguous(4, "grad_logits");
  c.expect_same_dtype(0, 4, "logits", "grad_logits");
  const int64_t count = validate_targets(c, p);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) { backward_typed<decltype(tag)>(c, p, count); });
}

}  // namespace tessera::cpu
