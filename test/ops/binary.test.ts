// Binary ops: broadcasting forward against a float64 JS reference, gradients by central
// differences, non-contiguous operands, scalars, and the errors for bad operands.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';
import { binaryRef } from '../helpers/reference';

const shapePairs: [number[], number[]][] = [
  [[3, 4], [3, 4]],
  [[3, 4], [4]],
  [[2, 1, 5], [3, 1]],
  [[1], [7]],
  [[5, 1, 3], [1, 4, 1]],
  [[], [2, 3]],
  [[1, 1], [1, 1]],
];

const fns: Record<string, [(a: ts.Tensor, b: ts.Tensor) => ts.Tensor, (x: number, y: number) => number]> = {
  add: [ts.add, (x, y) => x + y],
  sub: [ts.sub, (x, y) => x - y],
  mul: [ts.mul, (x, y) => x * y],
  div: [ts.div, (x, y) => x / y],
  pow: [ts.pow, (x, y) => Math.pow(x, y)],
  maximum: [ts.maximum, (x, y) => Math.max(x, y)],
  minimum: [ts.minimum, (x, y) => Math.min(x, y)],
};

for (const [name, [op, ref]] of Object.entries(fns)) {
  test(`${name} broadcasts and matches the float64 reference (f32 and f64)`, () => {
    seedFor(name);
    for (const [sa, sb] of shapePairs) {
      ts.scope(() => {
        const positive = name === 'pow' || name === 'div';
        const a64 = positive ? ts.rand(sa, { dtype: 'float64', low: 0.5, high: 2 }) : ts.randn(sa, { dtype: 'float64' });
        const b64 = positive ? ts.rand(sb, { dtype: 'float64', low: 0.5, high: 2 }) : ts.randn(sb, { dtype: 'float64' });
        const expected = binaryRef(flat(a64), sa, flat(b64), sb, ref);
        const out64 = op(a64, b64);
        assert.equal([...out64.shape], expected.shape, `${name} shape`);
        assertClose(flat(out64), expected.out, 1e-14, 1e-14, `${name} f64 ${sa} ${sb}`);
        const out32 = op(a64.to('float32'), b64.to('float32'));
        assertClose(flat(out32), expected.out, 2e-6, 1e-6, `${name} f32 ${sa} ${sb}`);
      });
    }
  });

  test(`${name} gradients match central differences (broadcast, transposed, sliced)`, () => {
    seedFor(name + 'grad');
    const positive = name === 'pow' || name === 'div';
    const mk = (s: number[]) => (positive ? ts.rand(s, { dtype: 'float64', low: 0.5, high: 2 }) : ts.randn(s, { dtype: 'float64' }));
    gradcheck(`${name} broadcast`, (a, b) => op(a, b), [mk([3, 1, 4]), mk([2, 1])]);
    gradcheck(`${name} transposed`, (a, b) => op(a.T, b), [mk([4, 3]), mk([3, 4])]);
    gradcheck(`${name} sliced`, (a, b) => op(a.slice(1, 1, 6, 2), b), [mk([2, 7]), mk([1, 3])]);
    gradcheck(`${name} same input twice`, (a) => op(a, a), [mk([5])]);
  });
}

test('scalar operands work on either side and keep the tensor dtype', () => {
  const x = ts.tensor([1, 2, 4], { dtype: 'float64' });
  assert.equal(ts.add(x, 1).toArray(), [2, 3, 5]);
  assert.equal(ts.sub(10, x).toArray(), [9, 8, 6]);
  assert.equal(ts.mul(x, 3).toArray(), [3, 6, 12]);
  assert.equal(ts.div(x, 2).toArray(), [0.5, 1, 2]);
  assert.equal(ts.div(8, x).toArray(), [8, 4, 2]);
  assert.equal(ts.pow(x, 2).toArray(), [1, 4, 16]);
  assert.is(ts.add(x, 1).dtype, 'float64');
  gradcheck('scalar ops', (a) => ts.div(7, ts.sub(3, ts.mul(ts.add(a, 1), 2)).pow(3)), [ts.rand([4], { dtype: 'float64', low: 0.1, high: 0.4 })]);
});

test('comparisons give 0/1 in the operand dtype, where/maskedFill select and route gradients', () => {
  const a = ts.tensor([1, 5, 3], { dtype: 'float64' });
  const b = ts.tensor([2, 5, 1], { dtype: 'float64' });
  assert.equal(ts.eq(a, b).toArray(), [0, 1, 0]);
  assert.equal(ts.ne(a, b).toArray(), [1, 0, 1]);
  assert.equal(ts.lt(a, b).toArray(), [1, 0, 0]);
  assert.equal(ts.le(a, b).toArray(), [1, 1, 0]);
  assert.equal(ts.gt(a, b).toArray(), [0, 0, 1]);
  assert.equal(ts.ge(a, b).toArray(), [0, 1, 1]);
  assert.equal(ts.where(ts.gt(a, 2), a, b).toArray(), [2, 5, 3]);
  const mask = ts.tensor([[1], [0]], { dtype: 'int32' });
  assert.equal(ts.maskedFill(ts.ones([2, 2]), mask, -Infinity).toArray(), [[-Infinity, -Infinity], [1, 1]]);
  seedFor('where');
  const cond = ts.gt(ts.randn([3, 4], { dtype: 'float64' }), 0);
  gradcheck('where', (x, y) => ts.where(cond, x, y), [ts.randn([3, 4], { dtype: 'float64' }), ts.randn([4], { dtype: 'float64' })]);
});

test('int32 tensors add, multiply and compare exactly', () => {
  const a = ts.tensor([1, -2, 2147483000], { dtype: 'int32' });
  const b = ts.tensor([3, 4, 600], { dtype: 'int32' });
  assert.equal(ts.add(a, b).toArray(), [4, 2, 2147483600]);
  assert.equal((ts.mul(a, b).toArray() as number[])[0], 3);
  assert.equal(ts.lt(a, b).toArray(), [1, 1, 0]);
  assertThrows(() => ts.div(a, b), ['div', 'float32 or float64', 'int32'], 'int division');
});

test('bad operands give errors that name the op, shapes and dtypes', () => {
  const a = ts.ones([2, 3]);
  assertThrows(() => ts.add(a, ts.ones([4])), ['add', '[2, 3]', '[4]', 'broadcast'], 'unbroadcastable');
  assertThrows(() => ts.mul(a, ts.ones([2, 3], { dtype: 'float64' })), ['mul', 'float32', 'float64', 'same dtype'], 'dtype mismatch');
  assertThrows(() => ts.add(a, NaN), ['add', 'number'], 'NaN scalar');
  assertThrows(() => ts.add(a, 'x' as unknown as number), ['add', 'b must be'], 'string operand');
  const d = ts.ones([2]);
  d.dispose();
  assertThrows(() => ts.sub(d, 1), ['disposed'], 'disposed');
  assertThrows(() => ts.where(ts.ones([3]), ts.ones([2]), ts.ones([2])), ['where', 'broadcast'], 'where shapes');
});

test.run();
