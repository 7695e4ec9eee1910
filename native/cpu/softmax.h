// softmax and log_softmax over the rows of a contiguous [rows, n] tensor, forward and backward.
// The TypeScript side (lib/ops/softmax.ts) moves any `dim` to the last axis first, so the
// kernels only ever see unit-stride rows: every inner loop is a flat, vectorised pass.
//   softmax               (x, out)
//   log_softmax           (x, out)
//   softmax_backward      (y, grad_y, grad_x)   grad_x = y * (grad_y - sum(grad_y * y))
//   log_softmax_backward  (y, grad_y, grad_x)   grad_x = grad_y - exp(y) * sum(grad_y)
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void softmax(OpCall& c);
void log_softmax(OpCall& c);
void softmax_backward(OpCall& c);
void log_softmax_backward(OpCall& c);
}  // namespace tessera::cpu
