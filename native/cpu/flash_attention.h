// Flash attention on the CPU: softmax(scale * q k^T, masked) v computed tile by tile with an
// online softmax, never materialising the [Lq, Lk] score matrix; see flash_attention.cpp.
//
//   flash_attention           (q, k, v, out, lse [, mask])  [scale, causal, has_mask]
//   flash_attention_backward  (q, k, v, out, lse, grad_out, dq, dk, dv [, mask])
//                             [scale, causal, has_mask]
//
//   q [B, H, Lq, hd], k [B, H, Lk, hd], v [B, H, Lk, hdv], out / grad_out [B, H, Lq, hdv],
//   lse [B, H, Lq, 2] (the per-row log-sum-exp L of the masked, scaled scores as the pair
//   (m, 1/l) of row max and inverse row sum, L = m - log(1/l): written by the forward, read by
//   the backward; m = -inf marks a row whose keys are all blocked, which gets a zero output and
//   zero gradients), dq/dk/dv shaped like q/k/v. Any strides on the first three dims; the
//   last dim must have unit stride (or size 1). All float32 or all float64.
//   mask [B, Lk], float32 / float64 / int32, any strides: nonzero = key padding (that key is
//   ignored by every query of that batch entry). causal != 0 blocks key j for query i when j > i
//   (top-left aligned, as torch's is_causal). Outputs must not share storage with the inputs;
//   every element of out, lse, dq, dk, dv is written.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void flash_attention(OpCall& c);
void flash_attention_backward(OpCall& c);
}  // namespace tessera::cpu
