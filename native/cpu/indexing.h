// Indexing kernels: gather / scatter_add along a dim (torch.gather, torch.scatter_add_),
// index_select / index_add with a 1-D index, and embedding lookup with its backward.
//
// Every entry point validates shapes, dtypes and *every index value* before it writes anything
// and before it enters a parallel region (an exception must never escape an OpenMP thread), so a
// bad index from any caller, including `addon.ops[name]` called directly, is a clear Error naming
// the op, the value, its position and the valid range, never an out-of-bounds access.
// Outputs must be contiguous: the TypeScript side allocates them fresh, and it guarantees that
// distinct output coordinates are distinct addresses, which the race-free accumulation relies on.
// Indices are int32; data may be any dtype for the copies, float32/float64 in practice.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
// (x, index, out) [dim]: out[.., i, ..] = x[.., index[.., i, ..], ..]; index has x's rank,
// index.size(d) <= x.size(d) for d != dim, out has index's shape.
void gather(OpCall& c);
// (index, src, out) [dim]: out[.., index[.., i, ..], ..] += src[.., i, ..] in place (out holds x
// on entry). index.size(d) <= src.size(d) for all d and <= out.size(d) for d != dim.
void scatter_add(OpCall& c);
// (x, index, out) [dim]: index 1-D; out = x with size(dim) = index.size(0).
void index_select(OpCall& c);
// (index, src, out) [dim]: index 1-D; out[.., index[i], ..] += src[.., i, ..] in place.
void index_add(OpCall& c);
// (weight [V, D], ids (any shape), out [...ids.shape, D]).
void embedding(OpCall& c);
// (ids, grad_out [...ids.shape, D], grad_weight [V, D]): grad_weight is overwritten (rows no id
// selects become zero). Deterministic: each thread owns a range of rows of grad_weight.
void embedding_backward(OpCall& c);
}  // namespace tessera::cpu
