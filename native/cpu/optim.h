// Fused optimizer updates: the whole update of one parameter (decay, moment updates, bias
// correction, the step itself) as one in-place pass over its memory, instead of the eight or
// so elementwise ops (each with a temporary and a trip through memory) that PyTorch's
// single-tensor path runs. Every tensor is contiguous float32 or float64, and all of one
// parameter's tensors (param, grad, state) share its shape and dtype. The arithmetic follows
// PyTorch's operation order so float64 results agree to rounding; float32 works in float, as
// PyTorch's does, with the scalar coefficients computed once in double.
//
// `grad_scale` multiplies the gradient before anything else reads it: gradient clipping passes
// its clip coefficient here instead of rescaling every gradient in a separate pass.
//
// Every argument is validated before the parallel loop (an exception must not escape an
// OpenMP thread): counts, shapes, dtypes, contiguity, non-overlapping written tensors, finite
// hyper-parameters, step >= 1.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
// (param, grad, exp_avg, exp_avg_sq) [lr, beta1, beta2, eps, weight_decay, step, grad_scale]:
// torch.optim.AdamW (amsgrad=False, maximize=False).
void adamw_step(OpCall& c);
// (param, grad[, momentum_buf]) [lr, momentum, dampening, weight_decay, nesterov, first_step,
// grad_scale]: torch.optim.SGD. The buffer is required when momentum != 0; on first_step = 1 it
// is set to the (decayed) gradient, as PyTorch's clone on the first step.
void sgd_step(OpCall& c);
// (param, grad, exp_avg) [lr, beta1, beta2, weight_decay, grad_scale]: Lion (Chen et al. 2023),
// as lucidrains/lion-pytorch.
void lion_step(OpCall& c);
// (x, out): out (0-d, float64 or x's dtype) = sum of x*x, accumulated in double in fixed-size
// blocks so the result does not depend on the thread count.
void sum_squares(OpCall& c);
}  // namespace tessera::cpu
