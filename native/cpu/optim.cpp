// Fused optimizer updates (see optim.h for the contract). Each kernel is one flat loop over
// contiguous memory split across threads with parallel_for; the loop bodies are branch-free
// (option flags are template parameters, chosen once per call) so `#pragma omp simd`
// vectorises them. Scalar coefficients (1 - lr*wd, lr / (1 - beta1^step), ...) are computed in
// double exactly as PyTorch computes them in Python, then rounded once to the element type.
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/strided.h"

namespace tessera::cpu {

namespace {

// Elements per parallel chunk: an update reads and writes several arrays per element, so a
// chunk this size is well past the cost of waking the thread pool.
constexpr int64_t kGrain = 16384;

bool overlaps(const TensorRef& a, const TensorRef& b) {
  if (a.storage != b.storage || a.numel() == 0 || b.numel() == 0) return false;
  int64_t a0 = a.offset, a1 = a.offset + a.numel();
  int64_t b0 = b.offset, b1 = b.offset + b.numel();
  return a0 < b1 && b0 < a1;
}

// Same shape and dtype as tensor 0 (a float dtype), all contiguous, and the tensors the kernel
// writes (`written`, by index) overlapping no other argument.
void check_tensors(OpCall& c, std::initializer_list<const char*> names, std::initializer_list<size_t> written) {
  std::vector<const char*> nm(names);
  c.expect_count(nm.size(), c.scalars.size());
  c.expect_float(0, nm[0]);
  for (size_t i = 0; i < nm.size(); ++i) {
    if (i > 0) {
      c.expect_same_dtype(0, i, nm[0], nm[i]);
      c.expect_same_shape(0, i, nm[0], nm[i]);
    }
    c.expect_contiguous(i, nm[i]);
  }
  for (size_t w : written)
    for (size_t j = 0; j < nm.size(); ++j)
      TS_CHECK(j == w || !overlaps(c.t(w), c.t(j)), c.op, ": ", nm[w], " and ", nm[j],
               " must not share memory, got ", c.t(w).describe(), " and ", c.t(j).describe());
}

void expect_scalars(OpCall& c, size_t n, std::initializer_list<const char*> names) {
  if (c.scalars.size() != n) {
    std::string list;
    for (const char* x : names) list += (list.empty() ? "" : ", ") + std::string(x);
    fail(c.op, ": expected ", n, " scalars (", list, "), got ", c.scalars.size());
  }
  size_t i = 0;
  for (const char* x : names) {
    TS_CHECK(std::isfinite(c.scalars[i]), c.op, ": ", x, " must be finite, got ", c.scalars[i]);
    ++i;
  }
}

void expect_range(OpCall& c, size_t i, const char* name, double lo, double hi, bool hi_open) {
  double v = c.s(i);
  bool ok = v >= lo && (hi_open ? v < hi : v <= hi);
  TS_CHECK(ok, c.op, ": ", name, " must be in [", lo, ", ", hi, hi_open ? ")" : "]", ", got ", v);
}

void expect_nonneg(OpCall& c, size_t i, const char* name) {
  TS_CHECK(c.s(i) >= 0, c.op, ": ", name, " must be >= 0, got ", c.s(i));
}

void expect_flag(OpCall& c, size_t i, const char* name) {
  TS_CHECK(c.s(i) == 0 || c.s(i) == 1, c.op, ": ", name, " must be 0 or 1, got ", c.s(i));
}

// --- AdamW -------------------------------------------------------------------------------------

template <typename T>
void adamw_typed(OpCall& c, double lr, double b1, double b2, double eps, double wd, double step, double gs) {
  const int64_t n = c.t(0).numel();
  T* __restrict p = c.t(0).data<T>();
  const T* __restrict g = c.t(1).data<T>();
  T* __restrict m = c.t(2).data<T>();
  T* __restrict v = c.t(3).data<T>();
  const double bc1 = 1.0 - std::pow(b1, step);
  const double bc2 = 1.0 - std::pow(b2, step);
  const T decay = T(1.0 - lr * wd);
  const T beta1 = T(b1), one_minus_b1 = T(1.0 - b1);
  const T beta2 = T(b2), one_minus_b2 = T(1.0 - b2);
  const T neg_step_size = T(-(lr / bc1));
  const T bc2_sqrt = T(std::sqrt(bc2));
  const T epsilon = T(eps), scale = T(gs);
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const T gi = g[i] * scale;
      const T pi = p[i] * decay;                              // param.mul_(1 - lr*wd)
      const T mi = m[i] * beta1 + one_minus_b1 * gi;          // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      const T vi = v[i] * beta2 + one_minus_b2 * gi * gi;     // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
      const T denom = std::sqrt(vi) / bc2_sqrt + epsilon;     // (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps)
      p[i] = pi + neg_step_size * mi / denom;                 // param.addcdiv_(exp_avg, denom, value=-lr/bc1)
      m[i] = mi;
      v[i] = vi;
    }
  });
}

// --- SGD ---------------------------------------------------------------------------------------

template <typename T, bool Decay, bool Momentum, bool Nesterov, bool First>
void sgd_typed(OpCall& c, double lr, double mom, double damp, double wd, double gs) {
  const int64_t n = c.t(0).numel();
  T* __restrict p = c.t(0).data<T>();
  const T* __restrict g = c.t(1).data<T>();
  T* __restrict buf = Momentum ? c.t(2).data<T>() : nullptr;
  const T neg_lr = T(-lr), momentum = T(mom), one_minus_damp = T(1.0 - damp), decay = T(wd), scale = T(gs);
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      T d = g[i] * scale;
      const T pi = p[i];
      if constexpr (Decay) d = d + decay * pi;  // grad.add(param, alpha=wd)
      if constexpr (Momentum) {
        T b;
        if constexpr (First) b = d;  // torch.clone(grad) on the first step
        else b = buf[i] * momentum + one_minus_damp * d;
        buf[i] = b;
        if constexpr (Nesterov) d = d + momentum * b;
        else d = b;
      }
      p[i] = pi + neg_lr * d;  // param.add_(grad, alpha=-lr)
    }
  });
}

template <typename T>
void sgd_dispatch(OpCall& c, double lr, double mom, double damp, double wd, bool nesterov, bool first, double gs) {
  const bool decay = wd != 0, momentum = mom != 0;
  auto go = [&](auto D) {
    constexpr bool Dc = decltype(D)::value;
    if (!momentum) return sgd_typed<T, Dc, false, false, false>(c, lr, mom, damp, wd, gs);
    if (nesterov) {
      if (first) return sgd_typed<T, Dc, true, true, true>(c, lr, mom, damp, wd, gs);
      return sgd_typed<T, Dc, true, true, false>(c, lr, mom, damp, wd, gs);
    }
    if (first) return sgd_typed<T, Dc, true, false, true>(c, lr, mom, damp, wd, gs);
    return sgd_typed<T, Dc, true, false, false>(c, lr, mom, damp, wd, gs);
  };
  if (decay) go(std::true_type{});
  else go(std::false_type{});
}

// --- Lion --------------------------------------------------------------------------------------

template <typename T>
void lion_typed(OpCall& c, double lr, double b1, double b2, double wd, double gs) {
  const int64_t n = c.t(0).numel();
  T* __restrict p = c.t(0).data<T>();
  const T* __restrict g = c.t(1).data<T>();
  T* __restrict m = c.t(2).data<T>();
  const T decay = T(1.0 - lr * wd), neg_lr = T(-lr), scale = T(gs);
  const T beta1 = T(b1), one_minus_b1 = T(1.0 - b1);
  const T beta2 = T(b2), one_minus_b2 = T(1.0 - b2);
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const T gi = g[i] * scale;
      const T mi = m[i];
      const T u = mi * beta1 + one_minus_b1 * gi;  // exp_avg.clone().mul_(b1).add(g, alpha=1-b1)
      const T s = u > T(0) ? T(1) : (u < T(0) ? T(-1) : u);  // sign_(): 0 stays 0, NaN stays NaN
      p[i] = p[i] * decay + neg_lr * s;             // p.mul_(1 - lr*wd); p.add_(update, alpha=-lr)
      m[i] = mi * beta2 + one_minus_b2 * gi;        // exp_avg.mul_(b2).add_(g, alpha=1-b2)
    }
  });
}

// --- sum of squares ----------------------------------------------------------------------------

// Fixed blocks (not per-thread chunks) so the summation order, hence the result, is the same
// whatever the thread count.
constexpr int64_t kSumBlock = 4096;

template <typename T>
double sum_squares_typed(const T* x, int64_t n) {
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial((size_t)blocks, 0.0);
  double* out = partial.data();
  parallel_for(blocks, 4, [=](int64_t b0, int64_t b1) {
    // Captured by value: with the pointer read through a captured reference GCC turned the
    // loads into gathers (5x slower).
    for (int64_t b = b0; b < b1; ++b) {
      const T* __restrict xb = x + b * kSumBlock;
      const int64_t len = std::min(n - b * kSumBlock, kSumBlock);
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < len; ++i) {
        const double v = (double)xb[i];
        acc += v * v;
      }
      out[b] = acc;
    }
  });
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace

void adamw_step(OpCall& c) {
  expect_scalars(c, 7, {"lr", "beta1", "beta2", "eps", "weight_decay", "step", "grad_scale"});
  check_tensors(c, {"param", "grad", "exp_avg", "exp_avg_sq"}, {0, 2, 3});
  expect_nonneg(c, 0, "lr");
  expect_range(c, 1, "beta1", 0, 1, true);
  expect_range(c, 2, "beta2", 0, 1, true);
  expect_nonneg(c, 3, "eps");
  expect_nonneg(c, 4, "weight_decay");
  TS_CHECK(c.s(5) >= 1, c.op, ": step must be >= 1 (the count of updates including this one), got ", c.s(5));
  int64_t step = c.si(5);
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    adamw_typed<T>(c, c.s(0), c.s(1), c.s(2), c.s(3), c.s(4), (double)step, c.s(6));
  });
}

void sgd_step(OpCall& c) {
  expect_scalars(c, 7, {"lr", "momentum", "dampening", "weight_decay", "nesterov", "first_step", "grad_scale"});
  const double mom = c.s(1);
  expect_nonneg(c, 0, "lr");
  expect_nonneg(c, 1, "momentum");
  expect_nonneg(c, 3, "weight_decay");
  expect_flag(c, 4, "nesterov");
  expect_flag(c, 5, "first_step");
  const bool nesterov = c.s(4) == 1;
  TS_CHECK(!nesterov || (mom > 0 && c.s(2) == 0), c.op, ": nesterov momentum requires momentum > 0 and dampening = 0, got momentum ",
           mom, " and dampening ", c.s(2));
  if (mom != 0) {
    TS_CHECK(c.tensors.size() == 3, c.op, ": with momentum ", mom, " expected 3 tensors (param, grad, momentum_buf), got ",
             c.tensors.size());
    check_tensors(c, {"param", "grad", "momentum_buf"}, {0, 2});
  } else {
    TS_CHECK(c.tensors.size() == 2 || c.tensors.size() == 3, c.op,
             ": expected 2 tensors (param, grad) or 3 (param, grad, momentum_buf), got ", c.tensors.size());
    if (c.tensors.size() == 3) check_tensors(c, {"param", "grad", "momentum_buf"}, {0, 2});
    else check_tensors(c, {"param", "grad"}, {0});
  }
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    sgd_dispatch<T>(c, c.s(0), mom, c.s(2), c.s(3), nesterov, c.s(5) == 1, c.s(6));
  });
}

void lion_step(OpCall& c) {
  expect_scalars(c, 5, {"lr", "beta1", "beta2", "weight_decay", "grad_scale"});
  check_tensors(c, {"param", "grad", "exp_avg"}, {0, 2});
  expect_nonneg(c, 0, "lr");
  expect_range(c, 1, "beta1", 0, 1, false);
  expect_range(c, 2, "beta2", 0, 1, false);
  expect_nonneg(c, 3, "weight_decay");
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    lion_typed<T>(c, c.s(0), c.s(1), c.s(2), c.s(3), c.s(4));
  });
}

void sum_squares(OpCall& c) {
  c.expect_count(2, 0);
  c.expect_float(0, "x");
  c.expect_contiguous(0, "x");
  const TensorRef &x = c.t(0), &out = c.t(1);
  TS_CHECK(out.numel() == 1, c.op, ": out must have one element, got ", out.describe());
  TS_CHECK(out.dtype == DType::F64 || out.dtype == x.dtype, c.op, ": out must be float64 or ", dtype_name(x.dtype),
           ", got ", out.describe());
  double total = 0;
  dispatch_float(x.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    total = sum_squares_typed<T>(x.data<T>(), x.numel());
  });
  if (out.dtype == DType::F64) *out.data<double>() = total;
  else *out.data<float>() = (float)total;
}

}  // namespace tessera::cpu
