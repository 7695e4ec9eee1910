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

// Transposing pack: out[p * R + r] = src[r * ld + p] for r < R, p < kc (R rows of a matrix whose
// rows run along k: row-major A into MR-panels, column-major B into NR-panels).
template <typename T>
using TransposePack = void (*)(const T* src, int64_t ld, int R, int64_t kc, T* out);

// Small-M product without packing: columns [j0, j1) of C (M x N, row-major, ldc) = A @ B + beta*C
// for B row-major (csb == 1), or B column-major (rsb == 1) with A rows contiguous (csa == 1).
template <typename T>
using SmallM = void (*)(int64_t M, int64_t K, const T* a, int64_t rsa, int64_t csa, const T* b, int64_t rsb,
                        int64_t csb, T* c, int64_t ldc, T beta, int64_t j0, int64_t j1);

template <typename T>
struct GemmKernel {
  MicroKernel<T> fn = nullptr;
  TransposePack<T> tpack = nullptr;  // SIMD transposing pack, or null for the scalar loop
  SmallM<T> smallm = nullptr;        // unpacked path for M <= small_m, or null
  int small_m = 0;
  // narrow[v]: the same kernel computing only the first v * lanes columns of a panel (for N edge
  // tiles, always into a scratch tile); null entries fall back to fn.
  MicroKernel<T> narrow[4] = {nullptr, nullptr, nullptr, nullptr};
  int lanes = 1;
  int mr = 0, nr = 0;  // register tile
  int mc = 0, kc = 0;  // cache blocks (mc % mr == 0): A block mc x kc, B panels kc x nr
  const char* name = "";
};

// Largest MR * NR of any kernel (the driver's scratch tile for edges).
constexpr int kMaxTile = 16 * 64;

// Each returns a kernel with fn == nullptr when that instruction set was not compiled in
// (non-x86 targets). The caller checks the CPU (cpu_features.h) before using one.
GemmKernel<float> avx512_f32();
GemmKernel<double> avx512_f64();
GemmKernel<float> avx2_f32();
GemmKernel<double> avx2_f64();
// AVX2 transposing packs, also used by the AVX-512 kernels (null when not compiled in).
TransposePack<float> avx2_tpack_f32();
TransposePack<double> avx2_tpack_f64();

}  // namespace tessera::cpu::matmul_detail
