#include "cpu/copy.h"

#include <cmath>
#include <cstring>

#include "core/philox.h"
#include "cpu/strided.h"

namespace tessera::cpu {

namespace {

// Transposed copies (x.T.contiguous(), moving a dim last for softmax, ...): walking dst row by
// row reads src one element per cache line. When some other dim of src is the unit-stride one,
// copy in 32x32 tiles instead, so the 32 src lines a tile touches stay in L1 while they are used.
template <typename S, typename D>
bool copy_tiled(const TensorRef& src, const TensorRef& dst) {
  Layout<2> L = coalesce<2>({&src, &dst});
  const int inner = L.ndim - 1;
  if (L.ndim < 2 || L.strides[1][inner] != 1 || L.strides[0][inner] == 1) return false;
  int k = -1;
  for (int d = 0; d < inner; ++d)
    if (L.strides[0][d] == 1) k = d;
  if (k < 0) return false;
  const int64_t R = L.shape[k], C = L.shape[inner];
  if (R < 16 || C < 16) return false;
  constexpr int64_t T = 32;
  const int64_t tr = (R + T - 1) / T, tc = (C + T - 1) / T;
  int64_t outer = 1;
  for (int d = 0; d < inner; ++d)
    if (d != k) outer *= L.shape[d];
  const S* s = src.data<S>();
  D* dd = dst.data<D>();
  const int64_t s_col = L.strides[0][inner], d_row = L.strides[1][k];
  parallel_for(outer * tr * tc, 4, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      int64_t o = w / (tr * tc), t = w % (tr * tc);
      int64_t r0 = (t / tc) * T, c0 = (t % tc) * T;
      int64_t so = 0, doff = 0, rem = o;
      for (int d = inner - 1; d >= 0; --d) {
        if (d == k) continue;
        int64_t i = rem % L.shape[d];
        rem /= L.shape[d];
        so += i * L.strides[0][d];
        doff += i * L.strides[1][d];
      }
      const int64_t r1 = std::min(R, r0 + T), c1 = std::min(C, c0 + T);
      for (int64_t r = r0; r < r1; ++r) {
        const S* sp = s + so + r;
        D* dp = dd + doff + r * d_row;
        for (int64_t c = c0; c < c1; ++c) dp[c] = (D)sp[c * s_col];
      }
    }
  });
  return true;
}

template <typename S, typename D>
void copy_typed(const TensorRef& src, const TensorRef& dst) {
  if (copy_tiled<S, D>(src, dst)) return;
  const S* s = src.data<S>();
  D* d = dst.data<D>();
  for_each_row<2>({&src, &dst}, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const S* sp = s + off[0];
    D* dp = d + off[1];
    if (st[0] == 1 && st[1] == 1) {
      if constexpr (std::is_same_v<S, D>) {
        std::memcpy(dp, sp, n * sizeof(S));
      } else {
        for (int64_t i = 0; i < n; ++i) dp[i] = (D)sp[i];
      }
    } else {
      for (int64_t i = 0; i < n; ++i) dp[i * st[1]] = (D)sp[i * st[0]];
    }
  });
}
}  // namespace

void copy(OpCall& c) {
  c.expect_count(2, 0);
  c.expect_same_shape(0, 1, "src", "dst");
  const TensorRef &src = c.t(0), &dst = c.t(1);
  dispatch_all(src.dtype, c.op, [&](auto tag_S) { using S = decltype(tag_S); dispatch_all(dst.dtype, c.op, [&](auto tag_D) { using D = decltype(tag_D); copy_typed<S, D>(src, dst); }); });
}

void fill(OpCall& c) {
  c.expect_count(1, 1);
  const TensorRef& out = c.t(0);
  double v = c.s(0);
  if (out.dtype == DType::I32)
    TS_CHECK(std::isfinite(v) && v >= -2147483648.0 && v <= 2147483647.0, c.op, ": value ", v,
             " does not fit in int32");
  dispatch_all(out.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    T* p = out.data<T>();
    T val = (T)v;
    for_each_row<1>({&out}, [&](const int64_t* off, int64_t n, const int64_t* st) {
      for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = val;
    });
   });
}

void arange(OpCall& c) {
  c.expect_count(1, 2);
  c.expect_ndim(0, 1, "out");
  const TensorRef& out = c.t(0);
  double start = c.s(0), step = c.s(1);
  dispatch_all(out.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    T* p = out.data<T>();
    const int64_t n = out.shape[0], st = out.strides[0];
    for (int64_t i = 0; i < n; ++i) p[i * st] = (T)(start + (double)i * step);
   });
}

namespace {
uint64_t seed_arg(const OpCall& c, size_t i) {
  double v = c.s(i);
  TS_CHECK(std::isfinite(v) && v >= 0 && v < 9007199254740992.0 && v == std::floor(v), c.op,
           ": seed/offset must be a non-negative integer below 2^53, got ", v);
  return (uint64_t)v;
}
}  // namespace

namespace {
// The draw loops. Their arithmetic (native/core/philox.h) is all explicit fma, so they are
// compiled twice: with FMA instructions, picked at run time where the CPU has them, and without
// (where each fma is a libm call). Both round alike, so the streams do not depend on the build,
// the CPU or the device.
template <typename T>
inline void rand_range(T* p, int64_t b, int64_t e, uint64_t seed, uint64_t offset, double lo, double hi) {
  for (int64_t i = b; i < e; ++i) {
    Philox4 r = philox4x32(seed, offset + (uint64_t)i);
    double u = std::is_same_v<T, float> ? (double)uniform_f32(r.v[0]) : uniform_f64(r.v[0], r.v[1]);
    T x = (T)scale_shift(u, hi - lo, lo);
    p[i] = x < (T)hi || lo == hi ? x : (T)lo;  // rounding must not reach `high`
  }
}
template <typename T>
inline void randn_range(T* p, int64_t b, int64_t e, uint64_t seed, uint64_t offset, double mean, double std) {
  for (int64_t i = b; i < e; ++i) p[i] = (T)scale_shift(normal_from(philox4x32(seed, offset + (uint64_t)i)), std, mean);
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__FMA__)
#define TS_FMA_CLONES 1
template <typename T>
__attribute__((target("fma"))) void rand_range_fma(T* p, int64_t b, int64_t e, uint64_t seed, uint64_t offset, double lo, double hi) {
  rand_range(p, b, e, seed, offset, lo, hi);
}
template <typename T>
__attribute__((target("fma"))) void randn_range_fma(T* p, int64_t b, int64_t e, uint64_t seed, uint64_t offset, double mean, double std) {
  randn_range(p, b, e, seed, offset, mean, std);
}
bool have_fma() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") != 0;
  }();
  return yes;
}
#endif
}  // namespace

void rand(OpCall& c) {
  c.expect_count(1, 4);
  c.expect_contiguous(0, "out");
  const TensorRef& out = c.t(0);
  uint64_t seed = seed_arg(c, 0), offset = seed_arg(c, 1);
  double lo = c.s(2), hi = c.s(3);
  TS_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, c.op, ": need finite low <= high, got ", lo, ", ", hi);
  dispatch_float(out.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    T* p = out.data<T>();
    parallel_for(out.numel(), 4096, [&](int64_t b, int64_t e) {
#ifdef TS_FMA_CLONES
      if (have_fma()) return rand_range_fma(p, b, e, seed, offset, lo, hi);
#endif
      rand_range(p, b, e, seed, offset, lo, hi);
    });
   });
}

void randn(OpCall& c) {
  c.expect_count(1, 4);
  c.expect_contiguous(0, "out");
  const TensorRef& out = c.t(0);
  uint64_t seed = seed_arg(c, 0), offset = seed_arg(c, 1);
  double mean = c.s(2), std = c.s(3);
  TS_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0, c.op,
           ": need finite mean and std >= 0, got ", mean, ", ", std);
  dispatch_float(out.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    T* p = out.data<T>();
    parallel_for(out.numel(), 2048, [&](int64_t b, int64_t e) {
#ifdef TS_FMA_CLONES
      if (have_fma()) return randn_range_fma(p, b, e, seed, offset, mean, std);
#endif
      randn_range(p, b, e, seed, offset, mean, std);
    });
   });
}

}  // namespace tessera::cpu
