// Batched GEMM on the GPU: out[b] = a[b] @ b[b] + beta * out[b]. CUDA twin of native/cpu/matmul.cpp
// (same arguments, checks, broadcasting and edge cases; contract in matmul.h / cpu/matmul.h).
//
// ARGUMENTS (exactly as cpu::matmul): tensors (a [batch|1, M, K], b [batch|1, K, N], out [batch, M, N])
// and one scalar beta. a and b may have any strides (transposed views, batch stride 0 for a broadcast
// operand, strided slices); out must be contiguous and must not overlap a or b. float32 or float64,
// all three the same. beta == 0 overwrites out without reading it (NaN in out is ignored); otherwise
// out = a @ b + beta * out. K == 0 gives out = beta * out (zeros for beta == 0). Sizes of 0 are no-ops.
// As on the CPU, a size-1 dimension's stride is ignored (normalised to 1) before choosing a kernel.
//
// KERNELS
// 1. float32, TF32 tensor cores (default): gemm_tf32<A_KMAJOR, B_KMAJOR, VEC, STAGES>.
//    Block tile 128 x 128 x 32, 256 threads = 8 warps as 2 (M) x 4 (N), warp tile 64 x 32 = 4 x 4
//    mma.sync.m16n8k8 tf32 tiles (64 float32 accumulators per thread). Operands go global -> shared
//    with cp.async (no register staging) into a 2- or 3-stage ring (40 KiB a stage: 3 stages / 120 KiB
//    where the device lets a block opt in to that much shared memory: sm_80, sm_90; 2 stages / 80 KiB
//    on sm_86 / sm_89, whose opt-in limit is 99 KiB), so the loads of
//    tile k+1 (k+2) overlap the MMAs of tile k. Each operand is kept in shared memory in the layout it
//    has in global memory ("K-major": rows along M/N, K contiguous; or "M/N-major": rows along K),
//    which is what lets cp.async copy it untransposed: A row-major or column-major, B row-major or
//    column-major, four template combinations, chosen per call from the strides.
//    K permutation: within each k8 step, fragment slot t (t = lane % 4) carries physical k = 2t and
//    slot t + 4 carries 2t + 1, for A and B alike (a dot product does not care about the order), so
//    a thread's two k values are adjacent: one 64-bit LDS in a K-major tile (12 LDS per 16 MMAs per
//    warp with both operands K-major, instead of 24). Rows are padded so those loads are
//    conflict-free: K-major rows 32 + 8 floats (LDS.64, half-warp g = 0..3 covers banks 8g..8g+7),
//    M/N-major rows 128 + 4 floats (LDS.32 at row 2t or 2t+1, column g: banks 8t + g); every row
//    starts 16-byte aligned for the vector cp.async. No ldmatrix (it moves 16-bit elements, a fit
//    only for the K-major case; kept simple since this was written without a GPU to test on).
//    Values are rounded to TF32 with cvt.rna (round to nearest, ties away) before the MMA.
//    VEC: 16-byte cp.async when the operand's base is 16-byte aligned and its row and batch strides
//    are multiples of 4 elements; otherwise 4-byte cp.async (any alignment). Edge tiles (M, N, K not
//    multiples of the tile) use cp.async's src-size operand: out-of-range elements are zero-filled in
//    shared memory and never read from global memory, so arbitrary M, N, K are exact. The epilogue
//    stores with bounds checks. Tiles are visited in groups of 8 block rows (L2 reuse of B panels);
//    one block loops over tiles / batch entries when the grid would be too large.
//    Adding bf16 (m16n8k16): the tile loader and pipeline are type-agnostic byte copies; a bf16
//    variant needs a fragment loader packing two bf16 per register (ldmatrix fits there), the k16
//    mma in place of Tf32Mma, and BK counted in 16-element steps.
// 2. SIMT (float64 always; float32 with TESSERA_CUDA_MATMUL=fp32, or when an operand has no unit
//    stride in either matrix dimension): gemm_simt<T>. 64 x 64 x 16 block tiles in shared memory,
//    256 threads each owning a 4 x 4 register block (rows ty + 16 i, cols tx + 16 j: conflict-free
//    shared reads, coalesced stores). Loads handle any strides, reading along whichever dimension
//    of the operand is contiguous. Accumulates in T with fused multiply-adds (double for float64).
//
// PRECISION (what the tests assume)
//   TESSERA_CUDA_MATMUL=tf32 (default; "auto" is the same): float32 inputs are rounded to TF32
//     (10-bit mantissa, relative error <= 2^-11 each) and products are accumulated in float32 on the
//     tensor cores. Per output, |err| <= ~(2^-10 + K * 2^-23) * sum_k |a_ik| |b_kj|: about 1e-3
//     relative to the magnitude scale, far above float32's 6e-8. This is what PyTorch gives with
//     torch.backends.cuda.matmul.allow_tf32 = True (its default for matmul is now full float32,
//     "highest"; cuDNN convolutions default to TF32). We default to TF32 because it is 4-8x the
//     float32 SIMT throughput on A100/H100 and training is insensitive to it; set
//     TESSERA_CUDA_MATMUL=fp32 to get float32 arithmetic (CPU-like accuracy: same products, only the
//     summation order differs). The variable is read on every call.
//   float32 SIMT: float32 FMAs; the CPU splits K into blocks and sums in its own order, so results
//     differ from the CPU in the last bits: tolerance ~ K * 2^-23 * sum |a||b|, never bitwise.
//   float64: double FMAs, tolerance ~ K * 2^-52 * sum |a||b| (<= 1e-12 relative for test sizes).
//
// Every launch is on the legacy default stream (like all tessera kernels), so it is ordered after
// the copies and kernels that produced a and b and before any later read of out.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/matmul.h"

namespace tessera::cuda {

namespace {

template <typename T>
struct Gemm {
  const T* A;
  const T* B;
  T* C;
  int64_t batch, M, N, K;
  int64_t sa, rsa, csa;  // a: batch, row (M), column (K) strides in elements
  int64_t sb, rsb, csb;  // b: batch, row (K), column (N) strides
  T beta;
};

__device__ __forceinline__ float madd(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double madd(double a, double b, double c) { return __fma_rn(a, b, c); }

template <typename T>
__device__ __forceinline__ void store_out(T* C, int64_t ldc, int64_t M, int64_t N, int64_t r, int64_t c, T v, T beta) {
  if (r < M && c < N) {
    T* p = C + r * ldc + c;
    *p = beta == T(0) ? v : v + beta * *p;
  }
}

// ------------------------------------------------------------------------------------------------
// SIMT kernel: any strides, float32 or float64.
constexpr int kSimtM = 64, kSimtN = 64, kSimtK = 16, kSimtThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kSimtThreads) gemm_simt(Gemm<T> g) {
  __shared__ T As[kSimtK][kSimtM + 1];
  __shared__ T Bs[kSimtK][kSimtN + 1];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t mtiles = (g.M + kSimtM - 1) / kSimtM, ntiles = (g.N + kSimtN - 1) / kSimtN;
  const int64_t tiles = mtiles * ntiles;
  // Read along the operand's contiguous dimension (coalesced) when it has one.
  const bool a_kfast = !(g.rsa == 1 && g.csa != 1);
  const bool b_nfast = !(g.rsb == 1 && g.csb != 1);
  for (int64_t bi = blockIdx.z; bi < g.batch; bi += gridDim.z) {
    const T* A = g.A + bi * g.sa;
    const T* B = g.B + bi * g.sb;
    T* C = g.C + bi * g.M * g.N;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t m0 = tile / ntiles * kSimtM, n0 = tile % ntiles * kSimtN;
      T acc[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
      for (int64_t k0 = 0; k0 < g.K; k0 += kSimtK) {
#pragma unroll
        for (int it = 0; it < kSimtM * kSimtK / kSimtThreads; ++it) {
          const int e = tid + it * kSimtThreads;
          const int mm = a_kfast ? e / kSimtK : e % kSimtM;
          const int kk = a_kfast ? e % kSimtK : e / kSimtM;
          const int64_t m = m0 + mm, k = k0 + kk;
          As[kk][mm] = (m < g.M && k < g.K) ? A[m * g.rsa + k * g.csa] : T(0);
        }
#pragma unroll
        for (int it = 0; it < kSimtN * kSimtK / kSimtThreads; ++it) {
          const int e = tid + it * kSimtThreads;
          const int nn = b_nfast ? e % kSimtN : e / kSimtK;
          const int kk = b_nfast ? e / kSimtN : e % kSimtK;
          const int64_t n = n0 + nn, k = k0 + kk;
          Bs[kk][nn] = (n < g.N && k < g.K) ? B[k * g.rsb + n * g.csb] : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kSimtK; ++kk) {
          T av[4], bv[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
          for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = madd(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) store_out<T>(C, g.N, g.M, g.N, m0 + ty + 16 * i, n0 + tx + 16 * j, acc[i][j], g.beta);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// TF32 tensor-core kernel (float32 only, sm_80+).
constexpr int kTcM = 128, kTcN = 128, kTcK = 32, kTcThreads = 256;
constexpr int kKPad = 8, kMNPad = 4;

// Shared-memory tile of one operand: `outer` rows of `inner` elements (+ pad), inner = the
// dimension that is contiguous in global memory. KMAJ: rows along M (or N), K contiguous.
template <bool KMAJ, int MN>
struct TileShape {
  static constexpr int outer = KMAJ ? MN : kTcK;
  static constexpr int inner = KMAJ ? kTcK : MN;
  static constexpr int ld = inner + (KMAJ ? kKPad : kMNPad);
  static constexpr int floats = outer * ld;
};
constexpr int kTileFloats = TileShape<true, kTcM>::floats > TileShape<false, kTcM>::floats
                                ? TileShape<true, kTcM>::floats
                                : TileShape<false, kTcM>::floats;
static_assert(kTcM == kTcN, "one tile size serves A and B");
static_assert((kTileFloats * 4) % 16 == 0, "stage tiles stay 16-byte aligned");
constexpr int kStageFloats = 2 * kTileFloats;
constexpr size_t tc_smem_bytes(int stages) { return (size_t)stages * kStageFloats * sizeof(float); }

__device__ __forceinline__ void cp_async16(float* smem, const float* gmem, int src_bytes) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async4(float* smem, const float* gmem, int src_bytes) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Copy one operand tile into shared memory: element (o, i) of the tile is
// g[(o0 + o) * ostride + i0 + i] when o0 + o < olim and i0 + i < ilim, else 0.
template <bool KMAJ, bool VEC>
__device__ __forceinline__ void load_tile(float* s, const float* g, int64_t ostride, int64_t o0, int64_t i0,
                                          int64_t olim, int64_t ilim, int tid) {
  using S = TileShape<KMAJ, kTcM>;
  if constexpr (VEC) {
    constexpr int per_row = S::inner / 4;
    constexpr int total = S::outer * per_row;
    static_assert(total % kTcThreads == 0, "whole vectors per thread");
#pragma unroll
    for (int it = 0; it < total / kTcThreads; ++it) {
      const int v = tid + it * kTcThreads;
      const int o = v / per_row, i = v % per_row * 4;
      const int64_t go = o0 + o, gi = i0 + i, rem = ilim - gi;
      const int bytes = (go < olim && rem > 0) ? (rem >= 4 ? 16 : (int)rem * 4) : 0;
      cp_async16(s + o * S::ld + i, bytes ? g + go * ostride + gi : g, bytes);
    }
  } else {
    constexpr int total = S::outer * S::inner;
    static_assert(total % kTcThreads == 0, "whole elements per thread");
#pragma unroll 4
    for (int it = 0; it < total / kTcThreads; ++it) {
      const int v = tid + it * kTcThreads;
      const int o = v / S::inner, i = v % S::inner;
      const int64_t go = o0 + o, gi = i0 + i;
      const bool in = go < olim && gi < ilim;
      cp_async4(s + o * S::ld + i, in ? g + go * ostride + gi : g, in ? 4 : 0);
    }
  }
}

// The tensor-core step: TF32 m16n8k8 with float32 accumulation. Fragment layouts (PTX ISA,
// "Matrix fragments for mma.m16n8k8" .tf32): lane = 4 g + t; A (16 x 8, row): a0 (g, t), a1 (g+8, t),
// a2 (g, t+4), a3 (g+8, t+4); B (8 x 8, col): b0 (k=t, n=g), b1 (k=t+4, n=g); C (16 x 8): c0 (g, 2t),
// c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
struct Tf32Mma {
  static constexpr int kStep = 8;
  __device__ static __forceinline__ uint32_t convert(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
  }
  __device__ static __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// Pairs (k, k + 1), k even, of row m of A / column n of B from shared memory. With the K
// permutation below they feed the fragment slots (t, t + 4); in a K-major tile they are adjacent,
// one 64-bit load.
template <bool KMAJ>
__device__ __forceinline__ float2 a_pair(const float* s, int m, int k) {
  using S = TileShape<KMAJ, kTcM>;
  if constexpr (KMAJ) return *reinterpret_cast<const float2*>(s + m * S::ld + k);
  else return make_float2(s[k * S::ld + m], s[(k + 1) * S::ld + m]);
}
template <bool KMAJ>
__device__ __forceinline__ float2 b_pair(const float* s, int k, int n) {
  using S = TileShape<KMAJ, kTcN>;
  if constexpr (KMAJ) return *reinterpret_cast<const float2*>(s + n * S::ld + k);
  else return make_float2(s[k * S::ld + n], s[(k + 1) * S::ld + n]);
}

// A_KMAJ: a is row-major (csa == 1); else column-major (rsa == 1).
// B_KMAJ: b is column-major (rsb == 1); else row-major (csb == 1).
template <bool A_KMAJ, bool B_KMAJ, bool VEC, int STAGES>
__global__ void __launch_bounds__(kTcThreads, 1) gemm_tf32(Gemm<float> g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ float4 smem_raw[];
  float* smem = reinterpret_cast<float*>(smem_raw);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4;  // warp tile origin: (wm * 64, wn * 32)
  const int lg = lane / 4, lt = lane % 4;
  const int64_t mtiles = (g.M + kTcM - 1) / kTcM, ntiles = (g.N + kTcN - 1) / kTcN;
  const int64_t tiles = mtiles * ntiles;
  const int64_t ktiles = (g.K + kTcK - 1) / kTcK;
  constexpr int kGroup = 8;

  for (int64_t bi = blockIdx.z; bi < g.batch; bi += gridDim.z) {
    const float* A = g.A + bi * g.sa;
    const float* B = g.B + bi * g.sb;
    float* C = g.C + bi * g.M * g.N;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      // Grouped order: kGroup block rows share each B panel while it is in L2.
      const int64_t group_tiles = kGroup * ntiles;
      const int64_t first_m = tile / group_tiles * kGroup;
      const int64_t gm = mtiles - first_m < kGroup ? mtiles - first_m : kGroup;
      const int64_t local = tile % group_tiles;
      const int64_t m0 = (first_m + local % gm) * kTcM, n0 = local / gm * kTcN;

      auto load_stage = [&](int stage, int64_t kt) {
        float* sa = smem + stage * kStageFloats;
        float* sb = sa + kTileFloats;
        const int64_t k0 = kt * kTcK;
        if (A_KMAJ) load_tile<true, VEC>(sa, A, g.rsa, m0, k0, g.M, g.K, tid);
        else load_tile<false, VEC>(sa, A, g.csa, k0, m0, g.K, g.M, tid);
        if (B_KMAJ) load_tile<true, VEC>(sb, B, g.csb, n0, k0, g.N, g.K, tid);
        else load_tile<false, VEC>(sb, B, g.rsb, k0, n0, g.K, g.N, tid);
      };

      float acc[4][4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

      __syncthreads();  // every warp is done reading shared memory of the previous tile
#pragma unroll
      for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) load_stage(s, s);
        cp_async_commit();
      }
      for (int64_t kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<STAGES - 2>();  // tile kt has landed (for this thread's copies) ...
        __syncthreads();              // ... and for everyone's; stage (kt - 1) % STAGES is free
        const int64_t next = kt + STAGES - 1;
        if (next < ktiles) load_stage((int)(next % STAGES), next);
        cp_async_commit();

        const float* sa = smem + (int)(kt % STAGES) * kStageFloats;
        const float* sb = sa + kTileFloats;
#pragma unroll
        for (int kk = 0; kk < kTcK; kk += Tf32Mma::kStep) {
          // K permutation: fragment k slot t holds physical k = kk + 2t, slot t + 4 holds
          // kk + 2t + 1, identically for A and B, so the MMA still sums all 8 products of the step.
          uint32_t af[4][4], bf[4][2];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int r = wm * 64 + i * 16 + lg;
            const float2 lo = a_pair<A_KMAJ>(sa, r, kk + 2 * lt), hi = a_pair<A_KMAJ>(sa, r + 8, kk + 2 * lt);
            af[i][0] = Tf32Mma::convert(lo.x);
            af[i][1] = Tf32Mma::convert(hi.x);
            af[i][2] = Tf32Mma::convert(lo.y);
            af[i][3] = Tf32Mma::convert(hi.y);
          }
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float2 v = b_pair<B_KMAJ>(sb, kk + 2 * lt, wn * 32 + j * 8 + lg);
            bf[j][0] = Tf32Mma::convert(v.x);
            bf[j][1] = Tf32Mma::convert(v.y);
          }
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) Tf32Mma::mma(acc[i][j], af[i], bf[j]);
        }
      }
      cp_async_wait<0>();  // only empty groups can be outstanding; drain them before smem is reused

#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t r = m0 + wm * 64 + i * 16 + lg;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t c = n0 + wn * 32 + j * 8 + 2 * lt;
          store_out<float>(C, g.N, g.M, g.N, r, c, acc[i][j][0], g.beta);
          store_out<float>(C, g.N, g.M, g.N, r, c + 1, acc[i][j][1], g.beta);
          store_out<float>(C, g.N, g.M, g.N, r + 8, c, acc[i][j][2], g.beta);
          store_out<float>(C, g.N, g.M, g.N, r + 8, c + 1, acc[i][j][3], g.beta);
        }
      }
    }
  }
#else
  __trap();  // never launched: the host checks for compute capability 8.0+
#endif
}

// out = beta * out over n contiguous elements (K == 0 with beta != 0, 1).
template <typename T>
__global__ void scale_kernel(T* out, int64_t n, T beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = beta * out[i];
}

// ------------------------------------------------------------------------------------------------
// Host side.

enum class Mode { Tf32, Fp32 };

Mode matmul_mode(const char* op) {
  const char* e = std::getenv("TESSERA_CUDA_MATMUL");
  if (!e || !*e || !std::strcmp(e, "tf32") || !std::strcmp(e, "auto")) return Mode::Tf32;
  if (!std::strcmp(e, "fp32")) return Mode::Fp32;
  fail(op, ": TESSERA_CUDA_MATMUL must be tf32, fp32 or auto, got '", e, "'");
}

struct DeviceCaps {
  int major = 0;
  int smem_optin = 0;
};

DeviceCaps device_caps() {
  int dev = 0;
  check(cudaGetDevice(&dev), "matmul (cudaGetDevice)");
  static DeviceCaps cache[64];
  static bool known[64] = {};
  if (dev >= 0 && dev < 64 && known[dev]) return cache[dev];
  DeviceCaps caps;
  check(cudaDeviceGetAttribute(&caps.major, cudaDevAttrComputeCapabilityMajor, dev), "matmul (device attributes)");
  check(cudaDeviceGetAttribute(&caps.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
        "matmul (device attributes)");
  if (dev >= 0 && dev < 64) {
    cache[dev] = caps;
    known[dev] = true;
  }
  return caps;
}

unsigned clamp_grid(int64_t n, int64_t cap) { return (unsigned)(n < 1 ? 1 : (n > cap ? cap : n)); }

template <typename T>
void launch_simt(const Gemm<T>& g, const char* op) {
  const int64_t tiles = ((g.M + kSimtM - 1) / kSimtM) * ((g.N + kSimtN - 1) / kSimtN);
  dim3 grid(clamp_grid(tiles, 0x7fffffff), 1, clamp_grid(g.batch, 65535));
  gemm_simt<T><<<grid, kSimtThreads>>>(g);
  check_launch(op);
}

template <bool AK, bool BK, bool VEC, int STAGES>
void launch_tf32_t(const Gemm<float>& g, const char* op) {
  auto kernel = gemm_tf32<AK, BK, VEC, STAGES>;
  const size_t smem = tc_smem_bytes(STAGES);
  static int configured_for = -1;  // device the attribute was last set on
  int dev = 0;
  check(cudaGetDevice(&dev), op);
  if (configured_for != dev) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), op);
    configured_for = dev;
  }
  const int64_t tiles = ((g.M + kTcM - 1) / kTcM) * ((g.N + kTcN - 1) / kTcN);
  dim3 grid(clamp_grid(tiles, 0x7fffffff), 1, clamp_grid(g.batch, 65535));
  kernel<<<grid, kTcThreads, smem>>>(g);
  check_launch(op);
}

template <bool AK, bool BK>
void launch_tf32_layout(const Gemm<float>& g, bool vec, int stages, const char* op) {
  if (vec) {
    if (stages == 3) launch_tf32_t<AK, BK, true, 3>(g, op);
    else launch_tf32_t<AK, BK, true, 2>(g, op);
  } else {
    if (stages == 3) launch_tf32_t<AK, BK, false, 3>(g, op);
    else launch_tf32_t<AK, BK, false, 2>(g, op);
  }
}

// 16-byte cp.async needs the operand's base 16-byte aligned and every stride it steps by (between
// rows of the tile and between batch entries) a multiple of 4 floats. A stride along a dimension of
// extent 1 is never stepped by.
bool vec_ok(const float* base, int64_t batch_stride, int64_t batch, int64_t row_stride, int64_t rows) {
  return (reinterpret_cast<uintptr_t>(base) & 15) == 0 && (batch <= 1 || batch_stride % 4 == 0) &&
         (rows <= 1 || row_stride % 4 == 0);
}

// Runs the TF32 kernel if the layouts allow it; false if the caller must use the SIMT kernel.
bool try_tf32(const Gemm<float>& g, int64_t a_batch, int64_t b_batch, const char* op) {
  const DeviceCaps caps = device_caps();
  if (caps.major < 8 || (size_t)caps.smem_optin < tc_smem_bytes(2)) return false;
  const int stages = (size_t)caps.smem_optin >= tc_smem_bytes(3) ? 3 : 2;
  const bool a_k = g.csa == 1, a_m = !a_k && g.rsa == 1;
  const bool b_k = g.rsb == 1 && g.csb != 1, b_n = g.csb == 1;
  if (!(a_k || a_m) || !(b_k || b_n)) return false;
  const int64_t ab = g.sa == 0 ? 1 : a_batch, bb = g.sb == 0 ? 1 : b_batch;
  const bool va = a_k ? vec_ok(g.A, g.sa, ab, g.rsa, g.M) : vec_ok(g.A, g.sa, ab, g.csa, g.K);
  const bool vb = b_n ? vec_ok(g.B, g.sb, bb, g.rsb, g.K) : vec_ok(g.B, g.sb, bb, g.csb, g.N);
  const bool vec = va && vb;
  if (a_k && b_n) launch_tf32_layout<true, false>(g, vec, stages, op);
  else if (a_k && b_k) launch_tf32_layout<true, true>(g, vec, stages, op);
  else if (a_m && b_n) launch_tf32_layout<false, false>(g, vec, stages, op);
  else launch_tf32_layout<false, true>(g, vec, stages, op);
  return true;
}

template <typename T>
void run(const OpCall& c, T beta) {
  const TensorRef &a = c.t(0), &b = c.t(1), &out = c.t(2);
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  if (batch == 0 || M == 0 || N == 0) return;
  T* C = out.data<T>();
  if (K == 0) {  // empty sum: out = beta * out
    const int64_t n = batch * M * N;
    if (beta == T(0)) check(cudaMemsetAsync(C, 0, (size_t)n * sizeof(T), 0), c.op);
    else if (beta != T(1)) {
      scale_kernel<T><<<blocks_for(n), kThreads>>>(C, n, beta);
      check_launch(c.op);
    }
    return;
  }
  Gemm<T> g;
  g.A = a.data<T>();
  g.B = b.data<T>();
  g.C = C;
  g.batch = batch;
  g.M = M;
  g.N = N;
  g.K = K;
  // As on the CPU: a size-1 dimension's stride is irrelevant, make it 1 (or 0 for the batch).
  g.sa = a.shape[0] == 1 ? 0 : a.strides[0];
  g.sb = b.shape[0] == 1 ? 0 : b.strides[0];
  g.rsa = M == 1 ? 1 : a.strides[1];
  g.csa = K == 1 ? 1 : a.strides[2];
  g.rsb = K == 1 ? 1 : b.strides[1];
  g.csb = N == 1 ? 1 : b.strides[2];
  g.beta = beta;
  if constexpr (std::is_same<T, float>::value) {
    if (matmul_mode(c.op) == Mode::Tf32 && try_tf32(g, a.shape[0], b.shape[0], c.op)) return;
  }
  launch_simt<T>(g, c.op);
}

// Element range [lo, hi] a non-empty tensor can touch, for the overlap check (as on the CPU).
void span(const TensorRef& t, int64_t* lo, int64_t* hi) {
  *lo = t.offset;
  *hi = t.offset;
  for (int d = 0; d < t.ndim; ++d) *hi += (t.shape[d] - 1) * t.strides[d];
}

}  // namespace

void matmul(OpCall& c) {
  c.expect_count(3, 1);
  c.expect_ndim(0, 3, "a");
  c.expect_ndim(1, 3, "b");
  c.expect_ndim(2, 3, "out");
  c.expect_float(0, "a");
  c.expect_same_dtype(0, 1, "a", "b");
  c.expect_same_dtype(0, 2, "a", "out");
  const TensorRef &a = c.t(0), &b = c.t(1), &out = c.t(2);
  TS_CHECK(a.shape[2] == b.shape[1], c.op, ": a ", a.describe(), " and b ", b.describe(), ": inner dimensions ",
           a.shape[2], " and ", b.shape[1], " differ");
  const int64_t batch = out.shape[0];
  TS_CHECK((a.shape[0] == batch || a.shape[0] == 1) && (b.shape[0] == batch || b.shape[0] == 1), c.op, ": a ",
           a.describe(), " and b ", b.describe(), ": batch sizes must equal out's ", batch, " (or be 1), got out ",
           out.describe());
  TS_CHECK(out.shape[1] == a.shape[1] && out.shape[2] == b.shape[2], c.op, ": a ", a.describe(), " @ b ",
           b.describe(), " needs out of shape [", batch, ", ", a.shape[1], ", ", b.shape[2], "], got ",
           out.describe());
  c.expect_contiguous(2, "out");
  const double beta = c.s(0);
  TS_CHECK(beta == beta, c.op, ": beta must be a number, got NaN");
  if (out.numel() > 0) {
    int64_t olo, ohi;
    span(out, &olo, &ohi);
    for (int i = 0; i < 2; ++i) {
      const TensorRef& in = c.t(i);
      if (in.storage != out.storage || in.numel() == 0) continue;
      int64_t lo, hi;
      span(in, &lo, &hi);
      TS_CHECK(hi < olo || lo > ohi, c.op, ": out ", out.describe(), " overlaps input ", i == 0 ? "a " : "b ",
               in.describe(), " in memory; out must be a separate buffer");
    }
  }
  if (a.dtype == DType::F32) run<float>(c, (float)beta);
  else run<double>(c, beta);
}

}  // namespace tessera::cuda
