// CUDA twins of native/cpu/indexing.h (same tensors, scalars, checks and error messages):
//   gather (x, index, out) [dim]          scatter_add (index, src, out) [dim]  (out += in place)
//   index_select (x, index, out) [dim]    index_add (index, src, out) [dim]    (out += in place)
//   embedding (weight [V, D], ids, out [...ids.shape, D])
//   embedding_backward (ids, grad_out [...ids.shape, D], grad_weight [V, D])  (overwritten)
// The accumulating kernels use atomicAdd, so float results do not depend on a fixed order (see
// indexing.cu); int32 accumulation is exact.
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void gather(OpCall& c);
void scatter_add(OpCall& c);
void index_select(OpCall& c);
void index_add(OpCall& c);
void embedding(OpCall& c);
void embedding_backward(OpCall& c);
}  // namespace tessera::cuda
