// TensorRef: what a kernel sees of a tensor. The binding builds one from a Storage plus the
// layout the TypeScript side sends (dtype, offset, shape, strides in elements), after checking
// that every element the layout can reach lies inside the storage, so kernels never read or
// write out of bounds whatever a caller passes.
#pragma once
#include <cstdint>
#include <sstream>
#include <string>

#include "core/dtype.h"
#include "core/storage.h"

namespace tessera {

constexpr int kMaxDims = 8;

struct TensorRef {
  Storage* storage = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int64_t offset = 0;  // in elements
  int ndim = 0;
  int64_t shape[kMaxDims] = {0};
  int64_t strides[kMaxDims] = {0};  // in elements, never negative

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  int64_t size(int d) const { return shape[d < 0 ? d + ndim : d]; }
  int64_t stride(int d) const { return strides[d < 0 ? d + ndim : d]; }

  // Row-major contiguous (size-1 dimensions may have any stride).
  bool is_contiguous() const {
    int64_t expected = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }

  template <typename T>
  T* data() const {
    return reinterpret_cast<T*>(storage->data) + offset;
  }
  void* raw() const { return static_cast<char*>(storage->data) + offset * (int64_t)dtype_size(dtype); }

  std::string describe() const {
    std::ostringstream os;
    os << dtype_name(dtype) << "[";
    for (int i = 0; i < ndim; ++i) os << (i ? ", " : "") << shape[i];
    os << "]";
    if (device != Device::CPU) os << "@" << device_name(device);
    return os.str();
  }
};

}  // namespace tessera
