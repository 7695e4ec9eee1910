// Reductions over the middle axis of a contiguous [outer, R, inner] tensor into a contiguous
// [outer, inner] output. The TypeScript side folds any set of adjacent reduced dims into R (and
// permutes first when they are not adjacent), so one kernel serves "sum over the last dim"
// (inner = 1, a contiguous row per output) and "sum over the batch dim" (outer = 1, vectorised
// over inner) without a transpose. Accumulation is in double for float32 inputs too.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void sum(OpCall& c);        // (x, out)
void mean(OpCall& c);       // (x, out)
void amax(OpCall& c);       // (x, out): NaN propagates
void amin(OpCall& c);       // (x, out)
void logsumexp(OpCall& c);  // (x, out): stable, -inf rows give -inf
void var(OpCall& c);        // (x, out) [correction]
}  // namespace tessera::cpu
