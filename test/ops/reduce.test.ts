// Reductions over every dim combination: forward against float64 JS references, gradients by
// central differences, keepdim, non-contiguous inputs, empty dims and errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';
import { reduceRef } from '../helpers/reference';

const refs: Record<string, (v: number[]) => number> = {
  sum: (v) => v.reduce((a, b) => a + b, 0),
  mean: (v) => v.reduce((a, b) => a + b, 0) / v.length,
  max: (v) => Math.max(...v),
  min: (v) => Math.min(...v),
  logsumexp: (v) => {
    const m = Math.max(...v);
    return m + Math.log(v.reduce((a, b) => a + Math.exp(b - m), 0));
  },
  var: (v) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    return v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1);
  },
};
const ops: Record<string, (x: ts.Tensor, d?: number | number[], k?: boolean) => ts.Tensor> = {
  sum: ts.sum,
  mean: ts.mean,
  max: ts.max,
  min: ts.min,
  logsumexp: ts.logsumexp,
  var: (x, d, k) => ts.variance(x, d, k),
};
const dimSets: (number[] | undefined)[] = [undefined, [0], [1], [2], [-1], [0, 1], [1, 2], [0, 2], [0, 1, 2]];

for (const name of Object.keys(ops)) {
  test(`${name} over every dim set matches the float64 reference`, () => {
    seedFor(name);
    const shape = [3, 5, 4];
    ts.scope(() => {
      const x = ts.randn(shape, { dtype: 'float64' });
      const data = flat(x);
      for (const dims of dimSets) {
        const norm = (dims ?? [0, 1, 2]).map((d) => (d < 0 ? d + 3 : d));
        const expected = reduceRef(data, shape, norm, refs[name]);
        for (const keepdim of [false, true]) {
          const out = ops[name](x, dims, keepdim);
          const wantShape = keepdim ? shape.map((s, i) => (norm.includes(i) ? 1 : s)) : shape.filter((_, i) => !norm.includes(i));
          assert.equal([...out.shape], wantShape, `${name} ${dims} keepdim=${keepdim} shape`);
          assertClose(flat(out), expected, 1e-12, 1e-12, `${name} ${dims} f64`);
        }
        assertClose(flat(ops[name](x.to('float32'), dims)), expected, 1e-5, 1e-5, `${name} ${dims} f32`);
        // a non-contiguous input: permuted view
        const xp = x.permute([2, 0, 1]);
        const permDims = dims?.map((d) => [1, 2, 0][d < 0 ? d + 3 : d]);
        assertClose(flat(ops[name](xp, permDims)), flat(ops[name](xp.contiguous(), permDims)), 1e-12, 1e-12, `${name} permuted`);
      }
    });
  });

  test(`${name} gradient matches central differences`, () => {
    seedFor(name + 'grad');
    for (const dims of [undefined, [0], [1], [0, 2]]) {
      gradcheck(`${name} ${dims}`, (x) => ops[name](x, dims), [ts.randn([3, 4, 2], { dtype: 'float64' })]);
    }
    gradcheck(`${name} keepdim transposed`, (x) => ops[name](x.T, [1], true), [ts.randn([5, 3], { dtype: 'float64' })]);
  });
}

test('large float32 sums accumulate accurately', () => {
  const x = ts.full([1 << 20], 0.1, { dtype: 'float32' });
  const s = ts.sum(x).item();
  assert.ok(Math.abs(s - 0.1 * (1 << 20)) < 0.5, `sum of 2^20 x 0.1f = ${s}`);
});

test('reductions of edge cases: size-1 dims, empty sums, infinities, ties', () => {
  assert.equal(ts.sum(ts.ones([1, 1, 1])).item(), 1);
  assert.equal(ts.sum(ts.zeros([0, 3]), 0).toArray(), [0, 0, 0]);
  assert.equal(ts.logsumexp(ts.tensor([-Infinity, -Infinity])).item(), -Infinity);
  assert.equal(ts.logsumexp(ts.tensor([Infinity, 1])).item(), Infinity);
  assert.ok(Number.isNaN(ts.max(ts.tensor([1, NaN, 3])).item()), 'max propagates NaN');
  // ties share the gradient evenly
  const x = ts.tensor([2, 5, 5, 1], { dtype: 'float64', requiresGrad: true });
  ts.max(x).backward();
  assert.equal(x.grad?.toArray(), [0, 0.5, 0.5, 0]);
});

test('reductions reject bad dims and dtypes', () => {
  const x = ts.ones([2, 3]);
  assertThrows(() => ts.sum(x, 2), ['sum', 'dim 2', 'out of range'], 'dim out of range');
  assertThrows(() => ts.mean(x, [0, 0]), ['mean', 'repeated'], 'repeated dim');
  assertThrows(() => ts.sum(x, 0.5), ['sum', 'integer'], 'fractional dim');
  assertThrows(() => ts.max(ts.zeros([0])), ['max', 'empty'], 'max of empty');
  assertThrows(() => ts.sum(ts.tensor([1, 2], { dtype: 'int32' })), ['sum', 'int32'], 'int sum');
});

test.run();
