// Strided iteration shared by the elementwise kernels. Several tensors of one shape (inputs
// already broadcast by stride-0 views, outputs) are walked together. Dimensions that are
// contiguous in *all* of them are merged first, so the common case, contiguous tensors of any
// rank, becomes one flat loop the compiler vectorises, and a transposed or broadcast operand
// costs a short outer loop over rows instead of per-element index arithmetic.
#pragma once
#include <array>
#include <cstdint>

#include "core/error.h"
#include "core/tensor_ref.h"
#include "cpu/parallel.h"

namespace tessera::cpu {

template <int N>
struct Layout {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
};

// Drop size-1 dims and merge dims that are contiguous in every operand.
template <int N>
Layout<N> coalesce(const std::array<const TensorRef*, N>& ts) {
  const TensorRef& ref = *ts[0];
  Layout<N> L;
  for (int d = 0; d < ref.ndim; ++d) {
    if (ref.shape[d] == 1) continue;
    L.shape[L.ndim] = ref.shape[d];
    for (int k = 0; k < N; ++k) L.strides[k][L.ndim] = ts[k]->strides[d];
    ++L.ndim;
  }
  if (L.ndim == 0) {  // a scalar or all-ones shape: one element
    L.ndim = 1;
    L.shape[0] = 1;
    for (int k = 0; k < N; ++k) L.strides[k][0] = 1;
    return L;
  }
  Layout<N> M;
  M.ndim = 1;
  M.shape[0] = L.shape[0];
  for (int k = 0; k < N; ++k) M.strides[k][0] = L.strides[k][0];
  for (int d = 1; d < L.ndim; ++d) {
    bool mergeable = true;
    for (int k = 0; k < N; ++k)
      if (M.strides[k][M.ndim - 1] != L.strides[k][d] * L.shape[d]) mergeable = false;
    if (mergeable) {
      M.shape[M.ndim - 1] *= L.shape[d];
      for (int k = 0; k < N; ++k) M.strides[k][M.ndim - 1] = L.strides[k][d];
    } else {
      M.shape[M.ndim] = L.shape[d];
      for (int k = 0; k < N; ++k) M.strides[k][M.ndim] = L.strides[k][d];
      ++M.ndim;
    }
  }
  return M;
}

// Calls row(base_offsets[N], count, inner_strides[N]) for every innermost row (or piece of one),
// spread over threads. Offsets are in elements relative to each tensor's data() pointer.
//
// Rows longer than kRowPiece elements are cut into pieces of kRowPiece: contiguous tensors
// coalesce to a single row, which otherwise ran on one thread whatever the thread count (a
// [4096, 512] gelu took as long with 2 threads as with 1). Elementwise results do not depend on
// the cut. Each thread still gets at least ~32K elements, as before.
constexpr int64_t kRowPiece = 16384;

template <int N, typename Row>
void for_each_row(const std::array<const TensorRef*, N>& ts, Row&& row) {
  Layout<N> L = coalesce<N>(ts);
  const int inner = L.ndim - 1;
  const int64_t n_inner = L.shape[inner];
  int64_t rows = 1;
  for (int d = 0; d < inner; ++d) rows *= L.shape[d];
  int64_t inner_strides[N];
  for (int k = 0; k < N; ++k) inner_strides[k] = L.strides[k][inner];
  const int64_t piece = n_inner > 2 * kRowPiece ? kRowPiece : std::max<int64_t>(1, n_inner);
  const int64_t pieces = (n_inner + piece - 1) / piece;
  const int64_t grain = std::max<int64_t>(1, 32768 / piece);
  parallel_for(rows * pieces, grain, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t r = w / pieces, j0 = (w % pieces) * piece;
      int64_t offs[N] = {0};
      int64_t rem = r;
      for (int d = inner - 1; d >= 0; --d) {
        int64_t i = rem % L.shape[d];
        rem /= L.shape[d];
        for (int k = 0; k < N; ++k) offs[k] += i * L.strides[k][d];
      }
      for (int k = 0; k < N; ++k) offs[k] += j0 * inner_strides[k];
      row(offs, std::min(piece, n_inner - j0), inner_strides);
    }
  });
}

// Call f(T{}) with T the C++ type of a float (or any) dtype; f is a generic lambda that reads
// its element type as `using T = decltype(tag);`.
template <typename F>
void dispatch_float(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else fail(op, ": expected a float32 or float64 tensor, got ", dtype_name(d));
}

template <typename F>
void dispatch_all(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else if (d == DType::I32) f(int32_t{});
  else fail(op, ": unknown dtype");
}

}  // namespace tessera::cpu
