// softmax and logSoftmax over any dim, numerically stable (the row max is subtracted first).
// The native kernels (native/cpu/softmax.cpp) work on the rows of a contiguous [rows, n]
// tensor. When `dim` is the last dim of a contiguous tensor that is a free view; otherwise the
// dim is moved last by one copy (a transposed, contiguous copy), the kernel runs, and the
// result is copied back into the input's dim order, so the output is always contiguous with
// the input's shape. The backward rules are single fused kernels reading the saved output:
//   softmax:     gx = y * (g - sum(g * y))        logSoftmax:  gx = g - exp(y) * sum(g)

import { runKernel } from '../backend';
import { record } from '../autograd';
import { ShapeError, ArgumentError } from '../errors';
import { numelOf } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkTensor } from './operand';

type Kernel = 'softmax' | 'log_softmax';

function resolveDim(x: Tensor, dim: number, op: string): number {
  const nd = Math.max(1, x.ndim); // a 0-d tensor is treated as one element along dim 0 / -1
  if (typeof dim !== 'number' || !Number.isInteger(dim)) throw new ArgumentError(`${op}: dim must be an integer, got ${String(dim)}`);
  const d = dim < 0 ? dim + nd : dim;
  if (d < 0 || d >= nd) throw new ShapeError(`${op}: dim ${dim} is out of range for x ${x.describe()} (expected -${nd} <= dim < ${nd})`);
  return d;
}

/** t as a tensor of at least one dim (a 0-d tensor becomes a [1] view). */
function atLeast1d(t: Tensor): Tensor {
  return t.ndim === 0 ? t.viewOf([1], [1], t.offset) : t;
}

/** t with dim d moved last, as a contiguous tensor: t itself when it already is. */
function moveDimLast(t: Tensor, d: number): Tensor {
  if (d === t.ndim - 1 && t.isContiguous()) return t;
  const perm = [...Array.from({ length: t.ndim }, (_, i) => i).filter((i) => i !== d), d];
  const v = t.viewOf(perm.map((i) => t.shape[i]), perm.map((i) => t.strides[i]), t.offset);
  const c = Tensor.empty(v.shape, t.dtype, t.device, true);
  runKernel('copy', [v, c]);
  v.dispose();
  return c;
}

/** Undo moveDimLast: `src` (contiguous, dim d moved last) as a contiguous tensor of `shape`. */
function moveLastBack(src: Tensor, d: number, shape: readonly number[]): Tensor {
  const last = shape.length - 1;
  if (d === last) return src;
  const strides = shape.map((_, i) => (i < d ? src.strides[i] : i === d ? src.strides[last] : src.strides[i - 1]));
  const v = src.viewOf(shape, strides, src.offset);
  const out = Tensor.empty(shape, src.dtype, src.device, true);
  runKernel('copy', [v, out]);
  v.dispose();
  return out;
}

/** A [rows, n] view of a contiguous tensor, n = its last dim. */
function rows2d(t: Tensor): Tensor {
  const n = t.shape[t.ndim - 1];
  return t.viewOf([numelOf(t.shape.slice(0, -1)), n], [n, 1], t.offset);
}

/** Run `kernel` over dim d of the given same-shape tensors (inputs first, output last; no autograd). */
function runOverDim(kernel: string, inputs: Tensor[], d: number): Tensor {
  const shape = inputs[0].shape;
  const moved = inputs.map((t) => moveDimLast(t, d));
  const outMoved = Tensor.empty(moved[0].shape, inputs[0].dtype, inputs[0].device, true);
  const views = [...moved, outMoved].map(rows2d);
  try {
    runKernel(kernel, views);
  } finally {
    views.forEach((v) => v.dispose());
    moved.forEach((m, i) => m !== inputs[i] && m.dispose());
  }
  const out = moveLastBack(outMoved, d, shape);
  if (out !== outMoved) outMoved.dispose();
  return out;
}

function softmaxOp(op: string, kernel: Kernel, x: Tensor, dim: number): Tensor {
  checkTensor(x, op, 'x');
  checkFloat(x, op, 'x');
  const d = resolveDim(x, dim, op);
  const x1 = atLeast1d(x);
  const y1 = runOverDim(kernel, [x1], d);
  if (x1 !== x) x1.dispose();
  let out = y1;
  if (x.ndim === 0) {
    out = y1.viewOf([], [], y1.offset);
    y1.dispose();
  }
  return record(out, op, [x], (g) => {
    const y = atLeast1d(out);
    const g1 = atLeast1d(g);
    const gx1 = runOverDim(`${kernel}_backward`, [y, g1], d);
    return [x.ndim === 0 ? gx1.viewOf([], [], gx1.offset) : gx1];
  });
}

/** softmax(x) along `dim` (default the last): exp(x - max) / sum(exp(x - max)). */
export function softmax(x: Tensor, dim = -1): Tensor {
  return softmaxOp('softmax', 'softmax', x, dim);
}

/** log(softmax(x)) along `dim` (default the last), computed as x - max - log(sum(exp(x - max))). */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return softmaxOp('logSoftmax', 'log_softmax', x, dim);
}
