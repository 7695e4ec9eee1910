// Storage: one owned block of memory on one device. Tensors (shape, strides, offset) live on the
// TypeScript side and point into a Storage; views share it. Host blocks are 64-byte aligned so the
// SIMD kernels can use aligned loads on freshly allocated tensors.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace tessera {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = Device::CPU;
  bool freed = false;
};

// Largest single allocation we accept (bytes); larger requests are an error, not an abort.
constexpr size_t kMaxAllocBytes = size_t(1) << 40;

// Allocate memory, zero-filled unless `zero` is false (for outputs a kernel overwrites entirely);
// throws tessera::Error (never aborts) when it cannot.
Storage* storage_alloc(size_t nbytes, Device device, bool zero = true);
// Free the memory (idempotent); the Storage object itself stays valid and reports freed. Host
// blocks go back to a size-class cache for reuse (see storage.cpp), bounded in bytes.
void storage_release(Storage* s);
// Return every cached (freed, kept for reuse) host block to the system.
void host_empty_cache();

struct MemoryStats {
  int64_t host_bytes, host_blocks, host_peak_bytes;
  int64_t device_bytes, device_blocks;
  int64_t host_cached_bytes;  // freed host blocks kept for reuse (not in host_bytes)
};
MemoryStats memory_stats();

}  // namespace tessera
