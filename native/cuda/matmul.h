// CUDA twin of native/cpu/matmul.h: batched SGEMM / DGEMM, same arguments and contract.
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
// (a, b, out) [beta]: out = a @ b + beta * out, batched.
//   a: [batch, M, K], b: [batch, K, N], any strides (batch size 1 or batch stride 0 broadcasts);
//   out: [batch, M, N] contiguous, must not overlap a or b. All float32 or all float64.
//   beta == 0 overwrites out without reading it; K == 0 gives out = beta * out.
// float32 runs on TF32 tensor cores by default (see matmul.cu; TESSERA_CUDA_MATMUL=fp32 for exact
// float32 arithmetic), float64 in full double precision.
void matmul(OpCall& c);
}  // namespace tessera::cuda
