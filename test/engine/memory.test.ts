// Native memory ownership: dispose frees, scopes free temporaries but not what they return, the
// backward pass frees its intermediate gradients, and a training-style loop stays flat.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertThrows } from '../helpers/check';

const blocks = () => ts.memoryStats().hostBlocks;

test('dispose frees native memory exactly once and later use is an error', () => {
  const before = ts.memoryStats();
  const x = ts.zeros([1024]);
  assert.is(ts.memoryStats().hostBytes - before.hostBytes, 4096);
  x.dispose();
  x.dispose();
  assert.is(ts.memoryStats().hostBytes, before.hostBytes);
  assert.ok(x.isDisposed);
  assertThrows(() => x.add(1), ['disposed', 'float32[1024]'], 'use after dispose');
  assertThrows(() => x.toTypedArray(), ['toTypedArray', 'disposed'], 'read after dispose');
});

test('scope frees everything created inside except what it returns (nested, arrays, objects)', () => {
  const before = blocks();
  const kept = ts.scope(() => {
    const a = ts.ones([3]);
    const b = a.mul(2).add(1);
    const inner = ts.scope(() => {
      const t = b.exp();
      return { t, unused: 1 };
    });
    return [inner.t, b.sum()];
  });
  assert.is(blocks() - before, 2);
  assert.ok(kept.every((t) => !t.isDisposed));
  kept.forEach((t) => t.dispose());
  assert.is(blocks(), before);
});

test('keep() rescues a tensor from its scope; a throwing scope still frees', () => {
  const before = blocks();
  let saved: ts.Tensor | null = null;
  ts.scope(() => {
    saved = ts.keep(ts.ones([2]));
    ts.ones([5]);
  });
  assert.is(blocks() - before, 1);
  saved!.dispose();
  assert.throws(() => ts.scope(() => {
    ts.ones([7]);
    throw new Error('boom');
  }), /boom/);
  assert.is(blocks(), before);
});

test('backward frees its intermediate gradients; only leaf .grad tensors remain', () => {
  const w = ts.randn([16, 16], { requiresGrad: true });
  const x = ts.randn([8, 16]);
  const before = blocks();
  ts.scope(() => {
    const h = x.matmul(w).relu().matmul(w).tanh();
    h.mul(h).mean().backward();
  });
  assert.is(blocks() - before, 1, 'only w.grad is new');
  assert.ok(w.grad && !w.grad.isDisposed);
});

test('a training-style loop keeps a flat native memory profile', () => {
  const w = ts.randn([32, 32], { requiresGrad: true });
  const b = ts.zeros([32], { requiresGrad: true });
  const step = () =>
    ts.scope(() => {
      const x = ts.randn([16, 32]);
      const loss = x.matmul(w).add(b).gelu().pow(2).mean();
      loss.backward();
      ts.noGrad(() => {
        // plain SGD written with ops, replacing the parameter data in place via copy
        const nw = w.sub(w.grad!.mul(0.01));
        w.storage.native.write(0, nw.toTypedArray());
      });
      w.grad!.dispose();
      w.grad = null;
      b.grad!.dispose();
      b.grad = null;
      return loss.item();
    });
  for (let i = 0; i < 5; i++) step();
  const after5 = ts.memoryStats().hostBytes;
  for (let i = 0; i < 200; i++) step();
  assert.is(ts.memoryStats().hostBytes, after5, 'no growth over 200 steps');
});

test.run();
