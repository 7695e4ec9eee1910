// layerNorm with PyTorch semantics: normalise over the trailing dims named by normalizedShape
// (biased variance), then scale by weight and shift by bias when given. x is viewed as
// [rows, n] (n = numel of normalizedShape; one contiguous copy when x is not contiguous) and
// one native kernel (native/cpu/layernorm.cpp) writes the output plus each row's mean and
// rstd = 1 / sqrt(var + eps). One backward kernel computes dx, dweight and dbias together;
// dweight/dbias are reduced over rows in a fixed order (deterministic for any thread count).
//
// Where a gradient will be needed, mean and rstd are stored in the tail of the output's own
// storage (the output is a view of its first x.numel elements): they then live exactly as long
// as the output the backward rule already holds, so a scope that returns only the output does
// not free statistics the backward still needs, and nothing outlives the output.

import { runKernel } from '../backend';
import { isGradEnabled, record } from '../autograd';
import { ArgumentError, ShapeError } from '../errors';
import { contiguousStrides, fmtShape, numelOf, sameShape } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkSameDevice, checkSameDType, checkTensor, describeValue } from './operand';
import { contiguousData } from './view';

const OP = 'layerNorm';

function checkAffine(t: Tensor | null | undefined, role: string, x: Tensor, ns: readonly number[]): Tensor | null {
  if (t === undefined || t === null) return null;
  checkTensor(t, OP, role);
  checkFloat(t, OP, role);
  checkSameDType(x, t, OP, 'x', role);
  checkSameDevice(x, t, OP, 'x', role);
  if (!sameShape(t.shape, ns))
    throw new ShapeError(`${OP}: ${role} ${t.describe()} must have shape ${fmtShape(ns)} (the normalizedShape), got ${fmtShape(t.shape)}`);
  return t;
}

/** A contiguous 1-D [n] view of t's elements (copying first if t is not contiguous). */
function flat1d(t: Tensor, n: number): Tensor {
  const c = contiguousData(t);
  const v = c.viewOf([n], [1], c.offset);
  if (c !== t) c.dispose();
  return v;
}

/**
 * Layer normalisation over the trailing dims given by `normalizedShape` (as
 * torch.nn.functional.layer_norm): (x - mean) / sqrt(var + eps) * weight + bias, with the biased
 * variance. weight and bias are optional and must have shape normalizedShape.
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  checkTensor(x, OP, 'x');
  checkFloat(x, OP, 'x');
  if (!Array.isArray(normalizedShape) || normalizedShape.length === 0 ||
      !normalizedShape.every((s) => typeof s === 'number' && Number.isInteger(s) && s >= 0))
    throw new ArgumentError(`${OP}: normalizedShape must be a non-empty array of non-negative integers, got ${Array.isArray(normalizedShape) ? fmtShape(normalizedShape) : describeValue(normalizedShape)}`);
  const ns = [...normalizedShape];
  const k = ns.length;
  if (x.ndim < k || !sameShape(x.shape.slice(x.ndim - k), ns))
    throw new ShapeError(`${OP}: normalizedShape ${fmtShape(ns)} must match the trailing dims of x ${x.describe()} (expected x of shape [..., ${ns.join(', ')}])`);
  const w = checkAffine(weight, 'weight', x, ns);
  const b = checkAffine(bias, 'bias', x, ns);
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0)
    throw new ArgumentError(`${OP}: eps must be a finite number >= 0, got ${describeValue(eps)}`);

  const n = numelOf(ns);
  const rows = numelOf(x.shape.slice(0, x.ndim - k));
  const numel = x.numel;
  const inputs: Tensor[] = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  const keepStats = isGradEnabled() && inputs.some((t) => t.requiresGrad);

  let out: Tensor;
  let mean: Tensor;
  let rstd: Tensor;
  // The kernel writes every output, mean and rstd element (n = 0 aside: then zeros, as before).
  const uninit = n > 0;
  if (keepStats) {
    const buf = Tensor.empty([numel + 2 * rows], x.dtype, x.device, uninit);
    out = buf.viewOf(x.shape, contiguousStrides(x.shape), 0);
    mean = buf.viewOf([rows], [1], numel);
    rstd = buf.viewOf([rows], [1], numel + rows);
    buf.dispose();
  } else {
    out = Tensor.empty(x.shape, x.dtype, x.device, uninit);
    mean = Tensor.empty([rows], x.dtype, x.device, uninit);
    rstd = Tensor.empty([rows], x.dtype, x.device, uninit);
  }
  const xc = contiguousData(x);
  const temps = [
    xc.viewOf([rows, n], [n, 1], xc.offset),
    out.viewOf([rows, n], [n, 1], out.offset),
    mean,
    rstd,
    ...(w ? [flat1d(w, n)] : []),
    ...(b ? [flat1d(b, n)] : []),
  ];
  try {
    runKernel('layer_norm', temps, [eps, w ? 1 : 0, b ? 1 : 0]);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    temps.forEach((t) => t.dispose());
    if (xc !== x) xc.dispose();
  }

  return record(out, OP, inputs, (g) => {
    const wantDx = x.requiresGrad;
    const wantDw = w !== null && w.requiresGrad;
    const wantDb = b !== null && b.requiresGrad;
    const xc2 = contiguousData(x);
    const gc = contiguousData(g);
    // fully written by the kernel (dweight/dbias also when there are no rows)
    const dx = wantDx ? Tensor.empty(x.shape, x.dtype, x.device, n > 0) : null;
    const dw = wantDw ? Tensor.empty(ns, x.dtype, x.device, true) : null;
    const db = wantDb ? Tensor.empty(ns, x.dtype, x.device, true) : null;
    const args = [
      xc2.viewOf([rows, n], [n, 1], xc2.offset),
      out.viewOf([rows], [1], out.offset + numel), // mean, saved in the output's storage
      out.viewOf([rows], [1], out.offset + numel + rows), // rstd
      gc.viewOf([rows, n], [n, 1], gc.offset),
      ...(w ? [flat1d(w, n)] : []),
      ...(dx ? [dx.viewOf([rows, n], [n, 1], 0)] : []),
      ...(dw ? [dw.viewOf([n], [1], 0)] : []),
      ...(db ? [db.viewOf([n], [1], 0)] : []),
    ];
    runKernel('layer_norm_backward', args, [w ? 1 : 0, wantDx ? 1 : 0, wantDw ? 1 : 0, wantDb ? 1 : 0]);
    const grads: (Tensor | null)[] = [dx];
    if (w) grads.push(dw);
    if (b) grads.push(db);
    return grads;
  });
}
