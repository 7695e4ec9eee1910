// Element types and devices. The numeric codes are shared with lib/dtype.ts and cross N-API as
// plain numbers, so they must never be renumbered.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

enum class DType : int { F32 = 0, F64 = 1, I32 = 2 };
enum class Device : int { CPU = 0, CUDA = 1 };

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
  }
  return 0;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
  }
  return "?";
}

inline bool dtype_valid(int code) { return code >= 0 && code <= 2; }
inline const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

}  // namespace tessera
