// Shared CUDA helpers: error checks that become tessera::Error (and so JS errors naming the
// kernel), launch geometry, and a by-value strided layout so elementwise kernels handle
// broadcast and transposed operands exactly as their CPU twins in native/cpu/strided.h.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "core/tensor_ref.h"

namespace tessera::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky non-fatal error so later calls can proceed
    fail(what, ": CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  }
}
// After a launch: report launch-configuration errors under the kernel's name.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return (unsigned)(b > 65535LL * 32 ? 65535LL * 32 : (b < 1 ? 1 : b));
}

template <int N>
struct DeviceLayout {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
};

template <int N>
DeviceLayout<N> make_layout(const TensorRef* const (&ts)[N]) {
  DeviceLayout<N> L;
  L.ndim = ts[0]->ndim;
  for (int d = 0; d < L.ndim; ++d) {
    L.shape[d] = ts[0]->shape[d];
    for (int k = 0; k < N; ++k) L.strides[k][d] = ts[k]->strides[d];
  }
  return L;
}

// Element offsets of linear index i in each of the N operands.
template <int N>
__device__ __forceinline__ void offsets_of(const DeviceLayout<N>& L, int64_t i, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = L.ndim - 1; d >= 0; --d) {
    int64_t idx = i % L.shape[d];
    i /= L.shape[d];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += idx * L.strides[k][d];
  }
}

}  // namespace tessera::cuda
