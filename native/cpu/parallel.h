// parallel_for: split [0, n) into contiguous chunks across the OpenMP threads. Work smaller than
// `grain` items runs inline on the calling thread, because waking the pool costs a few
// microseconds and most small-model ops are tiny. Kernels validate their arguments *before*
// entering a parallel region: an exception must never escape an OpenMP thread.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace tessera::cpu {

inline int num_threads() { return omp_get_max_threads(); }

template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& body) {
  if (n <= 0) return;
  int threads = num_threads();
  if (grain < 1) grain = 1;
  int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  if (chunks <= 1) {
    body(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads((int)chunks)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) body(begin, end);
  }
}

}  // namespace tessera::cpu
