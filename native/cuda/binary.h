// CUDA twins of native/cpu/binary.h (same names, arguments, checks and results; see
// native/cuda/binary.cu for the precision notes).
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
// (a, b, out), all one shape and dtype; pow and div are float-only.
void add(OpCall& c);
void sub(OpCall& c);
void mul(OpCall& c);
void div(OpCall& c);
void pow(OpCall& c);
void maximum(OpCall& c);
void minimum(OpCall& c);
// Comparisons write 1 or 0 in the operands' dtype.
void eq(OpCall& c);
void ne(OpCall& c);
void lt(OpCall& c);
void le(OpCall& c);
void gt(OpCall& c);
void ge(OpCall& c);
// (cond, a, b, out): out = cond != 0 ? a : b; cond may have any dtype.
void where(OpCall& c);
}  // namespace tessera::cuda
