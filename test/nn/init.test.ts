// nn.init: statistics of every initialiser on large tensors (mean, std, bounds), torch's fan
// rules, the truncated normal's cut-offs and variance, in-place forms, reproducibility under
// manualSeed, and the default inits of Linear / Embedding / LayerNorm / MultiHeadAttention.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { assertThrows, flat, seedFor } from '../helpers/check';

const { init } = nn;

function stats(xs: ArrayLike<number>) {
  let mean = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    mean += xs[i];
    min = Math.min(min, xs[i]);
    max = Math.max(max, xs[i]);
  }
  mean /= xs.length;
  let v = 0;
  for (let i = 0; i < xs.length; i++) v += (xs[i] - mean) ** 2;
  return { mean, std: Math.sqrt(v / xs.length), min, max };
}

/** Mean and std within `k` standard errors of the expected values (n samples). */
function assertStats(t: ts.Tensor, mean: number, std: number, what: string, k = 5) {
  const s = stats(flat(t));
  const n = t.numel;
  const seMean = std / Math.sqrt(n);
  const seStd = std / Math.sqrt(2 * n) * 1.5; // a little slack for non-normal kurtosis
  assert.ok(Math.abs(s.mean - mean) <= k * seMean + 1e-12, `${what}: mean ${s.mean} vs ${mean} (se ${seMean})`);
  assert.ok(Math.abs(s.std - std) <= k * seStd + 1e-12, `${what}: std ${s.std} vs ${std} (se ${seStd})`);
  return s;
}

test('uniform, normal, xavier, kaiming: mean, std and bounds', () => {
  seedFor('init stats');
  ts.scope(() => {
    const u = init.uniform([200, 300], -0.5, 1.5);
    const su = assertStats(u, 0.5, 2 / Math.sqrt(12), 'uniform');
    assert.ok(su.min >= -0.5 && su.max < 1.5, 'uniform bounds');
    assert.is(u.dtype, 'float32');
    assertStats(init.normal([200, 300], 0.25, 0.02, { dtype: 'float64' }), 0.25, 0.02, 'normal');
    assert.is(init.normal([2], 0, 1, { dtype: 'float64' }).dtype, 'float64');
    // xavier: bound = gain * sqrt(6 / (fan_in + fan_out))
    const xb = 2 * Math.sqrt(6 / (300 + 200));
    const x = init.xavierUniform([200, 300], 2);
    const sx = assertStats(x, 0, xb / Math.sqrt(3), 'xavier');
    assert.ok(sx.min >= -xb && sx.max <= xb && sx.max > 0.99 * xb, 'xavier bound');
    // kaiming (torch defaults: a = 0, fan_in, leaky_relu -> gain sqrt 2): bound = sqrt(6 / fan_in)
    const k = init.kaimingUniform([400, 100]);
    const kb = Math.sqrt(6 / 100);
    const sk = assertStats(k, 0, kb / Math.sqrt(3), 'kaiming');
    assert.ok(sk.min >= -kb && sk.max <= kb && sk.max > 0.99 * kb, 'kaiming bound');
    // conv-shaped weight: fans include the receptive field; fan_out mode
    assert.equal(init.fans([8, 3, 4, 4]), { fanIn: 48, fanOut: 128 });
    const kc = init.kaimingUniform([64, 3, 5, 5], { mode: 'fan_out', nonlinearity: 'relu' });
    assertStats(kc, 0, Math.sqrt(6 / (64 * 25)) / Math.sqrt(3), 'kaiming fan_out');
    assert.ok(Math.abs(init.calculateGain('tanh') - 5 / 3) < 1e-15);
    assert.ok(Math.abs(init.calculateGain('leaky_relu', Math.sqrt(5)) - Math.sqrt(1 / 3)) < 1e-15);
    assert.equal(flat(init.zeros([3])), [0, 0, 0]);
    assert.equal(flat(init.ones([2], { dtype: 'float64' })), [1, 1]);
    assert.equal(flat(init.constant([2], 0.5)), [0.5, 0.5]);
  });
});

test('truncNormal: inside [mean - 2 std, mean + 2 std], std 0.8796 std, custom bounds', () => {
  seedFor('init trunc');
  ts.scope(() => {
    const t = init.truncNormal([300, 200], { mean: 1, std: 0.02 }, { dtype: 'float64' });
    assert.equal([...t.shape], [300, 200]);
    // std of N(0, 1) truncated to [-2, 2]: sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2)))
    const s = assertStats(t, 1, 0.02 * 0.879626, 'truncNormal');
    assert.ok(s.min >= 1 - 0.04 && s.max <= 1 + 0.04, `truncNormal bounds ${s.min} ${s.max}`);
    assert.ok(s.min < 1 - 0.039 && s.max > 1 + 0.039, 'truncNormal reaches near its bounds');
    // timm's absolute bounds: [-2, 2] with std 0.02 does not truncate at all
    const timm = init.truncNormal([100000], { std: 0.02, a: -2, b: 2 });
    assertStats(timm, 0, 0.02, 'truncNormal timm bounds');
    // one-sided interval
    const pos = flat(init.truncNormal([5000], { a: 0, b: 10 }));
    assert.ok(pos.every((v) => v >= 0 && v <= 10), 'one-sided');
    const sp = stats(pos);
    assert.ok(Math.abs(sp.mean - Math.sqrt(2 / Math.PI)) < 0.05, `half-normal mean ${sp.mean}`);
    // reproducible under manualSeed
    ts.manualSeed(7);
    const a = flat(init.truncNormal([1000]));
    ts.manualSeed(7);
    assert.equal(flat(init.truncNormal([1000])), a);
    assertThrows(() => init.truncNormal([3], { a: 1, b: 0 }), ['truncNormal', 'a < b'], 'empty interval');
  });
});

test('in-place initialisers overwrite a parameter without touching the graph', () => {
  seedFor('init inplace');
  ts.scope(() => {
    const p = ts.zeros([300, 300], { requiresGrad: true });
    init.normal_(p, 0, 0.5);
    assertStats(p, 0, 0.5, 'normal_');
    assert.ok(p.isLeaf && p.requiresGrad && p.grad === null, 'still a leaf');
    init.uniform_(p, 2, 3);
    const s = stats(flat(p));
    assert.ok(s.min >= 2 && s.max < 3, 'uniform_');
    init.truncNormal_(p, { std: 1 });
    assert.ok(stats(flat(p)).max <= 2, 'truncNormal_');
    init.xavierUniform_(p);
    assert.ok(stats(flat(p)).max <= Math.sqrt(6 / 600), 'xavierUniform_');
    init.kaimingUniform_(p, { a: Math.sqrt(5) });
    assert.ok(stats(flat(p)).max <= 1 / Math.sqrt(300), 'kaimingUniform_');
    init.zeros_(p);
    assert.ok(flat(p).every((v) => v === 0));
    init.ones_(p);
    assert.ok(flat(p).every((v) => v === 1));
    init.constant_(p, 3);
    assert.ok(flat(p).every((v) => v === 3));
  });
});

test('module default inits: Linear (torch), Embedding, LayerNorm, MultiHeadAttention', () => {
  seedFor('init modules');
  const lin = new nn.Linear(256, 512);
  const b = 1 / Math.sqrt(256);
  const sw = assertStats(lin.weight, 0, b / Math.sqrt(3), 'Linear weight');
  assert.ok(sw.min >= -b && sw.max <= b && sw.max > 0.99 * b, 'Linear weight bound 1/sqrt(in)');
  const sb = stats(flat(lin.bias as ts.Tensor));
  assert.ok(sb.min >= -b && sb.max <= b && sb.max > 0.9 * b, 'Linear bias bound 1/sqrt(in)');
  assert.is(lin.weight.dtype, 'float32');
  assert.is(new nn.Linear(3, 2, { dtype: 'float64' }).weight.dtype, 'float64');

  assertStats(new nn.Embedding(1000, 64).weight, 0, 1, 'Embedding N(0, 1)');
  assertStats(new nn.Embedding(1000, 64, { initStd: 0.02 }).weight, 0, 0.02, 'Embedding initStd');

  const ln = new nn.LayerNorm(16);
  assert.ok(flat(ln.weight as ts.Tensor).every((v) => v === 1) && flat(ln.bias as ts.Tensor).every((v) => v === 0), 'LayerNorm ones/zeros');

  const mha = new nn.MultiHeadAttention(128, 4);
  const xb = Math.sqrt(6 / (128 + 384));
  const si = assertStats(mha.in_proj.weight, 0, xb / Math.sqrt(3), 'in_proj xavier');
  assert.ok(si.max <= xb, 'in_proj bound');
  assert.ok(flat(mha.in_proj.bias as ts.Tensor).every((v) => v === 0), 'in_proj bias zero');
  assert.ok(flat(mha.out_proj.bias as ts.Tensor).every((v) => v === 0), 'out_proj bias zero');
  for (const m of [lin, mha]) m.dispose();
});

test('models are reproducible under manualSeed', () => {
  const make = () => new nn.TextTransformer({ vocabSize: 11, contextLength: 4, width: 8, layers: 1, heads: 2, outputDim: 4 });
  ts.manualSeed(3);
  const a = make();
  ts.manualSeed(3);
  const b = make();
  const sa = a.stateDict();
  for (const [k, v] of b.stateDict()) assert.equal(flat(v), flat(sa.get(k) as ts.Tensor), k);
  a.dispose();
  b.dispose();
});

test.run();
