// Binary elementwise kernels. Operands arrive already broadcast to the output's shape (stride-0
// views made on the TypeScript side), so one strided walk serves broadcasting, transposed and
// sliced inputs alike. Comparisons write 1 or 0 in the operands' dtype (there is no bool dtype;
// a 0/1 float tensor is what masks are multiplied by anyway).
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
// (a, b, out), all one shape and dtype.
void add(OpCall& c);
void sub(OpCall& c);
void mul(OpCall& c);
void div(OpCall& c);
void pow(OpCall& c);
void maximum(OpCall& c);
void minimum(OpCall& c);
void eq(OpCall& c);
void ne(OpCall& c);
void lt(OpCall& c);
void le(OpCall& c);
void gt(OpCall& c);
void ge(OpCall& c);
// (cond, a, b, out): out = cond != 0 ? a : b; cond may have any dtype.
void where(OpCall& c);
}  // namespace tessera::cpu
