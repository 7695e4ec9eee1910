// Device discovery, memory (through the caching allocator in allocator.cu) and copies for the
// CUDA backend. The addon is built with a static cudart, so it loads on machines with no driver
// at all: there device_count() is simply 0.
#include <cuda_runtime.h>

#include <string>

#include "cuda/allocator.h"
#include "cuda/common.cuh"
#include "cuda/cuda_api.h"

namespace tessera::cuda {

namespace {
std::string g_last_error;
}

int device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    g_last_error = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    cudaGetLastError();
    return 0;
  }
  g_last_error.clear();
  return n;
}

std::string runtime_error_text() { return g_last_error; }

std::string device_name(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

// Blocks come from the caching allocator (allocator.cu); a reused block holds its previous
// owner's data, so it is zeroed here as the contract in cuda_api.h says (a memset on the default
// stream, ordered before any kernel that uses the block).
void* device_alloc(size_t nbytes) {
  TS_CHECK(device_count() > 0, "cuda alloc: no usable CUDA device (", runtime_error_text(), ")");
  void* p = cached_malloc(nbytes);
  cudaError_t err = cudaMemset(p, 0, nbytes);
  if (err != cudaSuccess) {
    cached_free(p);
    check(err, "cuda alloc (zero fill)");
  }
  return p;
}

void device_free(void* ptr) { cached_free(ptr); }

void copy_to_device(void* dst, const void* src, size_t nbytes) {
  check(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice), "copy to cuda");
}
void copy_to_host(void* dst, const void* src, size_t nbytes) {
  check(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost), "copy to cpu");
}
void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
  check(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice), "copy cuda to cuda");
}
void synchronize() { check(cudaDeviceSynchronize(), "cuda synchronize"); }

}  // namespace tessera::cuda
