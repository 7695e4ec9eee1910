// CUDA twins of native/cpu/flash_attention.h (same names, arguments, scalars and layouts):
//
//   flash_attention           (q, k, v, out, lse [, mask])  [scale, causal, has_mask]
//   flash_attention_backward  (q, k, v, out, lse, grad_out, dq, dk, dv [, mask])
//                             [scale, causal, has_mask]
//
// See native/cpu/flash_attention.h for the contract and native/cuda/flash_attention.cu for the
// kernels.
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void flash_attention(OpCall& c);
void flash_attention_backward(OpCall& c);
}  // namespace tessera::cuda
