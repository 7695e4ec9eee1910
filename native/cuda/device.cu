// Device discovery, memory and copies for the CUDA backend. The addon is built with a static
// cudart, so it loads on machines with no driver at all: there device_count() is simply 0.
#include <cuda_runtime.h>

#include <string>

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

void* device_alloc(size_t nbytes) {
  TS_CHECK(device_count() > 0, "cuda alloc: no usable CUDA device (", runtime_error_text(), ")");
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, nbytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("cuda alloc: out of device memory allocating ", nbytes, " bytes (", free_b, " of ", total_b, " bytes free)");
  }
  check(err, "cuda alloc");
  check(cudaMemset(p, 0, nbytes), "cuda alloc (zero fill)");
  return p;
}

void device_free(void* ptr) {
  if (ptr) cudaFree(ptr);
}

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
