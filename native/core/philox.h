// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Element i of a random tensor is a pure function of (seed, offset + i),
// so results do not depend on thread count or device, and the CUDA kernels reproduce the CPU
// stream exactly. The same construction as cuRAND's and PyTorch's philox engines.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TS_HOST_DEVICE inline
#endif

namespace tessera {

struct Philox4 {
  uint32_t v[4];
};

TS_HOST_DEVICE uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

TS_HOST_DEVICE Philox4 philox4x32(uint64_t seed, uint64_t counter) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1): 24 random bits for float32, 53 for float64.
TS_HOST_DEVICE float uniform_f32(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
TS_HOST_DEVICE double uniform_f64(uint32_t lo, uint32_t hi) {
  uint64_t bits = ((uint64_t)hi << 21) ^ (uint64_t)(lo >> 11);
  return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller from two uniforms, computed in double so float32 and float64
// tensors drawn with the same seed agree to float32 rounding.
TS_HOST_DEVICE double normal_from(const Philox4& r) {
  double u1 = ((double)r.v[0] + 1.0) * (1.0 / 4294967297.0);  // (0, 1]: log never sees 0
  double u2 = (double)r.v[1] * (1.0 / 4294967296.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace tessera
