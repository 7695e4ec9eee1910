// CUDA parity of the entropic-OT kernels (native/cuda/sinkhorn.cu) against their CPU twins
// (native/cpu/sinkhorn.cpp), through the public TS functions (ts.losses.sinkhorn,
// sinkhornDivergence, klot) with the inputs moved to 'cuda': values, potentials, transport cost,
// objective, mass, eps0, iteration counts, plans and gradients (w.r.t. C, x, y, K), float32 and
// float64, on fresh random inputs: cost matrices and point clouds (sqeuclidean, halfSquared,
// cosine, d = 1 and d > 32), batched problems with shared and per-problem marginals, unbalanced
// rho, eps-scaling (default and given eps0), fixed iteration counts (tol = 0) and tolerance
// stopping, odd sizes and non-contiguous inputs (transposed C, sliced clouds).
//
// The GPU sums its log-sum-exps in another order (online per-thread max / sum in T, butterflies
// in double), computes point-cloud dot products in another order and uses CUDA's exp, so results
// agree to a tolerance (REL below: max |gpu - cpu| / max |cpu| per output), not bit for bit.
// Iteration counts are compared exactly when tol = 0 or maxIter is reached first; with tolerance
// stopping both must converge and may differ by at most one check (checkEvery iterations), in
// case the marginal error lands within rounding of tol at a check.
//
// Without a usable CUDA device the file prints why and registers no tests (set
// TESSERA_EXPECT_CUDA=1 to make that a failure, as test/cuda/parity.test.ts does).
//
// Needs (outside this file): the op_table rows for cuda::sinkhorn etc., and lib/losses/ot.ts
// accepting CUDA tensors (its checkCpu calls, and its scratch tensors allocated on the inputs'
// device); the cosine cost also needs ts.normalize on CUDA.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { klot, sinkhorn, sinkhornDivergence, SinkhornOptions, SinkhornResult } from '../../lib/losses/ot';
import { seedFor } from '../helpers/check';

type FloatDType = 'float32' | 'float64';
const FLOATS: FloatDType[] = ['float32', 'float64'];
// Max relative error (to the largest |cpu| element) per dtype: potentials / values / gradients,
// and plans (P = a b exp((f + g - C) / eps) magnifies an error in f, g by 1 / eps).
const REL: Record<FloatDType, number> = { float32: 2e-3, float64: 1e-8 };
const REL_PLAN: Record<FloatDType, number> = { float32: 2e-2, float64: 1e-7 };

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

function maxRel(gpu: ArrayLike<number>, cpu: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < cpu.length; i++) {
    const d = Math.abs(gpu[i] - cpu[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(cpu[i]));
  }
  return num / Math.max(den, 1e-30);
}

function close(gpu: Tensor, cpu: Tensor, tol: number, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(cpu.device, 'cpu', `${what}: reference device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
  const g = Array.from(gpu.toTypedArray());
  const c = Array.from(cpu.toTypedArray());
  for (const v of g) if (!Number.isFinite(v)) assert.unreachable(`${what}: non-finite value ${v} on cuda`);
  const r = maxRel(g, c);
  if (!(r <= tol)) assert.unreachable(`${what}: max relative error ${r.toExponential(3)} > ${tol} (cuda ${g.slice(0, 4)} ... cpu ${c.slice(0, 4)} ...)`);
}

function closeNums(gpu: number[], cpu: number[], tol: number, what: string): void {
  assert.is(gpu.length, cpu.length, `${what}: length`);
  const r = maxRel(gpu, cpu);
  if (!(r <= tol)) assert.unreachable(`${what}: max relative error ${r.toExponential(3)} > ${tol} (cuda ${gpu} cpu ${cpu})`);
}

/** Random positive weights summing to 1 (in float64, then rounded to dtype), shape [len] or [B, len]. */
function weightsOf(shape: number[], dtype: FloatDType): Tensor {
  const len = shape[shape.length - 1];
  const rows = shape.length === 2 ? shape[0] : 1;
  const u = ts.rand([rows * len], { dtype: 'float64', low: 0.5, high: 1.5 }).toTypedArray();
  const out = new Float64Array(rows * len);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < len; i++) s += u[r * len + i];
    for (let i = 0; i < len; i++) out[r * len + i] = u[r * len + i] / s;
  }
  return ts.tensor(dtype === 'float64' ? out : Float32Array.from(out), { dtype, shape });
}

const onDev = (t: Tensor | undefined, dev: 'cpu' | 'cuda'): Tensor | undefined => (t === undefined ? undefined : dev === 'cpu' ? t : t.to('cuda'));
const optsOn = (o: SinkhornOptions, dev: 'cpu' | 'cuda'): SinkhornOptions => ({ ...o, a: onDev(o.a, dev), b: onDev(o.b, dev) });

/** Every output of a sinkhorn result (and its plan) against the CPU's. */
function compareResults(gpu: SinkhornResult, cpu: SinkhornResult, dtype: FloatDType, opts: SinkhornOptions, what: string): void {
  const tol = REL[dtype];
  close(gpu.value, cpu.value, tol, `${what}: value`);
  close(gpu.f, cpu.f, tol, `${what}: f`);
  close(gpu.g, cpu.g, tol, `${what}: g`);
  close(gpu.transportCost, cpu.transportCost, tol, `${what}: transportCost`);
  close(gpu.objective, cpu.objective, tol, `${what}: objective`);
  closeNums(gpu.massPerProblem, cpu.massPerProblem, tol, `${what}: mass`);
  // eps0 comes from min / max (exact) of the same data; the centring mean may differ in the last bit.
  closeNums([gpu.eps0], [cpu.eps0], dtype === 'float64' ? 1e-12 : 1e-5, `${what}: eps0`);
  const tolStop = (opts.tol ?? 1) > 0;
  if (!tolStop || !cpu.converged) {
    // Fixed iteration counts (tol = 0), or maxIter reached: the same schedule, step for step.
    assert.equal(gpu.iterationsPerProblem, cpu.iterationsPerProblem, `${what}: iterations (cuda ${gpu.iterationsPerProblem}, cpu ${cpu.iterationsPerProblem})`);
    assert.is(gpu.converged, cpu.converged, `${what}: converged`);
    // The marginal error is a difference of nearly equal numbers: compare to the scale of the marginals.
    for (let b = 0; b < cpu.marginalErrorPerProblem.length; b++)
      assert.ok(Math.abs(gpu.marginalErrorPerProblem[b] - cpu.marginalErrorPerProblem[b]) <= (dtype === 'float64' ? 1e-9 : 2e-3),
        `${what}: marginal error of problem ${b}: cuda ${gpu.marginalErrorPerProblem[b]}, cpu ${cpu.marginalErrorPerProblem[b]}`);
  } else {
    const every = opts.checkEvery ?? 10;
    assert.ok(gpu.converged, `${what}: cuda did not converge (cpu did in ${cpu.iterations})`);
    for (let b = 0; b < cpu.iterationsPerProblem.length; b++)
      assert.ok(Math.abs(gpu.iterationsPerProblem[b] - cpu.iterationsPerProblem[b]) <= every,
        `${what}: iterations of problem ${b}: cuda ${gpu.iterationsPerProblem[b]}, cpu ${cpu.iterationsPerProblem[b]}`);
    for (const e of gpu.marginalErrorPerProblem) assert.ok(e < (opts.tol as number), `${what}: cuda marginal error ${e} >= tol`);
  }
  if (cpu.plan) {
    assert.ok(gpu.plan !== undefined, `${what}: cuda returned no plan`);
    close(gpu.plan!, cpu.plan!, REL_PLAN[dtype], `${what}: plan`);
  }
}

function leakFree(what: string, body: () => void): void {
  const before = ts.memoryStats();
  ts.scope(body);
  const after = ts.memoryStats();
  assert.is(after.deviceBlocks, before.deviceBlocks, `${what}: device blocks leaked`);
  assert.is(after.deviceBytes, before.deviceBytes, `${what}: device bytes leaked`);
}

/** A leaf on `dev` (with requiresGrad) holding the CPU tensor's values. */
function leaf(x: Tensor, dev: 'cpu' | 'cuda'): Tensor {
  const t = dev === 'cpu' ? x.clone() : x.to('cuda');
  t.requiresGrad = true;
  return t;
}

if (!usable) {
  console.log(`  cuda sinkhorn: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda sinkhorn');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda sinkhorn on ${info.deviceNames.join(', ')}`);

  // ---------------------------------------------------------------------------------------------
  const mat = suite('cuda: sinkhorn on cost matrices vs CPU');

  interface MatCase {
    B?: number; // batched [B, n, m] when set
    n: number;
    m: number;
    eps: number;
    opts: SinkhornOptions;
    marg?: 'uniform' | 'shared' | 'perBatch';
    layout?: 'contiguous' | 'transposed';
  }
  const MAT_CASES: MatCase[] = [
    { n: 1, m: 1, eps: 0.1, opts: { maxIter: 5, tol: 0 } },
    { n: 1, m: 7, eps: 0.1, opts: { maxIter: 20, tol: 0 } },
    { n: 9, m: 1, eps: 0.1, opts: { maxIter: 20, tol: 0 } },
    { n: 7, m: 13, eps: 0.1, opts: { maxIter: 50, tol: 0 }, marg: 'shared' },
    { n: 33, m: 65, eps: 0.2, opts: { maxIter: 0, tol: 0 } },
    { n: 100, m: 37, eps: 0.1, opts: { maxIter: 500, checkEvery: 7 }, marg: 'shared' },
    { n: 129, m: 257, eps: 0.1, opts: { maxIter: 200, tol: 0, returnPlan: true }, layout: 'transposed' },
    { n: 3, m: 5000, eps: 0.2, opts: { maxIter: 40, tol: 0 } }, // few rows: split row pass
    { n: 5000, m: 3, eps: 0.2, opts: { maxIter: 40, tol: 0 } }, // few columns: split column pass
    { n: 1000, m: 1200, eps: 0.05, opts: { maxIter: 1000, checkEvery: 10 } },
    { B: 3, n: 17, m: 31, eps: 0.1, opts: { maxIter: 100, tol: 0, returnPlan: true }, marg: 'perBatch' },
    { B: 4, n: 40, m: 24, eps: 0.1, opts: { maxIter: 400 }, marg: 'shared' },
    { B: 2, n: 50, m: 60, eps: 0.05, opts: { epsScaling: true, maxIter: 300 } }, // per-problem eps0 (cost range)
    { B: 2, n: 50, m: 60, eps: 0.05, opts: { epsScaling: { eps0: 2, factor: 0.7, itersPerStage: 2 }, maxIter: 30, tol: 0 } },
    { n: 64, m: 48, eps: 0.1, opts: { rho: 1, maxIter: 300 }, marg: 'shared' },
    { B: 3, n: 20, m: 25, eps: 0.1, opts: { rho: 0.5, maxIter: 60, tol: 0, returnPlan: true }, marg: 'perBatch' },
  ];

  mat('values, potentials, stats, iteration counts and plans match the CPU', () => {
    seedFor('cuda-sinkhorn-matrix');
    for (const dtype of FLOATS)
      for (const c of MAT_CASES) {
        const what = `${dtype} ${JSON.stringify(c)}`;
        leakFree(what, () => {
          const shape = c.B !== undefined ? [c.B, c.n, c.m] : [c.n, c.m];
          const C = c.layout === 'transposed'
            ? ts.rand(c.B !== undefined ? [c.B, c.m, c.n] : [c.m, c.n], { dtype }).transpose(-1, -2)
            : ts.rand(shape, { dtype });
          const unbalancedScale = c.opts.rho !== undefined ? 1.7 : 1; // unbalanced: any total mass
          const opts: SinkhornOptions = { ...c.opts, eps: c.eps };
          if (c.marg === 'shared') {
            opts.a = weightsOf([c.n], dtype).mul(unbalancedScale);
            opts.b = weightsOf([c.m], dtype);
          } else if (c.marg === 'perBatch') {
            opts.a = weightsOf([c.B!, c.n], dtype).mul(unbalancedScale);
            opts.b = weightsOf([c.B!, c.m], dtype);
          }
          const cpu = sinkhorn(C, optsOn(opts, 'cpu'));
          const gpu = sinkhorn(C.to('cuda'), optsOn(opts, 'cuda'));
          compareResults(gpu, cpu, dtype, opts, what);
        });
      }
  });

  mat('gradient w.r.t. C (the plan, times the upstream gradient) matches the CPU', () => {
    seedFor('cuda-sinkhorn-matrix-grad');
    for (const dtype of FLOATS)
      for (const c of [
        { shape: [23, 41], opts: { maxIter: 200 } as SinkhornOptions },
        { shape: [3, 16, 9], opts: { maxIter: 100, tol: 0 } as SinkhornOptions },
        { shape: [30, 20], opts: { rho: 2, maxIter: 150 } as SinkhornOptions },
      ]) {
        const what = `${dtype} ${JSON.stringify(c)}`;
        leakFree(what, () => {
          const C = ts.rand(c.shape, { dtype });
          const up = ts.randn(c.shape.length === 3 ? [c.shape[0]] : [], { dtype });
          const run = (dev: 'cpu' | 'cuda') => {
            const Cl = leaf(C, dev);
            const r = sinkhorn(Cl, { ...c.opts, eps: 0.1 });
            r.value.backward(dev === 'cpu' ? up : up.to('cuda'));
            return { r, grad: Cl.grad! };
          };
          const cpu = run('cpu');
          const gpu = run('cuda');
          close(gpu.r.value, cpu.r.value, REL[dtype], `${what}: value`);
          close(gpu.grad, cpu.grad, REL_PLAN[dtype], `${what}: dC`);
        });
      }
  });

  // ---------------------------------------------------------------------------------------------
  const pts = suite('cuda: sinkhorn on point clouds vs CPU');

  interface PtsCase {
    B?: number;
    n: number;
    m: number;
    d: number;
    opts: SinkhornOptions;
    eps: number;
    marg?: 'shared' | 'perBatch';
    layout?: 'contiguous' | 'sliced';
  }
  const PTS_CASES: PtsCase[] = [
    { n: 1, m: 1, d: 1, eps: 0.1, opts: { maxIter: 5, tol: 0 } },
    { n: 7, m: 11, d: 1, eps: 0.1, opts: { maxIter: 60, tol: 0 } },
    { n: 33, m: 65, d: 3, eps: 0.1, opts: { maxIter: 100, tol: 0, returnPlan: true } },
    { n: 65, m: 31, d: 2, eps: 0.05, opts: { maxIter: 500, halfSquared: true }, marg: 'shared' },
    { n: 100, m: 120, d: 17, eps: 0.5, opts: { maxIter: 300, checkEvery: 5 }, layout: 'sliced' },
    { n: 40, m: 70, d: 70, eps: 2, opts: { maxIter: 80, tol: 0, returnPlan: true } }, // d > 32: several coordinate chunks
    { n: 2, m: 3000, d: 3, eps: 0.1, opts: { maxIter: 30, tol: 0 } },                // split row pass
    { n: 3000, m: 2, d: 3, eps: 0.1, opts: { maxIter: 30, tol: 0 } },                // split column pass
    { n: 2000, m: 1500, d: 3, eps: 0.05, opts: { maxIter: 1000 } },
    { n: 50, m: 60, d: 8, eps: 0.1, opts: { cost: 'cosine', maxIter: 200 } },
    { B: 3, n: 19, m: 23, d: 4, eps: 0.1, opts: { maxIter: 300, returnPlan: true }, marg: 'perBatch' },
    { B: 2, n: 40, m: 40, d: 2, eps: 0.02, opts: { epsScaling: true, maxIter: 500 } },
    { B: 2, n: 30, m: 45, d: 5, eps: 0.05, opts: { epsScaling: { factor: 0.6, itersPerStage: 4 }, maxIter: 40, tol: 0, cost: 'cosine' } },
    { n: 50, m: 40, d: 3, eps: 0.1, opts: { rho: 1, maxIter: 300 }, marg: 'shared' },
  ];

  pts('values, potentials, stats, iteration counts and plans match the CPU (sqeuclidean, half, cosine)', () => {
    seedFor('cuda-sinkhorn-points');
    for (const dtype of FLOATS)
      for (const c of PTS_CASES) {
        const what = `${dtype} ${JSON.stringify(c)}`;
        leakFree(what, () => {
          const lead = c.B !== undefined ? [c.B] : [];
          const mk = (len: number): Tensor =>
            c.layout === 'sliced'
              ? ts.randn([...lead, len, c.d + 3], { dtype }).slice(-1, 1, c.d + 1) // non-contiguous rows
              : ts.randn([...lead, len, c.d], { dtype });
          const x = mk(c.n);
          const y = mk(c.m).mul(0.8).add(0.3);
          const opts: SinkhornOptions = { ...c.opts, eps: c.eps };
          const scaleA = c.opts.rho !== undefined ? 0.6 : 1;
          if (c.marg === 'shared') {
            opts.a = weightsOf([c.n], dtype).mul(scaleA);
            opts.b = weightsOf([c.m], dtype);
          } else if (c.marg === 'perBatch') {
            opts.a = weightsOf([c.B!, c.n], dtype);
            opts.b = weightsOf([c.B!, c.m], dtype);
          }
          const cpu = sinkhorn(x, y, optsOn(opts, 'cpu'));
          const gpu = sinkhorn(x.to('cuda'), y.to('cuda'), optsOn(opts, 'cuda'));
          compareResults(gpu, cpu, dtype, opts, what);
        });
      }
  });

  pts('online cost equals the given-cost matrix path on the GPU (sqeuclidean)', () => {
    seedFor('cuda-sinkhorn-online-vs-matrix');
    leakFree('online vs matrix', () => {
      const n = 37;
      const m = 29;
      const d = 3;
      const x = ts.randn([n, d], { dtype: 'float64' }).to('cuda');
      const y = ts.randn([m, d], { dtype: 'float64' }).to('cuda');
      const xv = x.toTypedArray();
      const yv = y.toTypedArray();
      const Cv = new Float64Array(n * m);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += (xv[i * d + k] - yv[j * d + k]) ** 2;
          Cv[i * m + j] = s;
        }
      const C = ts.tensor(Cv, { dtype: 'float64', shape: [n, m] }).to('cuda');
      const o = { eps: 0.1, maxIter: 200, tol: 0 };
      const r1 = sinkhorn(x, y, o);
      const r2 = sinkhorn(C, o);
      const tol = 1e-9;
      closeNums(Array.from(r1.f.toTypedArray()), Array.from(r2.f.toTypedArray()), tol, 'f');
      closeNums(Array.from(r1.g.toTypedArray()), Array.from(r2.g.toTypedArray()), tol, 'g');
      closeNums([r1.value.item()], [r2.value.item()], tol, 'value');
    });
  });

  pts('gradients w.r.t. x and y (sqeuclidean, half, cosine; batched; d > 32) match the CPU', () => {
    seedFor('cuda-sinkhorn-points-grad');
    const cases: { B?: number; n: number; m: number; d: number; opts: SinkhornOptions }[] = [
      { n: 21, m: 34, d: 3, opts: { maxIter: 300 } },
      { n: 1, m: 5, d: 1, opts: { maxIter: 50, tol: 0 } },
      { n: 40, m: 33, d: 2, opts: { maxIter: 300, halfSquared: true } },
      { n: 30, m: 50, d: 40, opts: { maxIter: 100, tol: 0, eps: 5 } },
      { n: 25, m: 25, d: 6, opts: { maxIter: 200, cost: 'cosine' } },
      { B: 3, n: 17, m: 70, d: 4, opts: { maxIter: 200 } },
      { n: 45, m: 35, d: 3, opts: { maxIter: 200, rho: 1 } },
    ];
    for (const dtype of FLOATS)
      for (const c of cases) {
        const what = `${dtype} ${JSON.stringify(c)}`;
        leakFree(what, () => {
          const lead = c.B !== undefined ? [c.B] : [];
          const x = ts.randn([...lead, c.n, c.d], { dtype });
          const y = ts.randn([...lead, c.m, c.d], { dtype }).add(0.5);
          const up = ts.randn(lead, { dtype });
          const run = (dev: 'cpu' | 'cuda') => {
            const xl = leaf(x, dev);
            const yl = leaf(y, dev);
            const r = sinkhorn(xl, yl, { eps: 0.1, ...c.opts });
            r.value.backward(dev === 'cpu' ? up : up.to('cuda'));
            return { v: r.value, dx: xl.grad!, dy: yl.grad! };
          };
          const cpu = run('cpu');
          const gpu = run('cuda');
          close(gpu.v, cpu.v, REL[dtype], `${what}: value`);
          close(gpu.dx, cpu.dx, REL_PLAN[dtype], `${what}: dx`);
          close(gpu.dy, cpu.dy, REL_PLAN[dtype], `${what}: dy`);
        });
      }
  });

  pts('only the requested gradient is computed (x requires grad, y does not)', () => {
    seedFor('cuda-sinkhorn-one-grad');
    for (const dtype of FLOATS)
      leakFree(dtype, () => {
        const x = ts.randn([20, 3], { dtype });
        const y = ts.randn([24, 3], { dtype });
        const run = (dev: 'cpu' | 'cuda') => {
          const xl = leaf(x, dev);
          const yd = dev === 'cpu' ? y : y.to('cuda');
          sinkhorn(xl, yd, { eps: 0.1, maxIter: 100, tol: 0 }).value.backward();
          return xl.grad!;
        };
        close(run('cuda'), run('cpu'), REL_PLAN[dtype], `${dtype}: dx`);
      });
  });

  // ---------------------------------------------------------------------------------------------
  const div = suite('cuda: sinkhornDivergence vs CPU');

  div('values and gradients match the CPU (unbatched, batched, weighted)', () => {
    seedFor('cuda-sinkhorn-divergence');
    for (const dtype of FLOATS)
      for (const c of [
        { lead: [] as number[], n: 30, m: 26, d: 2, weighted: false },
        { lead: [2], n: 15, m: 40, d: 3, weighted: true },
        { lead: [], n: 64, m: 64, d: 5, weighted: false, epsScaling: true },
      ]) {
        const what = `${dtype} ${JSON.stringify(c)}`;
        leakFree(what, () => {
          const x = ts.randn([...c.lead, c.n, c.d], { dtype });
          const y = ts.randn([...c.lead, c.m, c.d], { dtype }).mul(1.3);
          const a = c.weighted ? weightsOf([c.n], dtype) : undefined;
          const b = c.weighted ? weightsOf([c.m], dtype) : undefined;
          const up = ts.randn(c.lead, { dtype });
          const run = (dev: 'cpu' | 'cuda') => {
            const xl = leaf(x, dev);
            const yl = leaf(y, dev);
            const v = sinkhornDivergence(xl, yl, { eps: 0.1, maxIter: 400, a: onDev(a, dev), b: onDev(b, dev), epsScaling: c.epsScaling });
            v.backward(dev === 'cpu' ? up : up.to('cuda'));
            return { v, dx: xl.grad!, dy: yl.grad! };
          };
          const cpu = run('cpu');
          const gpu = run('cuda');
          close(gpu.v, cpu.v, REL[dtype] * 10, `${what}: divergence`); // a difference of three OT values
          close(gpu.dx, cpu.dx, REL_PLAN[dtype], `${what}: dx`);
          close(gpu.dy, cpu.dy, REL_PLAN[dtype], `${what}: dy`);
        });
      }
  });

  // ---------------------------------------------------------------------------------------------
  const kl = suite('cuda: klot vs CPU');

  kl('value and gradient w.r.t. K match the CPU (odd sizes, batched, marginals)', () => {
    seedFor('cuda-klot');
    for (const dtype of FLOATS)
      for (const c of [
        { shape: [1, 1], epsStar: 0.05, eps: 0.1 },
        { shape: [13, 29], epsStar: 0.02, eps: 0.1 },
        { shape: [64, 48], epsStar: 0.05, eps: 0.2, weighted: true },
        { shape: [3, 20, 33], epsStar: 0.05, eps: 0.1 },
        { shape: [2, 300, 7], epsStar: 0.05, eps: 0.1, epsScaling: false },
      ]) {
        const what = `${dtype} ${JSON.stringify(c)}`;
        leakFree(what, () => {
          const Ks = ts.rand(c.shape, { dtype });
          const K = ts.rand(c.shape, { dtype });
          const [n, m] = c.shape.slice(-2);
          const a = c.weighted ? weightsOf([n], dtype) : undefined;
          const b = c.weighted ? weightsOf([m], dtype) : undefined;
          const up = ts.randn(c.shape.length === 3 ? [c.shape[0]] : [], { dtype });
          const run = (dev: 'cpu' | 'cuda') => {
            const Kl = leaf(K, dev);
            const v = klot(dev === 'cpu' ? Ks : Ks.to('cuda'), Kl, {
              epsStar: c.epsStar, eps: c.eps, a: onDev(a, dev), b: onDev(b, dev), maxIter: 300,
              epsScaling: c.epsScaling,
            });
            v.backward(dev === 'cpu' ? up : up.to('cuda'));
            return { v, gK: Kl.grad! };
          };
          const cpu = run('cpu');
          const gpu = run('cuda');
          // KL(P* || P) is a sum of terms that largely cancel: compare to the scale of log P.
          close(gpu.v, cpu.v, REL[dtype] * 10, `${what}: klot`);
          close(gpu.gK, cpu.gK, REL_PLAN[dtype], `${what}: dK`);
        });
      }
  });

  kl('bad inputs fail with the CPU messages (mixed devices are refused)', () => {
    seedFor('cuda-klot-errors');
    const K = ts.rand([4, 5], { dtype: 'float64' });
    let err: unknown = null;
    try {
      klot(K, K.to('cuda'));
    } catch (e) {
      err = e;
    }
    assert.ok(err !== null, 'klot with Kstar on the cpu and K on cuda must throw');
  });

  mat.run();
  pts.run();
  div.run();
  kl.run();
}
