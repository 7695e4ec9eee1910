// The fused optimizer kernels (native/cpu/optim.cpp), driven through AdamW / SGD / Lion, against
// plain-JS float64 references of the same updates (test/helpers/optim_reference.ts) for 12
// steps with weight decay, in float32 and float64. The parameter sizes include one past the
// kernels' parallel grain (several threads) with an odd length (vector-loop remainders), a
// parameter that misses its gradient on some steps (skipped, its own step count held back) and
// a gradScale step. Also sum_squares, which the gradient norm is built on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { runKernel } from '../../lib/backend';
import { AdamW, Lion, SGD, Optimizer } from '../../lib/optim';
import { jsRandom, relError, SEED } from '../helpers/check';
import { adamwRef, lionRef, sgdRef, sumSquaresRef } from '../helpers/optim_reference';

type FloatDType = 'float32' | 'float64';
const DTYPES: FloatDType[] = ['float32', 'float64'];
const TOL: Record<FloatDType, number> = { float32: 1e-6, float64: 1e-12 };
const SHAPES = [[7, 13], [5], [50021]];
const STEPS = 12;

function rounder(dtype: FloatDType): (x: number) => number {
  return dtype === 'float32' ? Math.fround : (x) => x;
}

function typed(dtype: FloatDType, xs: ArrayLike<number>): Float32Array | Float64Array {
  return dtype === 'float32' ? Float32Array.from(xs) : Float64Array.from(xs);
}

/** Parameters with values in [-1, 1) exactly representable in dtype, and their float64 copies. */
function makeParams(dtype: FloatDType, seed: number): { params: ts.Tensor[]; ref: Float64Array[]; rnd: () => number } {
  const rnd = jsRandom(seed);
  const r = rounder(dtype);
  const ref = SHAPES.map((s) => Float64Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => r(2 * rnd() - 1)));
  const params = ref.map((a, i) => ts.keep(ts.tensor(typed(dtype, a), { dtype, shape: SHAPES[i] })));
  return { params, ref, rnd };
}

/** Step `step`'s gradient for parameter i (null when it has none), representable in dtype. */
function makeGrad(dtype: FloatDType, rnd: () => number, n: number, step: number, i: number): Float64Array | null {
  if (i === 1 && step % 4 === 2) return null;
  const r = rounder(dtype);
  const scale = 1 + (step % 3);
  return Float64Array.from({ length: n }, () => r(scale * (2 * rnd() - 1)));
}

interface RefState {
  steps: number[];
  st: Float64Array[][];
}

/** Run STEPS steps on the optimizer and the reference; returns the worst relative error. */
function runBoth(
  dtype: FloatDType,
  seed: number,
  make: (params: ts.Tensor[]) => Optimizer,
  nState: number,
  refStep: (p: Float64Array, g: Float64Array, state: Float64Array[], step: number, gradScale: number) => void,
): number {
  const { params, ref, rnd } = makeParams(dtype, seed);
  const opt = make(params);
  const rs: RefState = { steps: ref.map(() => 0), st: ref.map((a) => Array.from({ length: nState }, () => new Float64Array(a.length))) };
  for (let step = 0; step < STEPS; step++) {
    const gradScale = step === 5 ? 0.37 : 1;
    ts.scope(() => {
      params.forEach((p, i) => {
        const g = makeGrad(dtype, rnd, ref[i].length, step, i);
        if (!g) return;
        p.grad = ts.tensor(typed(dtype, g), { dtype, shape: p.shape });
        rs.steps[i]++;
        refStep(ref[i], g, rs.st[i], rs.steps[i], gradScale);
      });
      opt.step({ gradScale });
      opt.zeroGrad();
    });
  }
  params.forEach((_, i) => assert.is(opt.stepCount(i), rs.steps[i], `step count of parameter ${i}`));
  assert.ok(rs.steps[1] < STEPS, 'parameter 1 skipped some steps');
  let worst = 0;
  params.forEach((p, i) => (worst = Math.max(worst, relError(p.toTypedArray(), ref[i]))));
  opt.dispose();
  params.forEach((p) => p.dispose());
  return worst;
}

for (const dtype of DTYPES) {
  test(`AdamW kernel matches the float64 reference over ${STEPS} steps with weight decay (${dtype})`, () => {
    const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.1 };
    const err = runBoth(dtype, SEED + 1, (ps) => new AdamW(ps, { lr: o.lr, betas: [o.beta1, o.beta2], eps: o.eps, weightDecay: o.wd }), 2,
      (p, g, [m, v], step, gradScale) => adamwRef(p, g, m, v, step, { ...o, gradScale }));
    assert.ok(err < TOL[dtype], `AdamW ${dtype}: relative error ${err.toExponential(2)} (TEST_SEED=${SEED})`);
  });

  for (const [label, momentum, dampening, nesterov] of [
    ['plain', 0, 0, false],
    ['momentum + dampening', 0.9, 0.1, false],
    ['nesterov', 0.9, 0, true],
  ] as const) {
    test(`SGD kernel (${label}) matches the float64 reference over ${STEPS} steps with weight decay (${dtype})`, () => {
      const o = { lr: 0.05, momentum, dampening, wd: 0.01, nesterov };
      const err = runBoth(dtype, SEED + 2, (ps) => new SGD(ps, { lr: o.lr, momentum, dampening, weightDecay: o.wd, nesterov }), 1,
        (p, g, [buf], step, gradScale) => sgdRef(p, g, momentum ? buf : null, step === 1, { ...o, gradScale }));
      assert.ok(err < TOL[dtype], `SGD ${label} ${dtype}: relative error ${err.toExponential(2)} (TEST_SEED=${SEED})`);
    });
  }

  test(`Lion kernel matches the float64 reference over ${STEPS} steps with weight decay (${dtype})`, () => {
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.99, wd: 0.1 };
    // An element whose interpolation b1*m + (1-b1)*g is within rounding of 0 may take either
    // sign in float32; the reference marks such elements and leaves them out of the comparison.
    const { params, ref, rnd } = makeParams(dtype, SEED + 3);
    const opt = new Lion(params, { lr: o.lr, betas: [o.beta1, o.beta2], weightDecay: o.wd });
    const m = ref.map((a) => new Float64Array(a.length));
    const ambiguous = ref.map(() => new Set<number>());
    for (let step = 0; step < STEPS; step++) {
      ts.scope(() => {
        params.forEach((p, i) => {
          const g = makeGrad(dtype, rnd, ref[i].length, step, i);
          if (!g) return;
          for (let k = 0; k < g.length; k++) {
            const u = o.beta1 * m[i][k] + (1 - o.beta1) * g[k];
            if (Math.abs(u) < 1e-5 * (Math.abs(o.beta1 * m[i][k]) + Math.abs((1 - o.beta1) * g[k]))) ambiguous[i].add(k);
          }
          p.grad = ts.tensor(typed(dtype, g), { dtype, shape: p.shape });
          lionRef(ref[i], g, m[i], o);
        });
        opt.step();
        opt.zeroGrad();
      });
    }
    params.forEach((p, i) => {
      const got = Array.from(p.toTypedArray());
      const want = Array.from(ref[i]);
      for (const k of ambiguous[i]) got[k] = want[k];
      const err = relError(got, want);
      assert.ok(err < TOL[dtype], `Lion ${dtype} parameter ${i}: relative error ${err.toExponential(2)} (TEST_SEED=${SEED})`);
      assert.ok(ambiguous[i].size < 10, `few ambiguous elements (${ambiguous[i].size})`);
    });
    opt.dispose();
    params.forEach((p) => p.dispose());
  });

  test(`the kernels called directly update in place and leave the gradient untouched (${dtype})`, () => {
    ts.scope(() => {
      const p = ts.tensor([0.5, -1, 2], { dtype });
      const g = ts.tensor([0.1, 0.2, -0.3], { dtype });
      const m = ts.zeros([3], { dtype });
      const v = ts.zeros([3], { dtype });
      runKernel('adamw_step', [p, g, m, v], [0.1, 0.9, 0.999, 1e-8, 0, 1, 1]);
      // first AdamW step without decay: p -= lr * sign(g) (up to eps)
      const want = [0.5 - 0.1, -1 - 0.1, 2 + 0.1];
      assert.ok(relError(p.toTypedArray(), want) < (dtype === 'float32' ? 1e-6 : 1e-7));
      assert.equal(Array.from(g.toTypedArray()), Array.from(ts.tensor([0.1, 0.2, -0.3], { dtype }).toTypedArray()));
      const expM = [0.1, 0.2, -0.3].map((x) => 0.1 * x);
      assert.ok(relError(m.toTypedArray(), expM) < 1e-7);
    });
  });

  test(`sum_squares accumulates in double, any size, any thread count (${dtype})`, () => {
    const rnd = jsRandom(SEED + 4);
    const r = rounder(dtype);
    for (const n of [0, 1, 7, 4096, 4097, 100003]) {
      ts.scope(() => {
        const xs = Float64Array.from({ length: n }, () => r(4 * rnd() - 2));
        const x = ts.tensor(typed(dtype, xs), { dtype, shape: [n] });
        const out64 = ts.zeros([], { dtype: 'float64' });
        runKernel('sum_squares', [x, out64]);
        const want = sumSquaresRef(xs);
        assert.ok(Math.abs(out64.item() - want) <= 1e-13 * Math.max(1, want), `n=${n}: ${out64.item()} vs ${want}`);
        const outSame = ts.zeros([], { dtype });
        runKernel('sum_squares', [x, outSame]);
        assert.is(outSame.item(), r(out64.item()), `n=${n}: same-dtype out is the rounded double sum`);
        const threads = ts.cpuInfo().threads;
        ts.setNumThreads(1);
        const one = ts.zeros([], { dtype: 'float64' });
        try {
          runKernel('sum_squares', [x, one]);
        } finally {
          ts.setNumThreads(threads);
        }
        assert.is(one.item(), out64.item(), `n=${n}: same bits with one thread`);
      });
    }
  });
}

test('sgd_step without momentum takes (param, grad) only; with momentum it needs the buffer', () => {
  ts.scope(() => {
    const p = ts.tensor([1, 2], { dtype: 'float64' });
    const g = ts.tensor([0.5, -0.5], { dtype: 'float64' });
    runKernel('sgd_step', [p, g], [0.1, 0, 0, 0, 0, 0, 1]);
    assert.equal(Array.from(p.toTypedArray()), [1 - 0.05, 2 + 0.05]);
    assert.throws(() => runKernel('sgd_step', [p, g], [0.1, 0.9, 0, 0, 0, 1, 1]), /sgd_step: with momentum 0.9 expected 3 tensors/);
  });
});

test.run();
