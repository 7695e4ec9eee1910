// Layout ops. Views (reshape of a contiguous tensor, permute, transpose, slice, expand, squeeze,
// unsqueeze) share storage with their input; contiguous/clone/to copy. All are differentiable.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { Device, DType, isDevice, isDType, isFloat } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { checkShape, contiguousStrides, fmtShape, normDim, numelOf, sameShape, Shape } from '../shape';
import { Tensor } from '../tensor';
import { checkTensor } from './operand';
import { sumToShape } from './reduce';

/** Resolve a shape that may contain one -1 against `numel`. */
function inferReshape(shape: Shape, numel: number, op: string, from: Tensor): number[] {
  let infer = -1;
  let known = 1;
  shape.forEach((s, i) => {
    if (s === -1) {
      if (infer >= 0) throw new ShapeError(`${op}: only one dimension can be -1, got ${fmtShape(shape)}`);
      infer = i;
    } else known *= s;
  });
  const out = [...shape];
  if (infer >= 0) {
    if (known === 0 || numel % known !== 0)
      throw new ShapeError(`${op}: cannot reshape ${from.describe()} to ${fmtShape(shape)}`);
    out[infer] = numel / known;
  }
  checkShape(out, op);
  if (numelOf(out) !== numel) throw new ShapeError(`${op}: cannot reshape ${from.describe()} (${numel} elements) to ${fmtShape(shape)}`);
  return out;
}

/** A contiguous copy if `t` is not contiguous, else `t` itself (no autograd; internal). */
export function contiguousData(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  const out = Tensor.empty(t.shape, t.dtype, t.device, true); // the copy writes every element
  runKernel('copy', [t, out]);
  return out;
}

export function contiguous(x: Tensor): Tensor {
  checkTensor(x, 'contiguous', 'x');
  if (x.isContiguous()) return x;
  return clone(x);
}

/** A copy with its own storage. */
export function clone(x: Tensor): Tensor {
  checkTensor(x, 'clone', 'x');
  const out = Tensor.empty(x.shape, x.dtype, x.device, true);
  runKernel('copy', [x, out]);
  return record(out, 'clone', [x], (g) => [g]);
}

export function reshape(x: Tensor, shape: Shape): Tensor {
  checkTensor(x, 'reshape', 'x');
  const target = inferReshape(shape, x.numel, 'reshape', x);
  const src = contiguousData(x);
  const out = src.viewOf(target, contiguousStrides(target), src.offset);
  if (src !== x) src.dispose();
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

/** Like reshape but never copies: the tensor must be contiguous (as torch.view, simplified). */
export function view(x: Tensor, shape: Shape): Tensor {
  checkTensor(x, 'view', 'x');
  if (!x.isContiguous())
    throw new ShapeError(`view: ${x.describe()} is not contiguous (strides ${fmtShape(x.strides)}); use reshape() or contiguous() first`);
  return reshape(x, shape);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  checkTensor(x, 'flatten', 'x');
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim(startDim, x.ndim, 'flatten');
  const e = normDim(endDim, x.ndim, 'flatten');
  if (s > e) throw new ShapeError(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const shape = [...x.shape.slice(0, s), numelOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor(x, 'permute', 'x');
  if (!Array.isArray(dims) || dims.length !== x.ndim)
    throw new ShapeError(`permute: need ${x.ndim} dims for ${x.describe()}, got ${JSON.stringify(dims)}`);
  const perm = dims.map((d) => normDim(d, x.ndim, 'permute'));
  if (new Set(perm).size !== perm.length) throw new ShapeError(`permute: repeated dim in ${JSON.stringify(dims)}`);
  const out = x.viewOf(perm.map((d) => x.shape[d]), perm.map((d) => x.strides[d]), x.offset);
  const inverse = new Array<number>(perm.length);
  perm.forEach((d, i) => (inverse[d] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  checkTensor(x, 'transpose', 'x');
  if (x.ndim < 2 && dim0 === -2 && dim1 === -1) return x;
  const a = normDim(dim0, x.ndim, 'transpose');
  const b = normDim(dim1, x.ndim, 'transpose');
  const perm = Array.from({ length: x.ndim }, (_, i) => i);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/**
 * Elements start, start+step, ... below end along `dim` (a view, like x[..., start:end:step]).
 * Negative start/end count from the end; out-of-range bounds are clamped as in Python.
 */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  checkTensor(x, 'slice', 'x');
  const d = normDim(dim, x.ndim, 'slice');
  const n = x.shape[d];
  for (const [k, v] of [['start', start], ['end', end ?? n], ['step', step]] as const)
    if (!Number.isInteger(v)) throw new ArgumentError(`slice: ${k} must be an integer, got ${v}`);
  if (step < 1) throw new ArgumentError(`slice: step must be >= 1, got ${step}`);
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = Math.max(s, clampIdx(end ?? n));
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape];
  shape[d] = len;
  const strides = [...x.strides];
  strides[d] = x.strides[d] * step;
  const out = x.viewOf(shape, strides, x.offset + (len > 0 ? s * x.strides[d] : 0));
  // The window of a gradient buffer `into` (shaped like x, any strides) that this slice covers.
  const windowOf = (into: Tensor): Tensor => {
    const st = [...into.strides];
    st[d] = into.strides[d] * step;
    return into.viewOf(shape, st, into.offset + (len > 0 ? s * into.strides[d] : 0));
  };
  return record(out, 'slice', [x], (g) => {
    const gx = Tensor.empty(x.shape, g.dtype, g.device);
    const window = windowOf(gx);
    runKernel('copy', [g, window]);
    window.dispose();
    return [gx];
  }, (g, into) => {
    if (len === 0) return;
    const window = windowOf(into);
    runKernel('add', [window, g, window]);
    window.dispose();
  });
}

/** Select index `i` along `dim`, removing that dim (a view). */
export function select(x: Tensor, dim: number, index: number): Tensor {
  checkTensor(x, 'select', 'x');
  const d = normDim(dim, x.ndim, 'select');
  const n = x.shape[d];
  if (!Number.isInteger(index) || index < -n || index >= n)
    throw new ArgumentError(`select: index ${index} is out of range for dim ${dim} of size ${n}`);
  const i = index < 0 ? index + n : index;
  return squeeze(slice(x, d, i, i + 1), d);
}

/** Broadcast to `shape` without copying (stride 0 on expanded dims); -1 keeps a dim. */
export function expand(x: Tensor, shape: Shape): Tensor {
  checkTensor(x, 'expand', 'x');
  if (!Array.isArray(shape) || shape.length < x.ndim)
    throw new ShapeError(`expand: target shape ${fmtShape(shape ?? [])} has fewer dims than ${x.describe()}`);
  const lead = shape.length - x.ndim;
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const want = shape[i];
    if (i < lead) {
      if (!Number.isInteger(want) || want < 0) throw new ShapeError(`expand: bad target shape ${fmtShape(shape)}`);
      outShape.push(want);
      strides.push(0);
      continue;
    }
    const have = x.shape[i - lead];
    const size = want === -1 ? have : want;
    if (size !== have && have !== 1)
      throw new ShapeError(`expand: cannot expand ${x.describe()} to ${fmtShape(shape)} (dim ${i}: ${have} -> ${size})`);
    outShape.push(size);
    strides.push(size === have ? x.strides[i - lead] : 0);
  }
  checkShape(outShape, 'expand');
  if (sameShape(outShape, x.shape)) return x;
  const out = x.viewOf(outShape, strides, x.offset);
  return record(out, 'expand', [x], (g) => [sumToShape(g, x.shape)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  checkTensor(x, 'squeeze', 'x');
  let keepDims: number[];
  if (dim === undefined) keepDims = x.shape.map((_, i) => i).filter((i) => x.shape[i] !== 1);
  else {
    const d = normDim(dim, x.ndim, 'squeeze');
    keepDims = x.shape.map((_, i) => i).filter((i) => i !== d || x.shape[i] !== 1);
  }
  if (keepDims.length === x.ndim) return x;
  const out = x.viewOf(keepDims.map((i) => x.shape[i]), keepDims.map((i) => x.strides[i]), x.offset);
  return record(out, 'squeeze', [x], (g) => [reshape(g, x.shape)]);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  checkTensor(x, 'unsqueeze', 'x');
  const d = normDim(dim, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.ndim ? x.strides[d] * x.shape[d] : 1);
  const out = x.viewOf(shape, strides, x.offset);
  return record(out, 'unsqueeze', [x], (g) => [reshape(g, x.shape)]);
}

/** A tensor sharing storage with x but cut from the graph (requiresGrad = false). */
export function detach(x: Tensor): Tensor {
  checkTensor(x, 'detach', 'x');
  return x.viewOf(x.shape, x.strides, x.offset);
}

/** Convert dtype and/or move between devices (a copy; x itself if nothing changes). */
export function to(x: Tensor, target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
  checkTensor(x, 'to', 'x');
  let dtype = x.dtype;
  let device = x.device;
  if (typeof target === 'string') {
    if (isDType(target)) dtype = target;
    else if (isDevice(target)) device = target;
    else throw new DTypeError(`to: unknown dtype or device '${target}'`);
  } else {
    if (target.dtype !== undefined) {
      if (!isDType(target.dtype)) throw new DTypeError(`to: unknown dtype '${String(target.dtype)}'`);
      dtype = target.dtype;
    }
    if (target.device !== undefined) {
      if (!isDevice(target.device)) throw new DTypeError(`to: unknown device '${String(target.device)}'`);
      device = target.device;
    }
  }
  if (dtype === x.dtype && device === x.device) return x;
  let out: Tensor;
  if (device === x.device) {
    out = Tensor.empty(x.shape, dtype, device, true);
    runKernel('copy', [x, out]);
  } else {
    // Cross-device: make it contiguous (and converted) on the source side, then one memcpy.
    const staged = Tensor.empty(x.shape, dtype, x.device);
    runKernel('copy', [x, staged]);
    out = Tensor.empty(x.shape, dtype, device);
    if (staged.numel > 0) out.storage.native.write(0, staged.toTypedArray());
    staged.dispose();
  }
  const gradOk = isFloat(dtype) && isFloat(x.dtype);
  return gradOk ? record(out, 'to', [x], (g) => [to(g, { dtype: x.dtype, device: x.device })]) : out;
}

/**
 * Copy `src` (broadcast to dst's shape, converted to dst's dtype) into dst in place, outside
 * the autograd graph (like torch.Tensor.copy_ under no_grad): how parameters are updated.
 */
export function copy_(dst: Tensor, src: Tensor): Tensor {
  checkTensor(dst, 'copy_', 'dst');
  checkTensor(src, 'copy_', 'src');
  if (src.device !== dst.device) throw new DTypeError(`copy_: src ${src.describe()} and dst ${dst.describe()} are on different devices`);
  const view = expandLayout(src, dst.shape);
  runKernel('copy', [view, dst]);
  if (view !== src) view.dispose();
  return dst;
}

function expandLayout(src: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(src.shape, shape)) return src;
  const lead = shape.length - src.ndim;
  if (lead < 0) throw new ShapeError(`copy_: cannot broadcast ${src.describe()} to ${fmtShape(shape)}`);
  const strides = shape.map((s, i) => {
    if (i < lead) return 0;
    const have = src.shape[i - lead];
    if (have === s) return src.strides[i - lead];
    if (have === 1) return 0;
    throw new ShapeError(`copy_: cannot broadcast ${src.describe()} to ${fmtShape(shape)}`);
  });
  return src.viewOf(shape, strides, src.offset);
}
