// Unary ops: forward against float64 formulas, fused backward kernels against central
// differences, on contiguous and strided inputs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';
import { erf } from '../helpers/reference';

const sig = (x: number) => 1 / (1 + Math.exp(-x));
type Case = [string, (x: ts.Tensor) => ts.Tensor, (x: number) => number, 'any' | 'positive' | 'away0'];
const cases: Case[] = [
  ['neg', ts.neg, (x) => -x, 'any'],
  ['exp', ts.exp, Math.exp, 'any'],
  ['log', ts.log, Math.log, 'positive'],
  ['sqrt', ts.sqrt, Math.sqrt, 'positive'],
  ['rsqrt', ts.rsqrt, (x) => 1 / Math.sqrt(x), 'positive'],
  ['abs', ts.abs, Math.abs, 'away0'],
  ['relu', ts.relu, (x) => Math.max(x, 0), 'away0'],
  ['gelu', (x) => ts.gelu(x), (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), 'any'],
  ['gelu_tanh', (x) => ts.gelu(x, 'tanh'), (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))), 'any'],
  ['sigmoid', ts.sigmoid, sig, 'any'],
  ['logsigmoid', ts.logsigmoid, (x) => Math.log(sig(x)), 'any'],
  ['softplus', (x) => ts.softplus(x), (x) => Math.log1p(Math.exp(x)), 'any'],
  ['softplus beta=2', (x) => ts.softplus(x, 2, 3), (x) => (2 * x > 3 ? x : Math.log1p(Math.exp(2 * x)) / 2), 'away0'],
  ['tanh', ts.tanh, Math.tanh, 'any'],
  ['clamp', (x) => ts.clamp(x, -0.5, 0.7), (x) => Math.min(Math.max(x, -0.5), 0.7), 'away0'],
  ['clamp min only', (x) => ts.clamp(x, 0.1), (x) => Math.max(x, 0.1), 'away0'],
  ['pow 3', (x) => ts.pow(x, 3), (x) => x ** 3, 'any'],
  ['pow -1.5', (x) => ts.pow(x, -1.5), (x) => x ** -1.5, 'positive'],
  ['affine', (x) => ts.affine(x, -2.5, 0.25), (x) => -2.5 * x + 0.25, 'any'],
];

function inputs(kind: Case[3], shape: number[]): ts.Tensor {
  if (kind === 'positive') return ts.rand(shape, { dtype: 'float64', low: 0.2, high: 3 });
  const x = ts.randn(shape, { dtype: 'float64' });
  // keep away from kinks (|x| < 0.05 and the clamp bounds) so finite differences are valid
  if (kind === 'away0') return ts.where(ts.lt(ts.abs(x), 0.1), ts.add(x, 0.3), x).add(0).detach();
  return x;
}

for (const [name, op, ref, kind] of cases) {
  test(`${name}: forward matches float64 reference, float32 within tolerance`, () => {
    seedFor(name);
    for (const shape of [[1], [7], [3, 5], [2, 3, 4], [33, 17]]) {
      ts.scope(() => {
        const x = inputs(kind, shape);
        const expected = flat(x).map(ref);
        assertClose(flat(op(x)), expected, 1e-13, 1e-14, `${name} f64 ${shape}`);
        assertClose(flat(op(x.to('float32'))), expected, 3e-6, 3e-6, `${name} f32 ${shape}`);
        // strided input: transposed view
        if (shape.length === 2) assertClose(flat(op(x.T)), flat(x.T.contiguous()).map(ref), 1e-13, 1e-14, `${name} transposed`);
      });
    }
  });

  test(`${name}: gradient matches central differences`, () => {
    seedFor(name + 'grad');
    gradcheck(name, (x) => op(x), [inputs(kind, [3, 4])]);
    gradcheck(`${name} transposed`, (x) => op(x.T), [inputs(kind, [4, 3])]);
    gradcheck(`${name} sliced`, (x) => op(x.slice(0, 1, 5, 2)), [inputs(kind, [5, 2])]);
  });
}

test('extreme inputs stay finite where the math is (sigmoid, logsigmoid, softplus)', () => {
  const x = ts.tensor([-1000, -50, 0, 50, 1000], { dtype: 'float32' });
  assert.equal(flat(ts.sigmoid(x)).map((v) => Number(v.toFixed(6))), [0, 0, 0.5, 1, 1]);
  const ls = flat(ts.logsigmoid(x));
  assert.ok(ls.every(Number.isFinite), `logsigmoid finite: ${ls}`);
  assert.is(ls[0], -1000);
  const sp = flat(ts.softplus(x));
  assert.is(sp[4], 1000);
  assert.ok(sp[0] >= 0 && sp[0] < 1e-30);
});

test('unary ops reject bad arguments with clear errors', () => {
  assertThrows(() => ts.exp(ts.tensor([1, 2], { dtype: 'int32' })), ['exp', 'float32 or float64', 'int32'], 'int input');
  assertThrows(() => ts.clamp(ts.ones([2])), ['clamp', 'min and max'], 'no bounds');
  assertThrows(() => ts.clamp(ts.ones([2]), 2, 1), ['clamp', 'greater'], 'min > max');
  assertThrows(() => ts.clamp(ts.ones([2]), NaN), ['clamp', 'NaN'], 'NaN bound');
  assertThrows(() => ts.softplus(ts.ones([2]), 0), ['softplus', 'beta'], 'beta 0');
  assertThrows(() => ts.gelu(ts.ones([2]), 'fast' as 'tanh'), ['gelu', 'approximate'], 'bad approx');
  assertThrows(() => ts.relu(null as unknown as ts.Tensor), ['relu', 'x must be a Tensor'], 'null');
});

test.run();
