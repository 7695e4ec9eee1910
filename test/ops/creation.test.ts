// Creation: from arrays and typed arrays, fills, arange, and the seeded counter-based generator.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertThrows, flat } from '../helpers/check';

test('tensors from nested arrays, numbers and typed arrays keep values, shapes and dtypes', () => {
  const a = ts.tensor([[1, 2, 3], [4, 5, 6]]);
  assert.equal(a.shape, [2, 3]);
  assert.is(a.dtype, 'float32');
  assert.equal(a.toArray(), [[1, 2, 3], [4, 5, 6]]);
  assert.is(ts.tensor(3.5, { dtype: 'float64' }).item(), 3.5);
  assert.equal(ts.tensor(3.5).shape, []);
  const f64 = ts.tensor(new Float64Array([0.1, 0.2]));
  assert.is(f64.dtype, 'float64');
  assert.is(f64.toTypedArray()[0], 0.1);
  assert.is(ts.tensor(new Int32Array([1, 2])).dtype, 'int32');
  assert.equal(ts.tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] }).toArray(), [[1, 2], [3, 4]]);
  assert.equal(ts.tensor([]).shape, [0]);
});

test('fills and ranges', () => {
  assert.equal(ts.zeros([2]).toArray(), [0, 0]);
  assert.equal(ts.ones([2], { dtype: 'int32' }).toArray(), [1, 1]);
  assert.equal(ts.full([2, 1], -2.5).toArray(), [[-2.5], [-2.5]]);
  assert.equal(ts.arange(5).toArray(), [0, 1, 2, 3, 4]);
  assert.is(ts.arange(5).dtype, 'int32');
  assert.equal(ts.arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
  assert.equal(ts.arange(3, 0, -1).toArray(), [3, 2, 1]);
  assert.equal(ts.arange(0, 0).shape, [0]);
  assert.equal(ts.zerosLike(ts.ones([3], { dtype: 'float64' })).dtype, 'float64');
});

test('rand and randn are reproducible from the seed, in [low, high), with the right moments', () => {
  ts.manualSeed(42);
  const a = flat(ts.randn([1000]));
  const u = flat(ts.rand([20000], { low: -1, high: 3 }));
  ts.manualSeed(42);
  const b = flat(ts.randn([1000]));
  assert.equal(a, b, 'same seed, same stream');
  const c = flat(ts.randn([1000]));
  assert.not.equal(a.slice(0, 10), c.slice(0, 10), 'the stream advances');
  assert.ok(u.every((v) => v >= -1 && v < 3), 'rand in [low, high)');
  const mean = u.reduce((s, v) => s + v, 0) / u.length;
  assert.ok(Math.abs(mean - 1) < 0.05, `uniform mean ${mean}`);
  ts.manualSeed(7);
  const n = flat(ts.randn([40000], { dtype: 'float64' }));
  const m = n.reduce((s, v) => s + v, 0) / n.length;
  const v = n.reduce((s, x) => s + (x - m) ** 2, 0) / n.length;
  assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.04, `normal moments ${m} ${v}`);
  // float32 and float64 draws from the same counters agree to float32 rounding
  ts.manualSeed(9);
  const n32 = flat(ts.randn([100]));
  ts.manualSeed(9);
  const n64 = flat(ts.randn([100], { dtype: 'float64' }));
  n32.forEach((x, i) => assert.ok(Math.abs(x - n64[i]) < 1e-6 * (1 + Math.abs(x))));
});

test('creation rejects NaN, negative, fractional and huge sizes and bad dtypes', () => {
  assertThrows(() => ts.zeros([2, -1]), ['zeros', 'non-negative integers'], 'negative');
  assertThrows(() => ts.zeros([NaN]), ['zeros', 'non-negative integers'], 'NaN size');
  assertThrows(() => ts.ones([1.5]), ['ones', 'non-negative integers'], 'fractional');
  assertThrows(() => ts.zeros([1e6, 1e6, 1e6]), ['zeros', 'limit'], 'huge');
  assertThrows(() => ts.full([2], NaN), ['full', 'NaN'], 'NaN fill');
  assertThrows(() => ts.zeros([2], { dtype: 'float16' as 'float32' }), ['zeros', 'unknown dtype'], 'dtype');
  assertThrows(() => ts.arange(0, 10, 0), ['arange', 'step'], 'step 0');
  assertThrows(() => ts.arange(0, Infinity), ['arange', 'finite'], 'infinite end');
  assertThrows(() => ts.randn([2], { std: -1 }), ['randn', 'std'], 'negative std');
  assertThrows(() => ts.rand([2], { dtype: 'int32' }), ['rand', 'float32 or float64'], 'int rand');
  assertThrows(() => ts.tensor([[1, 2], [3]]), ['tensor', 'rectangular'], 'ragged');
  assertThrows(() => ts.tensor([1, 'a' as unknown as number]), ['tensor', 'number'], 'string element');
  assertThrows(() => ts.tensor([1.5], { dtype: 'int32' }), ['tensor', 'int32', '1.5'], 'fractional int');
  assertThrows(() => ts.tensor([1, 2, 3], { shape: [2, 2] }), ['tensor', 'do not fill'], 'shape mismatch');
  assertThrows(() => ts.manualSeed(-1), ['manualSeed'], 'bad seed');
  assertThrows(() => ts.tensor([1, 2]).item(), ['item', 'one element'], 'item');
});

test.run();
