// Joining and splitting along a dim: cat, stack, split (torch semantics).
//
// cat and stack need no kernel of their own: the output is allocated once and each input is
// copied into its slice-view of it by the strided 'copy' kernel, which handles any input
// strides. Their backward rules hand each input its slice of the gradient as a *view* (no
// copy; autograd copies only where it must keep a gradient). split returns slice() views, so
// it costs nothing and its gradient flows through slice's own backward rule.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { checkShape, fmtShape, normDim, sameShape } from '../shape';
import { Tensor } from '../tensor';
import { checkSameDevice, checkTensor, describeValue } from './operand';
import { slice } from './view';

function checkList(tensors: unknown, op: string): Tensor[] {
  if (!Array.isArray(tensors)) throw new ArgumentError(`${op}: expected an array of tensors, got ${describeValue(tensors)}`);
  if (tensors.length === 0) throw new ArgumentError(`${op}: expected a non-empty array of tensors`);
  const list = tensors.map((t, i) => checkTensor(t, op, `tensor ${i}`));
  const first = list[0];
  list.forEach((t, i) => {
    if (t.dtype !== first.dtype)
      throw new DTypeError(`${op}: tensor ${i} ${t.describe()} has dtype ${t.dtype} but tensor 0 ${first.describe()} has ${first.dtype}; all must have the same dtype`);
    checkSameDevice(first, t, op, 'tensor 0', `tensor ${i}`);
  });
  return list;
}

/** A view of `t` shaped `shape`, starting `start` steps along dim `d` (no autograd; internal). */
function windowOf(t: Tensor, shape: readonly number[], d: number, start: number): Tensor {
  return t.viewOf(shape, t.strides, t.offset + (start > 0 && shape[d] > 0 ? start * t.strides[d] : 0));
}

/** Concatenate along an existing dim; all tensors agree in every other dim (torch.cat). */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  const op = 'cat';
  const list = checkList(tensors, op);
  const first = list[0];
  list.forEach((t, i) => {
    if (t.ndim === 0) throw new ShapeError(`${op}: tensor ${i} ${t.describe()} is zero-dimensional and cannot be concatenated (use stack)`);
  });
  const d = normDim(dim, first.ndim, op);
  let total = 0;
  list.forEach((t, i) => {
    const ok = t.ndim === first.ndim && t.shape.every((s, k) => k === d || s === first.shape[k]);
    if (!ok)
      throw new ShapeError(`${op}: tensor ${i} has shape ${fmtShape(t.shape)} but tensor 0 has ${fmtShape(first.shape)}; all must match except in dim ${d}`);
    total += t.shape[d];
  });
  const shape = first.shape.map((s, k) => (k === d ? total : s));
  checkShape(shape, op);
  const out = Tensor.empty(shape, first.dtype, first.device, true); // the inputs' copies tile it
  const starts: number[] = [];
  let at = 0;
  for (const t of list) {
    starts.push(at);
    if (t.numel > 0) {
      const w = windowOf(out, t.shape, d, at);
      runKernel('copy', [t, w]);
      w.dispose();
    }
    at += t.shape[d];
  }
  return record(out, op, list, (g) => list.map((t, i) => (t.requiresGrad ? windowOf(g, t.shape, d, starts[i]) : null)));
}

/** Join equally shaped tensors along a new dim (torch.stack). */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  const op = 'stack';
  const list = checkList(tensors, op);
  const first = list[0];
  list.forEach((t, i) => {
    if (!sameShape(t.shape, first.shape))
      throw new ShapeError(`${op}: tensor ${i} has shape ${fmtShape(t.shape)} but tensor 0 has ${fmtShape(first.shape)}; all must have the same shape`);
  });
  const d = normDim(dim, first.ndim + 1, op);
  const shape = [...first.shape];
  shape.splice(d, 0, list.length);
  checkShape(shape, op);
  const out = Tensor.empty(shape, first.dtype, first.device, true); // the inputs' copies tile it
  // Input i is the view of out at position i along d, with d removed.
  const pick = (t: Tensor, i: number): Tensor => {
    const strides = [...t.strides];
    const step = strides.splice(d, 1)[0];
    const sh = [...t.shape];
    sh.splice(d, 1);
    return t.viewOf(sh, strides, t.offset + (first.numel > 0 ? i * step : 0));
  };
  list.forEach((t, i) => {
    if (t.numel === 0) return;
    const w = pick(out, i);
    runKernel('copy', [t, w]);
    w.dispose();
  });
  return record(out, op, list, (g) => list.map((t, i) => (t.requiresGrad ? pick(g, i) : null)));
}

/**
 * Split x along dim into views (torch.split): a number gives pieces of that size (the last one
 * may be smaller), an array gives the size of each piece (they must sum to x.size(dim)).
 */
export function split(x: Tensor, sizeOrSections: number | readonly number[], dim = 0): Tensor[] {
  const op = 'split';
  checkTensor(x, op, 'x');
  if (x.ndim === 0) throw new ShapeError(`${op}: x must have at least one dimension, got ${x.describe()}`);
  const d = normDim(dim, x.ndim, op);
  const n = x.shape[d];
  let sizes: number[];
  if (typeof sizeOrSections === 'number') {
    const s = sizeOrSections;
    if (!Number.isInteger(s) || s < 0 || (s === 0 && n > 0))
      throw new ArgumentError(`${op}: split size must be a positive integer, got ${s} (splitting ${x.describe()} along dim ${d})`);
    sizes = [];
    if (n === 0) sizes.push(0);
    for (let at = 0; at < n; at += s) sizes.push(Math.min(s, n - at));
  } else if (Array.isArray(sizeOrSections)) {
    sizes = [...sizeOrSections];
    sizes.forEach((s, i) => {
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 0)
        throw new ArgumentError(`${op}: section ${i} must be a non-negative integer, got ${String(s)}`);
    });
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== n)
      throw new ShapeError(`${op}: sections ${fmtShape(sizes)} sum to ${total} but dim ${d} of ${x.describe()} has size ${n}`);
  } else {
    throw new ArgumentError(`${op}: sizeOrSections must be a number or an array of numbers, got ${describeValue(sizeOrSections)}`);
  }
  const out: Tensor[] = [];
  let at = 0;
  for (const s of sizes) {
    out.push(slice(x, d, at, at + s));
    at += s;
  }
  return out;
}
