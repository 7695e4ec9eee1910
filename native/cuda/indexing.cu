// Indexing kernels on the GPU: gather / scatter_add along a dim, index_select / index_add with a
// 1-D index, embedding lookup and its backward. CPU twin: native/cpu/indexing.cpp (same argument
// conventions, the same shape/dtype/alias checks and the same error messages).
//
// Shape of the code:
//  * Every op checks counts, dtypes, ranks and shapes on the host, then validates every index
//    value on the device before anything is written: one pass over the index tensor (any strides)
//    finds the first bad position in row-major order (atomicMin of the linear position); the host
//    reads it back (one small synchronous copy) and, when there is one, reads the bad value and
//    throws the CPU's exact message naming the value, its position and the valid range.
//  * An output may not share storage with an index tensor (as the CPU).
//  * The main kernels are one thread per element of the iteration space (grid-stride), with
//    per-operand element offsets computed from a by-value strided layout (common.cuh), so
//    transposed, sliced and stride-0 expanded inputs work without copies, as on the CPU:
//      gather / index_select: out = x[.., index, ..] (index_select sees the 1-D index as a
//        stride-0 view of out's shape), a pure copy: results are bitwise equal to the CPU.
//      scatter_add / index_add: atomicAdd(out[.., index, ..], src) (index_add sees the index as a
//        stride-0 view of src's shape). float32 / float64 atomics: where several positions hit
//        one output element the order of the additions is not fixed, so float results can differ
//        from the CPU's ascending-order sums (and between runs) by rounding; with distinct target
//        elements they are bitwise equal. int32 is exact. (atomicAdd(double*) needs sm_60+; every
//        target architecture here is sm_80+.)
//      embedding: out[i, k] = weight[ids[i], k]: a copy, bitwise equal to the CPU.
//      embedding_backward: grad_weight is zeroed (cudaMemsetAsync) then every grad_out element is
//        atomically added to its row: not the CPU's deterministic counting-sort order, so repeated
//        ids give float sums equal up to rounding (tests use a tolerance there).
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "cuda/common.cuh"
#include "cuda/indexing.h"

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

std::string dim_of(const char* role, const TensorRef& t, int dim) {
  std::ostringstream os;
  os << "dim " << dim << " of " << role << " " << t.describe() << " (size " << t.shape[dim] << ")";
  return os.str();
}

// Layout over `shape` (nd dims) with one stride row per operand, filled by the caller.
template <int N>
DeviceLayout<N> layout_of(const int64_t* shape, int nd) {
  DeviceLayout<N> L;
  L.ndim = nd;
  for (int d = 0; d < nd; ++d) {
    L.shape[d] = shape[d];
    for (int k = 0; k < N; ++k) L.strides[k][d] = 0;
  }
  return L;
}

__global__ void validate_kernel(const int32_t* __restrict__ p, DeviceLayout<1> L, int64_t n, int64_t bound,
                                unsigned long long* first_bad) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[1];
    offsets_of<1>(L, i, off);
    const int32_t v = p[off[0]];
    if (v < 0 || (int64_t)v >= bound) atomicMin(first_bad, (unsigned long long)i);
  }
}

// Every value of `index` (int32, any strides) must lie in [0, bound). Throws, naming the first
// bad value in row-major order and its position, before the caller writes anything.
void check_indices(const OpCall& c, const TensorRef& index, const char* role, int64_t bound, const std::string& what) {
  const int64_t n = checked_numel(c, index, role);
  if (n == 0) return;
  const TensorRef* ts[1] = {&index};
  const DeviceLayout<1> L = make_layout<1>(ts);
  Scratch res(sizeof(unsigned long long), c.op);
  unsigned long long* r = res.as<unsigned long long>();
  check(cudaMemsetAsync(r, 0xff, sizeof(unsigned long long), 0), c.op);
  validate_kernel<<<blocks_for(n), kThreads>>>(index.data<int32_t>(), L, n, bound, r);
  check_launch(c.op);
  unsigned long long bad_u = 0;
  check(cudaMemcpy(&bad_u, r, sizeof(bad_u), cudaMemcpyDeviceToHost), c.op);
  if (bad_u == ~0ULL) return;
  const int64_t bad = (int64_t)bad_u;
  int64_t off = 0, lin = bad;
  for (int d = index.ndim - 1; d >= 0; --d) {
    off += (lin % index.shape[d]) * index.strides[d];
    lin /= index.shape[d];
  }
  int32_t v = 0;
  check(cudaMemcpy(&v, index.data<int32_t>() + off, sizeof(int32_t), cudaMemcpyDeviceToHost), c.op);
  fail(c.op, ": ", role, " value ", v, " at ", role, fmt_pos(index.shape, index.ndim, bad), " (", role, " ",
       index.describe(), ") is out of range for ", what, ": valid indices are [0, ", bound, ")",
       v < 0 ? " (negative indices are not supported)" : "", bound == 0 ? " (that range is empty)" : "");
}

template <typename F>
void dispatch_all(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else if (d == DType::I32) f(int32_t{});
  else fail(op, ": unknown dtype");
}

// Operands: 0 = x (stride 0 along dim), 1 = index, 2 = out.
template <typename T>
__global__ void gather_kernel(const T* __restrict__ x, const int32_t* __restrict__ index, T* __restrict__ out,
                              DeviceLayout<3> L, int64_t n, int64_t xs) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    offsets_of<3>(L, i, off);
    out[off[2]] = x[off[0] + (int64_t)index[off[1]] * xs];
  }
}

// Operands: 0 = index, 1 = src, 2 = out (stride 0 along dim).
template <typename T>
__global__ void scatter_kernel(const int32_t* __restrict__ index, const T* __restrict__ src, T* __restrict__ out,
                               DeviceLayout<3> L, int64_t n, int64_t os) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    offsets_of<3>(L, i, off);
    atomicAdd(out + off[2] + (int64_t)index[off[0]] * os, src[off[1]]);
  }
}

template <typename T>
__global__ void embedding_kernel(const T* __restrict__ w, const int32_t* __restrict__ ids, T* __restrict__ out,
                                 DeviceLayout<1> L, bool ids_flat, int64_t n, int64_t D, int64_t ws0, int64_t ws1) {
  const int64_t total = n * D;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = e / D, k = e - i * D;
    int64_t off[1] = {i};
    if (!ids_flat) offsets_of<1>(L, i, off);
    out[e] = w[(int64_t)ids[off[0]] * ws0 + k * ws1];
  }
}

// Operands: 0 = ids, 1 = grad_out (its leading ids.ndim dims).
template <typename T>
__global__ void embedding_backward_kernel(const int32_t* __restrict__ ids, const T* __restrict__ g,
                                          T* __restrict__ gw, DeviceLayout<2> L, int64_t n, int64_t D, int64_t gs) {
  const int64_t total = n * D;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = e / D, k = e - i * D;
    int64_t off[2];
    offsets_of<2>(L, i, off);
    atomicAdd(gw + (int64_t)ids[off[0]] * D + k, g[off[1] + k * gs]);
  }
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

  auto L = layout_of<3>(index.shape, index.ndim);
  for (int d = 0; d < index.ndim; ++d) {
    L.strides[0][d] = d == dim ? 0 : x.strides[d];
    L.strides[1][d] = index.strides[d];
    L.strides[2][d] = out.strides[d];
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_all(x.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<blocks_for(n), kThreads>>>(x.data<T>(), index.data<int32_t>(), out.data<T>(), L, n,
                                                  x.strides[dim]);
  });
  check_launch(c.op);
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

  auto L = layout_of<3>(index.shape, index.ndim);
  for (int d = 0; d < index.ndim; ++d) {
    L.strides[0][d] = index.strides[d];
    L.strides[1][d] = src.strides[d];
    L.strides[2][d] = d == dim ? 0 : out.strides[d];
  }
  const int64_t n = checked_numel(c, index, "index");
  if (n == 0) return;
  dispatch_all(out.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    scatter_kernel<T><<<blocks_for(n), kThreads>>>(index.data<int32_t>(), src.data<T>(), out.data<T>(), L, n,
                                                   out.strides[dim]);
  });
  check_launch(c.op);
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

  auto L = layout_of<3>(out.shape, out.ndim);  // gather with index as a stride-0 view of out's shape
  for (int d = 0; d < out.ndim; ++d) {
    L.strides[0][d] = d == dim ? 0 : x.strides[d];
    L.strides[1][d] = d == dim ? index.strides[0] : 0;
    L.strides[2][d] = out.strides[d];
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_all(x.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<blocks_for(n), kThreads>>>(x.data<T>(), index.data<int32_t>(), out.data<T>(), L, n,
                                                  x.strides[dim]);
  });
  check_launch(c.op);
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

  auto L = layout_of<3>(src.shape, src.ndim);  // scatter with index as a stride-0 view of src's shape
  for (int d = 0; d < src.ndim; ++d) {
    L.strides[0][d] = d == dim ? index.strides[0] : 0;
    L.strides[1][d] = src.strides[d];
    L.strides[2][d] = d == dim ? 0 : out.strides[d];
  }
  const int64_t n = src.numel();
  if (n == 0) return;
  dispatch_all(out.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    scatter_kernel<T><<<blocks_for(n), kThreads>>>(index.data<int32_t>(), src.data<T>(), out.data<T>(), L, n,
                                                   out.strides[dim]);
  });
  check_launch(c.op);
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
  const TensorRef* ts[1] = {&ids};
  const DeviceLayout<1> L = make_layout<1>(ts);
  const bool flat = ids.is_contiguous();
  dispatch_all(w.dtype, c.op, [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<blocks_for(n * D), kThreads>>>(w.data<T>(), ids.data<int32_t>(), out.data<T>(), L, flat, n,
                                                         D, w.strides[0], w.strides[1]);
  });
  check_launch(c.op);
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

  const int64_t n = checked_numel(c, ids, "ids");
  // grad_weight is contiguous: its V * D elements are one run from data().
  check(cudaMemsetAsync(gw.raw(), 0, (size_t)(V * D) * dtype_size(gw.dtype), 0), c.op);
  if (n == 0) return;
  auto L = layout_of<2>(ids.shape, ids.ndim);
  for (int d = 0; d < ids.ndim; ++d) {
    L.strides[0][d] = ids.strides[d];
    L.strides[1][d] = g.strides[d];
  }
  const int64_t gs = g.strides[ids.ndim];
  if (g.dtype == DType::F32)
    embedding_backward_kernel<float><<<blocks_for(n * D), kThreads>>>(ids.data<int32_t>(), g.data<float>(),
                                                                      gw.data<float>(), L, n, D, gs);
  else
    embedding_backward_kernel<double><<<blocks_for(n * D), kThreads>>>(ids.data<int32_t>(), g.data<double>(),
                                                                       gw.data<double>(), L, n, D, gs);
  check_launch(c.op);
}

}  // namespace tessera::cuda
