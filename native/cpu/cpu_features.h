// Which SIMD kernels this CPU can run, decided once at run time. Hot kernels (matmul) are compiled
// for several instruction sets with function target attributes and pick one here, so a portable
// build (no -march=native) still runs AVX-512/AVX2 code where the CPU has it.
#pragma once

namespace tessera::cpu {

enum class SimdLevel { Generic = 0, AVX2 = 1, AVX512 = 2 };

inline SimdLevel simd_level() {
#if defined(__x86_64__) || defined(__i386__)
  static const SimdLevel level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return SimdLevel::AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::AVX2;
    return SimdLevel::Generic;
  }();
  return level;
#else
  return SimdLevel::Generic;
#endif
}

inline const char* simd_level_name() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    default: return "generic";
  }
}

}  // namespace tessera::cpu
