// CUDA twins of native/cpu/reduce.h: reductions over the middle axis of a contiguous
// [outer, R, inner] tensor into a contiguous [outer, inner] output.
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void sum(OpCall& c);        // (x, out)
void mean(OpCall& c);       // (x, out)
void amax(OpCall& c);       // (x, out): NaN propagates
void amin(OpCall& c);       // (x, out)
void logsumexp(OpCall& c);  // (x, out): stable, -inf rows give -inf
void var(OpCall& c);        // (x, out) [correction]
}  // namespace tessera::cuda
