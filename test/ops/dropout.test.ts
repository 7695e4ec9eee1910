// dropout: every output is 0 or x / (1 - p); reproducible under manualSeed; the kept fraction
// and the mean match p statistically; the backward uses the forward's mask (checked exactly and
// by finite differences with the seed reset inside the function); p = 0 / eval mode / p = 1;
// bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { dropout } from '../../lib/ops/dropout';
import { assertThrows, flat, gradcheck, seedFor } from '../helpers/check';

test('each output is 0 or x / (1 - p), for any layout and dtype', () => {
  seedFor('dropout values');
  for (const dtype of ['float64', 'float32'] as const)
    for (const p of [0.1, 0.5, 0.9])
      for (const x of [ts.randn([7, 5], { dtype }), ts.randn([5, 7], { dtype }).T, ts.randn([4, 9], { dtype }).slice(1, 0, 9, 2), ts.randn([1], { dtype })]) {
        const out = dropout(x, p);
        assert.equal(out.shape, x.shape);
        assert.is(out.dtype, dtype);
        const xv = flat(x);
        const scale = dtype === 'float32' ? Math.fround(1 / (1 - p)) : 1 / (1 - p);
        flat(out).forEach((v, i) => {
          const kept = dtype === 'float32' ? Math.fround(xv[i] * scale) : xv[i] * scale;
          if (v !== 0 && v !== kept) assert.unreachable(`dropout p=${p} ${dtype}: element ${i} is ${v}, expected 0 or ${kept}`);
        });
      }
});

test('reproducible under manualSeed; successive calls differ', () => {
  const x = ts.ones([1000], { dtype: 'float64' });
  ts.manualSeed(1234);
  const a = flat(dropout(x, 0.3));
  const b = flat(dropout(x, 0.3));
  ts.manualSeed(1234);
  const c = flat(dropout(x, 0.3));
  assert.equal(c, a);
  assert.not.equal(b, a);
  // the mask does not depend on the dtype's scale or on the layout of x
  ts.manualSeed(99);
  const m1 = flat(dropout(ts.ones([20, 30], { dtype: 'float64' }), 0.5)).map((v) => v !== 0);
  ts.manualSeed(99);
  const m2 = flat(dropout(ts.ones([30, 20], { dtype: 'float64' }).T, 0.5)).map((v) => v !== 0);
  assert.equal(m2, m1);
});

test('the kept fraction is 1 - p and the mean is preserved (statistically)', () => {
  seedFor('dropout statistics');
  const n = 200000;
  for (const p of [0.1, 0.3, 0.5, 0.8]) {
    for (const dtype of ['float64', 'float32'] as const) {
      const x = ts.ones([n], { dtype });
      const v = flat(dropout(x, p));
      const kept = v.filter((e) => e !== 0).length / n;
      const mean = v.reduce((s, e) => s + e, 0) / n;
      // 6 standard deviations: a false failure has probability ~1e-9
      const sdKept = Math.sqrt((p * (1 - p)) / n);
      const sdMean = Math.sqrt(p / (1 - p) / n);
      assert.ok(Math.abs(kept - (1 - p)) < 6 * sdKept, `p=${p} ${dtype}: kept fraction ${kept}, expected ${1 - p}`);
      assert.ok(Math.abs(mean - 1) < 6 * sdMean, `p=${p} ${dtype}: mean ${mean}, expected 1`);
    }
    // mean of random data preserved too
    const x = ts.randn([n], { dtype: 'float64', mean: 2 });
    const meanIn = flat(x).reduce((s, e) => s + e, 0) / n;
    const meanOut = flat(dropout(x, p)).reduce((s, e) => s + e, 0) / n;
    const sd = Math.sqrt((5 * p) / (1 - p) / n); // sd of mean(x * (mask - 1)), E[x^2] = 5
    assert.ok(Math.abs(meanOut - meanIn) < 6 * sd + 1e-12, `p=${p}: mean ${meanOut} vs ${meanIn}`);
  }
});

test('p = 0 and training = false return x itself; p = 1 gives zeros with a zero gradient', () => {
  const x = ts.randn([3, 4], { dtype: 'float64', requiresGrad: true });
  assert.ok(dropout(x, 0) === x);
  assert.ok(dropout(x, 0.7, false) === x);
  const offset = ts.getRngState().offset;
  const z = dropout(x, 1);
  assert.is(ts.getRngState().offset, offset, 'p = 1 draws nothing');
  assert.equal(flat(z), new Array(12).fill(0));
  z.mul(ts.randn([3, 4], { dtype: 'float64' })).sum().backward();
  assert.equal(flat(x.grad as Tensor), new Array(12).fill(0));
  assert.equal(dropout(ts.zeros([0, 3]), 0.5).shape, [0, 3]);
});

test('backward multiplies by the forward mask', () => {
  seedFor('dropout backward');
  for (const p of [0.2, 0.6]) {
    const x = ts.rand([8, 9], { dtype: 'float64', low: 0.5, high: 2, requiresGrad: true });
    const out = dropout(x.T, p);
    ts.rand([100]); // the stream moves on between forward and backward: the mask must not
    const g = ts.randn([9, 8], { dtype: 'float64' });
    out.backward(g);
    const mask = flat(out).map((v, i) => v / flat(x.T)[i]);
    const expected = flat(g.mul(ts.tensor(mask, { dtype: 'float64', shape: [9, 8] })).T);
    const got = flat(x.grad as Tensor);
    got.forEach((v, i) => {
      if (Math.abs(v - expected[i]) > 1e-12) assert.unreachable(`p=${p}: grad element ${i} is ${v}, expected ${expected[i]}`);
    });
  }
  // gradient check with a fixed mask: reset the seed inside fn
  for (const p of [0.25, 0.5]) {
    gradcheck(`dropout p=${p}`, (x) => {
      ts.manualSeed(4321);
      return dropout(x, p).mul(x);
    }, [ts.randn([4, 5], { dtype: 'float64' })]);
    gradcheck(`dropout p=${p} of a transposed x`, (x) => {
      ts.manualSeed(8765);
      return dropout(x.T, p).exp();
    }, [ts.randn([3, 6], { dtype: 'float64' })]);
  }
});

test('bad p, dtype, training flag and disposed tensors are errors naming the op', () => {
  const x = ts.randn([2, 3]);
  for (const p of [-0.1, 1.5, NaN, Infinity])
    assertThrows(() => dropout(x, p), ['dropout', 'p must be a probability in [0, 1]', String(p), 'float32[2, 3]'], `p = ${p}`);
  assertThrows(() => dropout(x, '0.5' as unknown as number), ['dropout', 'p must be'], 'string p');
  assertThrows(() => dropout(x, 0.5, 'yes' as unknown as boolean), ['dropout', 'training'], 'training flag');
  assertThrows(() => dropout(ts.ones([3], { dtype: 'int32' }), 0.5), ['dropout', 'float32 or float64', 'int32[3]'], 'int32 x');
  assertThrows(() => dropout(null as unknown as Tensor, 0.5), ['dropout', 'Tensor'], 'not a tensor');
  const dead = ts.randn([2]);
  dead.dispose();
  assertThrows(() => dropout(dead, 0.5), ['dropout', 'disposed'], 'disposed');
});

test.run();
