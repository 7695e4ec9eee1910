// cat, stack, split: forward against plain-loop references on fresh random data (every dim,
// negative dims, size-0/size-1/odd sizes, transposed and sliced inputs), gradients by finite
// differences, and bad inputs whose errors name the op and the offending tensor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { cat, split, stack } from '../../lib/ops/concat';
import { assertClose, assertThrows, flat, gradcheck, jsRandom, seedFor } from '../helpers/check';
import { numel, unravel } from '../helpers/reference';

function ravel(c: readonly number[], shape: readonly number[]): number {
  let f = 0;
  for (let i = 0; i < shape.length; i++) f = f * shape[i] + c[i];
  return f;
}

/** Random float64 data of logical shape `shape`, laid out contiguous / transposed / sliced. */
function data(shape: number[], kind: number, dtype: 'float32' | 'float64' = 'float64'): Tensor {
  if (kind === 1 && shape.length >= 2) {
    const b = [...shape];
    [b[0], b[b.length - 1]] = [b[b.length - 1], b[0]];
    return ts.randn(b, { dtype }).transpose(0, -1);
  }
  if (kind === 2 && shape.length >= 1) {
    const b = [...shape];
    b[b.length - 1] = 2 * b[b.length - 1];
    return ts.randn(b, { dtype }).slice(-1, 0, undefined, 2);
  }
  return ts.randn(shape, { dtype });
}

function catRef(parts: { v: number[]; shape: number[] }[], dim: number): { out: number[]; shape: number[] } {
  const shape = [...parts[0].shape];
  shape[dim] = parts.reduce((a, p) => a + p.shape[dim], 0);
  const out = Array.from({ length: numel(shape) }, (_, i) => {
    const c = unravel(i, shape);
    let k = 0;
    while (c[dim] >= parts[k].shape[dim]) c[dim] -= parts[k++].shape[dim];
    return parts[k].v[ravel(c, parts[k].shape)];
  });
  return { out, shape };
}

function stackRef(parts: number[][], shape: number[], dim: number): { out: number[]; shape: number[] } {
  const outShape = [...shape];
  outShape.splice(dim, 0, parts.length);
  const out = Array.from({ length: numel(outShape) }, (_, i) => {
    const c = unravel(i, outShape);
    const k = c.splice(dim, 1)[0];
    return parts[k][ravel(c, shape)];
  });
  return { out, shape: outShape };
}

test('cat matches the reference for every dim, layout, dtype and size', () => {
  const rng = jsRandom(seedFor('cat forward'));
  for (const shape of [[5], [1], [3, 4], [2, 3, 5], [1, 1, 1], [2, 1, 3, 2]])
    for (let dim = -shape.length; dim < shape.length; dim++) {
      const d = dim < 0 ? dim + shape.length : dim;
      for (const dtype of ['float64', 'float32'] as const)
        for (const count of [1, 2, 3, 4]) {
          const inputs = Array.from({ length: count }, (_, k) => {
            const s = [...shape];
            s[d] = Math.floor(rng() * 4) + (k === 0 ? 1 : 0); // sizes 0..3, never all zero
            return data(s, k % 3, dtype);
          });
          const out = cat(inputs, dim);
          const ref = catRef(inputs.map((t) => ({ v: flat(t), shape: [...t.shape] })), d);
          assert.equal(out.shape, ref.shape);
          assert.is(out.dtype, dtype);
          assert.ok(out.isContiguous());
          assertClose(flat(out), ref.out, 0, 0, `cat ${JSON.stringify(inputs.map((t) => t.shape))} dim ${dim}`);
        }
    }
  // cat copies even for one input
  const a = ts.randn([2, 2]);
  const c = cat([a]);
  assert.ok(c !== a && c.storage !== a.storage);
  assert.equal(flat(c), flat(a));
});

test('stack matches the reference for every dim, layout and dtype', () => {
  seedFor('stack forward');
  for (const shape of [[], [5], [1], [3, 4], [2, 3, 5], [2, 1, 3]])
    for (let dim = -shape.length - 1; dim <= shape.length; dim++) {
      const d = dim < 0 ? dim + shape.length + 1 : dim;
      for (const dtype of ['float64', 'float32'] as const)
        for (const count of [1, 3]) {
          const inputs = Array.from({ length: count }, (_, k) => data(shape, k % 3, dtype));
          const out = stack(inputs, dim);
          const ref = stackRef(inputs.map(flat), shape, d);
          assert.equal(out.shape, ref.shape);
          assertClose(flat(out), ref.out, 0, 0, `stack ${JSON.stringify(shape)} x${count} dim ${dim}`);
        }
    }
  assert.equal(stack([ts.zeros([0, 2]), ts.zeros([0, 2])], 1).shape, [0, 2, 2]);
});

test('split gives views of the right pieces (number and sections, every dim)', () => {
  seedFor('split forward');
  const x = data([7, 4, 5], 1);
  const xv = flat(x);
  for (let dim = -3; dim < 3; dim++) {
    const d = dim < 0 ? dim + 3 : dim;
    const n = x.shape[d];
    for (const size of [1, 2, 3, n, n + 2]) {
      const parts = split(x, size, dim);
      assert.is(parts.length, Math.ceil(n / size));
      let at = 0;
      for (const p of parts) {
        const len = Math.min(size, n - at);
        assert.ok(p.storage === x.storage, 'a view');
        const ref = flat(x.slice(d, at, at + len));
        assert.equal(p.shape[d], len);
        assert.equal(flat(p), ref);
        at += len;
      }
      // the pieces put back together give x
      assert.equal(flat(cat(parts, dim)), xv);
    }
    const sections = n === 7 ? [2, 0, 4, 1] : n === 4 ? [1, 3] : [5];
    const parts = split(x, sections, dim);
    assert.equal(parts.map((p) => p.shape[d]), sections);
    assert.equal(flat(cat(parts, dim)), xv);
  }
  assert.equal(split(ts.zeros([0, 3]), 2).map((p) => p.shape), [[0, 3]]);
});

test('cat, stack and split are differentiable', () => {
  seedFor('concat gradients');
  const r = (shape: number[]) => ts.randn(shape, { dtype: 'float64' });
  gradcheck('cat dim 0', (a, b, c) => cat([a, b, c], 0), [r([2, 3]), r([1, 3]), r([4, 3])]);
  gradcheck('cat dim -1 of views', (a, b) => cat([a.T, b.slice(1, 0, 4, 2), a.T], -1).mul(cat([a.T, b.slice(1, 0, 4, 2), a.T], -1)), [r([2, 3]), r([3, 3])]);
  gradcheck('cat dim 1 (3-d, with an empty piece)', (a, b) => cat([a, ts.zeros([2, 0, 2], { dtype: 'float64' }), b], 1).exp(), [r([2, 1, 2]), r([2, 3, 2])]);
  gradcheck('cat one input', (a) => cat([a], 1).tanh(), [r([2, 3])]);
  for (const dim of [0, 1, 2, -1])
    gradcheck(`stack dim ${dim}`, (a, b) => stack([a, b.T, a], dim).mul(stack([b.T, a, a], dim)), [r([2, 3]), r([3, 2])]);
  gradcheck('stack of 0-d', (a, b) => stack([a, b, a.mul(b)]), [r([]), r([])]);
  gradcheck('split pieces', (x) => {
    const [p, q, s] = split(x, [1, 3, 2], 1);
    return cat([s.mul(p), q.exp()], 1);
  }, [r([3, 6])]);
  gradcheck('split by size', (x) => split(x, 2, 0)[2].mul(split(x, 2, 0)[0]), [r([5, 2])]);
});

test('forward and backward free every temporary', () => {
  seedFor('concat memory');
  const a = ts.randn([3, 4], { requiresGrad: true });
  const b = ts.randn([4, 3], { requiresGrad: true });
  const before = ts.memoryStats().hostBlocks;
  ts.scope(() => {
    const parts = split(cat([a, b.T, a], 0), [2, 7], 0);
    stack([parts[0].sum(0), parts[1].sum(0)], 1).mul(stack([a.sum(0), b.sum(1)], -1)).sum().backward();
    (a.grad as Tensor).dispose();
    (b.grad as Tensor).dispose();
    a.grad = b.grad = null;
  });
  assert.is(ts.memoryStats().hostBlocks, before);
});

test('bad inputs are errors naming the op and the offending tensor', () => {
  const a = ts.randn([2, 3]);
  const b = ts.randn([2, 4]);
  assertThrows(() => cat([a, a, b], 0), ['cat', 'tensor 2', '[2, 4]', '[2, 3]', 'dim 0'], 'cat mismatch');
  assertThrows(() => cat([a, ts.randn([2, 3, 1])], 1), ['cat', 'tensor 1', '[2, 3, 1]'], 'cat rank mismatch');
  assertThrows(() => cat([a, a.to('float64')]), ['cat', 'tensor 1', 'float64', 'same dtype'], 'cat dtype');
  assertThrows(() => cat([]), ['cat', 'non-empty'], 'cat empty list');
  assertThrows(() => cat(a as unknown as Tensor[]), ['cat', 'array'], 'cat not a list');
  assertThrows(() => cat([a, 5 as unknown as Tensor]), ['cat', 'tensor 1', 'Tensor'], 'cat non-tensor');
  assertThrows(() => cat([ts.tensor(1), ts.tensor(2)]), ['cat', 'tensor 0', 'zero-dimensional'], 'cat 0-d');
  assertThrows(() => cat([a, a], 2), ['cat', 'dim 2', 'out of range'], 'cat dim');
  assertThrows(() => stack([a, a, b]), ['stack', 'tensor 2', '[2, 4]', '[2, 3]'], 'stack mismatch');
  assertThrows(() => stack([a, a], 3), ['stack', 'dim 3'], 'stack dim');
  assertThrows(() => split(a, [1, 1], 1), ['split', 'sum to 2', 'size 3'], 'split sections sum');
  assertThrows(() => split(a, 0, 1), ['split', 'positive'], 'split size 0');
  assertThrows(() => split(a, 1.5), ['split', 'positive integer'], 'split fractional');
  assertThrows(() => split(a, [1, -1, 3], 1), ['split', 'section 1'], 'split negative section');
  assertThrows(() => split(a, 1, -3), ['split', 'dim -3'], 'split dim');
  const dead = ts.randn([2, 3]);
  dead.dispose();
  assertThrows(() => cat([a, dead]), ['cat', 'tensor 1', 'disposed'], 'cat disposed');
  assertThrows(() => stack([dead, a]), ['stack', 'tensor 0', 'disposed'], 'stack disposed');
  assertThrows(() => split(dead, 1), ['split', 'disposed'], 'split disposed');
});

test.run();
