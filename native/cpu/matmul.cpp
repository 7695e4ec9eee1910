// Batched SGEMM / DGEMM: out[b] = a[b] @ b[b] + beta * out[b].
//
// WHY IT IS SHAPED THIS WAY (GotoBLAS / BLIS). A naive or merely tiled triple loop is bounded by
// memory bandwidth: each FMA needs operands that come from L2 or further, and strided or
// transposed operands thrash the TLB. The fix is to make the innermost code a register-blocked
// micro-kernel that only ever reads two small, contiguous, cache-resident buffers:
//
//   for jc in N step NC:                     B block KC x NC (packed) lives in L3 (shared by threads)
//     for pc in K step KC:                   pack B[pc:+KC, jc:+NC]   -> NR-wide micro-panels
//       for ic in M step MC (per thread):    pack A[ic:+MC, pc:+KC]   -> MR-tall micro-panels, in L2
//         for jr in NC step NR:              one B micro-panel (KC x NR) stays in L1 ...
//           for ir in MC step MR:            ... while A micro-panels stream in from L2
//             micro-kernel: MR x NR tile of C += A panel (MR x KC) * B panel (KC x NR)
//
// The micro-kernel keeps the whole MR x NR tile of C in vector registers for all KC steps, so per
// k step it does MR*NR/L FMAs against only NR/L vector loads of B plus MR scalar broadcasts of A;
// C is read and written once per KC block. The tile is shaped for the register file:
//   AVX-512 float32 12 x 32 (24 zmm accumulators of 32), float64 12 x 16;
//   AVX2    float32  6 x 16 (12 ymm accumulators of 16), float64  6 x 8.
// Vectors run along N because out is row-major: tile rows are stored with plain vector stores.
//
// Blocking (AVX-512 float32, sized for Zen 4/5: 32-48 KiB L1d, 1 MiB L2 per core, shared L3):
//   KC = 256: the B micro-panel is KC*NR*4 = 32 KiB, the part of L1 reused across the ir loop;
//             the A micro-panel (12 KiB) streams alongside it. KC also amortises the C tile's
//             load/store over 256 FMA steps.
//   MC = 192: the packed A block MC*KC*4 = 192 KiB sits in L2 with room for B panels passing by.
//   NC = 4096: the packed B block KC*NC*4 = 4 MiB sits in L3; N up to 4096 takes one jc step.
// K is split into equal blocks (K = 300 runs as 150 + 150, not 256 + 44) and M ranges into equal
// MR-aligned blocks, so no block is a sliver.
//
// What packing buys: (1) the micro-kernel reads strictly sequential, 64-byte-aligned memory, so
// one kernel serves row-major, transposed (column-major), broadcast (batch stride 0) and arbitrary
// strided operands alike: only the packing routine looks at strides, with fast loops for the two
// unit-stride layouts and an element-by-element gather for anything else; (2) no TLB misses or
// cache-set conflicts from large leading dimensions inside the kernel; (3) edges are zero-padded
// to full MR / NR panels, so the kernel never branches on size; (4) the cost, O(MK + KN) copies,
// is amortised over O(MNK) FMAs (each packed A element is used NC/NR times, each B element MC/MR
// times per thread).
//
// Threads (OpenMP): one parallel region per call. Threads pack disjoint slices of the shared B
// block, meet at a barrier, then each computes its own slice of C (a tm x tn grid over the M and
// N panels, chosen to balance the work; usually all of the split is along M, each thread packing
// its own A blocks), and meet again before B is repacked. Batches of small matrices instead run
// whole matrices per thread. Everything that can fail (argument checks, buffer allocation) is done
// before the region: nothing inside it throws.
//
// Kernel choice: cpu::simd_level() at run time (AVX-512, AVX2+FMA, or the generic C++ kernel),
// so a portable build (no -march=native) still runs the vector kernels. For testing, the
// environment variable TESSERA_MATMUL_KERNEL=generic|avx2|avx512 caps the choice (read once).
#include "cpu/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/cpu_features.h"
#include "cpu/matmul_kernels.h"
#include "cpu/parallel.h"

namespace tessera::cpu {

namespace matmul_detail {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---------------------------------------------------------------------------------------------
// Generic C++ micro-kernel: any CPU. With -march=native the compiler vectorises the j loops.
template <typename T, int MR, int NR>
void ukernel_generic(int64_t k, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc,
                     T beta) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < k; ++p) {
    for (int r = 0; r < MR; ++r) {
      const T av = a[r];
      for (int j = 0; j < NR; ++j) acc[r][j] += av * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int r = 0; r < MR; ++r) {
    T* cr = c + r * ldc;
    if (beta == T(0))
      for (int j = 0; j < NR; ++j) cr[j] = acc[r][j];
    else
      for (int j = 0; j < NR; ++j) cr[j] = acc[r][j] + beta * cr[j];
  }
}

template <typename T>
GemmKernel<T> generic_kernel() {
  GemmKernel<T> k;
  k.fn = &ukernel_generic<T, 4, 16 / (sizeof(T) / 4)>;
  k.mr = 4;
  k.nr = 16 / (sizeof(T) / 4);
  k.mc = 128;
  k.kc = 256;
  k.nc = 2048;
  k.name = "generic";
  return k;
}

// Highest kernel level allowed: the CPU's, capped by TESSERA_MATMUL_KERNEL (for tests).
SimdLevel kernel_level() {
  static const SimdLevel level = [] {
    SimdLevel l = simd_level();
    if (const char* env = std::getenv("TESSERA_MATMUL_KERNEL")) {
      SimdLevel want = l;
      if (!std::strcmp(env, "generic")) want = SimdLevel::Generic;
      else if (!std::strcmp(env, "avx2")) want = SimdLevel::AVX2;
      else if (!std::strcmp(env, "avx512")) want = SimdLevel::AVX512;
      if ((int)want < (int)l) l = want;
    }
    return l;
  }();
  return level;
}

template <typename T>
GemmKernel<T> select_kernel();

template <>
GemmKernel<float> select_kernel<float>() {
  static const GemmKernel<float> k = [] {
    SimdLevel l = kernel_level();
    if (l == SimdLevel::AVX512 && avx512_f32().fn) return avx512_f32();
    if ((int)l >= (int)SimdLevel::AVX2 && avx2_f32().fn) return avx2_f32();
    return generic_kernel<float>();
  }();
  return k;
}

template <>
GemmKernel<double> select_kernel<double>() {
  static const GemmKernel<double> k = [] {
    SimdLevel l = kernel_level();
    if (l == SimdLevel::AVX512 && avx512_f64().fn) return avx512_f64();
    if ((int)l >= (int)SimdLevel::AVX2 && avx2_f64().fn) return avx2_f64();
    return generic_kernel<double>();
  }();
  return k;
}

// ---------------------------------------------------------------------------------------------
// Packing. A block (mc x kc, element (i, p) at A[i*rs + p*cs]) -> ceil(mc/MR) micro-panels, each
// kc steps of MR values; B block (kc x nc, element (p, j) at B[p*rs + j*cs]) -> ceil(nc/NR)
// micro-panels, each kc steps of NR values. Rows / columns past the edge are zero.

template <typename T, int MR>
void pack_a_t(int64_t mc, int64_t kc, const T* A, int64_t rs, int64_t cs, T* out) {
  for (int64_t i = 0; i < mc; i += MR, out += MR * kc) {
    const int mr = (int)std::min<int64_t>(MR, mc - i);
    const T* a = A + i * rs;
    if (mr == MR && rs == 1) {  // column-major (transposed) A: MR contiguous values per k
      for (int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < MR; ++r) out[p * MR + r] = a[p * cs + r];
    } else if (mr == MR && cs == 1) {  // row-major A: MR rows read in parallel
      for (int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < MR; ++r) out[p * MR + r] = a[r * rs + p];
    } else {  // edge panel or general strides
      for (int64_t p = 0; p < kc; ++p) {
        for (int r = 0; r < mr; ++r) out[p * MR + r] = a[r * rs + p * cs];
        for (int r = mr; r < MR; ++r) out[p * MR + r] = T(0);
      }
    }
  }
}

template <typename T, int NR>
void pack_b_t(int64_t kc, int64_t nc, const T* B, int64_t rs, int64_t cs, T* out) {
  for (int64_t j = 0; j < nc; j += NR, out += NR * kc) {
    const int nr = (int)std::min<int64_t>(NR, nc - j);
    const T* b = B + j * cs;
    if (nr == NR && cs == 1) {  // row-major B: a straight copy of NR values per k
      for (int64_t p = 0; p < kc; ++p) std::memcpy(out + p * NR, b + p * rs, NR * sizeof(T));
    } else if (nr == NR && rs == 1) {  // column-major (transposed) B: read each column along k
      for (int c = 0; c < NR; ++c)
        for (int64_t p = 0; p < kc; ++p) out[p * NR + c] = b[c * cs + p];
    } else {  // edge panel or general strides
      for (int64_t p = 0; p < kc; ++p) {
        for (int c = 0; c < nr; ++c) out[p * NR + c] = b[p * rs + c * cs];
        for (int c = nr; c < NR; ++c) out[p * NR + c] = T(0);
      }
    }
  }
}

template <typename T>
void pack_a(int mr, int64_t mc, int64_t kc, const T* A, int64_t rs, int64_t cs, T* out) {
  switch (mr) {
    case 12: return pack_a_t<T, 12>(mc, kc, A, rs, cs, out);
    case 6: return pack_a_t<T, 6>(mc, kc, A, rs, cs, out);
    case 4: return pack_a_t<T, 4>(mc, kc, A, rs, cs, out);
    default: __builtin_unreachable();
  }
}

template <typename T>
void pack_b(int nr, int64_t kc, int64_t nc, const T* B, int64_t rs, int64_t cs, T* out) {
  switch (nr) {
    case 32: return pack_b_t<T, 32>(kc, nc, B, rs, cs, out);
    case 16: return pack_b_t<T, 16>(kc, nc, B, rs, cs, out);
    case 8: return pack_b_t<T, 8>(kc, nc, B, rs, cs, out);
    default: __builtin_unreachable();
  }
}

// ---------------------------------------------------------------------------------------------
// One GEMM: C (M x N, rows ldc apart, unit column stride) = A @ B + beta * C.
template <typename T>
struct Gemm {
  int64_t M, N, K;
  const T* A;
  int64_t rsa, csa;
  const T* B;
  int64_t rsb, csb;
  T* C;
  int64_t ldc;
  T beta;
};

// Block sizes actually used for one problem shape (shared by the allocation and the threads).
template <typename T>
struct Plan {
  GemmKernel<T> k;
  int64_t kc, nc, mc_max;  // K block (equal split), N block, largest M block
  int64_t a_elems, b_elems;  // packed buffer sizes, elements
};

template <typename T>
Plan<T> make_plan(const GemmKernel<T>& k, int64_t M, int64_t N, int64_t K) {
  Plan<T> pl;
  pl.k = k;
  const int64_t kb = ceil_div(K, k.kc);
  pl.kc = ceil_div(K, kb);
  pl.nc = std::min<int64_t>(round_up(N, k.nr), k.nc);
  pl.mc_max = std::min<int64_t>(round_up(M, k.mr), k.mc);
  pl.a_elems = round_up(pl.mc_max * pl.kc, 64);
  pl.b_elems = round_up(pl.nc * pl.kc, 64);
  return pl;
}

// Split nt threads into a tm x tn grid over (M panels, N panels) minimising the largest share.
inline void thread_grid(int nt, int64_t m_panels, int64_t n_panels, int* tm, int* tn) {
  int64_t best = -1;
  *tm = nt;
  *tn = 1;
  for (int a = nt; a >= 1; --a) {
    if (nt % a) continue;
    const int b = nt / a;
    const int64_t cost = ceil_div(m_panels, a) * ceil_div(n_panels, b);
    if (best < 0 || cost < best) {  // ties keep the larger tm: each thread packs only its own A
      best = cost;
      *tm = a;
      *tn = b;
    }
  }
}

// The body every thread of the team runs (tid of nt). With nt == 1 there are no barriers, so it is
// also the single-threaded GEMM. bpack is shared by the team, apack is this thread's own.
template <typename T>
void gemm_thread(const Plan<T>& pl, const Gemm<T>& g, T* bpack, T* apack, int tid, int nt) {
  const GemmKernel<T>& kr = pl.k;
  const int MR = kr.mr, NR = kr.nr;
  const int64_t M = g.M, N = g.N, K = g.K;

  int tm, tn;
  thread_grid(nt, ceil_div(M, MR), ceil_div(std::min(N, pl.nc), NR), &tm, &tn);
  const int ti = tid / tn, tj = tid % tn;
  const int64_t mpan = ceil_div(M, MR);
  const int64_t m0 = std::min(M, mpan * ti / tm * MR);
  const int64_t m1 = std::min(M, mpan * (ti + 1) / tm * MR);
  int64_t mc = 0;
  if (m1 > m0) {
    const int64_t nb = ceil_div(m1 - m0, pl.mc_max);
    mc = round_up(ceil_div(m1 - m0, nb), MR);
  }

  alignas(64) T tile[kMaxTile];

  for (int64_t jc = 0; jc < N; jc += pl.nc) {
    const int64_t nc = std::min(pl.nc, N - jc);
    const int64_t npan = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < K; pc += pl.kc) {
      const int64_t kc = std::min(pl.kc, K - pc);
      // Pack this thread's slice of the shared B block.
      const int64_t p0 = npan * tid / nt, p1 = npan * (tid + 1) / nt;
      if (p1 > p0)
        pack_b<T>(NR, kc, std::min(nc, p1 * NR) - p0 * NR, g.B + pc * g.rsb + (jc + p0 * NR) * g.csb, g.rsb, g.csb,
                  bpack + p0 * NR * kc);
      if (nt > 1) {
#pragma omp barrier
      }
      const T beta = pc == 0 ? g.beta : T(1);
      const int64_t j0 = npan * tj / tn, j1 = npan * (tj + 1) / tn;
      for (int64_t ic = m0; ic < m1; ic += mc) {
        const int64_t mcc = std::min(mc, m1 - ic);
        pack_a<T>(MR, mcc, kc, g.A + ic * g.rsa + pc * g.csa, g.rsa, g.csa, apack);
        for (int64_t jr = j0; jr < j1; ++jr) {
          const int64_t col = jc + jr * NR;
          const int nr = (int)std::min<int64_t>(NR, N - col);
          const T* bp = bpack + jr * NR * kc;
          for (int64_t ir = 0; ir < mcc; ir += MR) {
            const int mr = (int)std::min<int64_t>(MR, mcc - ir);
            T* c = g.C + (ic + ir) * g.ldc + col;
            const T* ap = apack + ir * kc;
            if (mr == MR && nr == NR) {
              kr.fn(kc, ap, bp, c, g.ldc, beta);
            } else {  // edge tile: compute a full tile into scratch, merge the valid part
              kr.fn(kc, ap, bp, tile, NR, T(0));
              for (int r = 0; r < mr; ++r) {
                T* cr = c + r * g.ldc;
                const T* tr = tile + r * NR;
                if (beta == T(0))
                  for (int j = 0; j < nr; ++j) cr[j] = tr[j];
                else
                  for (int j = 0; j < nr; ++j) cr[j] = tr[j] + beta * cr[j];
              }
            }
          }
        }
      }
      if (nt > 1) {
#pragma omp barrier
      }
    }
  }
}

// Packing buffers of the calling thread, kept between calls (packing into freshly faulted pages
// would cost more than the packing). Only the calling thread allocates; OpenMP threads receive
// slices of it.
struct Workspace {
  void* p = nullptr;
  size_t cap = 0;
  ~Workspace() { std::free(p); }
  void* get(size_t bytes) {
    if (bytes > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      void* q = nullptr;
      if (posix_memalign(&q, 4096, bytes) != 0) throw std::bad_alloc();
      p = q;
      cap = bytes;
    }
    return p;
  }
};
thread_local Workspace tl_workspace;

// Below this many multiply-adds (over the whole batch) a call runs on the calling thread only.
constexpr int64_t kParallelMinWork = int64_t(1) << 17;

template <typename T>
void matmul_typed(const TensorRef& a, const TensorRef& b, const TensorRef& out, T beta) {
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  if (batch == 0 || M == 0 || N == 0) return;
  T* C = out.data<T>();
  const int64_t ldc = N, sc = M * N;

  if (K == 0) {  // empty sum: out = beta * out
    const int64_t n = batch * sc;
    if (beta == T(0)) std::fill(C, C + n, T(0));
    else if (beta != T(1))
      for (int64_t i = 0; i < n; ++i) C[i] *= beta;
    return;
  }

  // Strides; a size-1 dimension's stride is irrelevant, so make it 1 to hit the fast packers.
  const int64_t sa = a.shape[0] == 1 ? 0 : a.strides[0], sb = b.shape[0] == 1 ? 0 : b.strides[0];
  const int64_t rsa = M == 1 ? 1 : a.strides[1], csa = K == 1 ? 1 : a.strides[2];
  const int64_t rsb = K == 1 ? 1 : b.strides[1], csb = N == 1 ? 1 : b.strides[2];
  const T* A = a.data<T>();
  const T* B = b.data<T>();

  const GemmKernel<T> kr = select_kernel<T>();
  const Plan<T> pl = make_plan(kr, M, N, K);
  const int64_t work = M * N * K;

  int nt = num_threads();
  if (work * batch < kParallelMinWork || nt < 1) nt = 1;
  // Whole matrices per thread when the batch covers the threads and the matrices are small or
  // the batch divides evenly: no barriers, no shared buffers.
  const bool per_matrix = nt > 1 && batch >= nt && (batch % nt == 0 || batch >= 4 * nt || work < (int64_t(1) << 21));
  const int64_t per_thread = pl.a_elems + (per_matrix ? pl.b_elems : 0);
  const int64_t total = (per_matrix ? 0 : pl.b_elems) + per_thread * nt;
  T* ws = static_cast<T*>(tl_workspace.get((size_t)total * sizeof(T)));

  auto one = [&](int64_t i) {
    Gemm<T> g{M, N, K, A + i * sa, rsa, csa, B + i * sb, rsb, csb, C + i * sc, ldc, beta};
    return g;
  };

  if (nt == 1) {
    for (int64_t i = 0; i < batch; ++i) gemm_thread<T>(pl, one(i), ws + pl.b_elems, ws, 0, 1);
    return;
  }
  if (per_matrix) {
#pragma omp parallel num_threads(nt)
    {
      const int tid = omp_get_thread_num(), n = omp_get_num_threads();
      T* mine = ws + tid * per_thread;
      for (int64_t i = tid; i < batch; i += n) gemm_thread<T>(pl, one(i), mine + pl.a_elems, mine, 0, 1);
    }
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), n = omp_get_num_threads();
    T* bpack = ws;
    T* apack = ws + pl.b_elems + tid * per_thread;
    for (int64_t i = 0; i < batch; ++i) gemm_thread<T>(pl, one(i), bpack, apack, tid, n);
  }
}

// Element range [lo, hi] a non-empty tensor can touch, for the overlap check.
void span(const TensorRef& t, int64_t* lo, int64_t* hi) {
  *lo = t.offset;
  *hi = t.offset;
  for (int d = 0; d < t.ndim; ++d) *hi += (t.shape[d] - 1) * t.strides[d];
}

}  // namespace
}  // namespace matmul_detail

void matmul(OpCall& c) {
  using namespace matmul_detail;
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
  if (a.dtype == DType::F32) matmul_typed<float>(a, b, out, (float)beta);
  else matmul_typed<double>(a, b, out, beta);
}

}  // namespace tessera::cpu
