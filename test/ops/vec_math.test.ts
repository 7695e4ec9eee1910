// The float32 transcendental kernels (native/cpu/vec_math.h, used by native/cpu/unary.cpp):
// max ulp error of each float32 op against the float64 op on the same inputs, over dense grids
// of the whole useful range, random bit patterns (every exponent, subnormals, NaN, inf) and the
// special values; strided views (the scalar loop) must give the same bits as contiguous ones
// (the vectorised loop); the backward kernels in float32 against float64.
//
// Error unit: the ulp of the float32 nearest the reference (2^-149 for subnormal results). For
// formulas whose float32 evaluation cancels (GELU's 1 + erf(x/sqrt2) for x < 0, 1 - y^2 in
// tanh's backward, ...) the unit is the ulp of the larger of the result and `scale`, the size of
// the terms that cancel: that error comes from the formula, not from the kernel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { jsRandom, seedFor } from '../helpers/check';

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 2 ** -126;
const DENORM_MIN = 2 ** -149;

const dv = new DataView(new ArrayBuffer(8));
/** ulp of a float32 of magnitude |r| (by r's binade; 2^-149 below the normal range). */
function ulp32(r: number): number {
  const a = Math.abs(r);
  if (!(a >= FLT_MIN)) return DENORM_MIN;
  dv.setFloat64(0, a);
  const e = ((dv.getUint32(0) >>> 20) & 0x7ff) - 1023;
  return 2 ** (e - 23);
}

/** Error of the float32 result y against the float64 reference r, in ulps (Infinity when a
 * special value is wrong: NaN, an infinity, or the sign of a zero). */
function ulpError(y: number, r: number, scale = 0): number {
  if (Number.isNaN(r)) return Number.isNaN(y) ? 0 : Infinity;
  if (Number.isNaN(y)) return Infinity;
  const rf = Math.fround(r);
  if (!Number.isFinite(rf)) return y === rf ? 0 : Infinity;
  if (!Number.isFinite(y)) return Infinity;
  if (r === 0 && y === 0) return Object.is(y, r) || scale !== 0 ? 0 : Infinity;
  return Math.abs(y - r) / Math.max(ulp32(r), scale !== 0 ? ulp32(scale) : 0);
}

function linspace(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
}
/** n points geometrically spaced over [lo, hi] (both > 0). */
function geomspace(lo: number, hi: number, n: number): number[] {
  const a = Math.log(lo);
  const b = Math.log(hi);
  return Array.from({ length: n }, (_, i) => Math.exp(a + ((b - a) * i) / (n - 1)));
}

const SPECIALS = [
  0, -0, Infinity, -Infinity, NaN, 1, -1, 0.5, -0.5, 2, -2,
  DENORM_MIN, -DENORM_MIN, 3 * DENORM_MIN, 1e-40, -1e-40, FLT_MIN, -FLT_MIN, 1e-30, -1e-30, 1e-10, -1e-10,
  2 ** -24, -(2 ** -24), 1e30, -1e30, FLT_MAX, -FLT_MAX,
];

/** float32 inputs: the grids, the specials, random values in [lo, hi] and random bit patterns. */
function inputs(name: string, grids: number[][], lo: number, hi: number, extra: number[] = []): Float32Array {
  const rnd = jsRandom(seedFor(`vec_math ${name}`));
  const bitsRandom = new Uint32Array(1 << 16);
  for (let i = 0; i < bitsRandom.length; i++) bitsRandom[i] = (rnd() * 2 ** 32) >>> 0;
  const inRange = Array.from({ length: 1 << 16 }, () => lo + (hi - lo) * rnd());
  const all = [...grids.flat(), ...SPECIALS, ...extra, ...inRange];
  const out = new Float32Array(all.length + bitsRandom.length);
  out.set(all);
  out.set(new Float32Array(bitsRandom.buffer), all.length);
  return out;
}

interface Worst {
  err: number;
  x: number;
  y: number;
  ref: number;
}
function worstOf(xs: ArrayLike<number>, ys: ArrayLike<number>, refs: ArrayLike<number>, scale?: (x: number, i: number) => number): Worst {
  const w: Worst = { err: 0, x: NaN, y: NaN, ref: NaN };
  for (let i = 0; i < xs.length; i++) {
    const e = ulpError(ys[i], refs[i], scale ? scale(xs[i], i) : 0);
    if (e > w.err || (Number.isNaN(e) && !Number.isNaN(w.err))) Object.assign(w, { err: e, x: xs[i], y: ys[i], ref: refs[i] });
  }
  return w;
}
const describe = (w: Worst) => `${w.err.toFixed(3)} ulp at x=${w.x} (float32 ${w.y}, float64 ${w.ref})`;

const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const S2PI = Math.sqrt(2 / Math.PI);

interface Case {
  name: string;
  op: (x: ts.Tensor) => ts.Tensor;
  grids: number[][];
  lo: number;
  hi: number;
  extra?: number[];
  /** bound on the forward error, in ulps */
  fwd: number;
  /** size of the cancelling terms of the float32 formula at x (see the header) */
  fwdScale?: (x: number) => number;
  /** bound on the backward error, in ulps, and the cancelling terms' size at x (y: float64 output, g: upstream grad) */
  bwd: number;
  bwdScale?: (x: number, y: number, g: number) => number;
  /** the backward check skips |x| above this (where the float32 formula overflows inside) */
  bwdMaxAbs?: number;
}

const N = 1 << 17;
const cases: Case[] = [
  {
    name: 'exp',
    op: ts.exp,
    grids: [linspace(-104, 89, N), linspace(-1, 1, N / 4)],
    lo: -110,
    hi: 95,
    extra: [88.72283172607422, 88.72283935546875, -87.33654022216797, -87.33655548095703, -103.97207641601562, -103.97208404541016, -104, 89],
    fwd: 1,
    bwd: 2.5,
  },
  {
    name: 'log',
    op: ts.log,
    grids: [geomspace(DENORM_MIN, FLT_MAX, N), linspace(0, 4, N / 2), linspace(0.5, 2, N / 4)],
    lo: 0,
    hi: 10,
    fwd: 1,
    bwd: 1,
  },
  {
    name: 'tanh',
    op: ts.tanh,
    grids: [linspace(-10, 10, N), geomspace(DENORM_MIN, 10, N / 2), geomspace(DENORM_MIN, 10, N / 2).map((v) => -v)],
    lo: -12,
    hi: 12,
    extra: [0.875, -0.875, 0.87499994, 9.01, 9.02, 44, 89],
    fwd: 1.5,
    bwd: 2.5,
    bwdScale: (_x, _y, g) => g, // g (1 - y^2)
  },
  {
    name: 'sigmoid',
    op: ts.sigmoid,
    grids: [linspace(-110, 30, N), linspace(-8, 8, N / 2), geomspace(DENORM_MIN, 20, N / 4)],
    lo: -120,
    hi: 40,
    extra: [16.6, 16.7, 17, -87.3, -103.9, -104, -104.5],
    fwd: 2,
    bwd: 3.5,
    bwdScale: (_x, y, g) => g * y, // g y (1 - y)
  },
  {
    name: 'logsigmoid',
    op: ts.logsigmoid,
    grids: [linspace(-110, 110, N), linspace(-8, 8, N / 2), geomspace(DENORM_MIN, 110, N / 4), geomspace(DENORM_MIN, 110, N / 4).map((v) => -v)],
    lo: -120,
    hi: 120,
    fwd: 2,
    bwd: 3,
  },
  {
    name: 'softplus',
    op: (x) => ts.softplus(x),
    grids: [linspace(-110, 30, N), linspace(-8, 8, N / 2), geomspace(DENORM_MIN, 110, N / 4).map((v) => -v)],
    lo: -120,
    hi: 40,
    extra: [20, 20.000002, 19.999998],
    fwd: 2,
    bwd: 3,
  },
  {
    // (beta a power of 2, so that beta x is exact in float32 too: otherwise its rounding,
    // amplified |beta x| times by exp, dominates the comparison)
    name: 'softplus beta=2 threshold=7',
    op: (x) => ts.softplus(x, 2, 7),
    grids: [linspace(-60, 10, N), linspace(-4, 4, N / 2)],
    lo: -60,
    hi: 20,
    extra: [3.5, 3.5000002, 3.4999998],
    fwd: 2,
    bwd: 3,
  },
  {
    name: 'gelu',
    op: (x) => ts.gelu(x),
    grids: [linspace(-15, 15, N), linspace(-6, 6, N / 2), geomspace(DENORM_MIN, 15, N / 4), geomspace(DENORM_MIN, 15, N / 4).map((v) => -v)],
    lo: -20,
    hi: 20,
    extra: [Math.SQRT2, -Math.SQRT2, 4 * Math.SQRT2, -4 * Math.SQRT2, 5.55, -5.55],
    fwd: 3,
    fwdScale: (x) => (x < 0 ? 0.5 * x : 0), // 0.5 x (1 + erf(x / sqrt2))
    bwd: 3,
    bwdScale: (x, _y, g) => (x < 0 ? g * (0.5 + Math.abs(x) * phi(x)) : 0), // g (cdf + x pdf)
  },
  {
    name: 'gelu tanh',
    op: (x) => ts.gelu(x, 'tanh'),
    grids: [linspace(-15, 15, N), linspace(-6, 6, N / 2), geomspace(DENORM_MIN, 15, N / 4), geomspace(DENORM_MIN, 15, N / 4).map((v) => -v)],
    lo: -20,
    hi: 20,
    fwd: 3,
    fwdScale: (x) => (x < 0 ? 0.5 * x : 0),
    bwd: 3,
    // g (0.5 (1 + t) + 0.5 x (1 - t^2) inner'), t = tanh(inner): 1 + t cancels for x < 0, and
    // 1 - t^2 from a rounded t for any x (t^2 is within an ulp of 1 from |x| > 3 on)
    bwdScale: (x, _y, g) => g * (0.5 + Math.abs(0.5 * x * S2PI * (1 + 3 * 0.044715 * x * x))),
    bwdMaxAbs: 1e12, // x^3 overflows beyond: inf * (1 - t^2 = 0) is NaN (as it was with std::tanh)
  },
];

const summary: string[] = [];

for (const c of cases) {
  test(`${c.name}: float32 within ${c.fwd} ulp of float64 over the whole range, special values exact`, () => {
    ts.scope(() => {
      const xs = inputs(c.name, c.grids, c.lo, c.hi, c.extra);
      const x = ts.tensor(xs, { dtype: 'float32' });
      const y = c.op(x).toTypedArray();
      const ref = c.op(x.to('float64')).toTypedArray();
      const w = worstOf(xs, y, ref, c.fwdScale ? (v) => c.fwdScale!(v) : undefined);
      summary.push(`${c.name} forward: max ${describe(w)}`);
      assert.ok(w.err <= c.fwd, `${c.name} float32: ${describe(w)} > ${c.fwd} over ${xs.length} inputs`);

      // A strided view goes through the scalar loop; it must give the same bits.
      const wide = new Float32Array(2 * xs.length);
      for (let i = 0; i < xs.length; i++) wide[2 * i] = xs[i];
      const ys = c.op(ts.tensor(wide, { dtype: 'float32' }).slice(0, 0, wide.length, 2)).toTypedArray();
      for (let i = 0; i < xs.length; i++) {
        if (!Object.is(ys[i], y[i])) assert.unreachable(`${c.name}: strided ${ys[i]} != contiguous ${y[i]} at x=${xs[i]}`);
      }
    });
  });

  test(`${c.name}: float32 backward within ${c.bwd} ulp of float64`, () => {
    ts.scope(() => {
      // every fourth grid point, the specials, random values and random bit patterns
      const xs = inputs(`${c.name} grad`, c.grids.map((g) => g.filter((_, i) => i % 4 === 0)), c.lo, c.hi, c.extra);
      const rnd = jsRandom(seedFor(`vec_math ${c.name} g`));
      const gs = Float32Array.from(xs, () => (rnd() - 0.5) * 4);
      const grad = (dtype: 'float32' | 'float64') => {
        const x = ts.tensor(xs, { dtype: 'float32' }).to(dtype).detach();
        x.requiresGrad = true;
        const y = c.op(x);
        y.backward(ts.tensor(gs, { dtype: 'float32' }).to(dtype));
        const out = { y: y.toTypedArray(), gx: x.grad!.toTypedArray() };
        x.grad!.dispose();
        return out;
      };
      const g32 = grad('float32');
      const g64 = grad('float64');
      // Where the float32 forward overflowed (exp, x > 88.72) its gradient cannot be finite, and
      // past bwdMaxAbs the formula itself overflows: compare the rest.
      const keep = (i: number) => Number.isFinite(g32.y[i]) === Number.isFinite(g64.y[i]) && !(Math.abs(xs[i]) > (c.bwdMaxAbs ?? Infinity));
      const idx = Array.from(xs.keys()).filter(keep);
      const pick = (a: ArrayLike<number>) => idx.map((i) => a[i]);
      const w = worstOf(pick(xs), pick(g32.gx), pick(g64.gx), c.bwdScale ? (v, j) => c.bwdScale!(v, g64.y[idx[j]], gs[idx[j]]) : undefined);
      summary.push(`${c.name} backward: max ${describe(w)}`);
      assert.ok(w.err <= c.bwd, `${c.name} float32 gradient: ${describe(w)} > ${c.bwd}`);
    });
  });
}

test('special values: overflow, underflow, domain errors and saturation are exact', () => {
  ts.scope(() => {
    const f32 = (op: (x: ts.Tensor) => ts.Tensor, v: number[]) => Array.from(op(ts.tensor(v, { dtype: 'float32' })).toTypedArray());
    assert.equal(f32(ts.exp, [89, 88.72284, 1000, Infinity, -104, -1000, -Infinity, 0, -0]), [Infinity, Infinity, Infinity, Infinity, 0, 0, 0, 1, 1]);
    assert.ok(Number.isNaN(f32(ts.exp, [NaN])[0]));
    assert.equal(f32(ts.exp, [-103.9]), [Math.fround(Math.exp(-103.9))]); // subnormal
    const lg = f32(ts.log, [0, -0, -1, -Infinity, NaN, Infinity, 1, DENORM_MIN]);
    assert.equal(lg.slice(0, 2), [-Infinity, -Infinity]);
    assert.ok(lg.slice(2, 5).every(Number.isNaN), `log of negative / NaN: ${lg}`);
    assert.equal(lg.slice(5), [Infinity, 0, Math.fround(Math.log(DENORM_MIN))]);
    const th = f32(ts.tanh, [9.1, -9.1, 1e30, -1e30, Infinity, -Infinity, 0, -0, 1e-40]);
    assert.equal(th.slice(0, 6), [1, -1, 1, -1, 1, -1]);
    assert.ok(Object.is(th[6], 0) && Object.is(th[7], -0) && th[8] === Math.fround(1e-40), `tanh near 0: ${th}`);
    assert.equal(f32(ts.sigmoid, [17.5, 1e30, Infinity, -104, -1e30, -Infinity, 0]), [1, 1, 1, 0, 0, 0, 0.5]);
    assert.ok(Number.isNaN(f32(ts.sigmoid, [NaN])[0]) && Number.isNaN(f32(ts.tanh, [NaN])[0]));
    assert.equal(f32(ts.logsigmoid, [-Infinity, Infinity, 1e30, -1e30, 200]), [-Infinity, 0, 0, Math.fround(-1e30), 0]);
    assert.equal(f32((x) => ts.gelu(x), [Infinity, 10, 6, 0, -0]), [Infinity, 10, 6, 0, -0]);
    assert.equal(f32((x) => ts.gelu(x, 'tanh'), [Infinity, 10, 0]), [Infinity, 10, 0]);
  });
});

test('float32 kernels: summary', () => {
  if (process.env.VEC_MATH_REPORT) console.log(`\n  ${summary.join('\n  ')}`);
});

test.run();
