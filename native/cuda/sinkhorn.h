// CUDA twins of native/cpu/sinkhorn.h (same ops, same tensor / scalar contract; see that header
// and native/cuda/sinkhorn.cu): log-domain Sinkhorn on a cost matrix or on point clouds with the
// cost computed on the fly, the plan, the gradient w.r.t. the points, and KLOT forward / backward.
//   sinkhorn             (src..., a, b, f, g, stats)        10 scalars
//   sinkhorn_plan        (src..., a, b, f, g, w, out)       mode, costScale, eps, beta
//   sinkhorn_grad_points (x, y, a, b, f, g, w, dx, dy)      mode, costScale, eps, which
//   klot                 (Ks, K, a, b, fs, gs, f, g, out)   epsStar, eps
//   klot_backward        (Ks, K, a, b, fs, gs, f, g, w, gradK)   epsStar, eps
#pragma once
#include "napi/op_call.h"

namespace tessera::cuda {
void sinkhorn(OpCall& c);
void sinkhorn_plan(OpCall& c);
void sinkhorn_grad_points(OpCall& c);
void klot(OpCall& c);
void klot_backward(OpCall& c);
}  // namespace tessera::cuda
