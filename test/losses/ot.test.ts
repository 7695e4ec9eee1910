// Log-domain Sinkhorn, the Sinkhorn divergence and KLOT (lib/losses/ot.ts) against a dense
// float64 log-domain reference written with plain loops, brute-force assignment, finite
// differences and a memory bound (in a fresh child process, ot_memory.child.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { klot, sinkhorn, sinkhornDivergence, SinkhornOptions } from '../../lib/losses/ot';
import { assertClose, assertThrows, flat, gradcheck, jsRandom, seedFor } from '../helpers/check';

// ---------------------------------------------------------------------------------------------
// Reference: the same iteration, stopping rule and eps schedule, dense, in float64.
interface RefOpts {
  eps: number;
  maxIter: number;
  tol: number;
  checkEvery: number;
  rho?: number;
  eps0?: number;
  factor?: number;
  itersPerStage?: number;
}
interface RefResult {
  f: number[];
  g: number[];
  P: number[];
  iterations: number;
  err: number;
  value: number;
  transport: number;
  objective: number;
  mass: number;
}

function lse(xs: number[]): number {
  let m = -Infinity;
  for (const v of xs) m = Math.max(m, v);
  let s = 0;
  for (const v of xs) s += Math.exp(v - m);
  return m + Math.log(s);
}

function refSinkhorn(C: ArrayLike<number>, n: number, m: number, a: number[], b: number[], o: RefOpts): RefResult {
  const rho = o.rho ?? Infinity;
  const balanced = rho === Infinity;
  const la = a.map(Math.log);
  const lb = b.map(Math.log);
  let f = new Array(n).fill(0);
  let g = new Array(m).fill(0);
  const stages: number[] = [];
  if (o.factor !== undefined) for (let e = o.eps0!; e > o.eps; e *= o.factor) stages.push(e);
  stages.push(o.eps);
  let iterations = 0;
  let err = NaN;
  const rowLse = (e: number) => Array.from({ length: n }, (_, i) => lse(Array.from({ length: m }, (_, j) => (g[j] - C[i * m + j]) / e + lb[j])));
  const colLse = (e: number) => Array.from({ length: m }, (_, j) => lse(Array.from({ length: n }, (_, i) => (f[i] - C[i * m + j]) / e + la[i])));
  outer: for (let s = 0; s < stages.length; s++) {
    const e = stages[s];
    const final = s === stages.length - 1;
    const lam = balanced ? 1 : rho / (rho + e);
    for (let k = 0; ; k++) {
      if (!final && k === o.itersPerStage) break;
      const last = final && k === o.maxIter;
      const check = final && (last || (o.tol > 0 && k >= 1 && k % o.checkEvery === 0));
      const lr = rowLse(e);
      if (check) {
        err = 0;
        for (let i = 0; i < n; i++) {
          const r = a[i] * Math.exp(f[i] / e + lr[i]);
          const t = balanced ? a[i] : a[i] * Math.exp(-f[i] / rho);
          err += Math.abs(r - t);
        }
        if (err < o.tol || last) break outer;
      }
      f = lr.map((v) => lam * -e * v);
      g = colLse(e).map((v) => lam * -e * v);
      iterations++;
    }
  }
  const e = o.eps;
  const P: number[] = [];
  let transport = 0;
  let mass = 0;
  let klP = 0;
  const r = new Array(n).fill(0);
  const c = new Array(m).fill(0);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      const p = a[i] * b[j] * Math.exp((f[i] + g[j] - C[i * m + j]) / e);
      P.push(p);
      transport += p * C[i * m + j];
      mass += p;
      klP += p * Math.log(p / (a[i] * b[j]));
      r[i] += p;
      c[j] += p;
    }
  const ma = a.reduce((s, v) => s + v, 0);
  const mb = b.reduce((s, v) => s + v, 0);
  klP += -mass + ma * mb;
  const kl = (p: number[], q: number[]) => p.reduce((s, v, i) => s + v * Math.log(v / q[i]) - v + q[i], 0);
  let value: number;
  let objective = transport + e * klP;
  if (balanced) {
    value = a.reduce((s, v, i) => s + v * f[i], 0) + b.reduce((s, v, j) => s + v * g[j], 0) - e * (mass - ma * mb);
  } else {
    value = -rho * a.reduce((s, v, i) => s + v * (Math.exp(-f[i] / rho) - 1), 0) - rho * b.reduce((s, v, j) => s + v * (Math.exp(-g[j] / rho) - 1), 0) - e * (mass - ma * mb);
    objective += rho * (kl(r, a) + kl(c, b));
  }
  return { f, g, P, iterations, err, value, transport, objective, mass };
}

// ---------------------------------------------------------------------------------------------
// Random problems.
function randomWeights(rand: () => number, n: number, total = 1): number[] {
  const w = Array.from({ length: n }, () => 0.3 + rand());
  const s = w.reduce((x, y) => x + y, 0);
  return w.map((v) => (v / s) * total);
}

function sqdist(x: number[], y: number[], n: number, m: number, d: number, scale = 1): number[] {
  const C: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += (x[i * d + k] - y[j * d + k]) ** 2;
      C.push(scale * s);
    }
  return C;
}

function negcos(x: number[], y: number[], n: number, m: number, d: number): number[] {
  const norm = (v: number[], i: number) => Math.sqrt(Array.from({ length: d }, (_, k) => v[i * d + k] ** 2).reduce((s, t) => s + t, 0));
  const C: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k] * y[j * d + k];
      C.push(-s / (norm(x, i) * norm(y, j)));
    }
  return C;
}

const f64 = { dtype: 'float64' as const };

function compareWithRef(r: ReturnType<typeof sinkhorn>, ref: RefResult, what: string, rtol = 1e-9, atol = 1e-10, b?: number): void {
  const pick = (t: Tensor): number[] => {
    const v = flat(t);
    if (b === undefined) return v;
    const len = v.length / t.shape[0];
    return v.slice(b * len, (b + 1) * len);
  };
  assertClose(pick(r.f), ref.f, rtol, atol, `${what}: f`);
  assertClose(pick(r.g), ref.g, rtol, atol, `${what}: g`);
  assertClose(pick(r.value), [ref.value], rtol, atol, `${what}: value`);
  assertClose(pick(r.transportCost), [ref.transport], rtol, atol, `${what}: transport cost`);
  assertClose(pick(r.objective), [ref.objective], rtol, atol, `${what}: objective`);
  const bi = b ?? 0;
  // Near float64 precision (tol 1e-11) the stopping test can pass one check period earlier or
  // later on either side, so the counts may differ by a period or two; equal counts must agree.
  const di = Math.abs(r.iterationsPerProblem[bi] - ref.iterations);
  assert.ok(di <= 20, `${what}: iterations ${r.iterationsPerProblem[bi]} vs reference ${ref.iterations}`);
  if (di === 0) assertClose([r.marginalErrorPerProblem[bi]], [ref.err], 1e-6, 1e-13, `${what}: marginal error`);
  assertClose([r.massPerProblem[bi]], [ref.mass], 1e-9, 1e-12, `${what}: mass`);
}

// ---------------------------------------------------------------------------------------------
test('cost matrix: matches the dense reference (odd sizes, n != m, given marginals, fixed and converged)', () => {
  seedFor('ot-matrix');
  const rand = jsRandom(11);
  for (const [n, m, eps] of [[1, 1, 0.5], [5, 3, 0.3], [7, 13, 0.1], [33, 17, 0.05], [70, 130, 0.2]] as const) {
    const C = ts.rand([n, m], { dtype: 'float64' });
    const Cv = flat(C);
    const a = randomWeights(rand, n);
    const b = randomWeights(rand, m);
    const at = ts.tensor(a, f64);
    const bt = ts.tensor(b, f64);
    // converged
    const tol = 1e-10;
    const r = sinkhorn(C, { eps, a: at, b: bt, tol, maxIter: 20000, checkEvery: 5, returnPlan: true });
    const ref = refSinkhorn(Cv, n, m, a, b, { eps, tol, maxIter: 20000, checkEvery: 5 });
    compareWithRef(r, ref, `[${n}, ${m}] eps ${eps}`);
    assert.ok(r.converged && r.marginalError < tol, `[${n}, ${m}]: marginal error ${r.marginalError} >= ${tol}`);
    assertClose(flat(r.plan!), ref.P, 1e-9, 1e-13, `[${n}, ${m}]: plan`);
    // the plan's marginals are a and b up to tol
    const P = flat(r.plan!);
    let e = 0;
    for (let i = 0; i < n; i++) e += Math.abs(P.slice(i * m, (i + 1) * m).reduce((s, v) => s + v, 0) - a[i]);
    assert.ok(e < tol * 1.01, `[${n}, ${m}]: plan row error ${e}`);
    // a fixed number of iterations (tol = 0): identical iterates
    const r2 = sinkhorn(C, { eps, a: at, b: bt, tol: 0, maxIter: 7 });
    const ref2 = refSinkhorn(Cv, n, m, a, b, { eps, tol: 0, maxIter: 7, checkEvery: 10 });
    compareWithRef(r2, ref2, `[${n}, ${m}] 7 iterations`, 1e-11, 1e-12);
    assert.is(r2.converged, false);
  }
});

test('cost matrix: batched [B, n, m] with per-problem and shared marginals', () => {
  seedFor('ot-batched');
  const rand = jsRandom(5);
  const [B, n, m, eps] = [3, 6, 9, 0.1];
  const C = ts.randn([B, n, m], { dtype: 'float64' });
  const Cv = flat(C);
  const a = Array.from({ length: B }, () => randomWeights(rand, n));
  const b = randomWeights(rand, m);
  const opts = { eps, a: ts.tensor(a, f64), b: ts.tensor(b, f64), tol: 1e-11, maxIter: 5000, checkEvery: 3 };
  const r = sinkhorn(C, opts);
  assert.equal(r.f.shape, [B, n]);
  assert.equal(r.value.shape, [B]);
  for (let k = 0; k < B; k++) {
    const ref = refSinkhorn(Cv.slice(k * n * m, (k + 1) * n * m), n, m, a[k], b, { eps, tol: 1e-11, maxIter: 5000, checkEvery: 3 });
    compareWithRef(r, ref, `batch ${k}`, 1e-9, 1e-10, k);
  }
  // uniform marginals, float32 against the float64 reference
  const C32 = C.to('float32');
  const r32 = sinkhorn(C32, { eps: 0.2, tol: 1e-5, maxIter: 5000 });
  for (let k = 0; k < B; k++) {
    const ref = refSinkhorn(flat(C32).slice(k * n * m, (k + 1) * n * m), n, m, new Array(n).fill(1 / n), new Array(m).fill(1 / m), { eps: 0.2, tol: 1e-5, maxIter: 5000, checkEvery: 10 });
    assertClose(flat(r32.value).slice(k, k + 1), [ref.value], 1e-5, 1e-5, `float32 batch ${k}: value`);
    assert.ok(r32.marginalErrorPerProblem[k] < 1e-5, `float32 batch ${k}: error ${r32.marginalErrorPerProblem[k]}`);
  }
});

test('parallel paths: few rows and many columns, many rows and few columns (partial merges)', () => {
  seedFor('ot-shapes');
  const rand = jsRandom(17);
  // (large enough to run on all threads: the thin sides make the kernels split the long side and
  // merge per-thread partial sums)
  for (const [n, m] of [[3, 30000], [30000, 3], [40, 3000]] as const) {
    const a = randomWeights(rand, n);
    const b = randomWeights(rand, m);
    const o = { eps: 0.2, tol: 1e-10, maxIter: 20000, checkEvery: 10 };
    const C = ts.rand([n, m], f64);
    const r = sinkhorn(C, { ...o, a: ts.tensor(a, f64), b: ts.tensor(b, f64) });
    const ref = refSinkhorn(flat(C), n, m, a, b, o);
    compareWithRef(r, ref, `matrix [${n}, ${m}]`, 1e-8, 1e-10);
    const x = ts.randn([n, 7], f64);
    const y = ts.randn([m, 7], f64);
    const rp = sinkhorn(x, y, { ...o, eps: 2, a: ts.tensor(a, f64), b: ts.tensor(b, f64) });
    const refp = refSinkhorn(sqdist(flat(x), flat(y), n, m, 7), n, m, a, b, { ...o, eps: 2 });
    compareWithRef(rp, refp, `points [${n}, ${m}]`, 1e-8, 1e-9);
    // deterministic: the same call gives the same bits
    const again = sinkhorn(x, y, { ...o, eps: 2, a: ts.tensor(a, f64), b: ts.tensor(b, f64) });
    assert.equal(flat(again.f), flat(rp.f), `points [${n}, ${m}]: repeat`);
  }
});

test('point clouds: online cost equals the given-cost path (sqeuclidean, half, cosine; d = 1; batched)', () => {
  seedFor('ot-points');
  const rand = jsRandom(9);
  const cases: [number, number, number, number, SinkhornOptions][] = [
    [1, 5, 7, 1, {}],
    [1, 9, 4, 3, { halfSquared: true }],
    [1, 11, 13, 5, { cost: 'cosine' }],
    [2, 50, 61, 17, {}],
    [3, 65, 70, 4, { cost: 'cosine' }],
    [1, 130, 100, 64, { halfSquared: true }],
  ];
  for (const [B, n, m, d, extra] of cases) {
    const batched = B > 1;
    const x = ts.randn(batched ? [B, n, d] : [n, d], f64);
    const y = ts.randn(batched ? [B, m, d] : [m, d], f64).add(0.5);
    const xv = flat(x);
    const yv = flat(y);
    const a = randomWeights(rand, n);
    const b = randomWeights(rand, m);
    const eps = extra.cost === 'cosine' ? 0.05 : 0.5;
    const opts: SinkhornOptions = { ...extra, eps, a: ts.tensor(a, f64), b: ts.tensor(b, f64), tol: 1e-11, maxIter: 20000 };
    const rp = sinkhorn(x, y, opts);
    const Cs: number[] = [];
    for (let k = 0; k < B; k++) {
      const xs = xv.slice(k * n * d, (k + 1) * n * d);
      const ys = yv.slice(k * m * d, (k + 1) * m * d);
      Cs.push(...(extra.cost === 'cosine' ? negcos(xs, ys, n, m, d) : sqdist(xs, ys, n, m, d, extra.halfSquared ? 0.5 : 1)));
    }
    const C = ts.tensor(Cs, { dtype: 'float64', shape: batched ? [B, n, m] : [n, m] });
    const { cost: _c, halfSquared: _h, ...matrixOpts } = opts;
    const rc = sinkhorn(C, matrixOpts);
    const what = `B ${B} [${n}, ${m}] d ${d} ${JSON.stringify(extra)}`;
    assertClose(flat(rp.f), flat(rc.f), 1e-9, 1e-9, `${what}: f`);
    assertClose(flat(rp.g), flat(rc.g), 1e-9, 1e-9, `${what}: g`);
    assertClose(flat(rp.value), flat(rc.value), 1e-9, 1e-10, `${what}: value`);
    assertClose(flat(rp.transportCost), flat(rc.transportCost), 1e-9, 1e-10, `${what}: transport`);
    assert.equal(rp.iterationsPerProblem, rc.iterationsPerProblem, `${what}: iterations`);
    for (let k = 0; k < B; k++) {
      const ref = refSinkhorn(Cs.slice(k * n * m, (k + 1) * n * m), n, m, a, b, { eps, tol: 1e-11, maxIter: 20000, checkEvery: 10 });
      compareWithRef(rp, ref, `${what} vs reference`, 1e-8, 1e-9, batched ? k : undefined);
    }
    // float32 points against the float64 result
    const r32 = sinkhorn(x.to('float32'), y.to('float32'), { ...opts, a: ts.tensor(a), b: ts.tensor(b), tol: 1e-4 });
    assertClose(flat(r32.value), flat(rp.value), 1e-4, 1e-4, `${what}: float32 value`);
    assert.ok(r32.marginalError < 1e-4, `${what}: float32 marginal error ${r32.marginalError}`);
  }
});

test('eps-scaling follows the geometric schedule and reaches the target eps', () => {
  seedFor('ot-scaling');
  const [n, m] = [8, 11];
  const C = ts.rand([n, m], f64).mul(3);
  const Cv = flat(C);
  const a = new Array(n).fill(1 / n);
  const b = new Array(m).fill(1 / m);
  const o = { eps: 0.01, tol: 1e-10, maxIter: 20000, checkEvery: 4 };
  const r = sinkhorn(C, { ...o, epsScaling: { eps0: 2, factor: 0.6, itersPerStage: 2 } });
  const ref = refSinkhorn(Cv, n, m, a, b, { ...o, eps0: 2, factor: 0.6, itersPerStage: 2 });
  compareWithRef(r, ref, 'eps-scaling', 1e-8, 1e-9);
  // default eps0 = max C - min C
  const r2 = sinkhorn(C, { ...o, epsScaling: true });
  const range = Math.max(...Cv) - Math.min(...Cv);
  assertClose([r2.eps0], [range], 1e-12, 0, 'default eps0');
  const ref2 = refSinkhorn(Cv, n, m, a, b, { ...o, eps0: range, factor: 0.5, itersPerStage: 3 });
  compareWithRef(r2, ref2, 'default eps-scaling', 1e-8, 1e-9);
  // without scaling, the same fixed point
  const r3 = sinkhorn(C, o);
  assertClose(flat(r3.value), flat(r.value), 1e-8, 1e-9, 'same value with and without scaling');
});

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1))
    for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

test('eps -> 0 with eps-scaling recovers the optimal assignment (brute force over permutations)', () => {
  seedFor('ot-assignment');
  for (const n of [2, 3, 4, 5, 6]) {
    for (const pointsMode of [false, true]) {
      let C: Tensor;
      let Cv: number[];
      let r;
      if (pointsMode) {
        const x = ts.randn([n, 2], f64);
        const y = ts.randn([n, 2], f64);
        Cv = sqdist(flat(x), flat(y), n, n, 2);
        r = sinkhorn(x, y, { eps: 1e-3, epsScaling: true, tol: 1e-7, maxIter: 50000, returnPlan: true });
      } else {
        C = ts.rand([n, n], f64);
        Cv = flat(C);
        r = sinkhorn(C, { eps: 1e-3, epsScaling: true, tol: 1e-7, maxIter: 50000, returnPlan: true });
      }
      let best = Infinity;
      let bestPerm: number[] = [];
      for (const p of permutations(n)) {
        const c = p.reduce((s, j, i) => s + Cv[i * n + j], 0);
        if (c < best) {
          best = c;
          bestPerm = p;
        }
      }
      // the plan concentrates on the optimal permutation (unless a near-tie makes both near-optimal)
      const P = flat(r.plan!);
      const cost = r.transportCost.item();
      assert.ok(Math.abs(cost - best / n) < 2e-2 / n + 5e-3, `n ${n} points ${pointsMode}: <P, C> = ${cost}, optimum ${best / n}`);
      let second = Infinity;
      for (const p of permutations(n)) {
        const c = p.reduce((s, j, i) => s + Cv[i * n + j], 0);
        if (p.some((j, i) => j !== bestPerm[i])) second = Math.min(second, c);
      }
      if (second - best > 0.05) {
        for (let i = 0; i < n; i++)
          assert.ok(P[i * n + bestPerm[i]] > 0.99 / n, `n ${n} points ${pointsMode}: P[${i}, ${bestPerm[i]}] = ${P[i * n + bestPerm[i]]}`);
      }
      // (near-ties converge slowly at eps = 1e-3; the assignment is clear long before tol)
      assert.ok(r.marginalError < 1e-5, `n ${n}: marginal error ${r.marginalError}`);
    }
  }
});

test('Sinkhorn divergence: >= 0, ~0 for identical clouds, batched, symmetric', () => {
  seedFor('ot-divergence');
  const rand = jsRandom(3);
  for (const [n, m, d, cost] of [[6, 9, 2, 'sqeuclidean'], [20, 15, 5, 'sqeuclidean'], [12, 12, 3, 'cosine'], [40, 33, 1, 'sqeuclidean']] as const) {
    const x = ts.randn([n, d], f64);
    const y = ts.randn([m, d], f64).add(0.3);
    const a = ts.tensor(randomWeights(rand, n), f64);
    const b = ts.tensor(randomWeights(rand, m), f64);
    const opts: SinkhornOptions = { eps: 0.1, cost, a, b, tol: 1e-11, maxIter: 20000 };
    const s = sinkhornDivergence(x, y, opts).item();
    assert.ok(s > 0, `divergence ${s} should be > 0`);
    const s2 = sinkhornDivergence(y, x, { ...opts, a: b, b: a }).item();
    assertClose([s2], [s], 1e-8, 1e-10, 'symmetric');
    const same = sinkhornDivergence(x, x, { ...opts, b: a }).item();
    assert.ok(Math.abs(same) < 1e-12, `identical clouds: ${same}`);
    const copy = x.clone();
    const same2 = sinkhornDivergence(x, copy, { ...opts, b: a }).item();
    assert.ok(Math.abs(same2) < 1e-9, `identical copies: ${same2}`);
  }
  const B = 3;
  const xb = ts.randn([B, 10, 3], f64);
  const yb = ts.randn([B, 12, 3], f64);
  const sb = flat(sinkhornDivergence(xb, yb, { eps: 0.2, tol: 1e-10 }));
  for (let k = 0; k < B; k++) {
    const one = sinkhornDivergence(xb.select(0, k), yb.select(0, k), { eps: 0.2, tol: 1e-10 }).item();
    assertClose([sb[k]], [one], 1e-8, 1e-10, `batched divergence ${k}`);
    assert.ok(sb[k] > 0);
  }
});

test('unbalanced (KL-relaxed marginals) matches the reference', () => {
  seedFor('ot-unbalanced');
  const rand = jsRandom(21);
  for (const [n, m, eps, rho] of [[5, 8, 0.1, 1], [13, 9, 0.3, 0.5], [30, 41, 0.05, 10]] as const) {
    const C = ts.rand([n, m], f64);
    const a = randomWeights(rand, n, 1.3);
    const b = randomWeights(rand, m, 0.8);
    const o = { eps, rho, tol: 1e-11, maxIter: 50000, checkEvery: 5 };
    const r = sinkhorn(C, { ...o, a: ts.tensor(a, f64), b: ts.tensor(b, f64), returnPlan: true });
    const ref = refSinkhorn(flat(C), n, m, a, b, o);
    compareWithRef(r, ref, `unbalanced [${n}, ${m}] rho ${rho}`, 1e-8, 1e-10);
    assert.ok(r.converged && r.marginalError < 1e-11);
    assertClose(flat(r.plan!), ref.P, 1e-8, 1e-12, 'unbalanced plan');
    // the plan's mass lies between the two masses
    assert.ok(r.massPerProblem[0] < 1.3 && r.massPerProblem[0] > 0.5, `mass ${r.massPerProblem[0]}`);
  }
  // on point clouds too
  const x = ts.randn([9, 3], f64);
  const y = ts.randn([7, 3], f64);
  const o = { eps: 0.2, rho: 2, tol: 1e-11, maxIter: 50000 };
  const r = sinkhorn(x, y, o);
  const ref = refSinkhorn(sqdist(flat(x), flat(y), 9, 7, 3), 9, 7, new Array(9).fill(1 / 9), new Array(7).fill(1 / 7), { ...o, checkEvery: 10 });
  compareWithRef(r, ref, 'unbalanced points', 1e-8, 1e-10);
});

test('gradients: OT_eps w.r.t. C (= P) and w.r.t. x, y match finite differences at convergence', () => {
  seedFor('ot-grad');
  const rand = jsRandom(4);
  const tight = { tol: 1e-13, maxIter: 100000, checkEvery: 1 };
  const C = ts.rand([4, 5], f64);
  const a = ts.tensor(randomWeights(rand, 4), f64);
  const b = ts.tensor(randomWeights(rand, 5), f64);
  gradcheck('OT wrt C', (c) => sinkhorn(c, { eps: 0.3, a, b, ...tight }).value, [C], { tol: 1e-7 });
  const Cb = ts.randn([2, 3, 4], f64);
  gradcheck('OT wrt C batched', (c) => sinkhorn(c, { eps: 0.5, ...tight }).value, [Cb], { tol: 1e-7 });
  gradcheck('unbalanced OT wrt C', (c) => sinkhorn(c, { eps: 0.4, rho: 1, a, b, ...tight }).value, [C], { tol: 1e-7 });
  const x = ts.randn([4, 3], f64);
  const y = ts.randn([5, 3], f64);
  gradcheck('OT wrt x, y (sqeuclidean)', (p, q) => sinkhorn(p, q, { eps: 0.5, a, b, ...tight }).value, [x, y], { tol: 1e-6 });
  gradcheck('OT wrt x, y (half)', (p, q) => sinkhorn(p, q, { eps: 0.5, halfSquared: true, ...tight }).value, [x, y], { tol: 1e-6 });
  gradcheck('OT wrt x, y (cosine)', (p, q) => sinkhorn(p, q, { eps: 0.1, cost: 'cosine', a, b, ...tight }).value, [x, y], { tol: 1e-6 });
  const x1 = ts.randn([6, 1], f64);
  const y1 = ts.randn([3, 1], f64);
  gradcheck('OT wrt x, y (d = 1, unbalanced)', (p, q) => sinkhorn(p, q, { eps: 0.3, rho: 0.7, ...tight }).value, [x1, y1], { tol: 1e-6 });
  const xb = ts.randn([2, 3, 2], f64);
  const yb = ts.randn([2, 4, 2], f64);
  gradcheck('OT wrt x, y batched', (p, q) => sinkhorn(p, q, { eps: 0.5, ...tight }).value, [xb, yb], { tol: 1e-6 });
  gradcheck('divergence wrt x, y', (p, q) => sinkhornDivergence(p, q, { eps: 0.5, ...tight }), [x, y], { tol: 1e-6 });
  // tile-wise point gradient on a larger problem (several tiles) against the dense plan
  const n = 150;
  const m = 420;
  const X = ts.randn([n, 5], f64);
  const Y = ts.randn([m, 5], f64);
  X.requiresGrad = true;
  const r = sinkhorn(X, Y, { eps: 0.5, tol: 1e-10, returnPlan: true });
  r.value.backward(); // only x requires grad: y gets none
  assert.is(Y.grad, null);
  Y.requiresGrad = true;
  X.requiresGrad = false;
  X.grad = ts.keep(X.grad!);
  sinkhorn(X, Y, { eps: 0.5, tol: 1e-10 }).value.backward();
  const P = flat(r.plan!);
  const xv = flat(X);
  const yv = flat(Y);
  const dx = new Array(n * 5).fill(0);
  const dy = new Array(m * 5).fill(0);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++)
      for (let k = 0; k < 5; k++) {
        const t = 2 * P[i * m + j] * (xv[i * 5 + k] - yv[j * 5 + k]);
        dx[i * 5 + k] += t;
        dy[j * 5 + k] -= t;
      }
  assertClose(flat(X.grad!), dx, 1e-9, 1e-12, 'dx = sum_j P_ij 2 (x_i - y_j)');
  assertClose(flat(Y.grad!), dy, 1e-9, 1e-12, 'dy');
});

// KL(P* || P) from dense reference plans.
function refKlot(Ks: number[], K: number[], n: number, m: number, epsStar: number, eps: number): number {
  const a = new Array(n).fill(1 / n);
  const b = new Array(m).fill(1 / m);
  const o = { tol: 1e-13, maxIter: 200000, checkEvery: 1 };
  const Ps = refSinkhorn(Ks.map((v) => -v), n, m, a, b, { ...o, eps: epsStar }).P;
  const P = refSinkhorn(K.map((v) => -v), n, m, a, b, { ...o, eps }).P;
  return Ps.reduce((s, p, i) => s + p * Math.log(p / P[i]), 0);
}

test('KLOT: value against dense plans, gradient (P - P*) / eps against finite differences', () => {
  seedFor('ot-klot');
  const [n, m] = [5, 6];
  const Ks = ts.randn([n, m], f64).mul(0.3);
  const K = ts.randn([n, m], f64).mul(0.3);
  const tight = { tol: 1e-13, maxIter: 200000, checkEvery: 1 };
  for (const [epsStar, eps] of [[0.05, 0.2], [0.005, 0.05]] as const) {
    const v = klot(Ks, K, { epsStar, eps, ...tight }).item();
    const ref = refKlot(flat(Ks), flat(K), n, m, epsStar, eps);
    assertClose([v], [ref], 1e-8, 1e-10, `klot value (epsStar ${epsStar}, eps ${eps})`);
    assert.ok(v > 0);
    gradcheck(`klot wrt K (epsStar ${epsStar}, eps ${eps})`, (k) => klot(Ks, k, { epsStar, eps, ...tight }), [K.clone()], { tol: 1e-7, eps: 1e-7 });
  }
  // KL(P || P) = 0 when teacher == student
  const z = klot(K, K, { epsStar: 0.1, eps: 0.1, ...tight }).item();
  assert.ok(Math.abs(z) < 1e-12, `klot(K, K) = ${z}`);
  // explicit gradient formula and batched
  const B = 2;
  const Ksb = ts.randn([B, 3, 4], f64);
  const Kb = ts.randn([B, 3, 4], f64);
  Kb.requiresGrad = true;
  const vb = klot(Ksb, Kb, { epsStar: 0.1, eps: 0.3, ...tight });
  assert.equal(vb.shape, [B]);
  vb.sum().backward();
  const grad = flat(Kb.grad!);
  for (let k = 0; k < B; k++) {
    const ksl = flat(Ksb).slice(k * 12, (k + 1) * 12);
    const kl = flat(Kb).slice(k * 12, (k + 1) * 12);
    const a = [1 / 3, 1 / 3, 1 / 3];
    const b = [0.25, 0.25, 0.25, 0.25];
    const Ps = refSinkhorn(ksl.map((v) => -v), 3, 4, a, b, { ...tight, eps: 0.1 }).P;
    const P = refSinkhorn(kl.map((v) => -v), 3, 4, a, b, { ...tight, eps: 0.3 }).P;
    assertClose(grad.slice(k * 12, (k + 1) * 12), P.map((p, i) => (p - Ps[i]) / 0.3), 1e-8, 1e-10, `klot grad batch ${k}`);
    assertClose(flat(vb).slice(k, k + 1), [refKlot(ksl, kl, 3, 4, 0.1, 0.3)], 1e-8, 1e-10, `klot value batch ${k}`);
  }
});

test('bad inputs raise clear errors', () => {
  const C = ts.rand([3, 4], f64);
  const E = (fn: () => unknown, cls: typeof ts.TesseraError, patterns: (string | RegExp)[], what: string) => {
    assertThrows(fn, patterns, what);
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof cls, `${what}: expected ${cls.name}, got ${(e as Error).constructor.name}`);
    }
  };
  E(() => sinkhorn(C, { a: ts.tensor([0.5, 0.3, 0.1], f64) }), ts.ArgumentError, ['sinkhorn', 'a', 'sum to 1', '0.9'], 'a not summing to 1');
  E(() => sinkhorn(C, { b: ts.tensor([0.5, 0.6, -0.2, 0.1], f64) }), ts.ArgumentError, ['sinkhorn', 'b', 'positive', '-0.2'], 'negative b');
  E(() => sinkhorn(C, { a: ts.tensor([0.5, 0.5], f64) }), ts.ShapeError, ['sinkhorn', 'a', '[3]', '[2]'], 'a shape');
  E(() => sinkhorn(C, { eps: 0 }), ts.ArgumentError, ['sinkhorn', 'eps', '> 0'], 'eps = 0');
  E(() => sinkhorn(C, { eps: -1 }), ts.ArgumentError, ['sinkhorn', 'eps'], 'eps < 0');
  E(() => sinkhorn(C, { eps: NaN }), ts.ArgumentError, ['sinkhorn', 'eps'], 'eps NaN');
  E(() => sinkhorn(ts.rand([5], f64)), ts.ShapeError, ['sinkhorn', '[n, m]', '[5]'], '1-D cost');
  E(() => sinkhorn(ts.rand([3, 2], f64), ts.rand([4, 3], f64)), ts.ShapeError, ['sinkhorn', '[3, 2]', '[4, 3]', 'dimension'], 'd mismatch');
  E(() => sinkhorn(ts.rand([2, 3, 2], f64), ts.rand([3, 4, 2], f64)), ts.ShapeError, ['sinkhorn', 'batch'], 'batch mismatch');
  E(() => sinkhorn(ts.rand([3, 2], f64), ts.rand([4, 2])), ts.DTypeError, ['sinkhorn', 'dtype'], 'dtype mismatch');
  E(() => sinkhorn(ts.rand([3], f64), ts.rand([4], f64)), ts.ShapeError, ['sinkhorn', '[n, 1]'], '1-D points');
  E(() => sinkhorn(C, { maxIter: -1 }), ts.ArgumentError, ['sinkhorn', 'maxIter'], 'maxIter');
  E(() => sinkhorn(C, { epsScaling: { factor: 1.5 } }), ts.ArgumentError, ['sinkhorn', 'factor'], 'factor');
  E(() => sinkhorn(C, { rho: 0 }), ts.ArgumentError, ['sinkhorn', 'rho'], 'rho');
  E(() => sinkhorn(C, { cost: 'cosine' }), ts.ArgumentError, ['sinkhorn', 'point clouds'], 'cost on a matrix');
  E(() => sinkhorn(ts.rand([3, 2], f64), ts.rand([4, 2], f64), { cost: 'l1' as 'cosine' }), ts.ArgumentError, ['sinkhorn', 'cost'], 'unknown cost');
  const ag = ts.tensor([0.2, 0.3, 0.5], { dtype: 'float64', requiresGrad: true });
  E(() => sinkhorn(C, { a: ag }), ts.ArgumentError, ['sinkhorn', 'a', 'requires grad'], 'a requires grad');
  E(() => sinkhornDivergence(ts.rand([3, 2], f64), ts.rand([4, 2], f64), { rho: 1 }), ts.ArgumentError, ['sinkhornDivergence', 'balanced'], 'divergence rho');
  E(() => klot(ts.rand([3, 4], f64), ts.rand([3, 5], f64)), ts.ShapeError, ['klot', '[3, 4]', '[3, 5]'], 'klot shapes');
  E(() => klot(ts.rand([3, 4], f64), ts.rand([3, 4])), ts.DTypeError, ['klot', 'dtype'], 'klot dtypes');
  E(() => klot(ts.rand([3, 4], { dtype: 'float64', requiresGrad: true }), ts.rand([3, 4], f64)), ts.ArgumentError, ['klot', 'Kstar', 'requires grad'], 'klot Kstar grad');
  E(() => klot(ts.rand([3, 4], f64), ts.rand([3, 4], f64), { epsStar: 0 }), ts.ArgumentError, ['klot', 'epsStar'], 'klot epsStar');
  // unbalanced accepts any positive masses
  const r = sinkhorn(C, { rho: 1, a: ts.tensor([1, 2, 3], f64) });
  assert.ok(Number.isFinite(r.value.item()));
});

test('memory: 16384 x 16384 point clouds (d = 64, float32, online cost) stay far below n*m*4 bytes', () => {
  const child = path.join(__dirname, 'ot_memory.child.js');
  const res = spawnSync(process.execPath, [child], { encoding: 'utf8', env: process.env, maxBuffer: 1 << 20 });
  assert.is(res.status, 0, `child failed: ${res.stderr}`);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!) as { peakExtra: number; seconds: number; iterations: number; value: number; rssExtra: number };
  console.log(`  (16384^2, d 64, 3 iterations: ${out.seconds.toFixed(2)} s, peak extra native ${(out.peakExtra / 2 ** 20).toFixed(2)} MiB, max RSS growth ${(out.rssExtra / 2 ** 20).toFixed(1)} MiB)`);
  assert.ok(out.peakExtra < 32 * 2 ** 20, `peak extra native memory ${out.peakExtra} bytes >= 32 MiB`);
  assert.ok(Number.isFinite(out.value));
  assert.is(out.iterations, 3);
});

test.run();
