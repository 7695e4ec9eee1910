// CUDA twins of native/cpu/layernorm.h: layer normalisation over the rows of a contiguous
// [rows, n] tensor, forward and backward (same argument lists and scalars as the CPU kernels).
//   layer_norm (x, out, mean, rstd, [weight], [bias])   scalars [eps, has_weight, has_bias]
//   layer_norm_backward (x, mean, rstd, grad_out, [weight], [grad_x], [grad_weight], [grad_bias])
//       scalars [has_weight, want_grad_x, want_grad_weight, want_grad_bias]
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void layer_norm(OpCall& c);
void layer_norm_backward(OpCall& c);
}  // namespace tessera::cuda
