// Shape arithmetic shared by tensors and ops: validation, contiguous strides, broadcasting,
// dimension normalisation. Errors name the op and the shapes involved.

import { ArgumentError, ShapeError } from './errors';

export type Shape = readonly number[];

export const MAX_DIMS = 8;
/** Largest element count we accept for one tensor (2^40 bytes of float32 is the native limit). */
export const MAX_NUMEL = 2 ** 38;

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function checkShape(shape: Shape, op: string): number[] {
  if (!Array.isArray(shape)) throw new ArgumentError(`${op}: shape must be an array of integers, got ${String(shape)}`);
  if (shape.length > MAX_DIMS) throw new ShapeError(`${op}: at most ${MAX_DIMS} dimensions are supported, got shape ${fmtShape(shape)}`);
  for (const s of shape) {
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 0)
      throw new ArgumentError(`${op}: shape entries must be non-negative integers, got ${fmtShape(shape)}`);
  }
  const n = numelOf(shape);
  if (n > MAX_NUMEL) throw new ArgumentError(`${op}: shape ${fmtShape(shape)} has ${n} elements, more than the limit of ${MAX_NUMEL}`);
  return [...shape];
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Normalise a possibly negative dim against rank `ndim`. */
export function normDim(dim: number, ndim: number, op: string): number {
  if (!Number.isInteger(dim)) throw new ArgumentError(`${op}: dim must be an integer, got ${dim}`);
  const d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= ndim) throw new ShapeError(`${op}: dim ${dim} is out of range for a tensor with ${ndim} dimensions`);
  return d;
}

/** Normalise a dims argument (undefined = all dims) to a sorted, unique list. */
export function normDims(dims: number | readonly number[] | undefined, ndim: number, op: string): number[] {
  if (dims === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  const out = list.map((d) => normDim(d, ndim, op));
  const set = new Set(out);
  if (set.size !== out.length) throw new ShapeError(`${op}: repeated dim in ${JSON.stringify(list)}`);
  return [...set].sort((a, b) => a - b);
}

/** NumPy/PyTorch broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new ShapeError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together (dim ${i}: ${x} vs ${y})`);
    out[i] = x === 1 ? y : x;
  }
  return out;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}
