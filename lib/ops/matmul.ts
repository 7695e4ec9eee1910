// matmul with PyTorch semantics: 1-D operands are promoted (and the added dim removed),
// batch dims broadcast. The native kernel (native/cpu/matmul.cpp) takes [batch, M, K] x
// [batch, K, N] with any strides, so transposes and broadcast batches cost no copy; the
// backward rules are matmuls of transposed views: dA = g B^T, dB = A^T g.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { ShapeError } from '../errors';
import { broadcastShapes, numelOf } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkSameDevice, checkSameDType, checkTensor } from './operand';
import { sumToShape } from './reduce';
import { contiguousData } from './view';

/** View t (shape batch + [r, c]) as a 3-D [B, r, c] tensor without copying if possible. */
function as3d(t: Tensor, batch: readonly number[]): Tensor {
  const nb = batch.length;
  const lead = nb - (t.ndim - 2);
  // strides of the broadcast batch dims (0 where broadcast)
  const bStrides = batch.map((s, i) => (i < lead || t.shape[i - lead] !== s ? 0 : t.strides[i - lead]));
  const r = t.shape[t.ndim - 2];
  const c = t.shape[t.ndim - 1];
  const rs = t.strides[t.ndim - 2];
  const cs = t.strides[t.ndim - 1];
  const B = numelOf(batch);
  // Collapsible if every batch dim steps by (next dim's stride * size), or all are broadcast.
  let collapsible = true;
  for (let i = 0; i + 1 < nb; i++) {
    if (batch[i] === 1 || batch[i + 1] === 1) continue;
    if (bStrides[i] !== bStrides[i + 1] * batch[i + 1]) collapsible = false;
  }
  const nonUnit = bStrides.filter((_, i) => batch[i] !== 1);
  const bStride = nonUnit.length ? nonUnit[nonUnit.length - 1] : 0;
  if (collapsible) return t.viewOf([B, r, c], [bStride, rs, cs], t.offset);
  const expanded = t.viewOf([...batch, r, c], [...bStrides, rs, cs], t.offset);
  const dense = contiguousData(expanded);
  expanded.dispose();
  const v = dense.viewOf([B, r, c], [r * c, c, 1], dense.offset);
  dense.dispose();
  return v;
}

function matmulRaw(a: Tensor, b: Tensor, outShape: number[], batch: number[]): Tensor {
  const M = a.shape[a.ndim - 2];
  const N = b.shape[b.ndim - 1];
  const a3 = as3d(a, batch);
  const b3 = as3d(b, batch);
  const out = Tensor.empty(outShape, a.dtype, a.device, true); // beta = 0: fully overwritten
  const o3 = out.viewOf([numelOf(batch), M, N], [M * N, N, 1], 0);
  runKernel('matmul', [a3, b3, o3], [0]);
  a3.dispose();
  b3.dispose();
  o3.dispose();
  return out;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'matmul', 'a');
  checkTensor(b, 'matmul', 'b');
  checkFloat(a, 'matmul', 'a');
  checkSameDType(a, b, 'matmul');
  checkSameDevice(a, b, 'matmul');
  if (a.ndim === 0 || b.ndim === 0) throw new ShapeError(`matmul: both operands need at least 1 dim, got ${a.describe()} and ${b.describe()}`);
  const a2 = a.ndim === 1 ? a.viewOf([1, a.shape[0]], [0, a.strides[0]], a.offset) : a;
  const b2 = b.ndim === 1 ? b.viewOf([b.shape[0], 1], [b.strides[0], 0], b.offset) : b;
  const K = a2.shape[a2.ndim - 1];
  if (b2.shape[b2.ndim - 2] !== K)
    throw new ShapeError(`matmul: a ${a.describe()} and b ${b.describe()}: inner dimensions ${K} and ${b2.shape[b2.ndim - 2]} differ`);
  const batch = broadcastShapes(a2.shape.slice(0, -2), b2.shape.slice(0, -2), 'matmul (batch dims)');
  const M = a2.shape[a2.ndim - 2];
  const N = b2.shape[b2.ndim - 1];
  const full = [...batch, M, N];
  let out = matmulRaw(a2, b2, full, batch);
  if (a.ndim === 1 || b.ndim === 1) {
    const shape = [...batch, ...(a.ndim === 1 ? [] : [M]), ...(b.ndim === 1 ? [] : [N])];
    const squeezed = out.viewOf(shape, contiguousStridesOf(shape), 0);
    out.dispose();
    out = squeezed;
  }
  if (a2 !== a) a2.dispose();
  if (b2 !== b) b2.dispose();
  return record(out, 'matmul', [a, b], (g) => {
    // Work in the promoted 2-D+ shapes, then drop the promoted dims again.
    const ap = a.ndim === 1 ? a.viewOf([1, a.shape[0]], [0, a.strides[0]], a.offset) : a;
    const bp = b.ndim === 1 ? b.viewOf([b.shape[0], 1], [b.strides[0], 0], b.offset) : b;
    const gDense = contiguousData(g);
    const gc = gDense.viewOf(full, contiguousStridesOf(full), gDense.offset);
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      const bt = bp.viewOf(swapLast(bp.shape), swapLast(bp.strides), bp.offset);
      const full_a = matmulRaw(gc, bt, [...batch, M, K], batch);
      const reduced = sumToShape(full_a, ap.shape);
      ga = reduced.viewOf(a.shape, contiguousStridesOf(a.shape), reduced.offset);
    }
    if (b.requiresGrad) {
      if (batch.length === 0 && b.ndim === 2 && K > 1 && N > 1 && b.strides[0] === 1 && b.strides[1] === K) {
        // b is a transposed contiguous matrix (Linear's weight.T): compute the gradient in that
        // layout, (g^T a) [N, K], and hand back its transposed view, so the weight's gradient
        // comes out contiguous instead of being copied back from [K, N].
        const gt = gc.viewOf([N, M], [1, N], gc.offset);
        const dense = matmulRaw(gt, ap, [N, K], []);
        gt.dispose();
        gb = dense.viewOf([K, N], [1, K], 0);
        dense.dispose();
      } else {
        const at = ap.viewOf(swapLast(ap.shape), swapLast(ap.strides), ap.offset);
        const full_b = matmulRaw(at, gc, [...batch, K, N], batch);
        const reduced = sumToShape(full_b, bp.shape);
        gb = reduced.viewOf(b.shape, contiguousStridesOf(b.shape), reduced.offset);
      }
    }
    return [ga, gb];
  });
}

function swapLast(xs: readonly number[]): number[] {
  const out = [...xs];
  const n = out.length;
  [out[n - 2], out[n - 1]] = [out[n - 1], out[n - 2]];
  return out;
}

function contiguousStridesOf(shape: readonly number[]): number[] {
  const st: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

/** Batched matmul of two 3-D tensors (torch.bmm). */
export function bmm(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'bmm', 'a');
  checkTensor(b, 'bmm', 'b');
  if (a.ndim !== 3 || b.ndim !== 3 || a.shape[0] !== b.shape[0])
    throw new ShapeError(`bmm: expected a [B, M, K] and b [B, K, N], got ${a.describe()} and ${b.describe()}`);
  return matmul(a, b);
}
