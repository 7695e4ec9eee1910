#include "core/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "cuda/cuda_api.h"

namespace tessera {

namespace {
std::atomic<int64_t> g_host_bytes{0}, g_host_blocks{0}, g_host_peak{0};
std::atomic<int64_t> g_device_bytes{0}, g_device_blocks{0};
constexpr size_t kAlign = 64;
}  // namespace

Storage* storage_alloc(size_t nbytes, Device device, bool zero) {
  TS_CHECK(nbytes <= kMaxAllocBytes, "alloc: ", nbytes, " bytes requested, more than the limit of ",
           kMaxAllocBytes, " bytes");
  auto* s = new Storage();
  s->nbytes = nbytes;
  s->device = device;
  size_t padded = ((nbytes + kAlign - 1) / kAlign) * kAlign;
  if (padded == 0) padded = kAlign;  // every storage owns a real block, even an empty tensor's
  if (device == Device::CPU) {
    s->data = std::aligned_alloc(kAlign, padded);
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
    std::free(s->data);
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
  return {g_host_bytes.load(), g_host_blocks.load(), g_host_peak.load(), g_device_bytes.load(),
          g_device_blocks.load()};
}

}  // namespace tessera
