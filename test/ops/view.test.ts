// Views share storage with their base; copies do not; every view op is differentiable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertThrows, flat, gradcheck, seedFor } from '../helpers/check';

const grid = () => ts.arange(0, 24, 1, { dtype: 'float64' }).reshape([2, 3, 4]);

test('reshape, permute, transpose, slice, select, expand, squeeze and unsqueeze give the right elements', () => {
  const x = grid();
  assert.equal(x.reshape([4, -1]).shape, [4, 6]);
  assert.equal(x.permute([2, 0, 1]).toArray(), [[[0, 4, 8], [12, 16, 20]], [[1, 5, 9], [13, 17, 21]], [[2, 6, 10], [14, 18, 22]], [[3, 7, 11], [15, 19, 23]]]);
  assert.equal(x.transpose(0, 2).shape, [4, 3, 2]);
  assert.equal(x.slice(2, 1, 4, 2).toArray(), [[[1, 3], [5, 7], [9, 11]], [[13, 15], [17, 19], [21, 23]]]);
  assert.equal(x.slice(1, -1).toArray(), [[[8, 9, 10, 11]], [[20, 21, 22, 23]]]);
  assert.equal(x.slice(0, 5, 9).shape, [0, 3, 4]);
  assert.equal(x.select(1, -1).toArray(), [[8, 9, 10, 11], [20, 21, 22, 23]]);
  assert.equal(ts.tensor([1, 2]).unsqueeze(1).expand([2, 3]).toArray(), [[1, 1, 1], [2, 2, 2]]);
  assert.equal(ts.ones([1, 3, 1]).squeeze().shape, [3]);
  assert.equal(ts.ones([1, 3, 1]).squeeze(0).shape, [3, 1]);
  assert.equal(ts.ones([3]).unsqueeze(-1).shape, [3, 1]);
  assert.equal(x.flatten(1).shape, [2, 12]);
  assert.equal(x.T.shape, [2, 4, 3]);
});

test('views share storage: a write through the base is visible in the view; clone is independent', () => {
  const x = ts.zeros([2, 3], { dtype: 'float64' });
  const v = x.T;
  const c = x.clone();
  x.storage.native.write(8 * 1, new Float64Array([7]));
  assert.equal(flat(v), [0, 0, 7, 0, 0, 0]);
  assert.equal(flat(c), [0, 0, 0, 0, 0, 0]);
  assert.ok(v.storage === x.storage);
  assert.not.ok(v.isContiguous());
  assert.ok(v.contiguous().isContiguous());
});

test('disposing a base keeps its views alive until they are disposed too', () => {
  const before = ts.memoryStats().hostBlocks;
  const x = ts.ones([4, 4]);
  const v = x.slice(0, 1, 3);
  x.dispose();
  assert.equal(flat(v), new Array(8).fill(1));
  assert.is(ts.memoryStats().hostBlocks, before + 1);
  v.dispose();
  assert.is(ts.memoryStats().hostBlocks, before);
  assertThrows(() => v.toArray(), ['disposed'], 'disposed view');
});

test('contiguous() of large transposed/permuted views (the tiled copy path) is exact, with dtype conversion', () => {
  for (const [shape, perm] of [[[37, 45], [1, 0]], [[3, 50, 33], [0, 2, 1]], [[3, 50, 33], [2, 0, 1]], [[64, 16], [1, 0]], [[17, 5, 40], [2, 1, 0]]] as [number[], number[]][]) {
    ts.scope(() => {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = ts.arange(0, n, 1, { dtype: 'float64' }).reshape(shape);
      const p = x.permute(perm);
      const got = flat(p.contiguous());
      const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
      const pshape = perm.map((d) => shape[d]);
      const expected: number[] = [];
      const walk = (dim: number, base: number): void => {
        if (dim === pshape.length) return void expected.push(base);
        for (let i = 0; i < pshape[dim]; i++) walk(dim + 1, base + i * strides[perm[dim]]);
      };
      walk(0, 0);
      assert.equal(got, expected, `permute ${shape} by ${perm}`);
      assert.equal(flat(p.to('float32')), expected, `permute ${shape} by ${perm} to float32`);
    });
  }
});

test('view ops are differentiable', () => {
  seedFor('views');
  const r = () => ts.randn([2, 3, 4], { dtype: 'float64' });
  gradcheck('reshape', (x) => x.reshape([4, 6]).mul(x.reshape([4, 6])), [r()]);
  gradcheck('permute', (x) => x.permute([1, 2, 0]).exp(), [r()]);
  gradcheck('slice step', (x) => x.slice(2, 0, 4, 3).tanh(), [r()]);
  gradcheck('select', (x) => x.select(1, 2).sigmoid(), [r()]);
  gradcheck('expand', (x) => x.expand([5, 3, 4]).mul(ts.arange(0, 60, 1, { dtype: 'float64' }).reshape([5, 3, 4])), [ts.randn([3, 1], { dtype: 'float64' })]);
  gradcheck('squeeze/unsqueeze', (x) => x.unsqueeze(0).squeeze(0).unsqueeze(2).exp(), [r()]);
  gradcheck('flatten + T', (x) => x.flatten(0, 1).T.contiguous().log(), [ts.rand([2, 3, 4], { dtype: 'float64', low: 0.5, high: 2 })]);
  gradcheck('to float32 and back', (x) => x.to('float32').to('float64').mul(2), [r()], { eps: 1e-2, tol: 1e-4 });
});

test('view ops reject bad arguments', () => {
  const x = ts.ones([2, 3]);
  assertThrows(() => x.reshape([4, 2]), ['reshape', '[2, 3]', '[4, 2]'], 'reshape numel');
  assertThrows(() => x.reshape([-1, -1]), ['reshape', 'only one'], 'two -1');
  assertThrows(() => x.T.view([6]), ['view', 'not contiguous'], 'view of transposed');
  assertThrows(() => x.permute([0, 0]), ['permute', 'repeated'], 'permute repeat');
  assertThrows(() => x.permute([0]), ['permute', 'need 2 dims'], 'permute rank');
  assertThrows(() => x.expand([4, 3, 4]), ['expand', 'cannot expand'], 'expand');
  assertThrows(() => x.slice(0, 0, 1, 0), ['slice', 'step'], 'slice step');
  assertThrows(() => x.select(1, 3), ['select', 'out of range'], 'select index');
  assertThrows(() => x.transpose(0, 5), ['transpose', 'out of range'], 'transpose dim');
  assertThrows(() => x.to('float16' as 'float32'), ['to', 'unknown'], 'bad dtype');
});

test.run();
