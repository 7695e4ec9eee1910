#include "core/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_api.h"

namespace tessera {

namespace {
std::atomic<int64_t> g_host_bytes{0}, g_host_blocks{0}, g_host_peak{0};
std::atomic<int64_t> g_device_bytes{0}, g_device_blocks{0};
constexpr size_t kAlign = 64;

// Host block cache. A training step allocates the same tensor sizes every time; handing a freed
// block straight back to the next request of its size class (instead of free() + malloc())
// avoids the page faults and kernel zeroing of freshly mapped memory (tens of thousands of
// faults per step for a small transformer, a third of its time) and the heap fragmentation
// that makes glibc's heap grow when large blocks are interleaved with small long-lived
// allocations. Sizes are rounded up to classes (multiples of 64 bytes up to 4 KiB, then 8
// classes per power of two: at most 12.5% slack); a freed block is kept while the cache holds
// at most TESSERA_HOST_CACHE_MB (default 1024) MiB, else freed. memoryStats() reports live
// blocks only (hostBytes counts each block's 64-byte-rounded request, as before) and the cache
// separately (hostCachedBytes); emptyCache() returns the cached blocks to the system.
std::mutex g_cache_mu;
std::unordered_map<size_t, std::vector<void*>> g_cache;  // class bytes -> free blocks
size_t g_cached_bytes = 0;

size_t cache_limit() {
  static const size_t limit = [] {
    const char* e = std::getenv("TESSERA_HOST_CACHE_MB");
    long long mb = e ? std::atoll(e) : 1024;
    return mb > 0 ? (size_t)mb << 20 : (size_t)0;
  }();
  return limit;
}

size_t size_class(size_t padded) {
  if (padded <= 4096) return padded;
  int lg = 63 - __builtin_clzll((unsigned long long)(padded - 1));  // 2^lg < padded <= 2^(lg+1)
  size_t step = size_t(1) << (lg - 3);                             // 8 classes per doubling
  return (padded + step - 1) / step * step;
}

void* host_take(size_t cls) {
  {
    std::lock_guard<std::mutex> lock(g_cache_mu);
    auto it = g_cache.find(cls);
    if (it != g_cache.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      g_cached_bytes -= cls;
      return p;
    }
  }
  return std::aligned_alloc(kAlign, cls);
}

void host_give(void* p, size_t cls) {
  {
    std::lock_guard<std::mutex> lock(g_cache_mu);
    if (g_cached_bytes + cls <= cache_limit()) {
      g_cache[cls].push_back(p);
      g_cached_bytes += cls;
      return;
    }
  }
  std::free(p);
}
}  // namespace

void host_empty_cache() {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  for (auto& kv : g_cache)
    for (void* p : kv.second) std::free(p);
  g_cache.clear();
  g_cached_bytes = 0;
}

Storage* storage_alloc(size_t nbytes, Device device, bool zero) {
  TS_CHECK(nbytes <= kMaxAllocBytes, "alloc: ", nbytes, " bytes requested, more than the limit of ",
           kMaxAllocBytes, " bytes");
  auto* s = new Storage();
  s->nbytes = nbytes;
  s->device = device;
  size_t padded = ((nbytes + kAlign - 1) / kAlign) * kAlign;
  if (padded == 0) padded = kAlign;  // every storage owns a real block, even an empty tensor's
  if (device == Device::CPU) {
    s->data = host_take(size_class(padded));
    if (!s->data) {
      delete s;
      fail("alloc: out of host memory allocating ", nbytes, " bytes");
    }
    if (zero) std::memset(s->data, 0, padded);
    g_host_bytes += (int64_t)padded;
    g_host_blocks += 1;
    int64_t now = g_host_bytes.load(), peak = g_host_peak.load();
    while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
    }
  } else {
    try {
      s->data = cuda::device_alloc(padded);
    } catch (...) {
      delete s;
      throw;
    }
    g_device_bytes += (int64_t)padded;
    g_device_blocks += 1;
  }
  return s;
}

void storage_release(Storage* s) {
  if (!s || s->freed) return;
  size_t padded = ((s->nbytes + kAlign - 1) / kAlign) * kAlign;
  if (padded == 0) padded = kAlign;
  if (s->device == Device::CPU) {
    host_give(s->data, size_class(padded));
    g_host_bytes -= (int64_t)padded;
    g_host_blocks -= 1;
  } else {
    cuda::device_free(s->data);
    g_device_bytes -= (int64_t)padded;
    g_device_blocks -= 1;
  }
  s->data = nullptr;
  s->freed = true;
}

MemoryStats memory_stats() {
  int64_t cached;
  {
    std::lock_guard<std::mutex> lock(g_cache_mu);
    cached = (int64_t)g_cached_bytes;
  }
  return {g_host_bytes.load(), g_host_blocks.load(), g_host_peak.load(), g_device_bytes.load(),
          g_device_blocks.load(), cached};
}

}  // namespace tessera
