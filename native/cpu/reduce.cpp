#include "cpu/reduce.h"

#include <cmath>
#include <limits>
#include <vector>

#include "cpu/strided.h"

namespace tessera::cpu {

namespace {

enum class Kind { Sum, Mean, Max, Min, LogSumExp, Var };

struct Dims {
  int64_t outer, r, inner;
};

Dims check_args(OpCall& c, size_t nscalars) {
  c.expect_count(2, nscalars);
  c.expect_ndim(0, 3, "x (as [outer, R, inner])");
  c.expect_contiguous(0, "x");
  c.expect_contiguous(1, "out");
  c.expect_same_dtype(0, 1, "x", "out");
  c.expect_float(0, "x");
  const TensorRef& x = c.t(0);
  Dims d{x.shape[0], x.shape[1], x.shape[2]};
  c.expect_numel(1, d.outer * d.inner, "out");
  return d;
}

// Reduce one strided column of R values starting at p (stride s) for the given kind.
template <Kind K, typename T>
double reduce_column(const T* p, int64_t r, int64_t s, double correction) {
  if constexpr (K == Kind::Sum || K == Kind::Mean) {
    double acc = 0;
    if (s == 1) {
      // simd reduction: lets the compiler keep several partial sums in vector lanes (the
      // summation order changes, which is fine in double).
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < r; ++i) acc += (double)p[i];
    } else {
      for (int64_t i = 0; i < r; ++i) acc += (double)p[i * s];
    }
    return K == Kind::Mean ? acc / (double)r : acc;
  } else if constexpr (K == Kind::Max || K == Kind::Min) {
    double best = K == Kind::Max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    if (s == 1) {
      // Branch-free pass (vectorises); NaN is detected by a separate flag so it still propagates.
      T m = -std::numeric_limits<T>::infinity();  // max of x (Max) or of -x (Min)
      int nans = 0;
#pragma omp simd reduction(max : m) reduction(+ : nans)
      for (int64_t i = 0; i < r; ++i) {
        T v = K == Kind::Max ? p[i] : -p[i];
        nans += v != v ? 1 : 0;
        m = v > m ? v : m;
      }
      if (nans) return std::numeric_limits<double>::quiet_NaN();
      return K == Kind::Max ? (double)m : -(double)m;
    }
    for (int64_t i = 0; i < r; ++i) {
      double v = (double)p[i * s];
      if (v != v) return v;
      if (K == Kind::Max ? v > best : v < best) best = v;
    }
    return best;
  } else if constexpr (K == Kind::LogSumExp) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < r; ++i) {
      double v = (double)p[i * s];
      if (v != v) return v;
      if (v > m) m = v;
    }
    if (std::isinf(m)) return m;  // all -inf gives -inf; any +inf gives +inf
    double acc = 0;
    for (int64_t i = 0; i < r; ++i) acc += std::exp((double)p[i * s] - m);
    return m + std::log(acc);
  } else {  // Var, two passes for accuracy
    double mean = 0;
    for (int64_t i = 0; i < r; ++i) mean += (double)p[i * s];
    mean /= (double)r;
    double acc = 0;
    for (int64_t i = 0; i < r; ++i) {
      double d = (double)p[i * s] - mean;
      acc += d * d;
    }
    double denom = (double)r - correction;
    return denom > 0 ? acc / denom : std::numeric_limits<double>::quiet_NaN();
  }
}

template <Kind K, typename T>
void reduce_typed(const T* x, T* out, Dims d, double correction) {
  if (d.r == 0) {
    double empty = K == Kind::Sum ? 0.0
                 : K == Kind::LogSumExp ? -std::numeric_limits<double>::infinity()
                                        : std::numeric_limits<double>::quiet_NaN();
    for (int64_t i = 0; i < d.outer * d.inner; ++i) out[i] = (T)empty;
    return;
  }
  if (d.inner == 1) {
    parallel_for(d.outer, std::max<int64_t>(1, 16384 / d.r), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) out[o] = (T)reduce_column<K, T>(x + o * d.r, d.r, 1, correction);
    });
    return;
  }
  if constexpr (K == Kind::Sum || K == Kind::Mean) {
    // Vectorised over inner: accumulate row after row of R into a double buffer.
    const int64_t block = 256;
    const int64_t nblocks = (d.inner + block - 1) / block;
    parallel_for(d.outer * nblocks, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, d.r)), [&](int64_t w0, int64_t w1) {
      double acc[block];
      for (int64_t w = w0; w < w1; ++w) {
        int64_t o = w / nblocks, b0 = (w % nblocks) * block, bn = std::min(block, d.inner - b0);
        for (int64_t j = 0; j < bn; ++j) acc[j] = 0;
        const T* base = x + o * d.r * d.inner + b0;
        for (int64_t i = 0; i < d.r; ++i) {
          const T* row = base + i * d.inner;
#pragma omp simd
          for (int64_t j = 0; j < bn; ++j) acc[j] += (double)row[j];
        }
        T* dst = out + o * d.inner + b0;
        const double scale = K == Kind::Mean ? 1.0 / (double)d.r : 1.0;
        for (int64_t j = 0; j < bn; ++j) dst[j] = (T)(acc[j] * scale);
      }
    });
  } else {
    parallel_for(d.outer * d.inner, std::max<int64_t>(1, 16384 / d.r), [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w) {
        int64_t o = w / d.inner, j = w % d.inner;
        out[w] = (T)reduce_column<K, T>(x + o * d.r * d.inner + j, d.r, d.inner, correction);
      }
    });
  }
}

template <Kind K>
void reduce(OpCall& c) {
  Dims d = check_args(c, K == Kind::Var ? 1 : 0);
  double correction = K == Kind::Var ? c.s(0) : 0.0;
  dispatch_float(c.t(0).dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    reduce_typed<K, T>(c.t(0).data<T>(), c.t(1).data<T>(), d, correction);
  });
}

}  // namespace

void sum(OpCall& c) { reduce<Kind::Sum>(c); }
void mean(OpCall& c) { reduce<Kind::Mean>(c); }
void amax(OpCall& c) { reduce<Kind::Max>(c); }
void amin(OpCall& c) { reduce<Kind::Min>(c); }
void logsumexp(OpCall& c) { reduce<Kind::LogSumExp>(c); }
void var(OpCall& c) { reduce<Kind::Var>(c); }

}  // namespace tessera::cpu
