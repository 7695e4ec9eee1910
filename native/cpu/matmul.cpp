// Batched SGEMM / DGEMM: out[b] = a[b] @ b[b] + beta * out[b]  (contract in matmul.h).
//
// WHY IT IS SHAPED THIS WAY (GotoBLAS / BLIS). A naive or merely tiled triple loop is bound by
// memory traffic: every FMA needs operands from L2 or further, and transposed or strided operands
// add TLB misses and cache-set conflicts. Instead the innermost code is a register-blocked
// micro-kernel that only reads two small, contiguous buffers prepared for it ("packing"):
//
//   for each stripe of N (all of N unless K x N > 16M elements):
//     pack B[:, stripe]  -> NR-wide micro-panels, per KC block         (threads share the work)
//     for each chunk of C, <= MC rows x the stripe (threads take chunks dynamically):
//       for pc in K step KC:
//         pack A[chunk rows, pc:+KC] -> MR-tall micro-panels           (this thread, stays in L2)
//         for jr in stripe step NR:  B micro-panel KC x NR ...
//           for ir in chunk step MR: ... against each A micro-panel MR x KC:
//             micro-kernel: MR x NR tile of C (+)= A micro-panel * B micro-panel
//
// The micro-kernel keeps the whole MR x NR tile of C in vector registers for all KC steps: per k
// step it loads NR/L vectors of B and broadcasts MR values of A into MR*NR/L FMAs, and C is read
// and written once per KC block. Tiles (matmul_kernels_*.cpp), sized to the register file:
//   AVX-512  float32 8 x 48, float64 8 x 24: 24 zmm accumulators + 3 B vectors + 1 broadcast of 32
//   AVX2     float32 6 x 16, float64 6 x 8:  12 ymm accumulators + 2 B vectors + 1 broadcast of 16
//   generic  4 x 2 vectors of 16 bytes (SSE2 / NEON through compiler vector extensions)
// Vectors run along N because out is row-major: each tile row is stored with plain vector stores.
// On Zen 5, 8 x 48 measured a few percent faster than 12 x 32, 14 x 32, 6 x 64 or 4 x 64 (and its
// MR = 8 makes packing a row-major A a sequence of whole 8 x 8 register transposes).
//
// Blocking (AVX-512, Zen 4/5: 32-48 KiB L1d and 1 MiB L2 per core, shared L3):
//   KC = 384: C tiles are loaded and stored once per 384 FMA steps. The A micro-panel (12 KiB)
//             sits in L1; the B micro-panel (72 KiB f32) streams from L2, ~20 bytes/cycle, well
//             within L2 bandwidth. KC from 128 to 512 and MC from 96 to 384 all measured within
//             about 3%; smaller KC (B panel inside L1) lost more to extra C traffic.
//   MC = 192: the packed A block MC*KC*4 = 288 KiB stays in L2 while the chunk sweeps all of N.
//   Packed B for a whole stripe (<= 64 MiB f32) lives in L3/DRAM and is read once per chunk and
//   KC block: 4 bytes per MC FMAs, negligible bandwidth.
// K is split into equal blocks (K = 400 runs as 200 + 200, not 384 + 16) and M into equal
// MR-aligned chunks, in a multiple of the thread count, so no block is a sliver.
//
// What packing buys: (1) the micro-kernel reads strictly sequential memory, so one kernel serves
// row-major, transposed (column-major), broadcast (batch stride 0) and arbitrarily strided
// operands alike: only the packing routines look at strides, with fast paths for the two
// unit-stride layouts (a straight copy, or an 8 x 8 SIMD transpose) and an element-by-element
// gather for anything else; (2) no TLB misses or cache-set conflicts from large leading
// dimensions inside the kernel; (3) edges are zero-padded to whole MR / NR panels, so the kernel
// never branches on sizes (edge tiles go through a scratch tile, with narrower kernel variants for
// the last N panel); (4) the cost, O(MK + KN) copies, is spread over O(MNK) FMAs: each packed A
// element is used N times, each packed B element MC times per chunk.
// For M <= 16 (8 with AVX2) the reuse is too small for packing B to pay (it would cost a full extra
// pass over B): a separate unpacked path streams B in place (matrix-vector-like products).
//
// Threads (OpenMP, one parallel region per call): threads pack slices of the shared B stripe,
// pass one barrier, then take chunks of C dynamically, so a thread the OS delays (a busy machine)
// does not hold the others up. Batches of small matrices run whole matrices per thread instead.
// A batch-broadcast b (batch stride 0) is packed once for the whole batch. Everything that can
// fail (argument checks, buffer allocation) happens before the region: nothing inside it throws.
//
// Kernel choice: cpu::simd_level() at run time (AVX-512, AVX2+FMA, or generic), so a portable
// build (no -march=native) still runs the vector kernels. For tests and tuning, the environment
// variables TESSERA_MATMUL_KERNEL=generic|avx2|avx512 (caps the choice) and TESSERA_MATMUL_SMALL_M
// (largest M for the unpacked path, 0 = off) are read once.
#include "cpu/matmul.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#include "cpu/cpu_features.h"
#include "cpu/matmul_kernels.h"
#include "cpu/parallel.h"

namespace tessera::cpu {

namespace matmul_detail {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---------------------------------------------------------------------------------------------
// Generic micro-kernel: any CPU and compiler target (it is what runs on ARM, or on x86 without
// AVX2). Written with GCC/Clang 16-byte vector extensions, which lower to SSE2 or NEON: a 4 x 2
// tile of vectors = 8 accumulators, few enough for the 16 registers of SSE2.
template <typename T, int MR, int NV>
void ukernel_generic(int64_t k, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc, T beta) {
  typedef T V __attribute__((vector_size(16)));
  constexpr int L = 16 / sizeof(T);
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{} ;
  for (int64_t p = 0; p < k; ++p) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + v * L, sizeof(V));
    for (int r = 0; r < MR; ++r) {
      const V av = V{} + a[r];
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
    a += MR;
    b += NV * L;
  }
  for (int r = 0; r < MR; ++r) {
    T* cr = c + r * ldc;
    for (int v = 0; v < NV; ++v) {
      T t[L];
      std::memcpy(t, &acc[r][v], sizeof(V));
      if (beta == T(0))
        for (int j = 0; j < L; ++j) cr[v * L + j] = t[j];
      else
        for (int j = 0; j < L; ++j) cr[v * L + j] = t[j] + beta * cr[v * L + j];
    }
  }
}

template <typename T>
GemmKernel<T> generic_kernel() {
  GemmKernel<T> k;
  k.fn = &ukernel_generic<T, 4, 2>;
  k.lanes = 16 / sizeof(T);
  k.mr = 4;
  k.nr = 2 * k.lanes;
  k.mc = 128;
  k.kc = 256;
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
void pack_a_t(int64_t mc, int64_t kc, const T* A, int64_t rs, int64_t cs, TransposePack<T> tp, T* out) {
  for (int64_t i = 0; i < mc; i += MR, out += MR * kc) {
    const int mr = (int)std::min<int64_t>(MR, mc - i);
    const T* a = A + i * rs;
    if (mr == MR && rs == 1) {  // column-major (transposed) A: MR contiguous values per k
      for (int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < MR; ++r) out[p * MR + r] = a[p * cs + r];
    } else if (mr == MR && cs == 1) {  // row-major A: MR rows read in parallel, a transpose
      if (tp) {
        tp(a, rs, MR, kc, out);
        continue;
      }
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
void pack_b_t(int64_t kc, int64_t nc, const T* B, int64_t rs, int64_t cs, TransposePack<T> tp, T* out) {
  for (int64_t j = 0; j < nc; j += NR, out += NR * kc) {
    const int nr = (int)std::min<int64_t>(NR, nc - j);
    const T* b = B + j * cs;
    if (nr == NR && cs == 1) {  // row-major B: a straight copy of NR values per k
      for (int64_t p = 0; p < kc; ++p) std::memcpy(out + p * NR, b + p * rs, NR * sizeof(T));
    } else if (nr == NR && rs == 1) {  // column-major (transposed) B: columns run along k, a transpose
      if (tp) {
        tp(b, cs, NR, kc, out);
        continue;
      }
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
void pack_a(int mr, int64_t mc, int64_t kc, const T* A, int64_t rs, int64_t cs, TransposePack<T> tp, T* out) {
  switch (mr) {
    case 8: return pack_a_t<T, 8>(mc, kc, A, rs, cs, tp, out);
    case 6: return pack_a_t<T, 6>(mc, kc, A, rs, cs, tp, out);
    case 4: return pack_a_t<T, 4>(mc, kc, A, rs, cs, tp, out);
    default: __builtin_unreachable();
  }
}

template <typename T>
void pack_b(int nr, int64_t kc, int64_t nc, const T* B, int64_t rs, int64_t cs, TransposePack<T> tp, T* out) {
  switch (nr) {
    case 48: return pack_b_t<T, 48>(kc, nc, B, rs, cs, tp, out);
    case 24: return pack_b_t<T, 24>(kc, nc, B, rs, cs, tp, out);
    case 16: return pack_b_t<T, 16>(kc, nc, B, rs, cs, tp, out);
    case 8: return pack_b_t<T, 8>(kc, nc, B, rs, cs, tp, out);
    case 4: return pack_b_t<T, 4>(kc, nc, B, rs, cs, tp, out);
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

// Most elements of packed B held at once (64 MiB of float32): wider problems go in column stripes.
constexpr int64_t kMaxPackedB = int64_t(1) << 24;

// How one problem shape is cut up, shared by the allocation and all threads.
template <typename T>
struct Plan {
  GemmKernel<T> k;
  int64_t kc;        // K block: K split into equal blocks of at most k.kc
  int64_t stripe;    // columns of B packed at once (multiple of NR, or all of N)
  int64_t b_elems;   // packed B buffer: K x round_up(stripe, NR)
  int64_t a_elems;   // packed A buffer (per thread): mc_max x kc
  int64_t mpan;      // MR-row panels of M
  int64_t mchunks;   // row chunks: each at most k.mc rows, MR-aligned
  int64_t nchunks;   // column chunks of a stripe (more than 1 only when M has too few panels)
};

template <typename T>
Plan<T> make_plan(const GemmKernel<T>& k, int64_t M, int64_t N, int64_t K, int nt) {
  Plan<T> pl;
  pl.k = k;
  pl.kc = ceil_div(K, ceil_div(K, k.kc));
  const int64_t npad = round_up(N, k.nr);
  pl.stripe = npad;
  if (npad * K > kMaxPackedB) pl.stripe = std::max<int64_t>(k.nr, kMaxPackedB / K / k.nr * k.nr);
  pl.b_elems = round_up(K * pl.stripe, 64);
  pl.mpan = ceil_div(M, k.mr);
  const int64_t per_chunk = k.mc / k.mr;  // panels per MC block
  pl.mchunks = ceil_div(pl.mpan, per_chunk);
  pl.nchunks = 1;
  if (nt > 1) {
    // Enough chunks for every thread, in a multiple of the thread count so equal-speed threads
    // finish together (512 rows on 2 threads: 4 chunks of 128, not 192 + 192 + 128).
    pl.mchunks = std::min(pl.mpan, round_up(pl.mchunks, nt));
    if (pl.mchunks < nt) pl.nchunks = std::min(ceil_div(std::min(N, pl.stripe), k.nr), ceil_div(nt, pl.mchunks));
  }
  const int64_t mc_max = ceil_div(pl.mpan, pl.mchunks) * k.mr;
  pl.a_elems = round_up(mc_max * pl.kc, 64);
  return pl;
}

// Pack columns [j0 + q*NR, +NR) of B (all K rows) into the stripe buffer: the K block starting at
// row pc occupies [pc * nstride, (pc + kc) * nstride), its panel q starts q * NR * kc into that.
template <typename T>
void pack_b_panel(const Plan<T>& pl, const Gemm<T>& g, int64_t j0, int64_t ncs, int64_t nstride, int64_t q,
                  T* bpack) {
  const int NR = pl.k.nr;
  const int64_t col = j0 + q * NR;
  const int64_t cols = std::min<int64_t>(NR, j0 + ncs - col);
  for (int64_t pc = 0; pc < g.K; pc += pl.kc) {
    const int64_t kc = std::min(pl.kc, g.K - pc);
    pack_b<T>(NR, kc, cols, g.B + pc * g.rsb + col * g.csb, g.rsb, g.csb, pl.k.tpack, bpack + pc * nstride + q * NR * kc);
  }
}

// Lazy, shared packing of a B stripe by a team: the first thread that needs panel q packs it (all K
// blocks), a thread that finds it being packed waits for it. So there is no packing phase and no
// barrier after it, and a thread the OS delays never holds up the others. Panels are marked with
// an epoch (one per packed stripe) so the flags need no reset between stripes.
struct PanelSync {
  std::atomic<int64_t>* flag;  // per panel: epoch when packed, -epoch while being packed
  int64_t epoch;
  template <typename F>
  void ensure(int64_t q, F&& pack) const {
    std::atomic<int64_t>& f = flag[q];
    int64_t v = f.load(std::memory_order_acquire);
    if (v == epoch) return;
    if (v != -epoch && f.compare_exchange_strong(v, -epoch, std::memory_order_acq_rel)) {
      pack();
      f.store(epoch, std::memory_order_release);
      return;
    }
    while (f.load(std::memory_order_acquire) != epoch) std::this_thread::yield();
  }
};

// One chunk of C: rows of M panels [mp0, mp1), columns of stripe panels [q0, q1), visited from
// panel q0 + qrot (so that team threads start packing different panels). Packs its own A block (at
// most MC rows) per K block and sweeps it across the chunk's B panels. sync: null when bpack is
// already fully packed.
template <typename T>
void run_chunk(const Plan<T>& pl, const Gemm<T>& g, T* bpack, int64_t j0, int64_t ncs, int64_t nstride, int64_t mp0,
               int64_t mp1, int64_t q0, int64_t q1, int64_t qrot, const PanelSync* sync, T* apack) {
  const GemmKernel<T>& kr = pl.k;
  const int MR = kr.mr, NR = kr.nr;
  const int64_t m0 = mp0 * MR, m1 = std::min(g.M, mp1 * MR);
  if (m0 >= m1 || q0 >= q1) return;
  const int64_t nq = q1 - q0;
  alignas(64) T tile[kMaxTile];
  for (int64_t pc = 0; pc < g.K; pc += pl.kc) {
    const int64_t kc = std::min(pl.kc, g.K - pc);
    const T beta = pc == 0 ? g.beta : T(1);
    pack_a<T>(MR, m1 - m0, kc, g.A + m0 * g.rsa + pc * g.csa, g.rsa, g.csa, kr.tpack, apack);
    for (int64_t t = 0; t < nq; ++t) {
      const int64_t q = q0 + (qrot + t) % nq;
      if (sync && pc == 0) sync->ensure(q, [&] { pack_b_panel(pl, g, j0, ncs, nstride, q, bpack); });
      const int64_t col = j0 + q * NR;
      const int nr = (int)std::min<int64_t>(NR, j0 + ncs - col);
      const T* bp = bpack + pc * nstride + q * NR * kc;
      for (int64_t i = m0; i < m1; i += MR) {
        const int mr = (int)std::min<int64_t>(MR, m1 - i);
        T* c = g.C + i * g.ldc + col;
        const T* ap = apack + (i - m0) * kc;
        if (mr == MR && nr == NR) {
          kr.fn(kc, ap, bp, c, g.ldc, beta);
        } else {  // edge tile: compute into scratch (only the vectors needed), merge the valid part
          const int nv = (nr + kr.lanes - 1) / kr.lanes;
          const MicroKernel<T> f = nv < 4 && kr.narrow[nv] ? kr.narrow[nv] : kr.fn;
          f(kc, ap, bp, tile, NR, T(0));
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
}

// Chunk number `chunk` of the plan's mchunks x nchunks grid; with a team of nt, consecutive chunks
// start their panel sweep 1/nt of the way apart.
template <typename T>
void run_chunk_index(const Plan<T>& pl, const Gemm<T>& g, T* bpack, int64_t j0, int64_t ncs, int64_t nstride,
                     int64_t chunk, const PanelSync* sync, int nt, T* apack) {
  const int64_t mi = chunk / pl.nchunks, ni = chunk % pl.nchunks;
  const int64_t npan = ceil_div(ncs, pl.k.nr);
  const int64_t q0 = npan * ni / pl.nchunks, q1 = npan * (ni + 1) / pl.nchunks;
  const int64_t qrot = (q1 - q0) * (chunk % nt) / nt;
  run_chunk(pl, g, bpack, j0, ncs, nstride, pl.mpan * mi / pl.mchunks, pl.mpan * (mi + 1) / pl.mchunks, q0, q1,
            qrot, sync, apack);
}

// The whole GEMM on one thread. pack == false reuses the B already in bpack (a batch-broadcast B
// packed for an earlier batch entry; only valid with a single stripe).
template <typename T>
void gemm_serial(const Plan<T>& pl, const Gemm<T>& g, T* bpack, T* apack, bool pack) {
  const int NR = pl.k.nr;
  for (int64_t j0 = 0; j0 < g.N; j0 += pl.stripe) {
    const int64_t ncs = std::min(pl.stripe, g.N - j0), nstride = round_up(ncs, NR), npan = ceil_div(ncs, NR);
    if (pack)
      for (int64_t q = 0; q < npan; ++q) pack_b_panel(pl, g, j0, ncs, nstride, q, bpack);
    for (int64_t c = 0; c < pl.mchunks * pl.nchunks; ++c)
      run_chunk_index(pl, g, bpack, j0, ncs, nstride, c, nullptr, 1, apack);
  }
}

// The whole GEMM on the calling team (call from every thread of a parallel region, in the same
// sequence). Threads take chunks of C dynamically and pack the shared B stripe lazily (PanelSync).
// The only barrier is before a stripe buffer is repacked (a second stripe, or the next batch
// entry), none in the common one-stripe case. epoch: this thread's count of packed stripes (the
// same on every thread); pack == false reuses the B in bpack (a batch-broadcast b).
template <typename T>
void gemm_team(const Plan<T>& pl, const Gemm<T>& g, T* bpack, T* apack, std::atomic<int64_t>* flags, int64_t& epoch,
               bool pack, int nt) {
  const int NR = pl.k.nr;
  for (int64_t j0 = 0; j0 < g.N; j0 += pl.stripe) {
    const int64_t ncs = std::min(pl.stripe, g.N - j0), nstride = round_up(ncs, NR);
    if (pack) {
      if (epoch > 0) {
#pragma omp barrier
      }
      ++epoch;
    }
    const PanelSync sync{flags, epoch};
    const int64_t chunks = pl.mchunks * pl.nchunks;
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t c = 0; c < chunks; ++c) run_chunk_index(pl, g, bpack, j0, ncs, nstride, c, &sync, nt, apack);
  }
}

// Packing buffers of the calling thread, kept between calls (packing into freshly faulted pages
// would cost more than the packing) up to kKeepWorkspace bytes; a larger one (K x N beyond ~16M
// float32) is released when its call ends, so no call leaves more than that behind. Only the
// calling thread allocates; OpenMP threads receive slices of it.
constexpr size_t kKeepWorkspace = size_t(64) << 20;
struct Workspace {
  void* p = nullptr;
  size_t cap = 0;
  ~Workspace() { std::free(p); }
  void trim() {
    if (cap > kKeepWorkspace) {
      std::free(p);
      p = nullptr;
      cap = 0;
    }
  }
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

// Panel flags for the team path (PanelSync), also kept between calls.
struct FlagSpace {
  std::unique_ptr<std::atomic<int64_t>[]> p;
  size_t cap = 0;
  std::atomic<int64_t>* get(size_t n) {
    if (n > cap) {
      p.reset(new std::atomic<int64_t>[n]);
      cap = n;
    }
    for (size_t i = 0; i < n; ++i) p[i].store(0, std::memory_order_relaxed);
    return p.get();
  }
};
thread_local FlagSpace tl_flags;

// Below this many multiply-adds (over the whole batch) a call runs on the calling thread only.
constexpr int64_t kParallelMinWork = int64_t(1) << 19;

// Largest M for the unpacked small-M path: the kernel's default, or TESSERA_MATMUL_SMALL_M (tests,
// tuning; 0 disables the path).
int small_m_limit(int kernel_default) {
  static const int env = [] {
    const char* e = std::getenv("TESSERA_MATMUL_SMALL_M");
    return e ? std::atoi(e) : -1;
  }();
  return env >= 0 ? env : kernel_default;
}

// Small M (matrix-vector-like): no packing of B, threads split the batch and N.
template <typename T>
void matmul_small_m(const GemmKernel<T>& kr, int64_t batch, int64_t M, int64_t N, int64_t K, const T* A, int64_t sa,
                    int64_t rsa, int64_t csa, const T* B, int64_t sb, int64_t rsb, int64_t csb, T* C, T beta, int nt) {
  const bool pack_rows = csb != 1 && csa != 1;  // column-major B wants A rows contiguous along k
  const int64_t unit = 64;
  int64_t nb = 1;
  if (nt > 1 && batch < 2 * nt) nb = std::min(ceil_div(N, unit), ceil_div(2 * nt, batch));
  const int64_t w = round_up(ceil_div(N, nb), unit);
  nb = ceil_div(N, w);
  const int64_t items = batch * nb;
  T* ws = pack_rows ? static_cast<T*>(tl_workspace.get((size_t)(round_up(M * K, 64) * nt) * sizeof(T))) : nullptr;
  auto item = [&](int64_t it, T* mine) {
    const int64_t i = it / nb, j0 = it % nb * w, j1 = std::min(N, j0 + w);
    const T* a = A + i * sa;
    int64_t ra = rsa, ca = csa;
    if (pack_rows) {
      for (int64_t r = 0; r < M; ++r)
        for (int64_t p = 0; p < K; ++p) mine[r * K + p] = a[r * rsa + p * csa];
      a = mine;
      ra = K;
      ca = 1;
    }
    kr.smallm(M, K, a, ra, ca, B + i * sb, rsb, csb, C + i * M * N, N, beta, j0, j1);
  };
  if (nt == 1 || items == 1) {
    for (int64_t it = 0; it < items; ++it) item(it, ws);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    T* mine = ws ? ws + omp_get_thread_num() * round_up(M * K, 64) : nullptr;
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) item(it, mine);
  }
}

template <typename T>
void matmul_impl(const TensorRef& a, const TensorRef& b, const TensorRef& out, T beta);

template <typename T>
void matmul_typed(const TensorRef& a, const TensorRef& b, const TensorRef& out, T beta) {
  struct Trim {
    ~Trim() { tl_workspace.trim(); }
  } trim;
  matmul_impl<T>(a, b, out, beta);
}

template <typename T>
void matmul_impl(const TensorRef& a, const TensorRef& b, const TensorRef& out, T beta) {
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
  auto gemm = [&](int64_t i) { return Gemm<T>{M, N, K, A + i * sa, rsa, csa, B + i * sb, rsb, csb, C + i * sc, ldc, beta}; };

  const GemmKernel<T> kr = select_kernel<T>();
  const int64_t work = M * N * K;
  int nt = num_threads();
  if (work * batch < kParallelMinWork || nt < 1) nt = 1;
  if (kr.smallm && M <= small_m_limit(kr.small_m) && (csb == 1 || rsb == 1)) {
    matmul_small_m(kr, batch, M, N, K, A, sa, rsa, csa, B, sb, rsb, csb, C, beta, nt);
    return;
  }
  // Whole matrices per thread when the batch covers the threads and the matrices are small (or
  // the batch divides evenly): no barriers inside a matrix, no shared buffers.
  const bool per_matrix = nt > 1 && batch >= nt &&
                          (batch % nt == 0 || batch >= 4 * nt || work < (int64_t(1) << 21)) &&
                          round_up(N, kr.nr) * K <= kMaxPackedB;
  const Plan<T> pl = make_plan(kr, M, N, K, per_matrix ? 1 : nt);
  // B packed once serves every batch entry when b is batch-broadcast and fits one stripe.
  const bool b_shared = sb == 0 && pl.stripe >= N;

  if (nt == 1) {
    T* ws = static_cast<T*>(tl_workspace.get((size_t)(pl.b_elems + pl.a_elems) * sizeof(T)));
    for (int64_t i = 0; i < batch; ++i) gemm_serial(pl, gemm(i), ws, ws + pl.b_elems, i == 0 || !b_shared);
    return;
  }
  if (per_matrix) {
    const int64_t slot = pl.b_elems + pl.a_elems;
    T* ws = static_cast<T*>(tl_workspace.get((size_t)(slot * nt) * sizeof(T)));
#pragma omp parallel num_threads(nt)
    {
      T* mine = ws + omp_get_thread_num() * slot;
      bool packed = false;  // this thread's buffer already holds the shared B
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < batch; ++i) {
        gemm_serial(pl, gemm(i), mine, mine + pl.b_elems, !(b_shared && packed));
        packed = true;
      }
    }
    return;
  }
  T* ws = static_cast<T*>(tl_workspace.get((size_t)(pl.b_elems + pl.a_elems * nt) * sizeof(T)));
  std::atomic<int64_t>* flags = tl_flags.get((size_t)ceil_div(pl.stripe, kr.nr));
#pragma omp parallel num_threads(nt)
  {
    T* apack = ws + pl.b_elems + omp_get_thread_num() * pl.a_elems;
    const int n = omp_get_num_threads();
    int64_t epoch = 0;
    for (int64_t i = 0; i < batch; ++i) gemm_team(pl, gemm(i), ws, apack, flags, epoch, i == 0 || !b_shared, n);
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
