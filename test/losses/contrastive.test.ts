// The fused contrastive losses (lib/losses/contrastive.ts, native/cpu/contrastive.cpp): each
// against (1) the same loss composed from primitive ops (matmul, logSoftmax / crossEntropy,
// logsigmoid, maskedFill) and (2) an independent float64 JS reference with hand-derived
// gradients, value and gradients to a, b, logitScale (and bias), on fresh random inputs over a
// sweep of shapes: N = 1, D = 1, odd sizes, N != M where defined, sizes that are not multiples of
// the 128 x 192 tile, D above the GEMM's K block (K split in several blocks), and sizes big enough
// for the multi-threaded paths. float64 to ~1e-10, float32 within 1e-5 (normwise relative, against
// the float64 reference on the same float32 inputs). Then: finite-difference gradchecks in
// float64, thread-count and kernel-level (AVX2 / plain fallback, in child processes)
// consistency, non-contiguous inputs, noGrad, argument errors (TypeScript and native), and a
// memory test: CLIP forward + backward at N = 16384, D = 256 float32 must stay far below the
// N x N logits (1 GiB).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { runKernel } from '../../lib/backend';
import { clipLossFused, multiPositiveClipLoss, ntXentLoss, sigLipLoss, SIGLIP_INIT } from '../../lib/losses/contrastive';
import { assertThrows, flat, gradcheck, jsRandom, seedFor } from '../helpers/check';

type DT = 'float32' | 'float64';

// ---------------------------------------------------------------------------------------------
// float64 JS references: loss and gradients from plain loops (logits, softmaxes, chain rule).

interface Result {
  loss: number;
  grads: number[][]; // a, b, scale (, bias)
  /**
   * Per gradient, the sum of the absolute values of the terms it adds up (reference only): the
   * scalar gradients (scale, bias) are sums of terms of both signs, so their rounding error is
   * relative to this, not to the (possibly much smaller) sum.
   */
  mags?: number[];
}

function logitsOf(a: number[], b: number[], n: number, m: number, d: number, t: number, bias = 0): Float64Array {
  const L = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a[i * d + k] * b[j * d + k];
      L[i * m + j] = t * s + bias;
    }
  return L;
}

/** ga = t dL b, gb = t dL^T a. */
function chain(dL: Float64Array, a: number[], b: number[], n: number, m: number, d: number, t: number): [number[], number[]] {
  const ga = new Array(n * d).fill(0);
  const gb = new Array(m * d).fill(0);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      const g = dL[i * m + j] * t;
      if (g === 0) continue;
      for (let k = 0; k < d; k++) {
        ga[i * d + k] += g * b[j * d + k];
        gb[j * d + k] += g * a[i * d + k];
      }
    }
  return [ga, gb];
}

/**
 * Softmax family: rows (weight wr) and columns (weight wc); isPos(i, j) marks positives;
 * selfMask drops i == j from everything. Row loss = lse_i - mean_{P_i} L_ij, averaged over rows
 * with a positive; columns the same.
 */
function refSoftmax(a: number[], b: number[], n: number, m: number, d: number, s: number, isPos: (i: number, j: number) => boolean,
  wr: number, wc: number, selfMask: boolean): Result {
  const t = Math.exp(s);
  const L = logitsOf(a, b, n, m, d, t);
  const dL = new Float64Array(n * m);
  // |terms| of dL before the softmax and the positive terms cancel: float32 gets dL (and so every
  // gradient) only to ~eps32 of these magnitudes, which matters when the softmax saturates.
  const dLMag = new Float64Array(n * m);
  const live = (i: number, j: number) => !(selfMask && i === j);
  let loss = 0;
  // rows: (o, q) = (i, j); columns: (o, q) = (j, i)
  const direction = (outer: number, inner: number, rowsDir: boolean, w: number) => {
    if (w === 0) return;
    const at = (o: number, q: number): [number, number] => (rowsDir ? [o, q] : [q, o]);
    const rows: { o: number; lse: number; pos: number[] }[] = [];
    for (let o = 0; o < outer; o++) {
      const pos: number[] = [];
      let mx = -Infinity;
      for (let q = 0; q < inner; q++) {
        const [i, j] = at(o, q);
        if (!live(i, j)) continue;
        mx = Math.max(mx, L[i * m + j]);
        if (isPos(i, j)) pos.push(q);
      }
      if (pos.length === 0) continue;
      let se = 0;
      for (let q = 0; q < inner; q++) {
        const [i, j] = at(o, q);
        if (live(i, j)) se += Math.exp(L[i * m + j] - mx);
      }
      rows.push({ o, lse: mx + Math.log(se), pos });
    }
    const nv = rows.length;
    for (const { o, lse, pos } of rows) {
      let ps = 0;
      for (const q of pos) {
        const [i, j] = at(o, q);
        ps += L[i * m + j];
      }
      loss += (w / nv) * (lse - ps / pos.length);
      for (let q = 0; q < inner; q++) {
        const [i, j] = at(o, q);
        if (!live(i, j)) continue;
        dL[i * m + j] += (w / nv) * Math.exp(L[i * m + j] - lse);
        dLMag[i * m + j] += (w / nv) * Math.exp(L[i * m + j] - lse);
      }
      for (const q of pos) {
        const [i, j] = at(o, q);
        dL[i * m + j] -= w / nv / pos.length;
        dLMag[i * m + j] += w / nv / pos.length;
      }
    }
  };
  direction(n, m, true, wr);
  direction(m, n, false, wc);
  const [ga, gb] = chain(dL, a, b, n, m, d, t);
  let gs = 0;
  let gsMag = 0;
  for (let k = 0; k < n * m; k++) {
    gs += dL[k] * L[k];
    gsMag += dLMag[k] * Math.abs(L[k]);
  }
  // The same magnitudes for the embedding gradients: max over entries of t sum_j |dL terms| |b_j|.
  const [maA, maB] = chain(dLMag, a.map(Math.abs), b.map(Math.abs), n, m, d, t);
  const maxOf = (v: number[]) => v.reduce((acc, x) => Math.max(acc, x), 0);
  return { loss, grads: [ga, gb, [gs]], mags: [maxOf(maA), maxOf(maB), gsMag] };
}

const softplus = (y: number) => (y > 0 ? y + Math.log1p(Math.exp(-y)) : Math.log1p(Math.exp(y)));
const sigmoid = (y: number) => (y >= 0 ? 1 / (1 + Math.exp(-y)) : Math.exp(y) / (1 + Math.exp(y)));

function refSigmoid(a: number[], b: number[], n: number, m: number, d: number, s: number, bias: number, isPos: (i: number, j: number) => boolean): Result {
  const t = Math.exp(s);
  const L = logitsOf(a, b, n, m, d, t, bias);
  const dL = new Float64Array(n * m);
  let loss = 0;
  let gs = 0;
  let gbias = 0;
  let gsMag = 0;
  let gbMag = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      const z = isPos(i, j) ? 1 : -1;
      const x = L[i * m + j];
      loss += softplus(-z * x) / n;
      const g = (-z * sigmoid(-z * x)) / n;
      dL[i * m + j] = g;
      gbias += g;
      gs += g * (x - bias);
      gbMag += Math.abs(g);
      gsMag += Math.abs(g * (x - bias));
    }
  const [ga, gb] = chain(dL, a, b, n, m, d, t);
  return { loss, grads: [ga, gb, [gs], [gbias]], mags: [0, 0, gsMag, gbMag] };
}

// ---------------------------------------------------------------------------------------------
// The same losses composed from primitive ops (autograd through matmul, logSoftmax, ...).

function composedMultiPositive(a: Tensor, b: Tensor, s: Tensor, rid: number[], cid: number[]): Tensor {
  const [n, m] = [a.shape[0], b.shape[0]];
  const logits = ts.matmul(a, b.T).mul(s.exp());
  // Constant weights: row i spreads 0.5 / (rows with positives) over its positives, same for columns.
  const wr = new Float64Array(n * m);
  const wc = new Float64Array(n * m);
  const rc = rid.map((r) => cid.filter((c) => c === r).length);
  const cc = cid.map((c) => rid.filter((r) => r === c).length);
  const nvr = rc.filter((c) => c > 0).length;
  const nvc = cc.filter((c) => c > 0).length;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++)
      if (rid[i] === cid[j]) {
        wr[i * m + j] = 0.5 / nvr / rc[i];
        wc[i * m + j] = 0.5 / nvc / cc[j];
      }
  const Wr = ts.tensor(wr, { dtype: a.dtype, shape: [n, m] });
  const Wc = ts.tensor(wc, { dtype: a.dtype, shape: [n, m] });
  return logits.logSoftmax(1).mul(Wr).sum().add(logits.logSoftmax(0).mul(Wc).sum()).neg();
}

function composedNtXent(z1: Tensor, z2: Tensor, s: Tensor): Tensor {
  const n = z1.shape[0];
  const z = ts.cat([z1, z2], 0);
  const logits = ts.matmul(z, z.T).mul(s.exp());
  const eye = new Float64Array(4 * n * n);
  for (let k = 0; k < 2 * n; k++) eye[k * 2 * n + k] = 1;
  const masked = logits.maskedFill(ts.tensor(eye, { dtype: z1.dtype, shape: [2 * n, 2 * n] }), -Infinity);
  const targets = ts.tensor(Int32Array.from({ length: 2 * n }, (_, k) => (k + n) % (2 * n)));
  return ts.crossEntropy(masked, targets);
}

function composedSigLip(a: Tensor, b: Tensor, s: Tensor, bias: Tensor, isPos: (i: number, j: number) => boolean): Tensor {
  const [n, m] = [a.shape[0], b.shape[0]];
  const zs = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) zs[i * m + j] = isPos(i, j) ? 1 : -1;
  const logits = ts.matmul(a, b.T).mul(s.exp()).add(bias);
  return logits.mul(ts.tensor(zs, { dtype: a.dtype, shape: [n, m] })).logsigmoid().sum().mul(-1 / n);
}

// ---------------------------------------------------------------------------------------------
// Running and comparing.

/** Loss value and gradients of every leaf (fresh requiresGrad copies of `inputs`). */
function evaluate(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): Result {
  return ts.scope(() => {
    const leaves = inputs.map((x) => {
      const l = x.detach().clone();
      l.requiresGrad = true;
      return l;
    });
    const loss = fn(...leaves);
    loss.backward();
    return { loss: loss.item(), grads: leaves.map((l) => (l.grad ? flat(l.grad) : new Array(l.numel).fill(0))) };
  });
}

/** Normwise relative error of x against y (max |x - y| / max(max |y|, mag)). */
function normRel(x: number[], y: number[], mag = 0): number {
  let num = 0;
  let den = mag;
  for (let i = 0; i < y.length; i++) {
    num = Math.max(num, Math.abs(x[i] - y[i]));
    den = Math.max(den, Math.abs(y[i]));
  }
  if (Number.isNaN(num) || x.length !== y.length) return Infinity;
  return num / Math.max(den, 1e-9);
}

const GRAD_NAMES = ['a', 'b', 'logitScale', 'bias'];
let worst32 = 0;
let worst64 = 0;

function assertResult(what: string, got: Result, want: Result, tol: number, track = true): void {
  const le = Math.abs(got.loss - want.loss) / Math.max(1, Math.abs(want.loss));
  assert.ok(le <= tol, `${what}: loss ${got.loss} vs ${want.loss} (rel ${le.toExponential(2)} > ${tol})`);
  let worst = le;
  want.grads.forEach((w, k) => {
    const e = normRel(got.grads[k], w, want.mags?.[k] ?? 0);
    worst = Math.max(worst, e);
    assert.ok(e <= tol, `${what}: gradient to ${GRAD_NAMES[k]} has normwise relative error ${e.toExponential(2)} > ${tol}`);
  });
  if (track) {
    if (tol > 1e-8) worst32 = Math.max(worst32, worst);
    else worst64 = Math.max(worst64, worst);
  }
}

/** Rows of ~unit norm (randn / sqrt(D)), as normalised embeddings would be. */
function embeddings(rows: number, d: number): Tensor {
  return ts.randn([rows, d], { dtype: 'float64', std: 1 / Math.sqrt(d) });
}

/** A log temperature near CLIP's log(1/0.07), different per case. */
function randomScale(r: () => number): number {
  return Math.log(1 / 0.07) + (r() - 0.5);
}

const TOL64 = 1e-10;
const TOL32 = 1e-5;

/** Check `fused` against `composed` and the reference in both dtypes (inputs made in float64). */
function checkBoth(what: string, inputs64: Tensor[], fused: (...xs: Tensor[]) => Tensor, composed: (...xs: Tensor[]) => Tensor,
  reference: (values: number[][]) => Result): void {
  for (const dtype of ['float64', 'float32'] as DT[]) {
    ts.scope(() => {
      const inputs = inputs64.map((x) => x.to(dtype));
      const want = reference(inputs.map(flat)); // float64 loops on the (rounded) inputs
      const tol = dtype === 'float64' ? TOL64 : TOL32;
      const got = evaluate(fused, inputs);
      assertResult(`${what} ${dtype} fused vs float64 reference`, got, want, tol);
      const comp = evaluate(composed, inputs);
      // The composition rounds in its own order: in float32 it is itself only ~1e-5 accurate.
      // (Scalar gradients: relative to the magnitude of their terms, from the reference.)
      assertResult(`${what} ${dtype} fused vs composed`, got, { ...comp, mags: want.mags }, dtype === 'float64' ? TOL64 : 3 * TOL32, false);
    });
  }
}

// ---------------------------------------------------------------------------------------------

const CLIP_SHAPES: [number, number][] = [
  [1, 1], [1, 7], [2, 1], [3, 5], [17, 1], [31, 64], [128, 16], [129, 33], [191, 7], [193, 40], [257, 31], [300, 129],
  [70, 400], [20, 800], [1100, 20], // more than one 4-block super-block of rows per thread
];

test('clipLossFused = clipLoss(normalize: false) = float64 reference: values and gradients over shapes', () => {
  const seed = seedFor('clipLossFused sweep');
  const r = jsRandom(seed);
  for (const [n, d] of CLIP_SHAPES) {
    const s = randomScale(r);
    ts.scope(() => {
      const inputs = [embeddings(n, d), embeddings(n, d), ts.tensor(s, { dtype: 'float64' })];
      checkBoth(`clip [${n}, ${d}]`, inputs,
        (a, b, sc) => clipLossFused(a, b, sc),
        (a, b, sc) => ts.losses.clipLoss(a, b, sc, { normalize: false }),
        ([a, b, [sv]]) => refSoftmax(a, b, n, n, d, sv, (i, j) => i === j, 0.5, 0.5, false));
    });
  }
});

test('multiPositiveClipLoss (group ids, N != M, rows without positives) = composition = reference', () => {
  const seed = seedFor('multiPositiveClipLoss sweep');
  const r = jsRandom(seed);
  // [N, M, D, number of distinct ids]
  const shapes: [number, number, number, number][] = [
    [1, 1, 1, 1], [4, 6, 3, 2], [17, 5, 8, 3], [5, 17, 1, 4], [64, 100, 16, 10], [130, 200, 20, 50], [257, 129, 31, 40],
    [200, 300, 64, 1000], [40, 40, 12, 40], [1030, 700, 8, 300],
  ];
  for (const [n, m, d, groups] of shapes) {
    const rid = Array.from({ length: n }, () => Math.floor(r() * groups));
    const cid = Array.from({ length: m }, () => Math.floor(r() * groups));
    cid[0] = rid[0]; // at least one positive pair
    const s = randomScale(r);
    ts.scope(() => {
      const rowIds = ts.tensor(Int32Array.from(rid));
      const colIds = ts.tensor(Int32Array.from(cid));
      const inputs = [embeddings(n, d), embeddings(m, d), ts.tensor(s, { dtype: 'float64' })];
      checkBoth(`multi-positive [${n}, ${m}, ${d}] ids < ${groups}`, inputs,
        (a, b, sc) => multiPositiveClipLoss(a, b, sc, rowIds, colIds),
        (a, b, sc) => composedMultiPositive(a, b, sc, rid, cid),
        ([a, b, [sv]]) => refSoftmax(a, b, n, m, d, sv, (i, j) => rid[i] === cid[j], 0.5, 0.5, false));
    });
  }
});

test('multiPositiveClipLoss with distinct ids equals clipLossFused', () => {
  seedFor('multi-positive distinct');
  ts.scope(() => {
    const [n, d] = [150, 24];
    const a = embeddings(n, d);
    const b = embeddings(n, d);
    const s = ts.tensor(2.5, { dtype: 'float64' });
    const ids = ts.tensor(Int32Array.from({ length: n }, (_, i) => 1000 - 3 * i));
    const x = evaluate((p, q, r) => multiPositiveClipLoss(p, q, r, ids, ids), [a, b, s]);
    const y = evaluate((p, q, r) => clipLossFused(p, q, r), [a, b, s]);
    assertResult('distinct ids vs diagonal', x, y, 1e-13, false);
  });
});

test('ntXentLoss = masked-logits crossEntropy composition = reference', () => {
  const seed = seedFor('ntXentLoss sweep');
  const r = jsRandom(seed);
  const shapes: [number, number][] = [[1, 1], [1, 5], [2, 3], [7, 1], [64, 32], [97, 13], [150, 40], [65, 128], [30, 500], [530, 12]];
  for (const [n, d] of shapes) {
    const s = Math.log(2) + (r() - 0.5); // tau around 0.5
    ts.scope(() => {
      const inputs = [embeddings(n, d), embeddings(n, d), ts.tensor(s, { dtype: 'float64' })];
      checkBoth(`ntXent [${n}, ${d}]`, inputs,
        (z1, z2, sc) => ntXentLoss(z1, z2, sc),
        (z1, z2, sc) => composedNtXent(z1, z2, sc),
        ([z1, z2, [sv]]) => {
          const z = [...z1, ...z2];
          const ref = refSoftmax(z, z, 2 * n, 2 * n, d, sv, (i, j) => j === (i + n) % (2 * n), 1, 0, true);
          const gz = ref.grads[0].map((g, k) => g + ref.grads[1][k]); // z appears as both operands
          return { loss: ref.loss, grads: [gz.slice(0, n * d), gz.slice(n * d), ref.grads[2]], mags: ref.mags };
        });
    });
  }
});

test('sigLipLoss (diagonal and group ids, N != M) = logsigmoid composition = reference', () => {
  const seed = seedFor('sigLipLoss sweep');
  const r = jsRandom(seed);
  // [N, M, D, groups]; groups 0 = diagonal positives
  const shapes: [number, number, number, number][] = [
    [1, 1, 1, 0], [3, 3, 5, 0], [129, 129, 33, 0], [257, 257, 31, 0], [200, 200, 400, 0], [5, 3, 4, 2], [1, 7, 3, 2],
    [130, 200, 20, 50], [300, 100, 16, 7], [1100, 300, 10, 40],
  ];
  for (const [n, m, d, groups] of shapes) {
    const rid = Array.from({ length: n }, () => Math.floor(r() * Math.max(1, groups)));
    const cid = Array.from({ length: m }, () => Math.floor(r() * Math.max(1, groups)));
    const isPos = groups === 0 ? (i: number, j: number) => i === j : (i: number, j: number) => rid[i] === cid[j];
    // SigLIP's init (t = 10, bias = -10) and a trained-looking point
    for (const [s, bias] of [[SIGLIP_INIT.logitScale, SIGLIP_INIT.bias], [Math.log(20) + r() - 0.5, -2 - 4 * r()]]) {
      ts.scope(() => {
        const opts = groups === 0 ? undefined : { rowIds: ts.tensor(Int32Array.from(rid)), colIds: ts.tensor(Int32Array.from(cid)) };
        const inputs = [embeddings(n, d), embeddings(m, d), ts.tensor(s, { dtype: 'float64' }), ts.tensor(bias, { dtype: 'float64' })];
        checkBoth(`sigLip [${n}, ${m}, ${d}] ${groups ? `ids < ${groups}` : 'diagonal'} s ${s.toFixed(2)} bias ${bias.toFixed(2)}`, inputs,
          (a, b, sc, bi) => sigLipLoss(a, b, sc, bi, opts),
          (a, b, sc, bi) => composedSigLip(a, b, sc, bi, isPos),
          ([a, b, [sv], [bv]]) => refSigmoid(a, b, n, m, d, sv, bv, isPos));
      });
    }
  }
});

test('gradcheck (float64 central differences) for every fused loss', () => {
  seedFor('contrastive gradcheck');
  ts.scope(() => {
    const s = () => ts.tensor(1.1, { dtype: 'float64' });
    gradcheck('clipLossFused', (a, b, sc) => clipLossFused(a, b, sc), [embeddings(5, 4), embeddings(5, 4), s()]);
    gradcheck('clipLossFused [1, 3]', (a, b, sc) => clipLossFused(a, b, sc), [embeddings(1, 3), embeddings(1, 3), s()]);
    const rowIds = ts.tensor(Int32Array.from([0, 1, 1, 2, 5, 0]));
    const colIds = ts.tensor(Int32Array.from([1, 0, 2, 2, 1, 1, 7, 0]));
    gradcheck('multiPositiveClipLoss', (a, b, sc) => multiPositiveClipLoss(a, b, sc, rowIds, colIds), [embeddings(6, 3), embeddings(8, 3), s()]);
    gradcheck('ntXentLoss', (z1, z2, sc) => ntXentLoss(z1, z2, sc), [embeddings(4, 3), embeddings(4, 3), s()]);
    gradcheck('ntXentLoss [1, 2]', (z1, z2, sc) => ntXentLoss(z1, z2, sc), [embeddings(1, 2), embeddings(1, 2), s()]);
    gradcheck('sigLipLoss', (a, b, sc, bi) => sigLipLoss(a, b, sc, bi), [embeddings(5, 3), embeddings(5, 3), s(), ts.tensor(-1.5, { dtype: 'float64' })]);
    gradcheck('sigLipLoss ids', (a, b, sc, bi) => sigLipLoss(a, b, sc, bi, { rowIds, colIds }),
      [embeddings(6, 2), embeddings(8, 2), s(), ts.tensor(-0.5, { dtype: 'float64' })]);
    // bigger than one tile in both directions
    const r2 = ts.tensor(Int32Array.from({ length: 130 }, (_, i) => i % 37));
    const c2 = ts.tensor(Int32Array.from({ length: 200 }, (_, i) => (i * 7) % 41));
    gradcheck('multiPositiveClipLoss [130, 200, 3]', (a, b, sc) => multiPositiveClipLoss(a, b, sc, r2, c2),
      [embeddings(130, 3), embeddings(200, 3), s()]);
  });
  console.log(`  worst error vs the float64 reference: float64 ${worst64.toExponential(2)}, float32 ${worst32.toExponential(2)}`);
});

test('results do not depend on the thread count beyond rounding; non-contiguous inputs; noGrad', () => {
  seedFor('contrastive threads');
  const threads = ts.cpuInfo().threads;
  ts.scope(() => {
    const [n, d] = [300, 48];
    const inputs = [embeddings(n, d), embeddings(n, d), ts.tensor(2.2, { dtype: 'float64' })];
    const rid = ts.tensor(Int32Array.from({ length: n }, (_, i) => i % 50));
    const fns: [string, (...xs: Tensor[]) => Tensor][] = [
      ['clip', (a, b, s) => clipLossFused(a, b, s)],
      ['multi', (a, b, s) => multiPositiveClipLoss(a, b, s, rid, rid)],
      ['ntxent', (a, b, s) => ntXentLoss(a, b, s)],
      ['siglip', (a, b, s) => sigLipLoss(a, b, s, ts.tensor(-3, { dtype: 'float64' }))],
    ];
    for (const [name, fn] of fns) {
      const many = evaluate(fn, inputs);
      try {
        ts.setNumThreads(1);
        assertResult(`${name}: 1 thread vs ${threads}`, evaluate(fn, inputs), many, 1e-13, false);
        for (const nt of [3, 7]) { // more threads than cores: uneven chunks, many rounds
          ts.setNumThreads(nt);
          assertResult(`${name}: ${nt} threads vs ${threads}`, evaluate(fn, inputs), many, 1e-13, false);
        }
      } finally {
        ts.setNumThreads(threads);
      }
    }
    // b given as a transposed view ([D, M]^T): copied to contiguous internally
    const bt = inputs[1].T.contiguous().T;
    assert.ok(!bt.isContiguous());
    const x = evaluate((a, b, s) => clipLossFused(a, b, s), [inputs[0], bt, inputs[2]]);
    assertResult('non-contiguous b', x, evaluate(fns[0][1], inputs), 1e-15, false);
    const plain = ts.noGrad(() => clipLossFused(inputs[0], inputs[1], inputs[2]));
    assert.is(plain.gradFn, null);
    assert.ok(Math.abs(plain.item() - x.loss) < 1e-12);
    // a [1] logit scale gets a [1] gradient
    const s1 = ts.tensor([2.2], { dtype: 'float64' });
    s1.requiresGrad = true;
    clipLossFused(inputs[0], inputs[1], s1).backward();
    assert.equal(s1.grad!.shape, [1]);
    assert.ok(Math.abs(s1.grad!.item() - x.grads[2][0]) < 1e-12);
  });
});

test('every GEMM kernel level (AVX-512, AVX2, plain fallback) gives the same losses (child processes)', () => {
  const lib = path.resolve(__dirname, '..', '..', 'lib');
  const child = `
    const ts = require(${JSON.stringify(lib)});
    const C = require(${JSON.stringify(path.join(lib, 'losses', 'contrastive'))});
    ts.manualSeed(11);
    const out = [];
    for (const dtype of ['float64', 'float32']) {
      for (const [n, d] of [[5, 3], [133, 41], [200, 390], [600, 64]]) {
        const a = ts.randn([n, d], { dtype, std: 1 / Math.sqrt(d) }), b = ts.randn([n, d], { dtype, std: 1 / Math.sqrt(d) });
        const s = ts.tensor(2.3, { dtype }), bias = ts.tensor(-4, { dtype });
        const ids = ts.tensor(Int32Array.from({ length: n }, (_, i) => i % 7));
        for (const t of [a, b, s, bias]) t.requiresGrad = true;
        const losses = [C.clipLossFused(a, b, s), C.multiPositiveClipLoss(a, b, s, ids, ids), C.ntXentLoss(a, b, s), C.sigLipLoss(a, b, s, bias)];
        for (const l of losses) {
          for (const t of [a, b, s, bias]) t.grad = null;
          l.backward();
          out.push(l.item(), ...[a, b, s].map((t) => Array.from(t.grad.toTypedArray()).reduce((x, y) => x + Math.abs(y), 0)));
        }
      }
    }
    console.log(JSON.stringify(out));`;
  const run = (level: string | undefined) => {
    const env = { ...process.env };
    if (level) env.TESSERA_MATMUL_KERNEL = level;
    else delete env.TESSERA_MATMUL_KERNEL;
    const r = spawnSync(process.execPath, ['-e', child], { env, encoding: 'utf8' });
    assert.is(r.status, 0, `child (${level ?? 'default'}) failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
  };
  const best = run(undefined);
  for (const level of ['avx2', 'generic']) {
    const other = run(level);
    assert.is(other.length, best.length);
    best.forEach((v, k) => {
      const tol = k < best.length / 2 ? 1e-11 : 2e-5; // first half float64, second float32
      assert.ok(Math.abs(other[k] - v) <= tol * Math.max(1, Math.abs(v)), `${level}: value ${k} is ${other[k]}, default kernel gives ${v}`);
    });
  }
});

test('argument errors name the op, the tensors and what was expected', () => {
  const f = (shape: number[], dtype: DT = 'float32') => ts.zeros(shape, { dtype });
  const s = ts.tensor(2);
  assertThrows(() => clipLossFused(f([3, 4]), f([2, 4]), s), ['clipLossFused', 'float32[3, 4]', 'float32[2, 4]', 'same number of rows'], 'N mismatch');
  assertThrows(() => clipLossFused(f([3, 4]), f([3, 5]), s), ['clipLossFused', '[3, 4]', '[3, 5]', 'embedding size D'], 'D mismatch');
  assertThrows(() => clipLossFused(f([3, 4]), f([3, 4], 'float64'), s), ['clipLossFused', 'b float64[3, 4]', 'dtype'], 'dtype mismatch');
  assertThrows(() => clipLossFused(f([3, 4]), f([3, 4]), ts.zeros([2])), ['clipLossFused', 'logitScale', '[2]'], 'scale shape');
  assertThrows(() => clipLossFused(f([3, 4]), f([3, 4]), ts.tensor(2, { dtype: 'float64' })), ['logitScale float64[]', 'dtype'], 'scale dtype');
  assertThrows(() => clipLossFused(ts.zeros([3, 4], { dtype: 'int32' }), f([3, 4]), s), ['clipLossFused', 'float32 or float64'], 'int a');
  assertThrows(() => clipLossFused(f([3]), f([3, 4]), s), ['clipLossFused', 'a must have shape [N, D]', 'float32[3]'], '1-d a');
  assertThrows(() => clipLossFused(f([0, 4]), f([0, 4]), s), ['clipLossFused', 'at least one row'], 'empty');
  assertThrows(() => clipLossFused(f([3, 4]), f([3, 4]), ts.tensor(NaN)), ['clipLossFused', 'logitScale float32[]', 'finite', 'NaN'], 'NaN scale');
  assertThrows(() => clipLossFused(f([3, 4]), f([3, 4]), ts.tensor(100)), ['clipLossFused', 'exp(logitScale) = exp(100) overflows float32'], 'huge scale');
  const ids3 = ts.tensor(Int32Array.from([0, 1, 2]));
  assertThrows(() => multiPositiveClipLoss(f([3, 4]), f([2, 4]), s, ids3, ids3), ['multiPositiveClipLoss', 'colIds', 'shape [2]', 'int32[3]'], 'ids length');
  assertThrows(() => multiPositiveClipLoss(f([3, 4]), f([3, 4]), s, ts.tensor([0, 1, 2]), ids3), ['multiPositiveClipLoss', 'rowIds', 'int32', 'float32[3]'], 'ids dtype');
  assertThrows(() => multiPositiveClipLoss(f([2, 4]), f([2, 4]), s, ts.tensor(Int32Array.from([0, 0])), ts.tensor(Int32Array.from([1, 1]))),
    ['multiPositiveClipLoss', 'no row of a has a positive'], 'no positives (native)');
  assertThrows(() => ntXentLoss(f([3, 4]), f([4, 4]), s), ['ntXentLoss', 'z1 float32[3, 4]', 'z2 float32[4, 4]'], 'views differ');
  assertThrows(() => sigLipLoss(f([3, 4]), f([2, 4]), s, ts.tensor(-10)), ['sigLipLoss', 'same number of rows', 'rowIds'], 'siglip N != M');
  assertThrows(() => sigLipLoss(f([3, 4]), f([3, 4]), s, ts.zeros([2])), ['sigLipLoss', 'bias', '[2]'], 'bias shape');
  assertThrows(() => sigLipLoss(f([3, 4]), f([3, 4]), s, ts.tensor(Infinity)), ['sigLipLoss', 'bias float32[] must be finite'], 'bias inf');
  assertThrows(() => sigLipLoss(f([3, 4]), f([3, 4]), s, ts.tensor(0), { rowIds: ids3 }), ['sigLipLoss', 'both rowIds and colIds'], 'one of the ids');
  // The native kernels check everything themselves too (the op table can be called directly).
  const a = f([3, 4]);
  const scalars = [0, 0.5, 0.5, 0];
  const vec = (n: number) => f([n]);
  assertThrows(() => runKernel('contrastive_softmax', [a, f([3, 5]), s, f([]), vec(3), vec(3)], scalars),
    ['contrastive_softmax', 'float32[3, 4]', 'float32[3, 5]', 'embedding size D'], 'native D mismatch');
  assertThrows(() => runKernel('contrastive_softmax', [a, a, s, f([]), vec(3), vec(3), ts.tensor([0, 1, 2]), ids3], scalars),
    ['contrastive_softmax', 'row_ids', 'int32', 'float32[3]'], 'native ids dtype');
  assertThrows(() => runKernel('contrastive_softmax', [a, f([2, 4]), s, f([]), vec(3), vec(2)], scalars),
    ['contrastive_softmax', 'N == M', 'float32[3, 4]', 'float32[2, 4]'], 'native offset mode needs a square');
  assertThrows(() => runKernel('contrastive_softmax', [a, a, s, f([]), vec(2), vec(3)], scalars), ['contrastive_softmax', 'lse_row', '3 elements'], 'native lse size');
  assertThrows(() => runKernel('contrastive_softmax', [a, a, s, f([]), vec(3), vec(3)], [0, 0.5, 0.5, 1]), ['contrastive_softmax', 'self_mask with offset 0'], 'native self mask');
  assertThrows(() => runKernel('contrastive_softmax', [a, a, ts.tensor(NaN), f([]), vec(3), vec(3)], scalars),
    ['contrastive_softmax', 'logit scale (log temperature) must be finite'], 'native NaN scale');
  assertThrows(() => runKernel('contrastive_sigmoid', [a, a, s, ts.tensor(NaN), f([])]), ['contrastive_sigmoid', 'bias must be finite'], 'native NaN bias');
  assertThrows(() => runKernel('contrastive_sigmoid_backward', [a, a, s, s, s, a, f([3, 3]), s, s], []), ['contrastive_sigmoid_backward', 'grad_b', 'float32[3, 3]'], 'native grad shape');
});

test('memory: CLIP loss forward + backward at N = 16384, D = 256 (float32) stays far below the N x N logits', () => {
  // In a fresh process, so that the allocator's peak counter (monotonic) starts from this case.
  const lib = path.resolve(__dirname, '..', '..', 'lib');
  const child = `
    const ts = require(${JSON.stringify(lib)});
    const C = require(${JSON.stringify(path.join(lib, 'losses', 'contrastive'))});
    ts.manualSeed(5);
    const N = 16384, D = 256;
    const a = ts.randn([N, D], { std: 1 / 16 }), b = ts.randn([N, D], { std: 1 / 16 }), s = ts.tensor(Math.log(1 / 0.07));
    for (const t of [a, b, s]) t.requiresGrad = true;
    const before = ts.memoryStats();
    const t0 = process.hrtime.bigint();
    const loss = C.clipLossFused(a, b, s);
    loss.backward();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const after = ts.memoryStats();
    console.log(JSON.stringify({ peakExtra: after.hostPeakBytes - before.hostBytes, gradBytes: a.grad.numel * 4 + b.grad.numel * 4,
      loss: loss.item(), gs: s.grad.item(), ga: a.grad.abs().sum().item(), ms, threads: ts.cpuInfo().threads }));`;
  const r = spawnSync(process.execPath, ['-e', child], { env: process.env, encoding: 'utf8' });
  assert.is(r.status, 0, `child failed: ${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { peakExtra: number; gradBytes: number; loss: number; gs: number; ga: number; ms: number; threads: number };
  const MiB = 1 << 20;
  console.log(`  N = 16384, D = 256, ${res.threads} threads: peak extra native memory ${(res.peakExtra / MiB).toFixed(1)} MiB (of which gradients of a and b ${(res.gradBytes / MiB).toFixed(0)} MiB; the logits alone would be 1024 MiB), forward + backward ${res.ms.toFixed(0)} ms`);
  assert.ok(Number.isFinite(res.loss) && Number.isFinite(res.gs) && Number.isFinite(res.ga) && res.ga > 0, `finite loss and gradients: ${r.stdout}`);
  // Near log(N) for nearly orthogonal random embeddings at this temperature.
  assert.ok(Math.abs(res.loss - Math.log(16384)) < 2, `loss ${res.loss} near log N`);
  assert.ok(res.peakExtra >= res.gradBytes, 'the measurement sees at least the two gradients');
  // O(N + M) saved statistics + the gradients + O(threads x tile) scratch (about 3 MiB per thread
  // at D = 256): under 64 MiB up to 4 threads, and far below the 1024 MiB of logits at any count.
  const bound = res.gradBytes + 8 * MiB + 4 * MiB * res.threads;
  assert.ok(res.peakExtra < Math.min(bound, 256 * MiB),
    `peak extra memory ${(res.peakExtra / MiB).toFixed(1)} MiB must stay below ${(Math.min(bound, 256 * MiB) / MiB).toFixed(0)} MiB (N * N * 4 = 1024 MiB)`);
});

test.run();
