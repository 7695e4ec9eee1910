// Saving and resuming: stateDict + hyperState (through JSON) restore an optimizer that then
// continues bit-identically to one never interrupted; loadStateDict checks before it changes
// anything; non-contiguous gradients; memory stays flat over 500 steps and dispose frees state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { AdamW, clipGradNorm, Lion, Optimizer, OptimizerHyperState, SGD } from '../../lib/optim';
import { assertThrows, flat, SEED } from '../helpers/check';

type Make = (params: ts.Tensor[] | { params: ts.Tensor[]; lr?: number; weightDecay?: number }[]) => Optimizer;
const makers: [string, Make, Make][] = [
  // [name, the optimizer as first built, a differently configured one to load into]
  ['AdamW', (p) => new AdamW(p as never, { lr: 1e-2, betas: [0.85, 0.99], weightDecay: 0.1 }), (p) => new AdamW(p as never)],
  ['SGD', (p) => new SGD(p as never, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 }), (p) => new SGD(p as never, { lr: 1, momentum: 0.5 })],
  ['Lion', (p) => new Lion(p as never, { lr: 1e-3, betas: [0.9, 0.98], weightDecay: 0.3 }), (p) => new Lion(p as never)],
];

const SHAPES = [[6, 5], [5], [3, 2, 2]];

function groupsOf(ps: ts.Tensor[]) {
  return [{ params: [ps[0], ps[2]] }, { params: [ps[1]], weightDecay: 0, lr: 3e-3 }];
}

/** A schedule-like change of every group's own lr (restored by loadHyperState). */
function decayLr(o: Optimizer): void {
  for (const g of o.paramGroups) g.lr *= 0.9;
}

/** Gradients for step s, deterministic from the seed; parameter 1 has none on odd steps. */
function setGrads(ps: ts.Tensor[], s: number): void {
  ts.manualSeed(SEED * 7 + s);
  ps.forEach((p, i) => {
    if (i === 1 && s % 2 === 1) return;
    p.grad = ts.randn(p.shape, { dtype: p.dtype });
  });
}

for (const [name, make, makeOther] of makers) {
  for (const dtype of ['float32', 'float64'] as const) {
    test(`${name} (${dtype}): stateDict + hyperState round trip continues bit-identically`, () => {
      ts.manualSeed(SEED);
      const a = SHAPES.map((s) => ts.keep(ts.randn(s, { dtype })));
      const optA = make(groupsOf(a));
      for (let s = 0; s < 5; s++) ts.scope(() => { setGrads(a, s); decayLr(optA); optA.step(); optA.zeroGrad(); });

      // save: tensors as plain arrays (as a checkpoint file would), hyper-state through JSON
      const saved = [...optA.stateDict()].map(([k, t]) => [k, t.dtype, t.shape, flat(t)] as const);
      const hyper = JSON.parse(JSON.stringify(optA.hyperState())) as OptimizerHyperState;
      // parameters are numbered in group order: [a0, a2], [a1]; a1 missed two gradients
      assert.equal(hyper.steps, [5, 5, 3], 'per-parameter step counts');

      // restore into a fresh, differently configured optimizer on copies of the parameters
      const b = a.map((p) => ts.keep(ts.tensor(p.toTypedArray(), { dtype, shape: p.shape })));
      const optB = makeOther(groupsOf(b));
      const loaded = new Map(saved.map(([k, dt, shape, data]) => [k, ts.tensor(data, { dtype: dt, shape: [...shape] })]));
      optB.loadStateDict(loaded);
      loaded.forEach((t) => t.dispose()); // loadStateDict copied them
      optB.loadHyperState(hyper);
      assert.equal(optB.hyperState(), optA.hyperState());
      assert.equal([...optB.stateDict().keys()], [...optA.stateDict().keys()]);

      for (let s = 5; s < 10; s++) {
        ts.scope(() => {
          setGrads(a, s);
          setGrads(b, s);
          for (const o of [optA, optB]) { decayLr(o); o.step(); o.zeroGrad(); }
        });
      }
      a.forEach((p, i) => assert.equal(flat(b[i]), flat(p), `parameter ${i} bit-identical`));
      const sb = optB.stateDict();
      for (const [k, t] of optA.stateDict()) assert.equal(flat(sb.get(k)!), flat(t), `state ${k} bit-identical`);
      optA.dispose();
      optB.dispose();
      [...a, ...b].forEach((p) => p.dispose());
    });
  }
}

test('loadStateDict rejects bad keys and shapes and changes nothing when it does', () => {
  ts.scope(() => {
    const ps = [ts.keep(ts.randn([2, 3])), ts.keep(ts.randn([4]))];
    const opt = new AdamW(ps);
    ps.forEach((p) => (p.grad = ts.randn(p.shape)));
    opt.step();
    const before = [...opt.stateDict()].map(([k, t]) => [k, flat(t)]);
    const good = ts.zeros([2, 3]);
    const cases: [Record<string, ts.Tensor>, string[]][] = [
      [{ '0.exp_avg': good, exp_avg: good }, ["'exp_avg' is not of the form <paramIndex>.<name>"]],
      [{ '2.exp_avg': good }, ["'2.exp_avg': there are only 2 parameters"]],
      [{ '0.momentum_buffer': good }, ["AdamW keeps no state named 'momentum_buffer'", 'exp_avg, exp_avg_sq']],
      [{ '1.exp_avg': good }, ["'1.exp_avg': expected [4]", 'got [2, 3]']],
    ];
    for (const [sd, pats] of cases) assertThrows(() => opt.loadStateDict(sd), ['AdamW.loadStateDict', ...pats], pats[0]);
    assert.equal([...opt.stateDict()].map(([k, t]) => [k, flat(t)]), before);
    // a partial state dict replaces the state: parameters it omits start afresh
    opt.loadStateDict({ '0.exp_avg': good, '0.exp_avg_sq': good });
    assert.equal([...opt.stateDict().keys()], ['0.exp_avg', '0.exp_avg_sq']);
    opt.dispose();
    ps.forEach((p) => p.dispose());
  });
});

test('loadHyperState rejects state of another optimizer or shape of groups', () => {
  ts.scope(() => {
    const ps = [ts.keep(ts.randn([2])), ts.keep(ts.randn([3]))];
    const opt = new AdamW([{ params: [ps[0]] }, { params: [ps[1]] }]);
    const h = opt.hyperState();
    assertThrows(() => new Lion(ps).loadHyperState(h), ['Lion.loadHyperState', 'state is for AdamW'], 'other optimizer');
    assertThrows(() => new AdamW(ps).loadHyperState(h), ['has 2 param groups', 'this optimizer 1'], 'group count');
    assertThrows(() => opt.loadHyperState({ ...h, steps: [1] }), ['steps for 1 parameters', 'has 2'], 'steps length');
    assertThrows(() => opt.loadHyperState({ ...h, steps: [1, -1] }), ['step count of parameter 1', 'integer >= 0'], 'negative step');
    assertThrows(() => opt.loadHyperState({ ...h, groups: [{ ...h.groups[0], lr: -1 }, h.groups[1]] }), ['param group 0', 'lr must be a finite number >= 0'], 'bad lr');
    assertThrows(() => opt.loadHyperState({ ...h, groups: [{ ...h.groups[0], paramCount: 2 }, h.groups[1]] }), ['param group 0 has 2 parameters in the state, 1 here'], 'count');
    assert.equal(opt.hyperState(), h, 'unchanged after failures');
    opt.dispose();
    ps.forEach((p) => p.dispose());
  });
});

test('a non-contiguous gradient is used through a contiguous copy', () => {
  ts.scope(() => {
    const p1 = ts.keep(ts.randn([3, 4], { dtype: 'float64' }));
    const p2 = ts.keep(ts.tensor(p1.toTypedArray(), { dtype: 'float64', shape: [3, 4] }));
    const g = ts.randn([4, 3], { dtype: 'float64' });
    p1.grad = ts.keep(g.transpose());
    p2.grad = ts.keep(g.transpose().contiguous());
    const o1 = new AdamW([p1]);
    const o2 = new AdamW([p2]);
    o1.step();
    o2.step();
    assert.equal(flat(p1), flat(p2));
    o1.dispose();
    o2.dispose();
    p1.dispose();
    p2.dispose();
  });
});

for (const [name, make] of makers) {
  test(`${name}: 500 steps (with clipping, inside scopes) keep hostBytes flat; dispose frees the state`, () => {
    const start = ts.memoryStats().hostBytes;
    const ps = SHAPES.map((s) => ts.keep(ts.randn(s)));
    const opt = make(ps);
    const step = () =>
      ts.scope(() => {
        for (const p of ps) p.grad = ts.randn(p.shape);
        clipGradNorm(ps, 1.0);
        opt.step();
        opt.zeroGrad();
      });
    step();
    const after1 = ts.memoryStats().hostBytes;
    for (let i = 0; i < 500; i++) step();
    assert.is(ts.memoryStats().hostBytes, after1, 'no growth over 500 steps');
    opt.dispose();
    ps.forEach((p) => p.dispose());
    assert.is(ts.memoryStats().hostBytes, start, 'everything freed');
  });
}

test.run();
