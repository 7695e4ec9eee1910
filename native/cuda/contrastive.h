// CUDA twins of native/cpu/contrastive.h (same names, tensors, scalars and checks):
//
//   contrastive_softmax          (a, b, scale, out, lse_row, lse_col [, row_ids, col_ids])
//                                [offset, row_weight, col_weight, self_mask]
//   contrastive_softmax_backward (a, b, scale, lse_row, lse_col, grad_out, grad_a, grad_b,
//                                 grad_scale [, row_ids, col_ids])   same scalars
//   contrastive_sigmoid          (a, b, scale, bias, out [, row_ids, col_ids])
//   contrastive_sigmoid_backward (a, b, scale, bias, grad_out, grad_a, grad_b, grad_scale,
//                                 grad_bias [, row_ids, col_ids])
//
// See native/cpu/contrastive.h for the contract and native/cuda/contrastive.cu for the kernels.
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void contrastive_softmax(OpCall& c);
void contrastive_softmax_backward(OpCall& c);
void contrastive_sigmoid(OpCall& c);
void contrastive_sigmoid_backward(OpCall& c);
}  // namespace tessera::cuda
