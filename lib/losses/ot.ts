// Entropic optimal transport: log-domain Sinkhorn, the debiased Sinkhorn divergence and KLOT.
//
// ALGORITHM (native/cpu/sinkhorn.cpp has the details). For marginals a [n], b [m] and a cost
// C [n, m], the entropic OT value
//   OT_eps(a, b; C) = min_{P >= 0, P 1 = a, P^T 1 = b} <P, C> + eps KL(P || a b^T)
// is computed by Sinkhorn's iterations on the dual potentials, in the log domain:
//   f_i = -eps LSE_j((g_j - C_ij) / eps + log b_j),   g_j = -eps LSE_i((f_i - C_ij) / eps + log a_i),
// starting from f = g = 0, f first. The plan is P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).
// The cost is a given matrix, or is computed tile by tile from two point clouds and never stored
// (memory O((n + m) d)): 'sqeuclidean' ||x_i - y_j||^2 (halfSquared: 1/2 ||x_i - y_j||^2, the
// convention under which the gradient of OT_0 w.r.t. x_i is x_i - T(x_i)), or 'cosine'
// -<x_i, y_j> / (|x_i| |y_j|) (the rows are L2-normalised through ts.normalize, so the gradient
// flows through the normalisation).
//   - eps-scaling (optional): stages eps0, eps0 q, eps0 q^2, ... above eps with itersPerStage
//     iterations each, warm-started, then eps; eps0 defaults to the cost's range.
//   - stopping: every checkEvery iterations at the final eps, the L1 error of the plan's row
//     marginal against a (its column marginal equals b exactly after the g update) is compared
//     with tol; or after maxIter iterations at the final eps (annealing iterations come on top;
//     `iterations` counts all of them).
//   - unbalanced (rho finite): the marginal constraints become rho KL(P 1 || a) + rho KL(P^T 1 || b),
//     and each update is multiplied by rho / (rho + eps). The marginal error is then the L1
//     distance of the row marginal to its fixed point a exp(-f / rho). Marginals need only be
//     positive (any total mass).
//
// WHAT IS DIFFERENTIATED. `value` is the dual objective at the returned potentials,
//   OT_eps = <f, a> + <g, b> - eps (sum P - |a| |b|)            (balanced; = <f, a> + <g, b>
//                                                               at convergence, where sum P = 1)
//   OT_eps = -rho <a, e^(-f/rho) - 1> - rho <b, e^(-g/rho) - 1> - eps (sum P - |a| |b|)   (unbalanced)
// which at convergence equals the entropic OT value (strong duality). Its gradient is taken by
// the envelope theorem, without backpropagating through the iterations: at the maximising (f, g)
// the value's derivative w.r.t. C is the partial derivative of the dual objective, i.e. the plan
// P. So d value / d C = P, and for point clouds d value / d x_i = sum_j P_ij d C_ij / d x_i, e.g.
// 2 sum_j P_ij (x_i - y_j) for ||x - y||^2, computed tile by tile without storing P. This is exact
// at convergence and first-order accurate in the marginal error otherwise. The marginals a, b
// are treated as constants (passing ones that require a gradient is an error); `transportCost`
// <P, C> and `objective` are returned detached.
//
// ON TOP:
//   sinkhornDivergence(x, y) = OT_eps(x, y) - 1/2 OT_eps(x, x) - 1/2 OT_eps(y, y)  (Feydy et al.
//     2019): >= 0, 0 for identical clouds, differentiable through the three values.
//   klot(Kstar, K) = KL(P* || P), P* the plan for cost -Kstar at epsStar, P the plan for cost -K
//     at eps (both solved without gradient). With log P_ij = (f_i + g_j + K_ij) / eps + log a_i b_j
//     and P* having marginals a, b, KL(P* || P) = const - (<a, f> + <b, g> + <P*, K>) / eps. The
//     term <a, f> + <b, g> is OT_eps for the cost -K, a maximised dual (a log-partition of the
//     Gibbs kernel exp(K / eps) under the marginal constraints), so by the envelope theorem its
//     derivative w.r.t. K is -P (the potentials' dependence on K does not enter). Hence
//     d KL / d K = (P - P*) / eps, computed in one fused pass; no gradient flows to Kstar.
//
// SHAPES. Unbatched: C [n, m], x [n, d], y [m, d], a [n], b [m]; results f [n], g [m], value 0-d.
// Batched: a leading B on every input ([B, n, m], [B, n, d], [B, m, d]; a [n] / b [m] may be
// shared by the batch or given as [B, n] / [B, m]); results [B, n], [B, m], [B]. float32 or
// float64 (float64 recommended for small eps: a float32 cost carries an absolute error of about
// 1e-7 |C|, which the iterations magnify by 1 / eps). CPU and CUDA (native/cuda/sinkhorn.cu): every tensor of
// a problem on one device.

import { runKernel } from '../backend';
import { isGradEnabled, noGrad, record } from '../autograd';
import { scope } from '../scope';
import { DType, Device } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { contiguousStrides } from '../shape';
import { Tensor } from '../tensor';
import { add, mul, sub } from '../ops/binary';
import { normalize } from '../ops/normalize';
import { checkFloat, checkTensor, describeValue } from '../ops/operand';
import { contiguousData } from '../ops/view';

export type OTCost = 'sqeuclidean' | 'cosine';

/** Geometric eps-annealing: eps0, eps0 * factor, ... down to the target eps. */
export interface EpsScaling {
  /** Starting eps (default: the cost's range, max C - min C; for point clouds a bound from the bounding box). */
  eps0?: number;
  /** Ratio between stages, in (0, 1) (default 0.5). */
  factor?: number;
  /** Iterations per annealing stage (default 3). */
  itersPerStage?: number;
}

export interface SinkhornOptions {
  /** Entropic regularisation, > 0 (default 0.05), in the cost's units. */
  eps?: number;
  /** Source marginal [n] (or [B, n]): positive, summing to 1 (default uniform). */
  a?: Tensor;
  /** Target marginal [m] (or [B, m]): positive, summing to 1 (default uniform). */
  b?: Tensor;
  /** Point clouds only: 'sqeuclidean' (default) or 'cosine'. */
  cost?: OTCost;
  /** 'sqeuclidean' only: cost = 1/2 ||x - y||^2 instead of ||x - y||^2 (default false). */
  halfSquared?: boolean;
  /** Anneal eps geometrically from a large eps0 (true: the defaults of EpsScaling). Default off. */
  epsScaling?: boolean | EpsScaling;
  /** Iteration limit at the final eps (default 1000). */
  maxIter?: number;
  /** Stop when the L1 marginal error is below tol (default 1e-6 for float64, 1e-4 for float32; 0: never early). */
  tol?: number;
  /** Check the marginal error every this many iterations (default 10). */
  checkEvery?: number;
  /** Unbalanced OT: KL marginal penalty strength rho > 0 (default Infinity: balanced). */
  rho?: number;
  /** Also return the plan P (materialises [n, m]; default false). */
  returnPlan?: boolean;
}

export interface SinkhornResult {
  /** OT_eps, the dual value at (f, g): 0-d or [B]. The differentiable output (d/dC = P). */
  value: Tensor;
  /** Dual potentials [n] / [B, n] and [m] / [B, m] (detached). */
  f: Tensor;
  g: Tensor;
  /** <P, C> (detached), 0-d or [B]. */
  transportCost: Tensor;
  /** Primal entropic objective <P, C> + eps KL(P || a b^T) (+ the rho KL terms), detached. */
  objective: Tensor;
  /** The plan [n, m] / [B, n, m], only with returnPlan (detached). */
  plan?: Tensor;
  /** Iterations run (annealing included), the largest over the batch. */
  iterations: number;
  /** Final L1 marginal error, the largest over the batch. */
  marginalError: number;
  /** Every problem reached tol. */
  converged: boolean;
  iterationsPerProblem: number[];
  marginalErrorPerProblem: number[];
  /** Total mass of each plan (1 when balanced and converged). */
  massPerProblem: number[];
  /** The eps-scaling start actually used (the target eps when not annealing). */
  eps0: number;
}

const MODE_MATRIX = 0;
const MODE_SQEUCLID = 1;
const MODE_NEGDOT = 2;
const NSTATS = 8;

interface Resolved {
  eps: number;
  eps0: number;
  factor: number;
  itersPerStage: number;
  maxIter: number;
  tol: number;
  checkEvery: number;
  rho: number;
}

/** A problem as the native ops see it: sources viewed as [B, ...], contiguous. */
interface Problem {
  mode: number;
  costScale: number;
  srcs: Tensor[]; // [C3] or [x3, y3]
  inputs: Tensor[]; // the autograd inputs the sources come from (C, or x and y / their normalisations)
  B: number;
  n: number;
  m: number;
  d: number;
  batched: boolean;
  dtype: DType;
  device: Device;
  temps: Tensor[]; // to dispose when no gradient needs them
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function resolveOptions(opts: SinkhornOptions, dtype: DType, op: string): Resolved {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`${op}: options must be an object, got ${describeValue(opts)}`);
  const eps = opts.eps ?? 0.05;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps))
    throw new ArgumentError(`${op}: eps must be a finite number > 0, got ${describeValue(eps)}`);
  const maxIter = opts.maxIter ?? 1000;
  if (!isInt(maxIter) || maxIter < 0) throw new ArgumentError(`${op}: maxIter must be an integer >= 0, got ${describeValue(maxIter)}`);
  const tol = opts.tol ?? (dtype === 'float64' ? 1e-6 : 1e-4);
  if (typeof tol !== 'number' || !(tol >= 0)) throw new ArgumentError(`${op}: tol must be a number >= 0, got ${describeValue(tol)}`);
  const checkEvery = opts.checkEvery ?? 10;
  if (!isInt(checkEvery) || checkEvery < 1) throw new ArgumentError(`${op}: checkEvery must be an integer >= 1, got ${describeValue(checkEvery)}`);
  const rho = opts.rho ?? Infinity;
  if (typeof rho !== 'number' || !(rho > 0)) throw new ArgumentError(`${op}: rho must be a number > 0 (Infinity for balanced OT), got ${describeValue(rho)}`);
  let factor = 0;
  let itersPerStage = 1;
  let eps0 = -1;
  const sc = opts.epsScaling ?? false;
  if (sc !== false) {
    if (sc !== true && (sc === null || typeof sc !== 'object'))
      throw new ArgumentError(`${op}: epsScaling must be a boolean or { eps0?, factor?, itersPerStage? }, got ${describeValue(sc)}`);
    const s: EpsScaling = sc === true ? {} : sc;
    factor = s.factor ?? 0.5;
    if (typeof factor !== 'number' || !(factor > 0 && factor < 1))
      throw new ArgumentError(`${op}: epsScaling.factor must be in (0, 1), got ${describeValue(factor)}`);
    itersPerStage = s.itersPerStage ?? 3;
    if (!isInt(itersPerStage) || itersPerStage < 1)
      throw new ArgumentError(`${op}: epsScaling.itersPerStage must be an integer >= 1, got ${describeValue(itersPerStage)}`);
    if (s.eps0 !== undefined) {
      if (typeof s.eps0 !== 'number' || !(s.eps0 > 0) || !Number.isFinite(s.eps0))
        throw new ArgumentError(`${op}: epsScaling.eps0 must be a finite number > 0, got ${describeValue(s.eps0)}`);
      eps0 = s.eps0;
    }
  }
  return { eps, eps0, factor, itersPerStage, maxIter, tol, checkEvery, rho };
}

function checkDevice(t: Tensor, device: Device, op: string, role: string): void {
  if (t.device !== device) throw new DTypeError(`${op}: ${role} ${t.describe()} must be on ${device}, like the problem's other tensors`);
}

/** `t` viewed as [B, ...rest] (contiguous); records a copy in temps when one was needed. */
function batchView(t: Tensor, shape: number[], temps: Tensor[]): Tensor {
  const c = contiguousData(t);
  if (c !== t) temps.push(c);
  const v = c.viewOf(shape, contiguousStrides(shape), c.offset);
  temps.push(v);
  return v;
}

function matrixProblem(C: Tensor, op: string, costScale = 1, role = 'C'): Problem {
  checkTensor(C, op, role);
  checkFloat(C, op, role);
  if (C.ndim !== 2 && C.ndim !== 3)
    throw new ShapeError(`${op}: cost matrix ${role} must be [n, m] or [B, n, m], got ${C.describe()}`);
  const batched = C.ndim === 3;
  const [B, n, m] = batched ? C.shape : [1, ...C.shape];
  if (n === 0 || m === 0) throw new ShapeError(`${op}: ${role} ${C.describe()} is empty (n and m must be >= 1)`);
  const temps: Tensor[] = [];
  const C3 = batchView(C, [B, n, m], temps);
  return { mode: MODE_MATRIX, costScale, srcs: [C3], inputs: [C], B, n, m, d: 0, batched, dtype: C.dtype, device: C.device, temps };
}

function pointsProblem(x: Tensor, y: Tensor, opts: SinkhornOptions, op: string): Problem {
  checkTensor(x, op, 'x');
  checkTensor(y, op, 'y');
  checkFloat(x, op, 'x');
  checkDevice(y, x.device, op, 'y');
  if (x.dtype !== y.dtype) throw new DTypeError(`${op}: x ${x.describe()} and y ${y.describe()} must have the same dtype`);
  if ((x.ndim !== 2 && x.ndim !== 3) || x.ndim !== y.ndim)
    throw new ShapeError(`${op}: point clouds must be x [n, d], y [m, d] (or batched [B, n, d], [B, m, d]), got x ${x.describe()} and y ${y.describe()}` +
      (x.ndim === 1 || y.ndim === 1 ? ' (for 1-D points use shape [n, 1])' : ''));
  const batched = x.ndim === 3;
  const [B, n, d] = batched ? x.shape : [1, ...x.shape];
  const [By, m, dy] = batched ? y.shape : [1, ...y.shape];
  if (By !== B) throw new ShapeError(`${op}: x ${x.describe()} and y ${y.describe()} must have the same batch size`);
  if (dy !== d) throw new ShapeError(`${op}: x ${x.describe()} and y ${y.describe()} must have the same point dimension d`);
  if (n === 0 || m === 0) throw new ShapeError(`${op}: empty point cloud (x ${x.describe()}, y ${y.describe()})`);
  const cost = opts.cost ?? 'sqeuclidean';
  if (cost !== 'sqeuclidean' && cost !== 'cosine')
    throw new ArgumentError(`${op}: cost must be 'sqeuclidean' or 'cosine', got ${describeValue(cost)}`);
  const half = opts.halfSquared ?? false;
  if (typeof half !== 'boolean') throw new ArgumentError(`${op}: halfSquared must be a boolean, got ${describeValue(half)}`);
  if (half && cost !== 'sqeuclidean') throw new ArgumentError(`${op}: halfSquared applies to the 'sqeuclidean' cost only`);
  const temps: Tensor[] = [];
  let xs = x;
  let ys = y;
  if (cost === 'cosine') {
    // Row normalisation, then the kernel's -<x, y>: differentiable when a gradient is wanted
    // (its intermediates then belong to the caller's scope, like any op's), else in a scope.
    const norm = (): Tensor[] => {
      const xn = normalize(x, 2, -1);
      return [xn, y === x ? xn : normalize(y, 2, -1)];
    };
    if (isGradEnabled() && (x.requiresGrad || y.requiresGrad)) [xs, ys] = norm();
    else {
      [xs, ys] = scope(() => noGrad(norm));
      temps.push(xs);
      if (ys !== xs) temps.push(ys);
    }
  }
  const x3 = batchView(xs, [B, n, d], temps);
  const y3 = batchView(ys, [B, m, d], temps);
  return {
    mode: cost === 'cosine' ? MODE_NEGDOT : MODE_SQEUCLID,
    costScale: half ? 0.5 : 1,
    srcs: [x3, y3],
    inputs: [xs, ys],
    B, n, m, d, batched, dtype: x.dtype, device: x.device, temps,
  };
}

/** A marginal as the kernels take it: [B, len] (batch stride 0 when shared). */
function marginal(t: Tensor | undefined, len: number, p: Problem, role: 'a' | 'b', balanced: boolean, op: string): Tensor {
  const shape = [p.B, len];
  if (t === undefined) {
    const u = Tensor.empty([len], p.dtype, p.device, true);
    runKernel('fill', [u], [1 / len]);
    p.temps.push(u);
    const v = u.viewOf(shape, [0, 1], 0);
    p.temps.push(v);
    return v;
  }
  checkTensor(t, op, role);
  checkFloat(t, op, role);
  checkDevice(t, p.device, op, role);
  if (t.requiresGrad && isGradEnabled())
    throw new ArgumentError(`${op}: ${role} ${t.describe()} requires grad, but gradients with respect to the marginals are not supported; pass ${role}.detach()`);
  const shared = t.ndim === 1 && t.shape[0] === len;
  const perBatch = p.batched && t.ndim === 2 && t.shape[0] === p.B && t.shape[1] === len;
  if (!shared && !perBatch)
    throw new ShapeError(`${op}: ${role} must have shape [${len}]${p.batched ? ` or [${p.B}, ${len}]` : ''} to match the problem (n = ${p.n}, m = ${p.m}${p.batched ? `, B = ${p.B}` : ''}), got ${t.describe()}`);
  const c = noGrad(() => (t.dtype === p.dtype ? contiguousData(t) : contiguousData(t.to(p.dtype))));
  if (c !== t) p.temps.push(c);
  // Values: positive, finite, and (balanced) summing to 1 per problem.
  const vals = c.toTypedArray();
  const rows = shared ? 1 : p.B;
  // The sum is checked at the precision the caller's tensor holds (a float32 vector normalised in
  // float32 is accepted); note that tol cannot go below |sum a - sum b|.
  const sumTol = t.dtype === 'float64' ? 1e-8 : 1e-4;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < len; i++) {
      const v = vals[r * len + i];
      if (!(v > 0) || !Number.isFinite(v))
        throw new ArgumentError(`${op}: ${role} must be positive and finite, got ${v} at index ${shared ? i : `[${r}, ${i}]`} of ${t.describe()}`);
      s += v;
    }
    if (balanced && !(Math.abs(s - 1) <= sumTol * Math.max(1, Math.sqrt(len / 1000))))
      throw new ArgumentError(`${op}: ${role} must sum to 1 (balanced OT), got ${s}${shared ? '' : ` for problem ${r}`} in ${t.describe()}; normalise it, or use rho for unbalanced OT`);
  }
  const v = shared ? c.viewOf(shape, [0, 1], c.offset) : c.viewOf(shape, [len, 1], c.offset);
  p.temps.push(v);
  return v;
}

interface Solved {
  f2: Tensor; // [B, n]
  g2: Tensor; // [B, m]
  a2: Tensor;
  b2: Tensor;
  stats: Float64Array; // [B, NSTATS]
  o: Resolved;
}

function solve(p: Problem, opts: SinkhornOptions, op: string, o: Resolved): Solved {
  const balanced = o.rho === Infinity;
  const a2 = marginal(opts.a, p.n, p, 'a', balanced, op);
  const b2 = marginal(opts.b, p.m, p, 'b', balanced, op);
  const f2 = Tensor.empty([p.B, p.n], p.dtype, p.device, true);
  const g2 = Tensor.empty([p.B, p.m], p.dtype, p.device, true);
  const st = Tensor.empty([p.B, NSTATS], 'float64', p.device, true);
  try {
    runKernel('sinkhorn', [...p.srcs, a2, b2, f2, g2, st],
      [p.mode, p.costScale, o.eps, o.eps0, o.factor, o.itersPerStage, o.maxIter, o.tol, o.checkEvery, o.rho]);
  } catch (e) {
    f2.dispose();
    g2.dispose();
    st.dispose();
    throw e;
  }
  const stats = st.toTypedArray() as Float64Array;
  st.dispose();
  return { f2, g2, a2, b2, stats, o };
}

function perProblem(p: Problem, stats: Float64Array, k: number): number[] {
  return Array.from({ length: p.B }, (_, b) => stats[b * NSTATS + k]);
}

/** A [B] (or 0-d when unbatched) tensor of p.dtype holding stats column k. */
function statTensor(p: Problem, stats: Float64Array, k: number): Tensor {
  const vals = perProblem(p, stats, k);
  const t = Tensor.empty(p.batched ? [p.B] : [], p.dtype, p.device, true);
  t.storage.native.write(0, p.dtype === 'float64' ? Float64Array.from(vals) : Float32Array.from(vals));
  return t;
}

/** The upstream gradient of a [B] / 0-d value as float64 weights [B], times `scale`. */
function weights(g: Tensor, B: number, scale: number): Tensor {
  const gv = g.toTypedArray();
  const w = Tensor.empty([B], 'float64', g.device, true);
  w.storage.native.write(0, Float64Array.from({ length: B }, (_, i) => gv[i] * scale));
  return w;
}

function view(t: Tensor, shape: readonly number[]): Tensor {
  return t.viewOf(shape, contiguousStrides(shape), t.offset);
}

/** The value of a solved problem, with the envelope-theorem backward attached. */
function valueWithGrad(p: Problem, s: Solved, op: string): Tensor {
  const value = statTensor(p, s.stats, 3);
  const needGrad = isGradEnabled() && p.inputs.some((t) => t.requiresGrad);
  if (!needGrad) return value;
  // Private handles on what the backward needs, so disposing result.f / result.g is harmless.
  const fK = s.f2.viewOf(s.f2.shape, s.f2.strides, s.f2.offset);
  const gK = s.g2.viewOf(s.g2.shape, s.g2.strides, s.g2.offset);
  const { eps } = s.o;
  const { B, n, m, d } = p;
  return record(value, op, p.inputs, (g) => {
    if (p.mode === MODE_MATRIX) {
      const w = weights(g, B, p.costScale);
      const P = Tensor.empty([B, n, m], p.dtype, p.device, true);
      runKernel('sinkhorn_plan', [p.srcs[0], s.a2, s.b2, fK, gK, w, P], [MODE_MATRIX, p.costScale, eps, 0]);
      w.dispose();
      return [view(P, p.inputs[0].shape)];
    }
    const w = weights(g, B, 1);
    const wantX = p.inputs[0].requiresGrad;
    const wantY = p.inputs[1].requiresGrad;
    const dx = Tensor.empty([B, n, d], p.dtype, p.device, true);
    const dy = Tensor.empty([B, m, d], p.dtype, p.device, true);
    runKernel('sinkhorn_grad_points', [p.srcs[0], p.srcs[1], s.a2, s.b2, fK, gK, w, dx, dy],
      [p.mode, p.costScale, eps, (wantX ? 1 : 0) | (wantY ? 2 : 0)]);
    w.dispose();
    return [wantX ? view(dx, p.inputs[0].shape) : null, wantY ? view(dy, p.inputs[1].shape) : null];
  });
}

/**
 * Log-domain Sinkhorn for entropic OT between marginals a and b, on a cost matrix C [n, m]
 * ([B, n, m]) or on point clouds x [n, d], y [m, d] ([B, n, d], [B, m, d]) with the cost
 * computed on the fly. See the top of this file for the conventions; `result.value` is the
 * differentiable OT_eps (gradient P w.r.t. C, through the cost formula w.r.t. x and y).
 */
export function sinkhorn(C: Tensor, opts?: SinkhornOptions): SinkhornResult;
export function sinkhorn(x: Tensor, y: Tensor, opts?: SinkhornOptions): SinkhornResult;
export function sinkhorn(first: Tensor, second?: Tensor | SinkhornOptions, third?: SinkhornOptions): SinkhornResult {
  const op = 'sinkhorn';
  const pointsGiven = second instanceof Tensor;
  const opts: SinkhornOptions = (pointsGiven ? third : (second as SinkhornOptions | undefined)) ?? {};
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`${op}: options must be an object, got ${describeValue(opts)}`);
  if (!pointsGiven && (opts.cost !== undefined || opts.halfSquared !== undefined))
    throw new ArgumentError(`${op}: cost / halfSquared apply to point clouds (sinkhorn(x, y, opts)); with a cost matrix C they are not used`);
  if (!(first instanceof Tensor)) throw new ArgumentError(`${op}: expected a cost matrix or two point clouds, got ${describeValue(first)}`);
  const o = resolveOptions(opts, first.dtype, op);
  const p = pointsGiven ? pointsProblem(first, second as Tensor, opts, op) : matrixProblem(first, op);
  const s = solve(p, opts, op, o);
  const value = valueWithGrad(p, s, op);
  const result: SinkhornResult = {
    value,
    f: p.batched ? s.f2 : view(s.f2, [p.n]),
    g: p.batched ? s.g2 : view(s.g2, [p.m]),
    transportCost: statTensor(p, s.stats, 2),
    objective: statTensor(p, s.stats, 4),
    iterations: Math.max(...perProblem(p, s.stats, 0)),
    marginalError: Math.max(...perProblem(p, s.stats, 1)),
    converged: perProblem(p, s.stats, 7).every((c) => c === 1),
    iterationsPerProblem: perProblem(p, s.stats, 0),
    marginalErrorPerProblem: perProblem(p, s.stats, 1),
    massPerProblem: perProblem(p, s.stats, 5),
    eps0: s.stats[6],
  };
  if (opts.returnPlan) {
    const w = Tensor.empty([p.B], 'float64', p.device, true);
    runKernel('fill', [w], [1]);
    const P = Tensor.empty([p.B, p.n, p.m], p.dtype, p.device, true);
    runKernel('sinkhorn_plan', [...p.srcs, s.a2, s.b2, s.f2, s.g2, w, P], [p.mode, p.costScale, o.eps, 0]);
    w.dispose();
    result.plan = p.batched ? P : view(P, [p.n, p.m]);
    if (!p.batched) P.dispose();
  }
  if (!p.batched) {
    s.f2.dispose();
    s.g2.dispose();
  }
  if (!value.requiresGrad) for (const t of p.temps) t.dispose();
  return result;
}

/**
 * Debiased Sinkhorn divergence S_eps(x, y) = OT_eps(x, y) - 1/2 OT_eps(x, x) - 1/2 OT_eps(y, y)
 * between point clouds x [n, d] and y [m, d] (or batched), with weights a (for x) and b (for y).
 * Non-negative, zero for identical clouds, and differentiable in x and y. Balanced OT only.
 */
export function sinkhornDivergence(x: Tensor, y: Tensor, opts: Omit<SinkhornOptions, 'returnPlan'> = {}): Tensor {
  const op = 'sinkhornDivergence';
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`${op}: options must be an object, got ${describeValue(opts)}`);
  if (opts.rho !== undefined && opts.rho !== Infinity)
    throw new ArgumentError(`${op}: only balanced OT is supported (the unbalanced divergence needs extra mass terms); got rho = ${opts.rho}`);
  if (!(x instanceof Tensor) || !(y instanceof Tensor)) throw new ArgumentError(`${op}: x and y must be Tensors (point clouds)`);
  const base: SinkhornOptions = { ...opts, returnPlan: false };
  const parts = [
    sinkhorn(x, y, base),
    sinkhorn(x, x, { ...base, b: opts.a }),
    sinkhorn(y, y, { ...base, a: opts.b }),
  ];
  for (const r of parts) {
    r.f.dispose();
    r.g.dispose();
    r.transportCost.dispose();
    r.objective.dispose();
  }
  const [xy, xx, yy] = parts.map((r) => r.value);
  return sub(xy, mul(add(xx, yy), 0.5));
}

export interface KlotOptions {
  /** Teacher temperature (default 0.005). */
  epsStar?: number;
  /** Student temperature (default 0.05). */
  eps?: number;
  /** Marginals (default uniform). */
  a?: Tensor;
  b?: Tensor;
  /** Solver settings for both plans (defaults as sinkhorn, with epsScaling on). */
  maxIter?: number;
  tol?: number;
  checkEvery?: number;
  epsScaling?: boolean | EpsScaling;
}

/**
 * KLOT: KL(P* || P) between the entropic plan P* of the teacher similarity Kstar [n, m] (cost
 * -Kstar at epsStar) and the plan P of the student similarity K [n, m] (cost -K at eps), both
 * computed without gradient. Differentiable in K: d/dK = (P - P*) / eps (see the top of this
 * file). Batched [B, n, m] gives [B].
 */
export function klot(Kstar: Tensor, K: Tensor, opts: KlotOptions = {}): Tensor {
  const op = 'klot';
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`${op}: options must be an object, got ${describeValue(opts)}`);
  checkTensor(Kstar, op, 'Kstar');
  checkTensor(K, op, 'K');
  if (Kstar.dtype !== K.dtype) throw new DTypeError(`${op}: Kstar ${Kstar.describe()} and K ${K.describe()} must have the same dtype`);
  if (Kstar.device !== K.device) throw new DTypeError(`${op}: Kstar ${Kstar.describe()} and K ${K.describe()} must be on the same device`);
  if (Kstar.ndim !== K.ndim || Kstar.shape.some((s, i) => s !== K.shape[i]))
    throw new ShapeError(`${op}: Kstar and K must have the same shape [n, m] (or [B, n, m]), got ${Kstar.describe()} and ${K.describe()}`);
  if (Kstar.requiresGrad && isGradEnabled())
    throw new ArgumentError(`${op}: Kstar ${Kstar.describe()} requires grad, but KLOT has no gradient w.r.t. the teacher similarity; pass Kstar.detach()`);
  const epsStar = opts.epsStar ?? 0.005;
  if (typeof epsStar !== 'number' || !(epsStar > 0) || !Number.isFinite(epsStar))
    throw new ArgumentError(`${op}: epsStar must be a finite number > 0, got ${describeValue(epsStar)}`);
  const solverOpts: SinkhornOptions = {
    a: opts.a, b: opts.b, maxIter: opts.maxIter, tol: opts.tol, checkEvery: opts.checkEvery,
    epsScaling: opts.epsScaling ?? true,
  };
  const oS = resolveOptions({ ...solverOpts, eps: epsStar }, K.dtype, op);
  const o = resolveOptions({ ...solverOpts, eps: opts.eps ?? 0.05 }, K.dtype, op);
  const pS = matrixProblem(Kstar, op, -1, 'Kstar');
  const p = matrixProblem(K, op, -1, 'K');
  const sS = noGrad(() => solve(pS, solverOpts, op, oS));
  const s = noGrad(() => solve(p, solverOpts, op, o));
  const out = Tensor.empty([p.B], 'float64', p.device, true);
  runKernel('klot', [pS.srcs[0], p.srcs[0], s.a2, s.b2, sS.f2, sS.g2, s.f2, s.g2, out], [oS.eps, o.eps]);
  const vals = out.toTypedArray();
  out.dispose();
  const value = Tensor.empty(p.batched ? [p.B] : [], p.dtype, p.device, true);
  value.storage.native.write(0, p.dtype === 'float64' ? Float64Array.from(vals) : Float32Array.from(vals));
  const cleanup = () => {
    for (const t of [...pS.temps, ...p.temps, sS.f2, sS.g2, s.f2, s.g2]) t.dispose();
  };
  if (!(isGradEnabled() && K.requiresGrad)) {
    cleanup();
    return value;
  }
  return record(value, op, [K], (g) => {
    const w = weights(g, p.B, 1);
    const gK = Tensor.empty([p.B, p.n, p.m], p.dtype, p.device, true);
    runKernel('klot_backward', [pS.srcs[0], p.srcs[0], s.a2, s.b2, sS.f2, sS.g2, s.f2, s.g2, w, gK], [oS.eps, o.eps]);
    w.dispose();
    return [view(gK, K.shape)];
  });
}
