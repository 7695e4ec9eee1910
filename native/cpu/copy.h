// Creation and layout kernels: strided copy with dtype conversion, fill, arange, seeded random.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void copy(OpCall& c);    // (src, dst): dst = src (same shape, any strides, dtype converted)
void fill(OpCall& c);    // (out) [value]
void arange(OpCall& c);  // (out) [start, step]: contiguous 1-D
void rand(OpCall& c);    // (out) [seed, offset, low, high]: uniform, contiguous
void randn(OpCall& c);   // (out) [seed, offset, mean, std]: normal, contiguous
}  // namespace tessera::cpu
