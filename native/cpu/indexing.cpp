// Indexing kernels (see indexing.h for the argument conventions).
//
// Shape of the code:
//  * Every op first checks counts, dtypes, ranks and shapes, then scans all index values
//    (check_indices: a parallel scan that only *finds* the first bad position; the throw happens
//    afterwards on the calling thread). Only then does anything get written.
//  * An output may not share storage with an index tensor: a write could otherwise change an
//    index after it was validated and turn into an out-of-bounds access.
//  * The walks use NdIter, an incremental row-major counter carrying several tensors' offsets,
//    so any strides (transposed, sliced, stride-0 expanded views) work without copies. index_select
//    and index_add reuse the gather / scatter loops with the 1-D index seen as a stride-0 view.
//  * Accumulation (scatter_add, index_add) is race-free and deterministic without atomics: the
//    threads split the positions of every dim *except* `dim`, and two positions that differ
//    outside `dim` always write different output lines. Each output element receives its
//    contributions in ascending order along `dim`, whatever the thread count.
//  * embedding_backward sorts positions by id (a counting sort) and lets each thread own a range
//    of grad_weight rows, so repeated ids are summed in position order, deterministically.
#include "cpu/indexing.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/strided.h"

namespace tessera::cpu {

namespace {

// Row-major walk over an nd-dim shape carrying K tensors' element offsets.
template <int K>
struct NdIter {
  int nd = 0;
  int64_t shape[kMaxDims] = {0};
  int64_t st[K][kMaxDims] = {{0}};
  int64_t idx[kMaxDims] = {0};
  int64_t off[K] = {0};

  // Position the counter at row-major position `lin` (every shape entry must be > 0).
  void seek(int64_t lin) {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = lin % shape[d];
      lin /= shape[d];
      for (int k = 0; k < K; ++k) off[k] += idx[d] * st[k][d];
    }
  }
  void next() {
    for (int d = nd - 1; d >= 0; --d) {
      for (int k = 0; k < K; ++k) off[k] += st[k][d];
      if (++idx[d] < shape[d]) return;
      for (int k = 0; k < K; ++k) off[k] -= st[k][d] * shape[d];
      idx[d] = 0;
    }
  }
};

std::string fmt_pos(const int64_t* shape, int nd, int64_t lin) {
  int64_t idx[kMaxDims];
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = lin % shape[d];
    lin /= shape[d];
  }
  std::ostringstream os;
  os << "[";
  for (int d = 0; d < nd; ++d) os << (d ? ", " : "") << idx[d];
  os << "]";
  return os.str();
}

// Element count with an overflow guard (stride-0 views may claim huge shapes).
int64_t checked_numel(const OpCall& c, const TensorRef& t, const char* role) {
  for (int d = 0; d < t.ndim; ++d)
    if (t.shape[d] == 0) return 0;
  unsigned __int128 n = 1;
  for (int d = 0; d < t.ndim; ++d) {
    n *= (unsigned __int128)t.shape[d];
    TS_CHECK(n <= ((unsigned __int128)1 << 62), c.op, ": ", role, " ", t.describe(), " has too many elements");
  }
  return (int64_t)n;
}

int get_dim(const OpCall& c, size_t i, int ndim) {
  double v = c.s(i);
  TS_CHECK(std::isfinite(v) && v == std::floor(v) && v >= 0 && v < ndim, c.op, ": dim must be an integer in [0, ",
           ndim, ") for ", ndim, "-dimensional tensors, got ", v);
  return (int)v;
}

void expect_no_alias(const OpCall& c, size_t out, size_t in, const char* out_name, const char* in_name) {
  TS_CHECK(c.t(out).storage != c.t(in).storage, c.op, ": ", out_name, " ", c.t(out).describe(),
           " must not share storage with ", in_name, " ", c.t(in).describe());
}

// Every value of `index` (int32, any strides) must lie in [0, bound). Throws, naming the first
// bad value in row-major order and its position, before the caller writes anything.
void check_indices(const OpCall& c, const TensorRef& index, const char* role, int64_t bound, const std::string& what) {
  const int64_t n = checked_numel(c, index, role);
  if (n == 0) return;
  const int32_t* p = index.data<int32_t>();
  NdIter<1> base;
  base.nd = index.ndim;
  for (int d = 0; d < index.ndim; ++d) {
    base.shape[d] = index.shape[d];
    base.st[0][d] = index.strides[d];
  }
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  // parallel_for hands each thread one contiguous range, so the minimum over the threads'
  // first bad positions is the first bad position overall. No exception inside the region.
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    NdIter<1> it = base;
    it.seek(b);
    for (int64_t i = b; i < e; ++i) {
      const int32_t v = p[it.off[0]];
      if (v < 0 || (int64_t)v >= bound) {
        int64_t cur = first_bad.load(std::memory_order_relaxed);
        while (i < cur && !first_bad.compare_exchange_weak(cur, i, std::memory_order_relaxed)) {
        }
        return;
      }
      it.next();
    }
  });
  const int64_t bad = first_bad.load();
  if (bad == std::numeric_limits<int64_t>::max()) return;
  NdIter<1> it = base;
  it.seek(bad);
  const int32_t v = p[it.off[0]];
  fail(c.op, ": ", role, " value ", v, " at ", role, fmt_pos(index.shape, index.ndim, bad), " (", role, " ",
       index.describe(), ") is out of range for ", what, ": valid indices are [0, ", bound, ")",
       v < 0 ? " (negative indices are not supported)" : "", bound == 0 ? " (that range is empty)" : "");
}

std::string dim_of(const char* role, const TensorRef& t, int dim) {
  std::ostringstream os;
  os << "dim " << dim << " of " << role << " " << t.describe() << " (size " << t.shape[dim] << ")";
  return os.str();
}

// out[it.off[2]] = x[it.off[0] + index[it.off[1]] * xs] over n positions.
template <typename T>
void gather_loop(const NdIter<3>& base, int64_t n, const T* x, int64_t xs, const int32_t* index, T* out) {
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    NdIter<3> it = base;
    it.seek(b);
    for (int64_t i = b; i < e; ++i) {
      out[it.off[2]] = x[it.off[0] + (int64_t)index[it.off[1]] * xs];
      it.next();
    }
  });
}

// For every position r of the non-`dim` dims (rest: offsets for index, src, out) and j along
// dim: out[r + index[r + j*is] * os] += src[r + j*ss]. Threads split r; see the file comment.
template <typename T>
void scatter_loop(const NdIter<3>& rest, int64_t R, int64_t L, int64_t is, int64_t ss, int64_t os,
                  const int32_t* index, const T* src, T* out) {
  if (R == 0 || L == 0) return;
  constexpr int64_t kTile = 512;  // walk a tile of rest positions once per j: cache-friendly
  const int64_t grain = std::max<int64_t>(1, 16384 / L);
  // When `dim` is src's innermost dim in memory, walk each line along dim instead (same order
  // of contributions per output element, so the same result bit for bit).
  const bool along_dim = rest.nd == 0 || ss < rest.st[1][rest.nd - 1];
  if (along_dim) {
    parallel_for(R, grain, [&](int64_t b, int64_t e) {
      NdIter<3> it = rest;
      it.seek(b);
      for (int64_t r = b; r < e; ++r) {
        const int32_t* pi = index + it.off[0];
        const T* ps = src + it.off[1];
        T* po = out + it.off[2];
        for (int64_t j = 0; j < L; ++j) po[(int64_t)pi[j * is] * os] += ps[j * ss];
        it.next();
      }
    });
    return;
  }
  parallel_for(R, grain, [&](int64_t b, int64_t e) {
    NdIter<3> it = rest;
    for (int64_t t0 = b; t0 < e; t0 += kTile) {
      const int64_t t1 = std::min(e, t0 + kTile);
      for (int64_t j = 0; j < L; ++j) {
        it.seek(t0);
        for (int64_t r = t0; r < t1; ++r) {
          out[it.off[2] + (int64_t)index[it.off[0] + j * is] * os] += src[it.off[1] + j * ss];
          it.next();
        }
      }
    }
  });
}

}  // namespace

void gather(OpCall& c) {
  c.expect_count(3, 1);
  c.expect_dtype(1, DType::I32, "index");
  const TensorRef &x = c.t(0), &index = c.t(1), &out = c.t(2);
  TS_CHECK(x.ndim >= 1, c.op, ": x must have at least one dimension, got ", x.describe());
  TS_CHECK(index.ndim == x.ndim, c.op, ": index must have as many dimensions as x, got index ", index.describe(),
           " and x ", x.describe());
  const int dim = get_dim(c, 0, x.ndim);
  for (int d = 0; d < x.ndim; ++d)
    TS_CHECK(d == dim || index.shape[d] <= x.shape[d], c.op, ": index ", index.describe(), " is larger than x ",
             x.describe(), " in dim ", d, " (index.size(d) <= x.size(d) is required for every d != dim ", dim, ")");
  c.expect_same_dtype(0, 2, "x", "out");
  c.expect_same_shape(1, 2, "index", "out");
  c.expect_contiguous(2, "out");
  expect_no_alias(c, 2, 1, "out", "index");
  check_indices(c, index, "index", x.shape[dim], dim_of("x", x, dim));

  NdIter<3> it;
  it.nd = index.ndim;
  for (int d = 0; d < index.ndim; ++d) {
    it.shape[d] = index.shape[d];
    it.st[0][d] = d == dim ? 0 : x.strides[d];
    it.st[1][d] = index.strides[d];
    it.st[2][d] = out.strides[d];
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_all(x.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    gather_loop<T>(it, n, x.data<T>(), x.strides[dim], index.data<int32_t>(), out.data<T>());
  });
}

void scatter_add(OpCall& c) {
  c.expect_count(3, 1);
  c.expect_dtype(0, DType::I32, "index");
  const TensorRef &index = c.t(0), &src = c.t(1), &out = c.t(2);
  c.expect_same_dtype(1, 2, "src", "out");
  TS_CHECK(out.ndim >= 1, c.op, ": out must have at least one dimension, got ", out.describe());
  TS_CHECK(index.ndim == out.ndim && src.ndim == out.ndim, c.op,
           ": index, src and out must have the same number of dimensions, got index ", index.describe(), ", src ",
           src.describe(), " and out ", out.describe());
  const int dim = get_dim(c, 0, out.ndim);
  for (int d = 0; d < out.ndim; ++d) {
    TS_CHECK(index.shape[d] <= src.shape[d], c.op, ": index ", index.describe(), " is larger than src ", src.describe(),
             " in dim ", d, " (index.size(d) <= src.size(d) is required for every d)");
    TS_CHECK(d == dim || index.shape[d] <= out.shape[d], c.op, ": index ", index.describe(), " is larger than out ",
             out.describe(), " in dim ", d, " (index.size(d) <= out.size(d) is required for every d != dim ", dim, ")");
  }
  c.expect_contiguous(2, "out");
  expect_no_alias(c, 2, 0, "out", "index");
  check_indices(c, index, "index", out.shape[dim], dim_of("out", out, dim));

  NdIter<3> rest;
  int64_t R = 1;
  for (int d = 0; d < out.ndim; ++d) {
    if (d == dim) continue;
    const int k = rest.nd++;
    rest.shape[k] = index.shape[d];
    rest.st[0][k] = index.strides[d];
    rest.st[1][k] = src.strides[d];
    rest.st[2][k] = out.strides[d];
    R *= index.shape[d];  // <= out.shape[d], and out is contiguous inside its storage
  }
  dispatch_all(out.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    scatter_loop<T>(rest, R, index.shape[dim], index.strides[dim], src.strides[dim], out.strides[dim],
                    index.data<int32_t>(), src.data<T>(), out.data<T>());
  });
}

void index_select(OpCall& c) {
  c.expect_count(3, 1);
  c.expect_dtype(1, DType::I32, "index");
  c.expect_ndim(1, 1, "index");
  const TensorRef &x = c.t(0), &index = c.t(1), &out = c.t(2);
  TS_CHECK(x.ndim >= 1, c.op, ": x must have at least one dimension, got ", x.describe());
  const int dim = get_dim(c, 0, x.ndim);
  c.expect_same_dtype(0, 2, "x", "out");
  bool shape_ok = out.ndim == x.ndim;
  for (int d = 0; shape_ok && d < x.ndim; ++d) shape_ok = out.shape[d] == (d == dim ? index.shape[0] : x.shape[d]);
  TS_CHECK(shape_ok, c.op, ": out must be x ", x.describe(), " with size(", dim, ") = ", index.shape[0],
           " (the length of index), got ", out.describe());
  c.expect_contiguous(2, "out");
  expect_no_alias(c, 2, 1, "out", "index");
  check_indices(c, index, "index", x.shape[dim], dim_of("x", x, dim));

  // Fast path: x's dims after `dim` are one contiguous block (the common [.., n, row] case):
  // copy whole blocks with memcpy, one per (outer position, selected index).
  int64_t inner = 1;
  bool inner_contiguous = true;
  for (int d = x.ndim - 1; d > dim; --d) {
    if (x.shape[d] != 1 && x.strides[d] != inner) inner_contiguous = false;
    inner *= x.shape[d];
  }
  if (inner_contiguous && inner >= 8) {
    const int64_t k = index.shape[0];
    NdIter<1> outer;
    outer.nd = dim;
    int64_t n_outer = 1;
    for (int d = 0; d < dim; ++d) {
      outer.shape[d] = x.shape[d];
      outer.st[0][d] = x.strides[d];
      n_outer *= x.shape[d];
    }
    const int64_t rows = n_outer * k;
    if (rows == 0) return;
    const int32_t* pi = index.data<int32_t>();
    const int64_t is = index.strides[0], xs = x.strides[dim];
    const size_t bytes = (size_t)inner * dtype_size(x.dtype);
    const char* px = static_cast<const char*>(x.raw());
    char* po = static_cast<char*>(out.raw());
    const int64_t esize = (int64_t)dtype_size(x.dtype);
    parallel_for(rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t b, int64_t e) {
      NdIter<1> it = outer;
      for (int64_t r = b; r < e; ++r) {
        const int64_t o = r / k, j = r % k;
        if (r == b || j == 0) it.seek(o);
        const int64_t src = it.off[0] + (int64_t)pi[j * is] * xs;
        std::memcpy(po + r * (int64_t)bytes, px + src * esize, bytes);
      }
    });
    return;
  }

  NdIter<3> it;  // gather with index seen as a stride-0 view of out's shape
  it.nd = out.ndim;
  for (int d = 0; d < out.ndim; ++d) {
    it.shape[d] = out.shape[d];
    it.st[0][d] = d == dim ? 0 : x.strides[d];
    it.st[1][d] = d == dim ? index.strides[0] : 0;
    it.st[2][d] = out.strides[d];
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_all(x.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    gather_loop<T>(it, n, x.data<T>(), x.strides[dim], index.data<int32_t>(), out.data<T>());
  });
}

void index_add(OpCall& c) {
  c.expect_count(3, 1);
  c.expect_dtype(0, DType::I32, "index");
  c.expect_ndim(0, 1, "index");
  const TensorRef &index = c.t(0), &src = c.t(1), &out = c.t(2);
  c.expect_same_dtype(1, 2, "src", "out");
  TS_CHECK(out.ndim >= 1, c.op, ": out must have at least one dimension, got ", out.describe());
  const int dim = get_dim(c, 0, out.ndim);
  bool shape_ok = src.ndim == out.ndim;
  for (int d = 0; shape_ok && d < out.ndim; ++d) shape_ok = src.shape[d] == (d == dim ? index.shape[0] : out.shape[d]);
  TS_CHECK(shape_ok, c.op, ": src must be out ", out.describe(), " with size(", dim, ") = ", index.shape[0],
           " (the length of index), got ", src.describe());
  c.expect_contiguous(2, "out");
  expect_no_alias(c, 2, 0, "out", "index");
  check_indices(c, index, "index", out.shape[dim], dim_of("out", out, dim));

  NdIter<3> rest;  // scatter with index seen as a stride-0 view of src's shape
  int64_t R = 1;
  for (int d = 0; d < out.ndim; ++d) {
    if (d == dim) continue;
    const int k = rest.nd++;
    rest.shape[k] = src.shape[d];
    rest.st[0][k] = 0;
    rest.st[1][k] = src.strides[d];
    rest.st[2][k] = out.strides[d];
    R *= src.shape[d];  // == out.shape[d]
  }
  dispatch_all(out.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    scatter_loop<T>(rest, R, src.shape[dim], index.strides[0], src.strides[dim], out.strides[dim],
                    index.data<int32_t>(), src.data<T>(), out.data<T>());
  });
}

void embedding(OpCall& c) {
  c.expect_count(3, 0);
  c.expect_ndim(0, 2, "weight");
  c.expect_dtype(1, DType::I32, "ids");
  const TensorRef &w = c.t(0), &ids = c.t(1), &out = c.t(2);
  TS_CHECK(ids.ndim < kMaxDims, c.op, ": ids may have at most ", kMaxDims - 1, " dimensions, got ", ids.describe());
  c.expect_same_dtype(0, 2, "weight", "out");
  const int64_t V = w.shape[0], D = w.shape[1];
  bool shape_ok = out.ndim == ids.ndim + 1 && out.shape[ids.ndim] == D;
  for (int d = 0; shape_ok && d < ids.ndim; ++d) shape_ok = out.shape[d] == ids.shape[d];
  TS_CHECK(shape_ok, c.op, ": out must have shape [...ids.shape, ", D, "] for ids ", ids.describe(), " and weight ",
           w.describe(), ", got ", out.describe());
  c.expect_contiguous(2, "out");
  expect_no_alias(c, 2, 1, "out", "ids");
  std::ostringstream what;
  what << "weight " << w.describe() << " with " << V << " rows";
  check_indices(c, ids, "ids", V, what.str());

  const int64_t n = checked_numel(c, ids, "ids");
  if (n == 0 || D == 0) return;
  NdIter<1> base;
  base.nd = ids.ndim;
  for (int d = 0; d < ids.ndim; ++d) {
    base.shape[d] = ids.shape[d];
    base.st[0][d] = ids.strides[d];
  }
  const int32_t* pid = ids.data<int32_t>();
  const int64_t ws0 = w.strides[0], ws1 = w.strides[1];
  dispatch_all(w.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    const T* pw = w.data<T>();
    T* po = out.data<T>();
    parallel_for(n, std::max<int64_t>(1, 16384 / D), [&](int64_t b, int64_t e) {
      NdIter<1> it = base;
      it.seek(b);
      for (int64_t i = b; i < e; ++i) {
        const T* row = pw + (int64_t)pid[it.off[0]] * ws0;
        T* o = po + i * D;
        if (ws1 == 1) std::memcpy(o, row, (size_t)D * sizeof(T));
        else
          for (int64_t k = 0; k < D; ++k) o[k] = row[k * ws1];
        it.next();
      }
    });
  });
}

void embedding_backward(OpCall& c) {
  c.expect_count(3, 0);
  c.expect_dtype(0, DType::I32, "ids");
  c.expect_float(1, "grad_out");
  c.expect_same_dtype(1, 2, "grad_out", "grad_weight");
  c.expect_ndim(2, 2, "grad_weight");
  c.expect_contiguous(2, "grad_weight");
  const TensorRef &ids = c.t(0), &g = c.t(1), &gw = c.t(2);
  const int64_t V = gw.shape[0], D = gw.shape[1];
  bool shape_ok = g.ndim == ids.ndim + 1 && g.shape[ids.ndim] == D;
  for (int d = 0; shape_ok && d < ids.ndim; ++d) shape_ok = g.shape[d] == ids.shape[d];
  TS_CHECK(shape_ok, c.op, ": grad_out must have shape [...ids.shape, ", D, "] for ids ", ids.describe(),
           " and grad_weight ", gw.describe(), ", got ", g.describe());
  expect_no_alias(c, 2, 0, "grad_weight", "ids");
  std::ostringstream what;
  what << "grad_weight " << gw.describe() << " with " << V << " rows";
  check_indices(c, ids, "ids", V, what.str());
  if (V == 0 || D == 0) return;

  // Counting sort of positions by id: start[v]..start[v+1] index `goff`, the offsets of the
  // grad_out rows for id v, in ascending position order. Serial and O(n + V).
  const int64_t n = checked_numel(c, ids, "ids");
  std::vector<int64_t> start((size_t)V + 1, 0);
  std::vector<int64_t> goff((size_t)n);
  NdIter<2> base;
  base.nd = ids.ndim;
  for (int d = 0; d < ids.ndim; ++d) {
    base.shape[d] = ids.shape[d];
    base.st[0][d] = ids.strides[d];
    base.st[1][d] = g.strides[d];
  }
  const int32_t* pid = ids.data<int32_t>();
  if (n > 0) {
    NdIter<2> it = base;
    it.seek(0);
    for (int64_t i = 0; i < n; ++i, it.next()) ++start[(size_t)pid[it.off[0]] + 1];
    for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    it.seek(0);
    for (int64_t i = 0; i < n; ++i, it.next()) goff[(size_t)fill[(size_t)pid[it.off[0]]]++] = it.off[1];
  }

  const int64_t gs = g.strides[ids.ndim];
  const double work = (double)(n + V) * (double)D;
  const int64_t grain = std::max<int64_t>(1, (int64_t)((double)V * 16384.0 / std::max(1.0, work)));
  dispatch_float(g.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    const T* pg = g.data<T>();
    T* po = gw.data<T>();
    parallel_for(V, grain, [&](int64_t b, int64_t e) {
      for (int64_t v = b; v < e; ++v) {
        T* o = po + v * D;
        std::fill(o, o + D, T(0));
        for (int64_t k = start[v]; k < start[v + 1]; ++k) {
          const T* row = pg + goff[k];
          if (gs == 1) {
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) o[d] += row[d];
          } else {
            for (int64_t d = 0; d < D; ++d) o[d] += row[d * gs];
          }
        }
      }
    });
  });
}

}  // namespace tessera::cpu
