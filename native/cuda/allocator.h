// Caching device allocator (native/cuda/allocator.cu), used by device_alloc / device_free in
// device.cu. The statistics and empty_cache() are exposed to plain C++ through cuda_api.h.
#pragma once
#include <cstddef>

namespace tessera::cuda {

// A device block of at least nbytes (rounded up to its size class), reused from the cache when one
// of that class is free. NOT zeroed. On out-of-memory the cache is released and the cudaMalloc
// retried once; if that fails too, throws tessera::Error naming the request and the usage.
void* cached_malloc(size_t nbytes);
// Return a block from cached_malloc to the cache (never to the driver: see empty_cache()).
// Unknown pointers are handed to cudaFree, as before the cache existed.
void cached_free(void* ptr);

}  // namespace tessera::cuda
