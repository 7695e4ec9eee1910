// Batcher: deterministic batches for a seed, a different order per epoch and per seed, every index
// exactly once per epoch (dropLast off) or at most once (on), resume from state() giving the same
// subsequent batches, restore() refusing a state from another configuration; and prefetched():
// values in step order, production running ahead by `depth`, errors raised at their step.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertThrows } from '../helpers/check';
import { Batcher, prefetched, shuffledIndices, SplitMix32 } from '../../lib/data/batcher';

const take = (b: Batcher, k: number): number[][] => Array.from({ length: k }, () => Array.from(b.next()));

test('the same seed gives the same batches; another seed or epoch gives another order', () => {
  const a = take(new Batcher({ size: 100, batchSize: 10, seed: 42 }), 25);
  const b = take(new Batcher({ size: 100, batchSize: 10, seed: 42 }), 25);
  const c = take(new Batcher({ size: 100, batchSize: 10, seed: 43 }), 25);
  assert.equal(a, b);
  assert.not.equal(a, c);
  assert.not.equal(a.slice(0, 10).flat(), a.slice(10, 20).flat(), 'epoch 1 reshuffled');
  assert.equal(Array.from(shuffledIndices(5, 7, 0)), Array.from(shuffledIndices(5, 7, 0)));
  assert.not.equal(Array.from(shuffledIndices(50, 2 ** 40, 0)), Array.from(shuffledIndices(50, 0, 0)), 'high seed bits matter');
});

test('every index exactly once per epoch without dropLast; dropLast gives full batches of distinct indices', () => {
  const b = new Batcher({ size: 103, batchSize: 10, seed: 1, dropLast: false });
  assert.is(b.batchesPerEpoch, 11);
  for (let epoch = 0; epoch < 3; epoch++) {
    const seen = new Array(103).fill(0);
    const sizes: number[] = [];
    for (const batch of b.restOfEpoch()) {
      sizes.push(batch.length);
      for (const i of batch) seen[i]++;
    }
    assert.equal(seen, new Array(103).fill(1), `epoch ${epoch}`);
    assert.equal(sizes, [...new Array(10).fill(10), 3]);
  }
  const d = new Batcher({ size: 103, batchSize: 10, seed: 1 });
  assert.is(d.batchesPerEpoch, 10);
  const epoch = take(d, 10).flat();
  assert.is(new Set(epoch).size, 100);
  assert.ok(epoch.every((i) => i >= 0 && i < 103));
  assert.equal([d.epoch, d.index], [1, 0]);
});

test('shuffle: false walks 0..size-1 in order every epoch', () => {
  const b = new Batcher({ size: 7, batchSize: 3, seed: 9, shuffle: false, dropLast: false });
  assert.equal(take(b, 4), [[0, 1, 2], [3, 4, 5], [6], [0, 1, 2]]);
});

test('resume: a batcher restored from state() continues with identical batches, across epochs', () => {
  const opts = { size: 50, batchSize: 8, seed: 123 };
  const a = new Batcher(opts);
  take(a, 9); // into epoch 1 (6 batches per epoch)
  const saved = JSON.parse(JSON.stringify(a.state()));
  assert.equal([saved.epoch, saved.index], [1, 3]);
  const expected = take(a, 12);
  const b = new Batcher(opts);
  b.restore(saved);
  assert.equal(take(b, 12), expected);
  const c = new Batcher(opts);
  c.seek(9);
  assert.equal(Array.from(c.batchAt(9)), expected[0]);
  assert.equal(take(c, 1), [expected[0]]);
});

test('restore refuses a state saved with another configuration, and bad options are rejected', () => {
  const state = new Batcher({ size: 50, batchSize: 8, seed: 1 }).state();
  assertThrows(() => new Batcher({ size: 50, batchSize: 8, seed: 2 }).restore(state), [/saved with seed = 1, this batcher has 2/], 'seed');
  assertThrows(() => new Batcher({ size: 50, batchSize: 4, seed: 1 }).restore(state), [/batchSize = 8/], 'batch size');
  assertThrows(() => new Batcher({ size: 50, batchSize: 8, seed: 1 }).restore({ ...state, index: 6 }), [/state\.index 6 is past the 6 batches/], 'index');
  assertThrows(() => new Batcher({ size: 5, batchSize: 8, seed: 1 }), [/batchSize 8 exceeds size 5 with dropLast/], 'empty epoch');
  assertThrows(() => new Batcher({ size: 5, batchSize: 0, seed: 1 }), [/batchSize must be an integer >= 1, got 0/], 'zero batch');
});

test('SplitMix32.below is uniform enough: 60000 draws in 6 bins within 3%', () => {
  const rng = new SplitMix32(5);
  const bins = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) bins[rng.below(6)]++;
  for (const count of bins) assert.ok(Math.abs(count - 10000) < 300, `bins ${bins}`);
});

test('prefetched: values in step order from start to end, produced ahead of consumption by depth', async () => {
  const produced: number[] = [];
  const consumedAt: number[] = [];
  const got: number[] = [];
  for await (const { step, value } of prefetched((s) => { produced.push(s); return s * 10; }, { start: 3, end: 8, depth: 2 })) {
    got.push(step, value);
    await new Promise((r) => setImmediate(r)); // the "training step" yields to the event loop
    await new Promise((r) => setImmediate(r));
    consumedAt.push(produced.length);
  }
  assert.equal(got, [3, 30, 4, 40, 5, 50, 6, 60, 7, 70]);
  assert.equal(produced, [3, 4, 5, 6, 7]);
  assert.equal(consumedAt, [3, 4, 5, 5, 5], 'while step k is used, steps up to k + 2 have been produced');
});

test('prefetched: async producers, an error raised at its own step, and break stopping production', async () => {
  const got: number[] = [];
  let err: unknown = null;
  try {
    for await (const { value } of prefetched(async (s) => {
      if (s === 2) throw new Error('bad batch 2');
      return s;
    })) got.push(value);
  } catch (e) {
    err = e;
  }
  assert.equal(got, [0, 1]);
  assert.match(String(err), /bad batch 2/);
  const produced: number[] = [];
  for await (const { step } of prefetched((s) => { produced.push(s); return s; }, { depth: 3 })) {
    if (step === 1) break;
  }
  await new Promise((r) => setTimeout(r, 5));
  assert.ok(produced.length <= 5, `produced ${produced} after break`);
  const b = new Batcher({ size: 20, batchSize: 5, seed: 4 });
  const viaPrefetch: number[][] = [];
  for await (const { value } of prefetched((s) => Array.from(b.batchAt(s)), { end: 6 })) viaPrefetch.push(value);
  assert.equal(viaPrefetch, take(new Batcher({ size: 20, batchSize: 5, seed: 4 }), 6));
});

test.run();
