// Internal interface between the matmul driver (matmul.cpp) and its register-blocked micro-kernels
// (matmul_kernels_avx512.cpp, matmul_kernels_avx2.cpp, generic ones in matmul.cpp). Nothing here
// is part of the op table.
//
// A micro-kernel computes one MR x NR tile of C from packed operands:
//   a: packed A micro-panel, k steps of MR contiguous values (column p of the MR rows),
//   b: packed B micro-panel, k steps of NR contiguous values (row p of the NR columns),
//   c: the tile's top-left element, rows ldc apart, columns contiguous;
//   C = A*B + beta*C, and beta == 0 stores without reading C (garbage/NaN in C is ignored).
// Only full MR x NR tiles are passed; the driver routes edge tiles through a scratch tile.
#pragma once
#include <cstdint>

namespace tessera::cpu::matmul_detail {

template <typename T>
using MicroKernel = void (*)(int64_t k, const T* a, const T* b, T* c, int64_t ldc, T beta);

template <typename T>
struct GemmKernel {
  MicroKernel<T> fn = nullptr;
  int mr = 0, nr = 0;          // register tile
  int mc = 0, kc = 0, nc = 0;  // cache blocks: mc % mr == 0, nc % nr == 0
  const char* name = "";
};

// Largest MR * NR of any kernel (the driver's scratch tile for edges).
constexpr int kMaxTile = 32 * 64;

// Each returns a kernel with fn == nullptr when that instruction set was not compiled in
// (non-x86 targets). The caller checks the CPU (cpu_features.h) before using one.
GemmKernel<float> avx512_f32();
GemmKernel<double> avx512_f64();
GemmKernel<float> avx2_f32();
GemmKernel<double> avx2_f64();

}  // namespace tessera::cpu::matmul_detail
