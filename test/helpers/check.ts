// Test helpers: fresh random inputs (seed printed so a failure can be replayed with
// TEST_SEED=...), closeness assertions, and finite-difference gradient checks in float64.

import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';

const envSeed = process.env.TEST_SEED;
export const SEED = envSeed !== undefined ? Number(envSeed) : Math.floor(Math.random() * 1e9);
let announced = false;

/** Seed the engine's generator for one test; the base seed is printed once per process. */
export function seedFor(testName: string): number {
  if (!announced) {
    console.log(`  (random inputs: TEST_SEED=${SEED})`);
    announced = true;
  }
  let h = SEED;
  for (const c of testName) h = (h * 31 + c.charCodeAt(0)) % 2147483647;
  ts.manualSeed(h);
  return h;
}

/** A small deterministic JS generator, independent of the engine (for reference data). */
export function jsRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

/** max |a - e| <= atol + rtol * |e| elementwise, with a message naming the worst element. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (e === a) continue; // infinities
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) assert.unreachable(`${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
}

/** Relative error max|a - e| / max(1, max|e|). */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 1;
  for (let i = 0; i < actual.length; i++) {
    num = Math.max(num, Math.abs(actual[i] - expected[i]));
    den = Math.max(den, Math.abs(expected[i]));
  }
  return num / den;
}

/**
 * Central-difference gradient check. `inputs` are contiguous float64 leaves; `fn` may view them
 * any way it likes (transpose, slice, broadcast). The output is contracted with fixed random
 * weights to a scalar, so every output element's gradient is exercised. Returns the max
 * relative error over all inputs and asserts it is below tol.
 */
export function gradcheck(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { eps?: number; tol?: number } = {}): number {
  const eps = opts.eps ?? 1e-6;
  const tol = opts.tol ?? 1e-6;
  for (const x of inputs) {
    if (x.dtype !== 'float64' || !x.isContiguous()) throw new Error('gradcheck: inputs must be contiguous float64');
    x.requiresGrad = true;
    x.grad?.dispose();
    x.grad = null;
  }
  const probe = ts.scope(() => fn(...inputs).detach());
  const weightsArr = Float64Array.from({ length: probe.numel }, (_, i) => Math.sin(1.7 * i + 0.3) + 0.1);
  const weights = ts.tensor(weightsArr, { dtype: 'float64', shape: probe.shape });
  const objective = (): number => ts.scope(() => ts.noGrad(() => fn(...inputs).mul(weights).sum().item()));
  ts.scope(() => {
    const out = fn(...inputs);
    out.mul(weights).sum().backward();
  });
  let worst = 0;
  inputs.forEach((x, k) => {
    const base = Float64Array.from(x.toTypedArray());
    const numeric = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const orig = base[i];
      base[i] = orig + eps;
      x.storage.native.write(x.offset * 8, base);
      const plus = objective();
      base[i] = orig - eps;
      x.storage.native.write(x.offset * 8, base);
      const minus = objective();
      base[i] = orig;
      x.storage.native.write(x.offset * 8, base);
      numeric[i] = (plus - minus) / (2 * eps);
    }
    const analytic = x.grad ? Array.from(x.grad.toTypedArray()) : new Array(base.length).fill(0);
    const err = relError(analytic, numeric);
    worst = Math.max(worst, err);
    if (!(err < tol)) {
      assert.unreachable(`${name}: gradient of input ${k} (${x.describe()}) has relative error ${err.toExponential(2)} > ${tol}\n  analytic ${analytic.slice(0, 6).map((v) => v.toFixed(6))}\n  numeric  ${Array.from(numeric.slice(0, 6)).map((v) => v.toFixed(6))}`);
    }
  });
  probe.dispose();
  weights.dispose();
  return worst;
}

/** Assert fn throws an Error whose message matches every pattern. */
export function assertThrows(fn: () => unknown, patterns: (string | RegExp)[], what: string): void {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof Error)) assert.unreachable(`${what}: expected an Error, got ${err === null ? 'no error' : String(err)}`);
  const msg = (err as Error).message;
  for (const p of patterns) {
    const ok = typeof p === 'string' ? msg.includes(p) : p.test(msg);
    if (!ok) assert.unreachable(`${what}: error message "${msg}" does not match ${String(p)}`);
  }
}
