// Reductions: sum, mean, max, min, logsumexp, var over any dims, with keepdim.
// The reduced dims are brought together (a permute + copy only when they are not already
// adjacent in a contiguous tensor) and the native kernel reduces the middle axis of
// [outer, R, inner]; see native/cpu/reduce.cpp.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { ShapeError } from '../errors';
import { fmtShape, normDims, numelOf, sameShape, Shape } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkTensor } from './operand';

type Dims = number | readonly number[] | undefined;

interface Plan {
  dims: number[];
  outShape: number[]; // with keepdim
  keptShape: number[]; // keepdim = true shape, for broadcasting gradients back
  r: number;
}

function plan(x: Tensor, dims: Dims, keepdim: boolean, op: string): Plan {
  const d = normDims(dims, x.ndim, op);
  const keptShape = x.shape.map((s, i) => (d.includes(i) ? 1 : s));
  const outShape = keepdim ? keptShape : x.shape.filter((_, i) => !d.includes(i));
  return { dims: d, outShape, keptShape, r: numelOf(d.map((i) => x.shape[i])) };
}

/** Run native reduction `kernel` over p.dims of x (no autograd). */
function reduceRaw(kernel: string, x: Tensor, p: Plan, scalars: number[] = []): Tensor {
  const out = Tensor.empty(p.outShape, x.dtype, x.device, true); // every output is written
  // Reduced dims adjacent in a contiguous tensor: view as [outer, R, inner] directly.
  const adjacent = p.dims.length === 0 || p.dims[p.dims.length - 1] - p.dims[0] === p.dims.length - 1;
  let src = x;
  let order = x.shape.map((_, i) => i);
  if (!(adjacent && x.isContiguous())) {
    const kept = order.filter((i) => !p.dims.includes(i));
    order = [...kept, ...p.dims];
    const permuted = x.viewOf(order.map((i) => x.shape[i]), order.map((i) => x.strides[i]), x.offset);
    src = Tensor.empty(permuted.shape, x.dtype, x.device, true);
    runKernel('copy', [permuted, src]);
    permuted.dispose();
  }
  const first = adjacent && src === x ? (p.dims.length ? p.dims[0] : x.ndim) : x.ndim - p.dims.length;
  const outer = numelOf(src.shape.slice(0, first));
  const inner = numelOf(src.shape.slice(first + p.dims.length));
  const view3 = src.viewOf([outer, p.r, inner], [p.r * inner, inner, 1], src.offset);
  runKernel(kernel, [view3, out], scalars);
  view3.dispose();
  if (src !== x) src.dispose();
  return out;
}

/** g (shaped like the reduction's output) broadcast back to x's shape, as a view. */
function spread(g: Tensor, p: Plan, x: Tensor): Tensor {
  const kept = g.viewOf(p.keptShape, keptStrides(g, p), g.offset);
  const strides = x.shape.map((s, i) => (p.keptShape[i] === 1 && s !== 1 ? 0 : kept.strides[i]));
  const out = kept.viewOf(x.shape, strides, kept.offset);
  kept.dispose();
  return out;
}

function keptStrides(g: Tensor, p: Plan): number[] {
  // g is contiguous with shape outShape; strides for keptShape (size-1 dims get any stride).
  const gc = g.isContiguous() ? g : null;
  if (!gc) throw new ShapeError('reduce backward: gradient must be contiguous');
  const strides: number[] = [];
  let acc = 1;
  for (let i = p.keptShape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= p.keptShape[i];
  }
  return strides;
}

function contiguousGrad(g: Tensor): Tensor {
  if (g.isContiguous()) return g;
  const c = Tensor.empty(g.shape, g.dtype, g.device, true);
  runKernel('copy', [g, c]);
  return c;
}

export function sum(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  checkTensor(x, 'sum', 'x');
  checkFloat(x, 'sum', 'x');
  const p = plan(x, dims, keepdim, 'sum');
  const out = reduceRaw('sum', x, p);
  return record(out, 'sum', [x], (g) => {
    const gx = Tensor.empty(x.shape, g.dtype, g.device, true);
    const spreadG = spread(contiguousGrad(g), p, x);
    runKernel('copy', [spreadG, gx]);
    return [gx];
  });
}

export function mean(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  checkTensor(x, 'mean', 'x');
  checkFloat(x, 'mean', 'x');
  const p = plan(x, dims, keepdim, 'mean');
  const out = reduceRaw('mean', x, p);
  return record(out, 'mean', [x], (g) => {
    const gx = Tensor.empty(x.shape, g.dtype, g.device, true);
    runKernel('affine', [spread(contiguousGrad(g), p, x), gx], [1 / p.r, 0]);
    return [gx];
  });
}

/** Gradient of max/min: shared equally among the positions that attain the extreme (like amax). */
function extremeBackward(x: Tensor, out: Tensor, p: Plan, g: Tensor): Tensor {
  const hit = Tensor.empty(x.shape, x.dtype, x.device);
  runKernel('eq', [x, spread(contiguousGrad(out), p, x), hit]);
  const count = reduceRaw('sum', hit, { ...p, outShape: p.outShape });
  const share = Tensor.empty(p.outShape, x.dtype, x.device);
  runKernel('div', [contiguousGrad(g), count, share]);
  const gx = Tensor.empty(x.shape, x.dtype, x.device);
  runKernel('mul', [hit, spread(share, p, x), gx]);
  return gx;
}

/** Maximum over dims (values only, like torch.amax). NaN propagates. */
export function max(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  checkTensor(x, 'max', 'x');
  checkFloat(x, 'max', 'x');
  const p = plan(x, dims, keepdim, 'max');
  if (p.r === 0) throw new ShapeError(`max: cannot reduce over an empty dim of ${x.describe()}`);
  const out = reduceRaw('amax', x, p);
  return record(out, 'max', [x], (g) => [extremeBackward(x, out, p, g)]);
}

export function min(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  checkTensor(x, 'min', 'x');
  checkFloat(x, 'min', 'x');
  const p = plan(x, dims, keepdim, 'min');
  if (p.r === 0) throw new ShapeError(`min: cannot reduce over an empty dim of ${x.describe()}`);
  const out = reduceRaw('amin', x, p);
  return record(out, 'min', [x], (g) => [extremeBackward(x, out, p, g)]);
}

export function logsumexp(x: Tensor, dims?: Dims, keepdim = false): Tensor {
  checkTensor(x, 'logsumexp', 'x');
  checkFloat(x, 'logsumexp', 'x');
  const p = plan(x, dims, keepdim, 'logsumexp');
  const out = reduceRaw('logsumexp', x, p);
  return record(out, 'logsumexp', [x], (g) => {
    // d/dx logsumexp = softmax = exp(x - lse)
    const prob = Tensor.empty(x.shape, x.dtype, x.device);
    runKernel('sub', [x, spread(contiguousGrad(out), p, x), prob]);
    runKernel('exp', [prob, prob]);
    runKernel('mul', [prob, spread(contiguousGrad(g), p, x), prob]);
    return [prob];
  });
}

/** Variance over dims with Bessel's correction by default (correction = 1), like torch.var. */
export function variance(x: Tensor, dims?: Dims, keepdim = false, correction = 1): Tensor {
  checkTensor(x, 'var', 'x');
  checkFloat(x, 'var', 'x');
  const p = plan(x, dims, keepdim, 'var');
  const out = reduceRaw('var', x, p, [correction]);
  return record(out, 'var', [x], (g) => {
    // d var / dx_i = 2 (x_i - mean) / (R - correction)
    const m = reduceRaw('mean', x, p);
    const gx = Tensor.empty(x.shape, x.dtype, x.device);
    runKernel('sub', [x, spread(m, p, x), gx]);
    runKernel('affine', [gx, gx], [2 / (p.r - correction), 0]);
    runKernel('mul', [gx, spread(contiguousGrad(g), p, x), gx]);
    return [gx];
  });
}

/** Sum g over the dims that broadcasting expanded, giving a tensor of `shape` (no autograd). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  if (lead < 0) throw new ShapeError(`sumToShape: cannot reduce ${g.describe()} to ${fmtShape(shape)}`);
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead) dims.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) dims.push(i);
    else if (shape[i - lead] !== g.shape[i]) throw new ShapeError(`sumToShape: cannot reduce ${g.describe()} to ${fmtShape(shape)}`);
  }
  const p = plan(g, dims, false, 'sumToShape');
  const reduced = reduceRaw('sum', g, p);
  const out = reduced.viewOf(shape, (() => {
    const st: number[] = [];
    let acc = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      st[i] = acc;
      acc *= shape[i];
    }
    return st;
  })(), 0);
  reduced.dispose();
  return out;
}
