// CUDA twins of native/cpu/softmax.h: softmax / log_softmax over the rows of a contiguous
// [rows, n] tensor, forward and backward.
//   softmax               (x, out)
//   log_softmax           (x, out)
//   softmax_backward      (y, grad_y, grad_x)   grad_x = y * (grad_y - sum(grad_y * y))
//   log_softmax_backward  (y, grad_y, grad_x)   grad_x = grad_y - exp(y) * sum(grad_y)
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void softmax(OpCall& c);
void log_softmax(OpCall& c);
void softmax_backward(OpCall& c);
void log_softmax_backward(OpCall& c);
}  // namespace tessera::cuda
