// The autograd graph: accumulation over shared subgraphs, leaf gradients that add up across
// backward calls, noGrad/detach, explicit root gradients, and the errors for misuse.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertThrows, flat } from '../helpers/check';

test('a value used several times receives the sum of its gradients', () => {
  const x = ts.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
  const y = x.mul(x).add(x.mul(3)).sum(); // d/dx = 2x + 3
  y.backward();
  assert.equal(x.grad?.toArray(), [5, 7, 9]);
});

test('diamond graphs propagate through every path exactly once', () => {
  const x = ts.tensor([0.5, -1], { dtype: 'float64', requiresGrad: true });
  const a = x.exp();
  const b = a.mul(2);
  const c = a.mul(a);
  const out = b.add(c).sum(); // 2e^x + e^{2x} -> 2e^x + 2e^{2x}
  out.backward();
  const want = [0.5, -1].map((v) => 2 * Math.exp(v) + 2 * Math.exp(2 * v));
  flat(x.grad!).forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-12));
});

test('gradients accumulate across backward calls until cleared', () => {
  const w = ts.tensor([2], { dtype: 'float64', requiresGrad: true });
  w.mul(3).sum().backward();
  w.mul(4).sum().backward();
  assert.equal(w.grad?.toArray(), [7]);
  w.grad?.dispose();
  w.grad = null;
  w.mul(5).sum().backward();
  assert.equal((w.grad as ts.Tensor | null)?.toArray(), [5]);
});

test('a non-scalar root takes an explicit gradient; a leaf root gets it directly', () => {
  const x = ts.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
  x.mul(x).backward(ts.tensor([1, 10], { dtype: 'float64' }));
  assert.equal(x.grad?.toArray(), [2, 40]);
  const leaf = ts.tensor([3], { dtype: 'float64', requiresGrad: true });
  leaf.backward();
  assert.equal(leaf.grad?.toArray(), [1]);
});

test('noGrad and detach stop recording; requiresGrad flows only from marked inputs', () => {
  const x = ts.tensor([1, 2], { requiresGrad: true });
  const y = ts.noGrad(() => x.mul(2));
  assert.not.ok(y.requiresGrad);
  assert.is(y.gradFn, null);
  const z = x.detach().mul(2);
  assert.not.ok(z.requiresGrad);
  const c = ts.ones([2]).mul(3);
  assert.not.ok(c.requiresGrad);
  const w = x.mul(c);
  assert.ok(w.requiresGrad);
  assert.is(w.gradFn?.name, 'mul');
  assert.ok(ts.isGradEnabled());
});

test('backward errors are clear', () => {
  assertThrows(() => ts.ones([2]).sum().backward(), ['backward', 'does not require grad'], 'no grad');
  const x = ts.ones([2], { requiresGrad: true });
  assertThrows(() => x.mul(2).backward(), ['backward', 'one element', '[2]'], 'non-scalar');
  assertThrows(() => x.mul(2).backward(ts.ones([3])), ['backward', 'must match'], 'wrong gradient shape');
  assertThrows(() => ts.tensor([1], { dtype: 'int32', requiresGrad: true }), ['only float tensors can require grad'], 'int grad');
  const y = x.mul(2);
  assertThrows(() => y.requiresGrad_(false), ['requiresGrad_', 'leaf'], 'non-leaf');
});

test('using a tensor saved for backward after disposing it is an error, not a crash', () => {
  const x = ts.tensor([1, 2], { requiresGrad: true });
  const e = x.exp();
  const loss = e.sum();
  e.dispose();
  assertThrows(() => loss.backward(), ['disposed'], 'saved tensor disposed');
});

test('a long chain backpropagates without recursion limits', () => {
  const x = ts.tensor([1], { dtype: 'float64', requiresGrad: true });
  let y = x;
  for (let i = 0; i < 20000; i++) y = y.mul(1);
  y.sum().backward();
  assert.equal(x.grad?.toArray(), [1]);
});

test.run();
