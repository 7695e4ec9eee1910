// Batched matrix multiply (SGEMM/DGEMM), BLIS-style packed kernels; see matmul.cpp.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
// (a, b, out) [beta]: out = a @ b + beta * out, batched.
//   a: [batch, M, K], b: [batch, K, N], any strides each (row-major, transposed/column-major,
//      batch stride 0 for a broadcast operand, or any other layout on a slower packing path);
//      a batch size of 1 also broadcasts against out's batch.
//   out: [batch, M, N], contiguous, must not overlap a or b.
//   All float32 or all float64. beta == 0 overwrites out without reading it (NaN in out is
//   ignored); beta == 1 accumulates (gradient accumulation). K == 0 gives out = beta * out.
void matmul(OpCall& c);
}  // namespace tessera::cpu
