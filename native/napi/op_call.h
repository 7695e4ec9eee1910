// OpCall: the uniform argument bundle every kernel entry point receives: the op's name (for
// error messages), its tensors (inputs and pre-allocated outputs, in the order the op's
// TypeScript side documents) and its scalar parameters. The check helpers throw tessera::Error
// with messages that name the op, the tensor and what was expected.
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor_ref.h"

namespace tessera {

struct OpCall {
  const char* op = "";
  std::vector<TensorRef> tensors;
  std::vector<double> scalars;

  const TensorRef& t(size_t i) const {
    TS_CHECK(i < tensors.size(), op, ": expected at least ", i + 1, " tensor arguments, got ", tensors.size());
    return tensors[i];
  }
  double s(size_t i) const {
    TS_CHECK(i < scalars.size(), op, ": expected at least ", i + 1, " scalar arguments, got ", scalars.size());
    return scalars[i];
  }
  int64_t si(size_t i) const {
    double v = s(i);
    TS_CHECK(v == (double)(int64_t)v, op, ": scalar argument ", i, " must be an integer, got ", v);
    return (int64_t)v;
  }

  void expect_count(size_t tensors_n, size_t scalars_n) const {
    TS_CHECK(tensors.size() == tensors_n && scalars.size() == scalars_n, op, ": expected ", tensors_n,
             " tensors and ", scalars_n, " scalars, got ", tensors.size(), " and ", scalars.size());
  }
  void expect_dtype(size_t i, DType d, const char* name) const {
    TS_CHECK(t(i).dtype == d, op, ": ", name, " must be ", dtype_name(d), ", got ", t(i).describe());
  }
  void expect_float(size_t i, const char* name) const {
    TS_CHECK(t(i).dtype == DType::F32 || t(i).dtype == DType::F64, op, ": ", name,
             " must be float32 or float64, got ", t(i).describe());
  }
  void expect_same_dtype(size_t i, size_t j, const char* a, const char* b) const {
    TS_CHECK(t(i).dtype == t(j).dtype, op, ": ", a, " and ", b, " must have the same dtype, got ",
             t(i).describe(), " and ", t(j).describe());
  }
  void expect_contiguous(size_t i, const char* name) const {
    TS_CHECK(t(i).is_contiguous(), op, ": ", name, " must be contiguous, got ", t(i).describe());
  }
  void expect_ndim(size_t i, int nd, const char* name) const {
    TS_CHECK(t(i).ndim == nd, op, ": ", name, " must have ", nd, " dimensions, got ", t(i).describe());
  }
  void expect_numel(size_t i, int64_t n, const char* name) const {
    TS_CHECK(t(i).numel() == n, op, ": ", name, " must have ", n, " elements, got ", t(i).describe());
  }
  void expect_same_shape(size_t i, size_t j, const char* a, const char* b) const {
    bool same = t(i).ndim == t(j).ndim;
    for (int d = 0; same && d < t(i).ndim; ++d) same = t(i).shape[d] == t(j).shape[d];
    TS_CHECK(same, op, ": ", a, " and ", b, " must have the same shape, got ", t(i).describe(), " and ",
             t(j).describe());
  }
};

using KernelFn = void (*)(OpCall&);

// One row of the op table (native/napi/op_table.cpp): an op's name and its per-device kernels.
// A null entry means "not implemented on that device", reported as a clear error.
struct OpEntry {
  const char* name;
  KernelFn cpu;
  KernelFn cuda;
};

}  // namespace tessera
