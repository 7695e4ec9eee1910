// normalize (F.normalize): forward against a plain-loop reference for p = 2, 1, 3, 0.5 and
// Infinity over every dim (negative dims, size-1 dims, transposed / sliced inputs), the eps clamp,
// finite gradients for all-zero slices, finite-difference gradients, and bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { normalize } from '../../lib/ops/normalize';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';
import { numel, unravel } from '../helpers/reference';

function ravel(c: readonly number[], shape: readonly number[]): number {
  let f = 0;
  for (let i = 0; i < shape.length; i++) f = f * shape[i] + c[i];
  return f;
}

function normalizeRef(x: number[], shape: number[], p: number, dim: number, eps: number): number[] {
  return x.map((v, i) => {
    const c = unravel(i, shape);
    let acc = 0;
    for (let k = 0; k < shape[dim]; k++) {
      c[dim] = k;
      const a = Math.abs(x[ravel(c, shape)]);
      acc = p === Infinity ? Math.max(acc, a) : acc + a ** p;
    }
    const norm = p === Infinity ? acc : acc ** (1 / p);
    return v / Math.max(norm, eps);
  });
}

function layouts(shape: number[], dtype: 'float32' | 'float64'): Tensor[] {
  const out = [ts.randn(shape, { dtype })];
  if (shape.length >= 2) out.push(ts.randn([...shape].reverse(), { dtype }).permute(shape.map((_, i) => shape.length - 1 - i)));
  out.push(ts.randn([...shape.slice(0, -1), 2 * shape[shape.length - 1] + 1], { dtype }).slice(-1, 1, undefined, 2));
  return out;
}

test('normalize matches the reference for every p, dim, layout and dtype', () => {
  seedFor('normalize forward');
  for (const shape of [[5], [1], [3, 4], [2, 3, 5], [4, 1, 3]])
    for (let dim = -shape.length; dim < shape.length; dim++) {
      const d = dim < 0 ? dim + shape.length : dim;
      for (const p of [2, 1, 3, 0.5, Infinity])
        for (const dtype of ['float64', 'float32'] as const)
          for (const x of layouts(shape, dtype)) {
            const out = normalize(x, p, dim);
            assert.equal(out.shape, shape);
            assert.is(out.dtype, dtype);
            const tol = dtype === 'float32' ? 2e-6 : 1e-13;
            assertClose(flat(out), normalizeRef(flat(x), shape, p, d, 1e-12), tol, tol, `normalize ${JSON.stringify(shape)} p=${p} dim ${dim} ${dtype}`);
          }
    }
  // defaults: p = 2 over the last dim; unit rows result
  const x = ts.randn([6, 7], { dtype: 'float64' });
  const rows = normalize(x).pow(2).sum(-1);
  assertClose(flat(rows), new Array(6).fill(1), 1e-14, 1e-14, 'unit rows');
});

test('eps clamps small norms; all-zero slices give zeros and finite gradients', () => {
  seedFor('normalize eps');
  const x = ts.tensor([[0.03, -0.04], [3, 4], [0, 0]], { dtype: 'float64' });
  for (const p of [2, 1, 3, Infinity]) {
    const out = normalize(x, p, 1, 0.5);
    assertClose(flat(out), normalizeRef(flat(x), [3, 2], p, 1, 0.5), 1e-14, 1e-14, `eps p=${p}`);
  }
  for (const p of [2, 1, 3, Infinity])
    for (const dtype of ['float64', 'float32'] as const) {
      const z = ts.zeros([2, 3], { dtype, requiresGrad: true });
      const out = normalize(z, p, 1);
      assert.equal(flat(out), new Array(6).fill(0));
      out.mul(ts.ones([2, 3], { dtype })).sum().backward();
      const g = flat(z.grad as Tensor);
      assert.ok(g.every(Number.isFinite), `p=${p} ${dtype}: gradient of a zero row is finite, got ${g}`);
    }
});

test('normalize is differentiable', () => {
  seedFor('normalize gradients');
  const r = (shape: number[]) => ts.randn(shape, { dtype: 'float64' });
  for (const dim of [0, 1, -1]) gradcheck(`p=2 dim ${dim}`, (x) => normalize(x, 2, dim), [r([3, 4])]);
  gradcheck('p=2 3-d dim 1', (x) => normalize(x, 2, 1), [r([2, 3, 4])]);
  gradcheck('p=2 transposed', (x) => normalize(x.T, 2, -1).mul(x.T), [r([3, 5])]);
  gradcheck('p=2 size-1 dim', (x) => normalize(x, 2, 1), [r([3, 1])]);
  gradcheck('p=1', (x) => normalize(x, 1, 0), [r([4, 3])]);
  gradcheck('p=3', (x) => normalize(x, 3, -1), [r([3, 4])]);
  gradcheck('p=Infinity', (x) => normalize(x, Infinity, 1), [r([3, 4])]);
  // where eps wins the gradient is 1 / eps
  gradcheck('clamped by eps', (x) => normalize(x, 2, 1, 10), [r([2, 3])]);
});

test('bad p, eps, dim, dtype and disposed tensors are errors naming the op', () => {
  const x = ts.randn([2, 3]);
  for (const p of [0, -1, NaN])
    assertThrows(() => normalize(x, p), ['normalize', 'p must be a positive number', String(p), 'float32[2, 3]'], `p = ${p}`);
  assertThrows(() => normalize(x, 2, -1, -1), ['normalize', 'eps'], 'negative eps');
  assertThrows(() => normalize(x, 2, -1, NaN), ['normalize', 'eps'], 'NaN eps');
  assertThrows(() => normalize(x, 2, 2), ['normalize', 'dim 2', 'out of range'], 'dim');
  assertThrows(() => normalize(ts.tensor(3)), ['normalize', 'at least one dimension'], '0-d');
  assertThrows(() => normalize(ts.ones([3], { dtype: 'int32' })), ['normalize', 'float32 or float64', 'int32[3]'], 'int32 x');
  const dead = ts.randn([2]);
  dead.dispose();
  assertThrows(() => normalize(dead), ['normalize', 'disposed'], 'disposed');
});

test.run();
