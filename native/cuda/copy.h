// CUDA twins of native/cpu/copy.h (same arguments, same results; random streams identical).
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void copy(OpCall& c);    // (src, dst): dst = src (same shape, any strides, dtype converted)
void fill(OpCall& c);    // (out) [value]
void arange(OpCall& c);  // (out) [start, step]: 1-D, any stride; out[i] = start + i * step
void rand(OpCall& c);    // (out) [seed, offset, low, high]: uniform, contiguous
void randn(OpCall& c);   // (out) [seed, offset, mean, std]: normal, contiguous
}  // namespace tessera::cuda
