// CUDA twins of native/cpu/cross_entropy.h: fused cross-entropy of [N, C] logits with int32
// class targets (PyTorch semantics: ignore_index, label smoothing, reductions), forward and
// backward, with the same tensors and scalars as the CPU kernels:
//   cross_entropy (logits, targets, out, lse)            scalars [ignore_index, smoothing, reduction]
//   cross_entropy_backward (logits, targets, lse, grad_out, grad_logits)   same scalars
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void cross_entropy(OpCall& c);
void cross_entropy_backward(OpCall& c);
}  // namespace tessera::cuda
