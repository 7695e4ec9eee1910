// Host-side entry points of the CUDA backend, callable from plain C++ translation units.
// When the addon is built without nvcc these are inline fallbacks: the device count is 0 and
// anything that would touch a GPU throws a clear error instead of failing to link.
#pragma once
#include <cstddef>
#include <string>

#include "core/error.h"

namespace tessera::cuda {

// Caching device allocator statistics (native/cuda/allocator.cu). Bytes are size-class bytes (a
// request rounded up to its class), so used_bytes can exceed the sum of the tensors' sizes.
struct DeviceAllocStats {
  size_t used_bytes = 0;      // blocks owned by live storages
  size_t cached_bytes = 0;    // freed blocks kept for reuse (still held from the driver)
  size_t peak_bytes = 0;      // highest used_bytes since start or reset_peak_bytes()
  size_t live_blocks = 0, cached_blocks = 0;
  size_t driver_mallocs = 0;  // cudaMalloc calls (cache misses)
  size_t cache_hits = 0;      // requests served from the cache
  size_t driver_frees = 0;    // blocks returned with cudaFree (empty_cache, OOM retry, cache cap)
  size_t oom_retries = 0;     // cudaMalloc failures that released the cache and retried
};

#ifdef TESSERA_WITH_CUDA
constexpr bool kCompiled = true;
int device_count();  // usable devices; 0 when there is no driver or no GPU (never throws)
std::string device_name(int index);
std::string runtime_error_text();  // why device_count() is 0, for the user ("" when fine)
// Device memory comes from a caching allocator: device_free keeps the block for reuse.
void* device_alloc(size_t nbytes);  // zeroed; throws tessera::Error on out-of-memory
void device_free(void* ptr);
size_t used_bytes();     // bytes in blocks owned by live storages
size_t cached_bytes();   // bytes in freed blocks kept for reuse
size_t peak_bytes();     // highest used_bytes() since start or reset_peak_bytes()
void reset_peak_bytes();
void empty_cache();      // return every cached block to the driver
DeviceAllocStats alloc_stats();
void copy_to_device(void* dst, const void* src, size_t nbytes);
void copy_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
void synchronize();
#else
constexpr bool kCompiled = false;
inline int device_count() { return 0; }
inline std::string device_name(int) { return ""; }
inline std::string runtime_error_text() { return "tessera was built without CUDA (no nvcc found at build time)"; }
[[noreturn]] inline void not_built() { fail("cuda: tessera was built without CUDA support (nvcc was not found when the addon was built)"); }
inline void* device_alloc(size_t) { not_built(); }
inline void device_free(void*) {}
inline size_t used_bytes() { return 0; }
inline size_t cached_bytes() { return 0; }
inline size_t peak_bytes() { return 0; }
inline void reset_peak_bytes() {}
inline void empty_cache() {}
inline DeviceAllocStats alloc_stats() { return {}; }
inline void copy_to_device(void*, const void*, size_t) { not_built(); }
inline void copy_to_host(void*, const void*, size_t) { not_built(); }
inline void copy_device_to_device(void*, const void*, size_t) { not_built(); }
inline void synchronize() {}
#endif

}  // namespace tessera::cuda
