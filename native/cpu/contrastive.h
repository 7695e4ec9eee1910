// Fused contrastive losses over embeddings a [N, D] and b [M, D] with a learnable log temperature
// (logits = exp(scale) * a b^T, never materialised as an N x M buffer), forward and backward.
// The TypeScript side is lib/losses/contrastive.ts; the algorithm is explained in contrastive.cpp.
//
// Positives: either "offset" mode (row i's one positive is column (i + offset) mod M; needs
// N == M; offset 0 is the CLIP diagonal), or "ids" mode (pass row_ids [N] and col_ids [M], int32,
// any stride: every pair with equal ids is a positive). Every float tensor has a's dtype; a and b
// are contiguous; scale (and bias) have one element.
//
//   contrastive_softmax (a, b, scale, out, lse_row, lse_col [, row_ids, col_ids])
//       scalars [offset, row_weight, col_weight, self_mask]
//       out []: row_weight * mean over rows with >= 1 positive of
//                 (lse_row_i - mean_{j in P_i} logit_ij)
//             + col_weight * the same over columns (softmax over i of column j).
//       lse_row [N], lse_col [M]: the log-sum-exps, saved for the backward (lse_col is 0 when
//       col_weight == 0). self_mask (offset mode, offset != 0, N == M) drops the i == j entries
//       from every softmax (NT-Xent).
//   contrastive_softmax_backward (a, b, scale, lse_row, lse_col, grad_out, grad_a, grad_b,
//                                 grad_scale [, row_ids, col_ids])   same scalars
//   contrastive_sigmoid (a, b, scale, bias, out [, row_ids, col_ids])    no scalars
//       out [] = (1 / N) sum_ij softplus(-z_ij (exp(scale) a_i.b_j + bias)), z = +1 on positives
//       (the diagonal, N == M, or equal ids), -1 elsewhere: SigLIP's -mean_i sum_j log sigmoid.
//   contrastive_sigmoid_backward (a, b, scale, bias, grad_out, grad_a, grad_b, grad_scale,
//                                 grad_bias [, row_ids, col_ids])
// Everything is validated (shapes, dtypes, ids, finite scale and bias, every direction with a
// nonzero weight having at least one positive) before any parallel work starts.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void contrastive_softmax(OpCall& c);
void contrastive_softmax_backward(OpCall& c);
void contrastive_sigmoid(OpCall& c);
void contrastive_sigmoid_backward(OpCall& c);
}  // namespace tessera::cpu
