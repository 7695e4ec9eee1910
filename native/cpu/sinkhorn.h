// Log-domain Sinkhorn for entropic optimal transport, and the passes its gradients need; see
// sinkhorn.cpp for the algorithm and lib/losses/ot.ts for the user-facing API.
//
// A problem is either a cost matrix or two point clouds whose cost is computed tile by tile and
// never stored:
//   mode 0  matrix      src = (C [B, n, m]),            cost = costScale * C
//   mode 1  sqeuclidean src = (x [B, n, d], y [B, m, d]), cost = costScale * ||x_i - y_j||^2
//   mode 2  negdot      src = (x [B, n, d], y [B, m, d]), cost = -<x_i, y_j> (the caller
//                       normalises the rows for the cosine cost)
// All float tensors of a call share one dtype (float32 or float64) and are contiguous, except
// a [B, n] / b [B, m] which may have batch stride 0 (one marginal shared by the batch).
// Marginals must be > 0; the TypeScript side checks their sums.
//
//   sinkhorn             (src..., a, b, f, g, stats)
//       scalars: mode, costScale, eps, eps0, factor, itersPerStage, maxIter, tol, checkEvery, rho
//       f [B, n], g [B, m]: the dual potentials (outputs). stats [B, 8] float64 (output):
//       iterations, marginal error, <P, C>, dual value, primal objective, mass of P, eps0 used,
//       converged (1 / 0). eps0 <= 0: the cost's range; factor outside (0, 1): no eps-scaling;
//       rho = +inf: balanced, else KL-relaxed marginals of strength rho.
//   sinkhorn_plan        (src..., a, b, f, g, w [B] float64, out [B, n, m])   scalars: mode, costScale, eps, beta
//       out = w_b * P_b + beta * out, P_ij = a_i b_j exp((f_i + g_j - cost_ij) / eps).
//   sinkhorn_grad_points (x, y, a, b, f, g, w [B] float64, dx [B, n, d], dy [B, m, d])
//       scalars: mode (1 or 2), costScale, eps, which (bit 0: write dx, bit 1: write dy).
//       dx_i = w_b sum_j P_ij d cost_ij / d x_i, dy alike.
//   klot                 (Ks, K, a, b, fs, gs, f, g, out [B] float64)   scalars: epsStar, eps
//       out_b = sum_ij P*_ij (log P*_ij - log P_ij), P* the plan of cost -Ks at epsStar with
//       potentials (fs, gs), P the plan of cost -K at eps with potentials (f, g).
//   klot_backward        (Ks, K, a, b, fs, gs, f, g, w [B] float64, gradK [B, n, m])
//       scalars: epsStar, eps.  gradK = w_b (P - P*) / eps.
#pragma once
#include "napi/op_call.h"

namespace tessera::cpu {
void sinkhorn(OpCall& c);
void sinkhorn_plan(OpCall& c);
void sinkhorn_grad_points(OpCall& c);
void klot(OpCall& c);
void klot_backward(OpCall& c);
}  // namespace tessera::cpu
