// Layer normalisation over the rows of a contiguous [rows, n] tensor (n = the product of the
// normalised trailing dims; lib/ops/layernorm.ts flattens to this), forward and backward.
//
//   layer_norm (x, out, mean, rstd, [weight], [bias])   scalars [eps, has_weight, has_bias]
//       x, out [rows, n]; mean, rstd [rows] (saved for backward); weight, bias n elements.
//       out = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(biased var + eps).
//   layer_norm_backward (x, mean, rstd, grad_out, [weight], [grad_x], [grad_weight], [grad_bias])
//       scalars [has_weight, want_grad_x, want_grad_weight, want_grad_bias]; a bracketed tensor
//       is present exactly when its flag is 1. grad_weight/grad_bias are reduced over rows in a
//       fixed order, so the result does not depend on the number of threads.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void layer_norm(OpCall& c);
void layer_norm_backward(OpCall& c);
}  // namespace tessera::cpu
