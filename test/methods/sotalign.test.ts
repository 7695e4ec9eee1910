// SOTAlign: the Jacobi eigensolver and the closed-form CCA teacher recover a planted linear
// relation; the unimodal pretrainers lower their NT-Xent losses; the method trains only its
// alignment heads (the frozen encoders are not model parameters), its loss falls, KLOT is
// finite and non-negative, and bad options are refused with the option's name.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { WorldPairs } from '../../lib/data/world_pairs';
import { BpeTokenizer } from '../../lib/data/bpe_tokenizer';
import { methodTokenizer } from '../../lib/training/setup';
import { evaluateMethod } from '../../lib/training/evaluate';
import { SotalignMethod, symmetricEigen, fitLinearTeacher } from '../../lib/methods/sotalign';
import { pretrainTextEncoder } from '../../lib/methods/unimodal_pretrain';

/** Deterministic standard normals. */
function gauss(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

test('symmetricEigen: V diag(values) V^T reconstructs A, V is orthonormal, values descending', () => {
  const n = 7;
  const r = gauss(1);
  const B = Array.from({ length: n * n }, r);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) A[i * n + j] += B[i * n + k] * B[j * n + k] - (i === j && k === 0 ? 3 : 0);
  const { values, vectors: V } = symmetricEigen(A, n);
  let recon = 0, ortho = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0, o = 0;
      for (let k = 0; k < n; k++) { s += V[i * n + k] * values[k] * V[j * n + k]; o += V[k * n + i] * V[k * n + j]; }
      recon = Math.max(recon, Math.abs(s - A[i * n + j]));
      ortho = Math.max(ortho, Math.abs(o - (i === j ? 1 : 0)));
    }
  assert.ok(recon < 1e-9, `reconstruction error ${recon}`);
  assert.ok(ortho < 1e-9, `orthonormality error ${ortho}`);
  for (let k = 1; k < n; k++) assert.ok(values[k] <= values[k - 1]);
});

test('fitLinearTeacher: recovers a planted 6-dim shared signal from 60 pairs and retrieves held-out pairs', () => {
  const dx = 12, dy = 10, shared = 6, nPool = 2000, nPairs = 60, nTest = 40;
  const r = gauss(7);
  const Px = Array.from({ length: shared * dx }, r), Py = Array.from({ length: shared * dy }, r);
  const sample = (n: number) => {
    const X = new Float32Array(n * dx), Y = new Float32Array(n * dy);
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: shared }, r);
      for (let a = 0; a < dx; a++) { let s = 0.2 * r(); for (let k = 0; k < shared; k++) s += z[k] * Px[k * dx + a]; X[i * dx + a] = s + 2; }
      for (let b = 0; b < dy; b++) { let s = 0.2 * r(); for (let k = 0; k < shared; k++) s += z[k] * Py[k * dy + b]; Y[i * dy + b] = s - 1; }
    }
    return { X, Y };
  };
  const pool = sample(nPool), pairs = sample(nPairs), held = sample(nTest);
  const t = fitLinearTeacher(pool.X, pool.Y, pairs.X, pairs.Y, dx, dy, shared, 0.01);
  assert.equal(t.ax.shape, [dx, shared]);
  assert.ok(t.rho[0] > 0.8 && t.rho[shared - 1] > 0.3, `shared canonical correlations ${Array.from(t.rho).join(', ')}`);
  const correct = ts.scope(() => {
    const ex = ts.normalize(ts.tensor(held.X, { shape: [nTest, dx] }).sub(t.muX).matmul(t.ax), 2, -1);
    const ey = ts.normalize(ts.tensor(held.Y, { shape: [nTest, dy] }).sub(t.muY).matmul(t.ay), 2, -1);
    const S = ex.matmul(ey.T).toTypedArray();
    let c = 0;
    for (let i = 0; i < nTest; i++) {
      let best = 0;
      for (let j = 1; j < nTest; j++) if (S[i * nTest + j] > S[i * nTest + best]) best = j;
      if (best === i) c++;
    }
    return c;
  });
  assert.ok(correct >= 0.75 * nTest, `held-out image->text R@1 ${correct}/${nTest} (chance 1/${nTest})`);
  for (const x of [t.muX, t.ax, t.muY, t.ay]) x.dispose();
  assert.throws(() => fitLinearTeacher(pool.X, pool.Y, pairs.X, pairs.Y.subarray(0, dy * 10), dx, dy, 2, 0.1), /same number/);
  assert.throws(() => fitLinearTeacher(pool.X, pool.Y, pairs.X, pairs.Y, dx, dy, 11, 0.1), /rank k/);
});

// One kernel thread: on 2 shared cores the thread pool's contention makes these tiny models
// ~15x slower. Restored at the end of the file.
const threadsBefore = ts.cpuInfo().threads;
ts.setNumThreads(1);

const data = new WorldPairs(5, 32, 64);
const tok = BpeTokenizer.train(data.corpus().slice(0, 2000), { vocabSize: 300, lowercase: true });
const ctx = { dataset: data, tokenizer: methodTokenizer(tok), contextLength: 16, seed: 5 };

test('pretrainTextEncoder: NT-Xent between two captions of an item falls', () => {
  ts.manualSeed(2);
  const { encoder, losses } = pretrainTextEncoder(data, ctx.tokenizer, 16, {
    tower: { width: 32, layers: 1, heads: 2 }, featureDim: 16, steps: 150, batchSize: 32, lr: 3e-3, seed: 5,
  });
  assert.is(losses.length, 150);
  const late = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
  assert.ok(late < 0.9 * losses[0], `NT-Xent ${losses[0].toFixed(3)} -> ${late.toFixed(3)}`);
  assert.is(encoder.training, false);
});

test('SotalignMethod: only the heads train; loss falls; KLOT finite >= 0; teacher view has no parameters', () => {
  ts.manualSeed(3);
  const m = new SotalignMethod(ctx, { preset: 'tiny', nPairs: 16, pairBatch: 16, pretrainSteps: 3, pretrainBatch: 16, klotWeight: 1 });
  const names = m.model.namedParameters().map(([n]) => n);
  assert.ok(names.every((n) => /^(image_head|text_head|logit_scale)/.test(n)), `trainable: ${names.join(', ')}`);
  const frozen = new Set([...m.encoders.visual.parameters(), ...m.encoders.text.parameters()]);
  assert.ok(m.model.parameters().every((p) => !frozen.has(p)), 'no encoder parameter is trainable');
  const frozenBefore = m.encoders.visual.parameters()[0].toTypedArray().slice();
  const opt = new ts.optim.AdamW(m.model.parameters(), { lr: 1e-2 });
  const idx = Array.from({ length: 32 }, (_, i) => i + 16);
  const losses: number[] = [], kls: number[] = [];
  for (let s = 0; s < 30; s++)
    ts.scope(() => {
      const l = m.trainingLoss(idx, 0);
      l.backward();
      if (s === 0) {
        for (const p of [m.model.image_head.parameters()[0], m.model.text_head.parameters()[0]])
          assert.ok(p.grad && p.grad.abs().sum().item() > 0, 'gradient reaches both heads');
        const kl = m.logs().klot;
        assert.ok(Number.isFinite(kl) && kl >= -1e-4, `KLOT ${kl}`);
        assert.ok(Math.abs(l.item() - (m.logs().contrastive + kl)) < 1e-3, 'loss = contrastive + 1 * KLOT');
      }
      opt.step();
      opt.zeroGrad();
      losses.push(l.item());
      kls.push(m.logs().klot);
    });
  assert.ok(losses.every(Number.isFinite));
  assert.ok(kls[kls.length - 1] < 0.8 * kls[0], `KLOT to the teacher falls: ${kls[0].toFixed(3)} -> ${kls[kls.length - 1].toFixed(3)}`);
  assert.ok(losses[losses.length - 1] < 0.8 * losses[0], `loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
  assert.equal(Array.from(m.encoders.visual.parameters()[0].toTypedArray()), Array.from(frozenBefore), 'the image encoder stays frozen');
  ts.scope(() => {
    const e = m.encodeTexts(['a red circle', 'two blue squares']);
    assert.equal(e.shape, [2, 32]);
    const norms = e.mul(e).sum(1).toTypedArray();
    for (const v of norms) assert.ok(Math.abs(v - 1) < 1e-4, `unit norm, got ${v}`);
  });
  const teacher = m.teacherMethod();
  assert.is(teacher.model.parameters().length, 0);
  const ev = evaluateMethod(teacher, data.evalSplit('val', 20));
  for (const r of ev.rows) assert.ok(Number.isFinite(r.value), `${r.metric} = ${r.value}`);
  // klotWeight 0: the loss is the contrastive loss on the pairs alone.
  const c = new SotalignMethod(ctx, { preset: 'tiny', nPairs: 16, klotWeight: 0, encoders: m.encoders });
  ts.scope(() => {
    const l = c.trainingLoss(idx, 0).item();
    assert.ok(Math.abs(l - c.logs().contrastive) < 1e-6 && c.logs().klot === undefined);
  });
});

test('SotalignMethod: the frozen encoders depend on ctx.seed only, not on the global RNG state', () => {
  const build = (globalSeed: number, seed: number) => {
    ts.manualSeed(globalSeed);
    const m = new SotalignMethod({ ...ctx, seed }, { preset: 'tiny', nPairs: 8, pretrainSteps: 2, pretrainBatch: 8, klotWeight: 0 });
    return Array.from(m.encoders.text.parameters()[0].toTypedArray());
  };
  const a = build(1, 5), b = build(99, 5), c = build(1, 6);
  assert.equal(a, b, 'same ctx.seed, different global RNG: identical encoders');
  assert.not.equal(a, c, 'another ctx.seed gives other encoders');
});

test('SotalignMethod: bad options name the option', () => {
  assert.throws(() => new SotalignMethod(ctx, { preset: 'tiny', nPairs: 1 }), /nPairs must be an integer in \[2, 64\]/);
  assert.throws(() => new SotalignMethod(ctx, { preset: 'tiny', nPairs: 100 }), /nPairs/);
});

test('(restore the kernel thread count)', () => {
  ts.setNumThreads(threadsBefore);
  assert.is(ts.cpuInfo().threads, threadsBefore);
});

test.run();
