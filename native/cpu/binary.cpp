#include "cpu/binary.h"

#include <cmath>

#include "cpu/strided.h"

namespace tessera::cpu {

namespace {

struct Add { template <typename T> static T f(T a, T b) { return a + b; } };
struct Sub { template <typename T> static T f(T a, T b) { return a - b; } };
struct Mul { template <typename T> static T f(T a, T b) { return a * b; } };
struct Div { template <typename T> static T f(T a, T b) { return a / b; } };
struct Pow { template <typename T> static T f(T a, T b) { return std::pow(a, b); } };
// NaN-propagating like torch.maximum/minimum.
struct Max { template <typename T> static T f(T a, T b) { return (a != a || a > b) ? a : b; } };
struct Min { template <typename T> static T f(T a, T b) { return (a != a || a < b) ? a : b; } };
struct Eq { template <typename T> static T f(T a, T b) { return a == b ? T(1) : T(0); } };
struct Ne { template <typename T> static T f(T a, T b) { return a != b ? T(1) : T(0); } };
struct Lt { template <typename T> static T f(T a, T b) { return a < b ? T(1) : T(0); } };
struct Le { template <typename T> static T f(T a, T b) { return a <= b ? T(1) : T(0); } };
struct Gt { template <typename T> static T f(T a, T b) { return a > b ? T(1) : T(0); } };
struct Ge { template <typename T> static T f(T a, T b) { return a >= b ? T(1) : T(0); } };

template <typename Op, typename T>
void binary_typed(const TensorRef& a, const TensorRef& b, const TensorRef& out) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  for_each_row<3>({&a, &b, &out}, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const T* x = pa + off[0];
    const T* y = pb + off[1];
    T* o = po + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = Op::f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const T yv = *y;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = Op::f(x[i], yv);
    } else if (st[0] == 0 && st[1] == 1 && st[2] == 1) {
      const T xv = *x;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = Op::f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[2]] = Op::f(x[i * st[0]], y[i * st[1]]);
    }
  });
}

template <typename Op, bool IntAllowed>
void binary(OpCall& c) {
  c.expect_count(3, 0);
  c.expect_same_shape(0, 2, "a", "out");
  c.expect_same_shape(1, 2, "b", "out");
  c.expect_same_dtype(0, 1, "a", "b");
  c.expect_same_dtype(0, 2, "a", "out");
  if (!IntAllowed) c.expect_float(0, "a");
  dispatch_all(c.t(0).dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); binary_typed<Op, T>(c.t(0), c.t(1), c.t(2)); });
}

}  // namespace

void add(OpCall& c) { binary<Add, true>(c); }
void sub(OpCall& c) { binary<Sub, true>(c); }
void mul(OpCall& c) { binary<Mul, true>(c); }
void div(OpCall& c) { binary<Div, false>(c); }
void pow(OpCall& c) { binary<Pow, false>(c); }
void maximum(OpCall& c) { binary<Max, true>(c); }
void minimum(OpCall& c) { binary<Min, true>(c); }
void eq(OpCall& c) { binary<Eq, true>(c); }
void ne(OpCall& c) { binary<Ne, true>(c); }
void lt(OpCall& c) { binary<Lt, true>(c); }
void le(OpCall& c) { binary<Le, true>(c); }
void gt(OpCall& c) { binary<Gt, true>(c); }
void ge(OpCall& c) { binary<Ge, true>(c); }

void where(OpCall& c) {
  c.expect_count(4, 0);
  c.expect_same_shape(0, 3, "cond", "out");
  c.expect_same_shape(1, 3, "a", "out");
  c.expect_same_shape(2, 3, "b", "out");
  c.expect_same_dtype(1, 2, "a", "b");
  c.expect_same_dtype(1, 3, "a", "out");
  const TensorRef &cond = c.t(0), &a = c.t(1), &b = c.t(2), &out = c.t(3);
  dispatch_all(cond.dtype, c.op, [&](auto tag_C) { using C = decltype(tag_C); dispatch_all(a.dtype, c.op, [&](auto tag_T) { using T = decltype(tag_T); 
    const C* pc = cond.data<C>();
    const T *pa = a.data<T>(), *pb = b.data<T>();
    T* po = out.data<T>();
    for_each_row<4>({&cond, &a, &b, &out}, [&](const int64_t* off, int64_t n, const int64_t* st) {
      for (int64_t i = 0; i < n; ++i)
        po[off[3] + i * st[3]] = pc[off[0] + i * st[0]] != C(0) ? pa[off[1] + i * st[1]] : pb[off[2] + i * st[2]];
    });
   }); });
}

}  // namespace tessera::cpu
