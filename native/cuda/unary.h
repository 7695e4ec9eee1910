// CUDA twins of native/cpu/unary.h: unary elementwise kernels and their fused backward rules,
// same names, arguments, scalars and checks. Forward: (x, out) plus the op's scalars.
// Backward: (x, y, grad_y, grad_x) with y the forward output. See native/cuda/unary.cu for the
// precision notes (which ops match the CPU bit for bit, which to a few ulp).
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void neg(OpCall&);
void exp(OpCall&);
void log(OpCall&);
void sqrt(OpCall&);
void rsqrt(OpCall&);
void abs(OpCall&);
void relu(OpCall&);
void gelu(OpCall&);       // erf form: x * Phi(x)
void gelu_tanh(OpCall&);  // tanh approximation
void sigmoid(OpCall&);
void logsigmoid(OpCall&);
void softplus(OpCall&);   // [beta, threshold] as torch.nn.functional.softplus
void tanh(OpCall&);
void clamp(OpCall&);      // [min, max]; NaN bound = unbounded on that side
void pow_scalar(OpCall&); // [exponent]
void affine(OpCall&);     // [scale, shift]: out = scale * x + shift

void exp_backward(OpCall&);
void log_backward(OpCall&);
void sqrt_backward(OpCall&);
void rsqrt_backward(OpCall&);
void abs_backward(OpCall&);
void relu_backward(OpCall&);
void gelu_backward(OpCall&);
void gelu_tanh_backward(OpCall&);
void sigmoid_backward(OpCall&);
void logsigmoid_backward(OpCall&);
void softplus_backward(OpCall&);   // [beta, threshold]
void tanh_backward(OpCall&);
void clamp_backward(OpCall&);      // [min, max]
void pow_scalar_backward(OpCall&); // [exponent]
}  // namespace tessera::cuda
