// CUDA twins of native/cpu/optim.h: fused optimizer updates and the gradient-norm helper, with
// the same tensors, scalars and checks as the CPU kernels.
//   adamw_step (param, grad, exp_avg, exp_avg_sq) [lr, beta1, beta2, eps, weight_decay, step, grad_scale]
//   sgd_step (param, grad[, momentum_buf]) [lr, momentum, dampening, weight_decay, nesterov, first_step, grad_scale]
//   lion_step (param, grad, exp_avg) [lr, beta1, beta2, weight_decay, grad_scale]
//   sum_squares (x, out): out (one element, float64 or x's dtype) = sum of x*x
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void adamw_step(OpCall& c);
void sgd_step(OpCall& c);
void lion_step(OpCall& c);
void sum_squares(OpCall& c);
}  // namespace tessera::cuda
