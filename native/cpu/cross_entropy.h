// Fused cross-entropy of [N, C] logits with int32 class targets (PyTorch semantics, including
// ignore_index and label smoothing), forward and backward.
//
//   cross_entropy (logits, targets, out, lse)            scalars [ignore_index, smoothing, reduction]
//       logits [N, C] contiguous float; targets [N] int32 (any stride); lse [N] (saved for the
//       backward; 0 on ignored rows); out [N] for reduction 0 ('none'), [] for 1 ('mean') or
//       2 ('sum').
//   cross_entropy_backward (logits, targets, lse, grad_out, grad_logits)   same scalars
//       grad_out [N] for 'none', [] otherwise; grad_logits [N, C] contiguous.
// A target that is neither ignore_index nor in [0, C) is an error naming the op, the value and
// its row, raised before any parallel work starts.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void cross_entropy(OpCall& c);
void cross_entropy_backward(OpCall& c);
}  // namespace tessera::cpu
