// CUDA twins of native/cpu/binary.h.
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void add(OpCall& c);
void sub(OpCall& c);
void mul(OpCall& c);
void div(OpCall& c);
}  // namespace tessera::cuda
