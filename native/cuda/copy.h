// CUDA twins of native/cpu/copy.h (same arguments, same results; random streams identical).
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void copy(OpCall& c);
void fill(OpCall& c);
void rand(OpCall& c);
void randn(OpCall& c);
}  // namespace tessera::cuda
