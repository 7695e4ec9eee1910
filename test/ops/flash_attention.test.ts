// flashAttention (the fused FlashAttention-2 kernel, native/cpu/flash_attention.cpp) against an
// independent float64 JS loop reference (values and the gradients of q, k, v) and against the
// composition it replaces (attentionReference): a shape sweep over head dims {1, 16, 32, 64, 128}
// and sequence lengths {1, 7, 64, 65, 130} (Lq != Lk, lengths that are not multiples of the
// tile), no mask / key padding / causal / both; fully masked rows (zero output, finite zero
// gradients, no NaN); float64 gradchecks; the FlashAttention accuracy rule (the float32 fused
// error against a float64 reference is at most ~2x the float32 composition's); strided and
// broadcast inputs; determinism; scaledDotProductAttention routing to the kernel; every
// micro-kernel level and small tiles (child processes); peak memory at L = 4096 (child
// process); argument errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { flashAttention } from '../../lib/ops/flash_attention';
import { attentionReference, scaledDotProductAttention } from '../../lib/nn/attention';
import { assertClose, assertThrows, flat, gradcheck, relError, seedFor } from '../helpers/check';

const f64 = { dtype: 'float64' } as const;
type Blocked = (b: number, h: number, i: number, j: number) => boolean;

/**
 * float64 attention over [B, H, L, d] row-major arrays, and the gradients of sum(dO * O):
 * per row, softmax over the visible keys; a row with no visible key gives 0 and no gradient.
 */
function attentionRef(q: number[], k: number[], v: number[], dO: number[], B: number, H: number, Lq: number, Lk: number,
  hd: number, hdv: number, blocked: Blocked, scale: number) {
  const o = new Array<number>(B * H * Lq * hdv).fill(0);
  const dq = new Array<number>(B * H * Lq * hd).fill(0);
  const dk = new Array<number>(B * H * Lk * hd).fill(0);
  const dv = new Array<number>(B * H * Lk * hdv).fill(0);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const n = b * H + h;
      for (let i = 0; i < Lq; i++) {
        const qi = (n * Lq + i) * hd;
        const keys: number[] = [];
        const s: number[] = [];
        for (let j = 0; j < Lk; j++) {
          if (blocked(b, h, i, j)) continue;
          let dot = 0;
          for (let c = 0; c < hd; c++) dot += q[qi + c] * k[(n * Lk + j) * hd + c];
          keys.push(j);
          s.push(dot * scale);
        }
        if (!keys.length) continue;
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        const p = e.map((x) => x / z);
        const oi = (n * Lq + i) * hdv;
        keys.forEach((j, t) => {
          for (let c = 0; c < hdv; c++) o[oi + c] += p[t] * v[(n * Lk + j) * hdv + c];
        });
        const dp = keys.map((j) => {
          let d = 0;
          for (let c = 0; c < hdv; c++) d += dO[oi + c] * v[(n * Lk + j) * hdv + c];
          return d;
        });
        const D = p.reduce((a, pt, t) => a + pt * dp[t], 0);
        keys.forEach((j, t) => {
          const ds = p[t] * (dp[t] - D) * scale;
          for (let c = 0; c < hd; c++) {
            dq[qi + c] += ds * k[(n * Lk + j) * hd + c];
            dk[(n * Lk + j) * hd + c] += ds * q[qi + c];
          }
          for (let c = 0; c < hdv; c++) dv[(n * Lk + j) * hdv + c] += p[t] * dO[oi + c];
        });
      }
    }
  return { o, dq, dk, dv };
}

/** Output and q, k, v gradients of `fn` for upstream gradient g (fresh leaves, so nothing accumulates). */
function run(fn: (q: Tensor, k: Tensor, v: Tensor) => Tensor, q: Tensor, k: Tensor, v: Tensor, g: Tensor) {
  const xs = [q, k, v].map((t) => t.detach().clone());
  xs.forEach((t) => (t.requiresGrad = true));
  const o = fn(xs[0], xs[1], xs[2]);
  o.backward(g);
  return { o: flat(o), dq: flat(xs[0].grad!), dk: flat(xs[1].grad!), dv: flat(xs[2].grad!) };
}

const noNaN = (xs: number[], what: string) => assert.ok(xs.every(Number.isFinite), `${what}: non-finite values`);
const MASKS = ['none', 'padding', 'causal', 'padding+causal'] as const;

/** A [B, Lk] 0/1 padding pattern: ~1/4 padded, batch entry 1 (when present) padded from key 3 on. */
function paddingData(B: number, Lk: number, seed: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let j = 0; j < Lk; j++) out.push(b === 1 ? (j >= 3 ? 1 : 0) : (j * 7 + seed * 3 + b) % 4 === 1 ? 1 : 0);
  return out;
}

test('shape sweep: fused = float64 loop reference = composition, values and q/k/v gradients, all mask kinds', () => {
  seedFor('flash sweep');
  const lens = [1, 7, 64, 65, 130];
  const cases: [number, number, number][] = []; // [hd, Lq, Lk]
  for (const hd of [16, 64]) for (const lq of lens) for (const lk of lens) cases.push([hd, lq, lk]);
  for (const hd of [1, 32, 128]) for (const [lq, lk] of [[1, 1], [7, 130], [65, 64], [130, 65], [130, 130], [64, 7]]) cases.push([hd, lq, lk]);
  let n = 0;
  for (const [hd, Lq, Lk] of cases) {
    const kind = MASKS[n % MASKS.length];
    const [B, H] = n % 3 === 0 ? [2, 2] : n % 3 === 1 ? [1, 3] : [2, 1];
    const hdv = n % 5 === 4 ? Math.max(1, hd >> 1) : hd; // sometimes a different value dim
    n++;
    const what = `hd ${hd} hdv ${hdv} Lq ${Lq} Lk ${Lk} B ${B} H ${H} ${kind}`;
    ts.scope(() => {
      const q = ts.randn([B, H, Lq, hd], f64);
      const k = ts.randn([B, H, Lk, hd], f64);
      const v = ts.randn([B, H, Lk, hdv], f64);
      const g = ts.randn([B, H, Lq, hdv], f64);
      const padding = kind.includes('padding');
      const causal = kind.includes('causal');
      const pad = paddingData(B, Lk, n);
      const kpm = padding ? ts.tensor(pad, { shape: [B, Lk] }) : null;
      const blocked: Blocked = (b, _h, i, j) => (padding && pad[b * Lk + j] === 1) || (causal && j > i);
      const scale = 1 / Math.sqrt(hd);
      const ref = attentionRef(flat(q), flat(k), flat(v), flat(g), B, H, Lq, Lk, hd, hdv, blocked, scale);
      const fused = run((a, b, c) => flashAttention(a, b, c, { keyPaddingMask: kpm, causal }), q, k, v, g);
      const comp = run((a, b, c) => attentionReference(a, b, c, { mask: kpm ? kpm.reshape([B, 1, 1, Lk]) : null, causal }), q, k, v, g);
      for (const key of ['o', 'dq', 'dk', 'dv'] as const) {
        noNaN(fused[key], `${what} ${key}`);
        assertClose(fused[key], ref[key], 1e-10, 1e-11, `${what}: fused ${key} vs loop reference`);
        assertClose(fused[key], comp[key], 1e-10, 1e-11, `${what}: fused ${key} vs composition`);
      }
    });
  }
});

test('fully masked rows: zero output, finite zero gradients, never NaN (padding, left padding + causal, everything)', () => {
  seedFor('flash fully masked');
  ts.scope(() => {
    const [B, H, L, hd] = [3, 2, 70, 16];
    const q = ts.randn([B, H, L, hd], f64);
    const k = ts.randn([B, H, L, hd], f64);
    const v = ts.randn([B, H, L, hd], f64);
    const g = ts.randn([B, H, L, hd], f64);
    // batch 0: every key padded; batch 1: left padding of 5 (queries 0..4 fully blocked under
    // causal); batch 2: nothing padded.
    const pad: number[] = [];
    for (let b = 0; b < B; b++) for (let j = 0; j < L; j++) pad.push(b === 0 || (b === 1 && j < 5) ? 1 : 0);
    for (const dtype of ['float64', 'float32'] as const)
      for (const causal of [false, true]) {
        const cast = (t: Tensor) => t.to(dtype);
        const r = run((a, b, c) => flashAttention(a, b, c, { keyPaddingMask: ts.tensor(pad, { shape: [B, L], dtype: 'int32' }), causal }),
          cast(q), cast(k), cast(v), cast(g));
        for (const key of ['o', 'dq', 'dk', 'dv'] as const) noNaN(r[key], `${dtype} causal=${causal} ${key}`);
        const per = H * L * hd; // one batch entry
        for (const key of ['o', 'dq', 'dk', 'dv'] as const)
          assert.ok(r[key].slice(0, per).every((x) => x === 0), `${dtype} causal=${causal}: batch 0 ${key} is exactly zero`);
        for (let h = 0; h < H; h++) {
          const base = per + h * L * hd;
          // padded keys of batch 1 get no gradient; under causal its first 5 queries see nothing
          assert.ok(r.dk.slice(base, base + 5 * hd).every((x) => x === 0), 'padded keys: zero dk');
          assert.ok(r.dv.slice(base, base + 5 * hd).every((x) => x === 0), 'padded keys: zero dv');
          if (causal) {
            assert.ok(r.o.slice(base, base + 5 * hd).every((x) => x === 0), 'left-padded causal rows: zero output');
            assert.ok(r.dq.slice(base, base + 5 * hd).every((x) => x === 0), 'left-padded causal rows: zero dq');
          }
        }
        assert.ok(r.o.slice(2 * per).some((x) => x !== 0) && r.dq.slice(2 * per).some((x) => x !== 0), 'batch 2 is live');
      }
    // every key of every batch entry padded
    const all = run((a, b, c) => flashAttention(a, b, c, { keyPaddingMask: ts.ones([B, L]), causal: true }), q, k, v, g);
    for (const key of ['o', 'dq', 'dk', 'dv'] as const) assert.ok(all[key].every((x) => x === 0), `all padded: ${key} zero`);
  });
});

test('gradcheck (float64, central differences): plain, scale, causal, padding with a fully masked row, Lq != Lk', () => {
  seedFor('flash gradcheck');
  ts.scope(() => {
    const q = ts.randn([2, 2, 3, 4], f64);
    const k = ts.randn([2, 2, 5, 4], f64);
    const v = ts.randn([2, 2, 5, 3], f64);
    gradcheck('flash', (a, b, c) => flashAttention(a, b, c), [q, k, v]);
    gradcheck('flash scale', (a, b, c) => flashAttention(a, b, c, { scale: 0.7 }), [q, k, v]);
    gradcheck('flash causal', (a, b, c) => flashAttention(a, b, c, { causal: true }), [q, k, v]);
    const kpm = ts.tensor([[1, 0, 0, 1, 0], [1, 1, 1, 1, 1]]); // batch 1 fully padded
    gradcheck('flash padding', (a, b, c) => flashAttention(a, b, c, { keyPaddingMask: kpm }), [q, k, v]);
    const left = ts.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]]); // batch 0 queries 0, 1 fully blocked under causal
    gradcheck('flash padding + causal', (a, b, c) => flashAttention(a, b, c, { keyPaddingMask: left, causal: true }), [q, k, v]);
    // several tiles in both directions (96-row blocks): Lq = 100, Lk = 98, tiny head dims
    const q2 = ts.randn([1, 1, 100, 2], f64);
    const k2 = ts.randn([1, 1, 98, 2], f64);
    const v2 = ts.randn([1, 1, 98, 1], f64);
    gradcheck('flash multi-tile causal', (a, b, c) => flashAttention(a, b, c, { causal: true }), [q2, k2, v2]);
  });
});

test('float32 accuracy: fused vs float64 reference within ~2x of the float32 composition (FlashAttention rule)', () => {
  // Error of each float32 result (output and the three gradients) against the float64
  // composition on the same float64 inputs. The rule: the fused RMS error is at most 2x the
  // float32 composition's (the FlashAttention criterion; over 24 seeds of these shapes the worst
  // ratio was 1.44); the largest single error must also stay at float32 level (relative 1e-5).
  // The ratio of max errors is printed but not bounded: it is the ratio of two single rounding
  // outcomes and heavy-tailed (up to 5x for dk of Lq = 7, whose elements sum 7 terms each).
  // Gradient errors exceed the composition's mostly because the fused backward uses
  // D = rowsum(dO * O) (FlashAttention-2), while the composition's softmax backward forms
  // D = sum(P * dP) from the same rounded dP it subtracts D from: where one key dominates a row
  // (few visible keys: early causal rows, heavy padding) the composition's errors cancel and the
  // fused ones do not. Head dim 1 is left out: with one product per score the composition's
  // errors nearly vanish and D's dominate (RMS ratio up to 2.3); its correctness is covered in
  // float64 by the sweep.
  seedFor('flash accuracy');
  const shapes: [number, number, number, number, number, string][] = [
    [2, 2, 130, 65, 64, 'none'], [1, 2, 257, 257, 128, 'causal'], [2, 4, 200, 200, 32, 'padding'],
    [1, 2, 1000, 1000, 64, 'padding+causal'], [1, 1, 7, 1500, 16, 'none'], [2, 2, 96, 96, 16, 'causal'], [2, 4, 200, 200, 32, 'few keys'],
  ];
  const rms = (a: number[], e: number[]) => {
    let n = 0;
    let d = 0;
    for (let i = 0; i < a.length; i++) {
      n += (a[i] - e[i]) ** 2;
      d += e[i] ** 2;
    }
    return Math.sqrt(n / d);
  };
  const report: string[] = [];
  for (const [B, H, Lq, Lk, hd, kind] of shapes)
    ts.scope(() => {
      const q = ts.randn([B, H, Lq, hd], f64);
      const k = ts.randn([B, H, Lk, hd], f64);
      const v = ts.randn([B, H, Lk, hd], f64);
      const g = ts.randn([B, H, Lq, hd], f64);
      // about a quarter of the keys padded; 'few keys': batch entry 1 sees only keys 0..2
      const pad = Array.from({ length: B * Lk }, (_, i) => (kind === 'few keys' && i >= Lk ? i % Lk >= 3 : (i * 7 + 3) % 4 === 1) ? 1 : 0);
      const kpm = kind.includes('padding') || kind === 'few keys' ? ts.tensor(pad, { shape: [B, Lk] }) : null;
      const causal = kind.includes('causal');
      const fusedFn = (a: Tensor, b: Tensor, c: Tensor) => flashAttention(a, b, c, { keyPaddingMask: kpm, causal });
      const compFn = (a: Tensor, b: Tensor, c: Tensor) => attentionReference(a, b, c, { mask: kpm ? kpm.reshape([B, 1, 1, Lk]) : null, causal });
      const ref = run(compFn, q, k, v, g);
      const to32 = (t: Tensor) => t.to('float32');
      const fused = run(fusedFn, to32(q), to32(k), to32(v), to32(g));
      const comp = run(compFn, to32(q), to32(k), to32(v), to32(g));
      const line: string[] = [];
      const what = `[${B},${H},${Lq},${Lk},${hd}] ${kind}`;
      for (const key of ['o', 'dq', 'dk', 'dv'] as const) {
        const maxRatio = relError(fused[key], ref[key]) / relError(comp[key], ref[key]);
        const rmsRatio = rms(fused[key], ref[key]) / rms(comp[key], ref[key]);
        line.push(`${key} ${rmsRatio.toFixed(2)}/${maxRatio.toFixed(2)}`);
        assert.ok(rmsRatio <= 2, `${what} ${key}: fused RMS error ${rmsRatio.toFixed(2)}x the composition's`);
        assert.ok(relError(fused[key], ref[key]) < 1e-5, `${what} ${key}: fused max error ${relError(fused[key], ref[key])}`);
      }
      report.push(`  ${what}: fused/composition error ratio (RMS/max) ${line.join(', ')}`);
    });
  console.log(report.join('\n'));
});

test('layouts: strided (MHA-style) views, a transposed last dim, broadcast [1, Lk] and float/int masks, float32', () => {
  seedFor('flash layouts');
  ts.scope(() => {
    const [B, L, H, hd] = [2, 37, 3, 8];
    // [B, L, 3, H, hd] -> [3, B, H, L, hd], as MultiHeadAttention does: non-contiguous q, k, v
    const qkv = ts.randn([B, L, 3, H, hd], f64).permute([2, 0, 3, 1, 4]);
    const [q, k, v] = [0, 1, 2].map((i) => qkv.select(0, i));
    assert.ok(!q.isContiguous(), 'strided input');
    const g = ts.randn([B, H, L, hd], f64);
    const pad = paddingData(B, L, 5);
    const ref = attentionRef(flat(q), flat(k), flat(v), flat(g), B, H, L, L, hd, hd, (b, _h, i, j) => pad[b * L + j] === 1 || j > i, 1 / Math.sqrt(hd));
    for (const mdt of ['float32', 'float64', 'int32'] as const) {
      const r = run((a, b, c) => flashAttention(a, b, c, { keyPaddingMask: ts.tensor(pad, { shape: [B, L], dtype: mdt }), causal: true }), q, k, v, g);
      for (const key of ['o', 'dq', 'dk', 'dv'] as const) assertClose(r[key], ref[key], 1e-10, 1e-11, `strided, ${mdt} mask: ${key}`);
    }
    // the last dim not unit-stride (a transposed view): copied by the op
    const kT = ts.randn([B, H, hd, L], f64).transpose(-2, -1);
    assert.ok(kT.strides[3] !== 1, 'non-unit last stride');
    const r1 = run((a, b, c) => flashAttention(a, b, c), q, kT, v, g);
    const r2 = run((a, b, c) => flashAttention(a, b, c), q, kT.contiguous(), v, g);
    for (const key of ['o', 'dq', 'dk', 'dv'] as const) assert.equal(r1[key], r2[key], `transposed k: ${key}`);
    // a [1, Lk] mask broadcasts over the batch
    const one = pad.slice(0, L);
    const r3 = flat(flashAttention(q, k, v, { keyPaddingMask: ts.tensor(one, { shape: [1, L] }) }));
    const r4 = flat(flashAttention(q, k, v, { keyPaddingMask: ts.tensor([...one, ...one], { shape: [B, L] }) }));
    assert.equal(r3, r4, 'broadcast mask');
    // float32 against the float64 loop reference
    const to32 = (t: Tensor) => t.to('float32');
    const r5 = run((a, b, c) => flashAttention(a, b, c, { keyPaddingMask: ts.tensor(pad, { shape: [B, L] }), causal: true }), to32(q), to32(k), to32(v), to32(g));
    for (const key of ['o', 'dq', 'dk', 'dv'] as const) assertClose(r5[key], ref[key], 1e-4, 1e-5, `float32 ${key}`);
  });
});

test('deterministic: identical bits on repeated runs; the same for any thread count except dQ partials', () => {
  seedFor('flash determinism');
  const threads = ts.cpuInfo().threads;
  try {
    ts.scope(() => {
      // B*H = 1 < 2 * threads: the backward splits keys into segments with dQ partials
      for (const [B, H] of [[1, 1], [4, 4]]) {
        const q = ts.randn([B, H, 300, 32]);
        const k = ts.randn([B, H, 300, 32]);
        const v = ts.randn([B, H, 300, 32]);
        const g = ts.randn([B, H, 300, 32]);
        const f = (a: Tensor, b: Tensor, c: Tensor) => flashAttention(a, b, c, { causal: true });
        const a = run(f, q, k, v, g);
        const b = run(f, q, k, v, g);
        for (const key of ['o', 'dq', 'dk', 'dv'] as const) assert.equal(a[key], b[key], `[${B}, ${H}] repeat: ${key}`);
        ts.setNumThreads(1);
        const c = run(f, q, k, v, g);
        ts.setNumThreads(threads);
        assert.equal(c.o, a.o, `[${B}, ${H}] forward, 1 thread vs ${threads}`);
        // one unit per head (B*H >= 2 * threads): no dQ partials, so the same bits for any thread count
        for (const key of ['dq', 'dk', 'dv'] as const)
          if (B * H >= 2 * threads) assert.equal(c[key], a[key], `[${B}, ${H}] ${key}, 1 thread vs ${threads}`);
          else assertClose(c[key], a[key], 1e-4, 1e-5, `[${B}, ${H}] ${key}, 1 thread`);
      }
    });
  } finally {
    ts.setNumThreads(threads);
  }
});

test('scaledDotProductAttention runs the fused kernel for no mask / key padding / causal, the composition otherwise', () => {
  seedFor('flash routing');
  ts.scope(() => {
    const q = ts.randn([2, 3, 5, 4], { ...f64, requiresGrad: true });
    const kpm = ts.tensor([[0, 0, 1, 0, 1], [1, 0, 0, 0, 0]]);
    const name = (o: Tensor) => o.gradFn?.name;
    assert.is(name(scaledDotProductAttention(q, q, q)), 'flashAttention', 'no mask');
    assert.is(name(scaledDotProductAttention(q, q, q, { causal: true })), 'flashAttention', 'causal');
    assert.is(name(scaledDotProductAttention(q, q, q, { mask: kpm.reshape([2, 1, 1, 5]) })), 'flashAttention', 'key padding [B, 1, 1, Lk]');
    assert.is(name(scaledDotProductAttention(q, q, q, { mask: ts.zeros([5]), causal: true })), 'flashAttention', 'key padding [Lk]');
    assert.is(name(scaledDotProductAttention(q, q, q, { mask: ts.zeros([5, 5]) })), 'matmul', 'per-query mask: composition');
    assert.is(name(scaledDotProductAttention(q, q, q, { dropout: 0.5 })), 'matmul', 'dropout: composition');
    // 3-D and 2-D inputs go through the kernel too (as [N, 1, L, d] / [1, 1, L, d]) and agree
    const q3 = ts.randn([4, 6, 8], { ...f64, requiresGrad: true });
    const m3 = ts.tensor([[0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]]).reshape([4, 1, 6]);
    const o3 = scaledDotProductAttention(q3, q3, q3, { mask: m3, causal: true });
    assert.equal([...o3.shape], [4, 6, 8]);
    assertClose(flat(o3), flat(attentionReference(q3, q3, q3, { mask: m3, causal: true })), 1e-12, 1e-13, '3-D');
    const q2 = ts.randn([6, 8], f64);
    assertClose(flat(scaledDotProductAttention(q2, q2, q2, { mask: ts.tensor([0, 1, 0, 0, 1, 0]) })),
      flat(attentionReference(q2, q2, q2, { mask: ts.tensor([0, 1, 0, 0, 1, 0]) })), 1e-12, 1e-13, '2-D');
  });
});

test('every micro-kernel level and small tiles agree with the composition (child processes)', () => {
  const child = path.join(__dirname, '..', 'helpers', 'flash_attention_child.js');
  const levels = [{}, { TESSERA_MATMUL_KERNEL: 'avx2' }, { TESSERA_MATMUL_KERNEL: 'generic' }, { TESSERA_FA_BLOCK: '8' }];
  for (const extra of levels) {
    const r = spawnSync(process.execPath, [child, 'kernels'], { env: { ...process.env, ...extra }, encoding: 'utf8', timeout: 300_000 });
    assert.is(r.status, 0, `child ${JSON.stringify(extra)} failed:\n${r.stderr.slice(-2000)}`);
    const { worst } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { worst: [string, number][] };
    for (const [label, err] of worst) {
      const tol = label.startsWith('float64') ? 1e-12 : 2e-5;
      assert.ok(err < tol, `${JSON.stringify(extra)} ${label}: error ${err} >= ${tol}`);
    }
  }
});

test('memory: B=1, H=4, L=4096, hd=64 float32 forward + backward peaks far below the H*L*L*4 bytes of one score matrix', () => {
  const child = path.join(__dirname, '..', 'helpers', 'flash_attention_child.js');
  const [B, H, L, hd] = [1, 4, 4096, 64];
  const scores = H * L * L * 4; // 256 MiB: what the composition allocates for each of scores, probabilities, ...
  const tensor = B * H * L * hd * 4; // one of q, k, v, out, dq, ...
  const threads = ts.cpuInfo().threads;
  // The design's bound (native/cpu/flash_attention.cpp, MEMORY): out, L and the three gradients;
  // the packed query-side operands (about 4 tensors: of every head in shared mode, of one head
  // per thread in head mode); at most 2 * B*H + threads one-head dQ buffers or partials; tiles.
  const head = tensor / (B * H);
  const bound = 4 * tensor + B * H * L * 8 + 5 * tensor + (2 * B * H + threads) * head + threads * 2 ** 18;
  for (const causal of [false, true]) {
    const r = spawnSync(process.execPath, [child, 'memory', String(B), String(H), String(L), String(hd), causal ? 'causal' : ''],
      { env: process.env, encoding: 'utf8', timeout: 300_000 });
    assert.is(r.status, 0, `memory child failed:\n${r.stderr.slice(-2000)}`);
    const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { extraPeak: number; inputs: number; grads: boolean; peakBefore: number };
    assert.ok(m.grads, 'finite gradients');
    console.log(`  L=${L} causal=${causal}, ${threads} threads: peak above the inputs ${(m.extraPeak / 2 ** 20).toFixed(1)} MiB ` +
      `(output, log-sum-exp and 3 gradients alone: ${((4 * tensor + B * H * L * 8) / 2 ** 20).toFixed(1)} MiB; bound ${(bound / 2 ** 20).toFixed(1)} MiB; one score matrix: ${scores / 2 ** 20} MiB)`);
    assert.ok(m.peakBefore <= m.inputs + 2 ** 20, 'fresh process: no earlier, higher peak');
    assert.ok(m.extraPeak <= bound, `peak ${m.extraPeak} bytes above the design bound ${bound}`);
    assert.ok(m.extraPeak < scores / 2, `peak ${m.extraPeak} bytes is not far below ${scores}`);
  }
});

test('argument errors name the op and the problem', () => {
  ts.scope(() => {
    const q = ts.randn([1, 2, 3, 4]);
    assertThrows(() => flashAttention(q, ts.randn([1, 2, 3, 5]), q), ['flashAttention', 'k', '[B, H, Lk, hd]'], 'head dim');
    assertThrows(() => flashAttention(q, q, ts.randn([1, 2, 4, 4])), ['flashAttention', 'v', 'Lk'], 'keys');
    assertThrows(() => flashAttention(ts.randn([2, 3, 4]), q, q), ['flashAttention', 'q', '4-D'], 'ndim');
    assertThrows(() => flashAttention(q, q.to('float64'), q), ['flashAttention', 'same dtype'], 'dtype');
    assertThrows(() => flashAttention(q.to('int32'), q.to('int32'), q.to('int32')), ['flashAttention', 'float32 or float64'], 'int');
    assertThrows(() => flashAttention(q, q, q, { keyPaddingMask: ts.zeros([1, 4]) }), ['flashAttention', 'keyPaddingMask', '[B, Lk]'], 'mask');
    assertThrows(() => flashAttention(q, q, q, { scale: NaN }), ['flashAttention', 'scale'], 'scale');
    assertThrows(() => flashAttention(q, q, q, { causal: 1 as unknown as boolean }), ['flashAttention', 'causal'], 'causal');
    assertThrows(() => flashAttention(q, null as unknown as Tensor, q), ['flashAttention', 'k must be a Tensor'], 'not a tensor');
  });
});

test.run();
