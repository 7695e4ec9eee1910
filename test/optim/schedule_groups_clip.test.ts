// Learning-rate schedule against OpenCLIP's cosine_lr formula, weight-decay param groups
// against OpenCLIP's exclusion rule, and gradient clipping against a plain-JS norm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Module } from '../../lib/nn/module';
import { AdamW, applyLr, clipCoefficient, clipGradNorm, cosineWithWarmup, decayGroups, gradNorm, SGD, shouldDecay } from '../../lib/optim';
import { flat, jsRandom, relError, SEED } from '../helpers/check';

// --- schedule ------------------------------------------------------------------------------------

/** open_clip_train/scheduler.py cosine_lr, transcribed. */
function openClipCosine(baseLr: number, warmupLength: number, steps: number, step: number): number {
  if (step < warmupLength) return (baseLr * (step + 1)) / warmupLength;
  const e = step - warmupLength;
  const es = steps - warmupLength;
  return 0.5 * (1 + Math.cos((Math.PI * e) / es)) * baseLr;
}

test('cosineWithWarmup equals OpenCLIP cosine_lr at every step (minLr = 0)', () => {
  for (const [baseLr, warmup, total] of [[5e-4, 10, 100], [1e-3, 0, 37], [3e-4, 2000, 100000]]) {
    const lr = cosineWithWarmup({ baseLr, warmupSteps: warmup, totalSteps: total });
    const probe = [0, 1, Math.max(0, warmup - 1), warmup, warmup + 1, Math.floor((warmup + total) / 2), total - 1];
    for (let s = 0; s < Math.min(total, 300); s++) probe.push(s);
    for (const s of probe) assert.is(lr(s), openClipCosine(baseLr, warmup, total, s), `base ${baseLr}, warmup ${warmup}, total ${total}, step ${s}`);
  }
  const lr = cosineWithWarmup({ baseLr: 1e-3, warmupSteps: 4, totalSteps: 20 });
  assert.is(lr(0), 1e-3 / 4, 'first warm-up step is baseLr / warmup');
  assert.is(lr(3), 1e-3, 'last warm-up step reaches baseLr');
  assert.is(lr(4), 1e-3, 'cosine starts at baseLr');
  assert.is(lr(12), 0.5e-3, 'halfway down the cosine');
  assert.is(lr(20), 0, 'past the end stays at minLr');
  assert.is(lr(1000), 0);
});

test('cosineWithWarmup with minLr decays to minLr', () => {
  const lr = cosineWithWarmup({ baseLr: 1e-3, warmupSteps: 0, totalSteps: 10, minLr: 1e-5 });
  assert.is(lr(0), 1e-3);
  assert.ok(Math.abs(lr(5) - (1e-3 + 1e-5) / 2) < 1e-18);
  assert.ok(lr(9) > 1e-5 && lr(9) < 1e-4);
  assert.is(lr(10), 1e-5);
  for (let s = 1; s < 10; s++) assert.ok(lr(s) < lr(s - 1), 'monotone after warm-up');
});

test('applyLr sets every group; groups keep their own lr when set directly', () => {
  ts.scope(() => {
    const a = ts.zeros([2], { requiresGrad: true });
    const b = ts.zeros([2, 2], { requiresGrad: true });
    const opt = new AdamW([{ params: [a], lr: 1 }, { params: [b] }], { lr: 2 });
    assert.equal(opt.paramGroups.map((g) => g.lr), [1, 2]);
    assert.is(opt.lr, 1);
    assert.is(applyLr(opt, 0.25), 0.25);
    assert.equal(opt.paramGroups.map((g) => g.lr), [0.25, 0.25]);
    opt.paramGroups[1].lr = 0.5;
    assert.equal(opt.paramGroups.map((g) => g.lr), [0.25, 0.5]);
    opt.dispose();
  });
});

// --- param groups --------------------------------------------------------------------------------

class Leaf extends Module {
  constructor(shapes: Record<string, number[]>) {
    super();
    for (const [n, s] of Object.entries(shapes)) this.param(n, ts.randn(s));
  }
}
class Tiny extends Module {
  constructor() {
    super();
    this.param('class_embedding', ts.randn([8]));
    this.param('positional_embedding', ts.randn([5, 8]));
    this.param('logit_scale', ts.zeros([]));
    this.child('token_embedding', new Leaf({ weight: [11, 8] }));
    this.child('ln_pre', new Leaf({ weight: [8], bias: [8] }));
    this.child('proj', new Leaf({ weight: [8, 8], bias: [8] }));
    this.child('bn1', new Leaf({ weight: [8, 8] })); // 2-D, excluded by name ("bn")
    this.child('mlp', new Leaf({ c_fc: [16, 8], c_proj: [8, 16] }));
  }
}

test('decayGroups follows OpenCLIP: no decay for ndim < 2, bn, ln, bias, logit_scale', () => {
  const model = new Tiny();
  const [noDecay, decay] = decayGroups(model, 0.2);
  const names = new Map(model.namedParameters().map(([n, p]) => [p, n]));
  const nm = (g: { params: ts.Tensor[] }) => g.params.map((p) => names.get(p));
  assert.equal(nm(noDecay), ['class_embedding', 'logit_scale', 'ln_pre.weight', 'ln_pre.bias', 'proj.bias', 'bn1.weight']);
  assert.equal(nm(decay), ['positional_embedding', 'token_embedding.weight', 'proj.weight', 'mlp.c_fc', 'mlp.c_proj']);
  assert.is(noDecay.weightDecay, 0);
  assert.is(decay.weightDecay, 0.2);
  // OpenCLIP's own predicate, transcribed, agrees on every parameter
  for (const [n, p] of model.namedParameters()) {
    const exclude = p.ndim < 2 || n.includes('bn') || n.includes('ln') || n.includes('bias') || n.includes('logit_scale');
    assert.is(shouldDecay(n, p), !exclude, n);
  }
  const [noDecay2] = decayGroups(model, 0.2, { excludeEmbeddings: true });
  assert.ok(nm(noDecay2).includes('positional_embedding'), 'excludeEmbeddings also exempts positional_embedding');
  assert.ok(!nm(noDecay2).includes('token_embedding.weight'), 'token embeddings still decay');
  model.dispose();
});

test('an AdamW step with decayGroups leaves the no-decay group undecayed', () => {
  const model = new Tiny();
  const opt = new AdamW(decayGroups(model, 0.5), { lr: 0.1 });
  // zero gradients: the Adam term is 0, so only decoupled weight decay moves a parameter
  const before = new Map(model.namedParameters().map(([n, p]) => [n, flat(p)]));
  ts.scope(() => {
    for (const p of model.parameters()) p.grad = ts.zerosLike(p);
    opt.step();
    opt.zeroGrad();
  });
  for (const [n, p] of model.namedParameters()) {
    const want = before.get(n)!.map((x) => (shouldDecay(n, p) ? Math.fround(x * Math.fround(1 - 0.1 * 0.5)) : x));
    assert.equal(flat(p), want, n);
  }
  opt.dispose();
  model.dispose();
});

// --- clipping ------------------------------------------------------------------------------------

function jsNorm(grads: number[][], p: number): number {
  const all = grads.flat();
  if (p === Infinity) return Math.max(0, ...all.map(Math.abs));
  return Math.pow(all.reduce((s, x) => s + Math.pow(Math.abs(x), p), 0), 1 / p);
}

function makeParamsWithGrads(seed: number): { params: ts.Tensor[]; grads: number[][] } {
  const rnd = jsRandom(seed);
  const params = [
    ts.keep(ts.zeros([3, 4], { requiresGrad: true })),
    ts.keep(ts.zeros([5], { dtype: 'float64', requiresGrad: true })),
    ts.keep(ts.zeros([4, 3], { requiresGrad: true })), // its grad is a transposed (non-contiguous) view
    ts.keep(ts.zeros([6], { requiresGrad: true })), // no grad: skipped
    ts.keep(ts.zeros([9000], { requiresGrad: true })),
  ];
  const vals = (n: number) => Array.from({ length: n }, () => Math.fround(4 * rnd() - 2));
  const g0 = vals(12);
  const g1 = Array.from({ length: 5 }, () => 4 * rnd() - 2);
  const g2 = vals(12);
  const g4 = vals(9000);
  params[0].grad = ts.keep(ts.tensor(g0, { shape: [3, 4] }));
  params[1].grad = ts.keep(ts.tensor(Float64Array.from(g1), { dtype: 'float64' }));
  const base = ts.keep(ts.tensor(g2, { shape: [3, 4] }));
  params[2].grad = ts.keep(base.transpose());
  base.dispose(); // the view keeps the storage alive
  params[4].grad = ts.keep(ts.tensor(g4));
  const g2t = Array.from({ length: 12 }, (_, k) => g2[(k % 3) * 4 + Math.floor(k / 3)]); // row-major of the transpose
  return { params, grads: [g0, g1, g2t, g4] };
}

for (const normType of [2, 1, 3, Infinity]) {
  test(`gradNorm / clipGradNorm (norm ${normType}) match a JS computation; grads scaled by torch's coefficient`, () => {
    const { params, grads } = makeParamsWithGrads(SEED + normType);
    assert.ok(!params[2].grad!.isContiguous());
    const want = jsNorm(grads, normType);
    const got = gradNorm(params, normType);
    assert.ok(Math.abs(got - want) <= 1e-12 * want, `norm ${got} vs ${want}`);
    // maxNorm above the norm: nothing changes
    const total = clipGradNorm(params, want * 2, normType);
    assert.is(total, got);
    assert.equal(flat(params[0].grad!), grads[0]);
    // maxNorm below: every grad scaled by maxNorm / (norm + 1e-6)
    const maxNorm = want / 3;
    clipGradNorm(params, maxNorm, normType);
    const coef = maxNorm / (want + 1e-6);
    assert.is(clipCoefficient(got, maxNorm), maxNorm / (got + 1e-6));
    [0, 1, 2, 4].forEach((pi, k) => {
      const g = flat(params[pi].grad!);
      assert.ok(relError(g, grads[k].map((x) => x * coef)) < 1e-6, `parameter ${pi} scaled`);
    });
    const after = gradNorm(params, normType);
    assert.ok(Math.abs(after - maxNorm) < 1e-5 * maxNorm, `norm after clipping ${after} vs ${maxNorm}`);
    assert.is(params[3].grad, null);
    params.forEach((p) => p.dispose());
  });
}

test('clipping via step({ gradScale }) equals clipGradNorm then step (float64)', () => {
  const make = () => {
    const ps = [ts.keep(ts.randn([4, 5], { dtype: 'float64' })), ts.keep(ts.randn([5], { dtype: 'float64' }))];
    return ps;
  };
  ts.manualSeed(SEED);
  const a = make();
  const b = a.map((p) => ts.keep(ts.tensor(p.toTypedArray() as Float64Array, { dtype: 'float64', shape: p.shape })));
  const oa = new SGD(a, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  const ob = new SGD(b, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  for (let step = 0; step < 5; step++) {
    ts.scope(() => {
      const gs = a.map((p) => ts.randn(p.shape, { dtype: 'float64', std: 3 }));
      a.forEach((p, i) => (p.grad = gs[i].clone()));
      b.forEach((p, i) => (p.grad = gs[i].clone()));
      const n1 = clipGradNorm(a, 1.0);
      oa.step();
      const n2 = gradNorm(b);
      ob.step({ gradScale: clipCoefficient(n2, 1.0) });
      assert.is(n1, n2);
      oa.zeroGrad();
      ob.zeroGrad();
    });
  }
  a.forEach((p, i) => assert.ok(relError(p.toTypedArray(), b[i].toTypedArray()) < 1e-15));
  oa.dispose();
  ob.dispose();
  [...a, ...b].forEach((p) => p.dispose());
});

test('gradNorm of parameters without gradients is 0', () => {
  const p = ts.zeros([3]);
  assert.is(gradNorm([p]), 0);
  assert.is(clipGradNorm([p], 1), 0);
  p.dispose();
});

test.run();
