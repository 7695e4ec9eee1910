// Caching device allocator: device blocks are kept on size-class free lists when a tensor's
// storage is released, and handed straight back to the next request of the same class, instead
// of cudaFree + cudaMalloc. Both of those are slow (cudaFree also synchronizes the whole device),
// and a training step allocates the same sizes every time.
//
// Size classes: requests are rounded up to 512 bytes up to 1 MiB, above that to one of 8 classes
// per power of two (at most 12.5% slack), and a block serves only requests of exactly its class (no
// splitting or merging of blocks: simple, and the steady state of a training loop is an exact
// match anyway).
//
// Safety of reuse without synchronization: every tessera kernel, memset and copy runs on the legacy
// default stream, so work issued after a block is reused is ordered after all work issued while it
// belonged to its previous owner. (A future multi-stream backend must record an event per block.)
//
// Out of memory: when cudaMalloc fails, every cached block is returned to the driver
// (empty_cache()) and the cudaMalloc retried once; if it fails again the error names the request,
// the bytes in use by live tensors and what the device reports free.
//
// Limit: TESSERA_CUDA_CACHE_MB (read once) caps the cached bytes; a freed block that would exceed
// it goes back to the driver. Default: no cap (as PyTorch's caching allocator), since the cache is
// released automatically on out-of-memory and by empty_cache().
//
// Statistics (cuda_api.h): used_bytes() = class bytes of live blocks, cached_bytes() = free blocks
// kept, peak_bytes() = highest used_bytes() since start or reset_peak_bytes(), alloc_stats() for all
// of them plus counters. The state is a leaked singleton: nothing is freed by static destructors at
// process exit, when the CUDA runtime may already be gone.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/allocator.h"
#include "cuda/common.cuh"
#include "cuda/cuda_api.h"

namespace tessera::cuda {

namespace {

struct State {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // class bytes -> cached blocks
  std::unordered_map<void*, size_t> live;                       // live block -> class bytes
  size_t used = 0, cached = 0, peak = 0;
  size_t mallocs = 0, hits = 0, driver_frees = 0, oom_retries = 0;
};

State& state() {
  static State* s = new State();  // leaked on purpose (see the top comment)
  return *s;
}

size_t cache_limit() {
  static const size_t limit = [] {
    const char* e = std::getenv("TESSERA_CUDA_CACHE_MB");
    if (!e || !*e) return SIZE_MAX;
    long long mb = std::atoll(e);
    return mb > 0 ? (size_t)mb << 20 : (size_t)0;
  }();
  return limit;
}

size_t size_class(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  if (nbytes <= (size_t(1) << 20)) return (nbytes + 511) / 512 * 512;
  int lg = 63 - __builtin_clzll((unsigned long long)(nbytes - 1));  // 2^lg < nbytes <= 2^(lg+1)
  size_t step = size_t(1) << (lg - 3);                              // 8 classes per doubling
  return (nbytes + step - 1) / step * step;
}

// Frees every cached block; caller holds the lock.
void release_cached_locked(State& s) {
  for (auto& kv : s.free_lists) {
    for (void* p : kv.second) {
      cudaFree(p);
      ++s.driver_frees;
    }
  }
  s.free_lists.clear();
  s.cached = 0;
  cudaGetLastError();  // a failed cudaFree must not poison the next call
}

}  // namespace

void* cached_malloc(size_t nbytes) {
  State& s = state();
  const size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lock(s.mu);
  void* p = nullptr;
  auto it = s.free_lists.find(cls);
  if (it != s.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    s.cached -= cls;
    ++s.hits;
  } else {
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      ++s.oom_retries;
      const size_t had_cached = s.cached;
      release_cached_locked(s);
      p = nullptr;
      err = cudaMalloc(&p, cls);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        cudaGetLastError();
        fail("cuda alloc: out of device memory allocating ", nbytes, " bytes (size class ", cls, "): ", s.used,
             " bytes in use by live tensors, ", had_cached, " cached bytes were released and the allocation retried; the device reports ",
             free_b, " of ", total_b, " bytes free");
      }
    }
    check(err, "cuda alloc");
    ++s.mallocs;
  }
  s.live.emplace(p, cls);
  s.used += cls;
  if (s.used > s.peak) s.peak = s.used;
  return p;
}

void cached_free(void* ptr) {
  if (!ptr) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.live.find(ptr);
  if (it == s.live.end()) {  // not ours: give it to the driver as before
    cudaFree(ptr);
    cudaGetLastError();
    return;
  }
  const size_t cls = it->second;
  s.live.erase(it);
  s.used -= cls;
  if (s.cached + cls <= cache_limit()) {
    s.free_lists[cls].push_back(ptr);
    s.cached += cls;
  } else {
    cudaFree(ptr);
    cudaGetLastError();
    ++s.driver_frees;
  }
}

size_t used_bytes() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.used;
}

size_t cached_bytes() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.cached;
}

size_t peak_bytes() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.peak;
}

void reset_peak_bytes() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.peak = s.used;
}

void empty_cache() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  release_cached_locked(s);
}

DeviceAllocStats alloc_stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  DeviceAllocStats st;
  st.used_bytes = s.used;
  st.cached_bytes = s.cached;
  st.peak_bytes = s.peak;
  st.live_blocks = s.live.size();
  size_t n = 0;
  for (auto& kv : s.free_lists) n += kv.second.size();
  st.cached_blocks = n;
  st.driver_mallocs = s.mallocs;
  st.cache_hits = s.hits;
  st.driver_frees = s.driver_frees;
  st.oom_retries = s.oom_retries;
  return st;
}

}  // namespace tessera::cuda
