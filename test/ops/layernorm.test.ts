// layerNorm: forward against a float64 JS reference (every weight/bias combination, one and
// several normalised dims, size-1 and odd sizes, float32 with a large common offset),
// non-contiguous x / weight, gradients of x, weight and bias by central differences (also
// through views), the backward against the closed-form gradient on the blocked and the wide
// (n > 2^17) paths, bit-identical dweight for any thread count, no leaked native memory, and
// errors for bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { runKernel } from '../../lib/backend';
import { layerNorm } from '../../lib/ops/layernorm';
import { assertClose, assertThrows, flat, gradcheck, jsRandom, seedFor } from '../helpers/check';

// ---- independent references: plain float64 loops over [rows, n] row-major data.
function layerNormRef(x: ArrayLike<number>, rows: number, n: number, w: ArrayLike<number> | null, b: ArrayLike<number> | null, eps: number): number[] {
  const out = new Array<number>(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    v /= n;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < n; i++) {
      let y = (x[r * n + i] - mean) * rstd;
      if (w) y *= w[i];
      if (b) y += b[i];
      out[r * n + i] = y;
    }
  }
  return out;
}

/** Closed-form gradients of sum(g * layerNorm(x)) w.r.t. x, weight, bias. */
function layerNormGradRef(x: ArrayLike<number>, g: ArrayLike<number>, rows: number, n: number, w: ArrayLike<number> | null, eps: number) {
  const dx = new Array<number>(rows * n);
  const dw = new Array<number>(n).fill(0);
  const db = new Array<number>(n).fill(0);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    v /= n;
    const rstd = 1 / Math.sqrt(v + eps);
    let a = 0;
    let c = 0;
    for (let i = 0; i < n; i++) {
      const xh = (x[r * n + i] - mean) * rstd;
      const gw = g[r * n + i] * (w ? w[i] : 1);
      a += gw;
      c += gw * xh;
      dw[i] += g[r * n + i] * xh;
      db[i] += g[r * n + i];
    }
    for (let i = 0; i < n; i++) {
      const xh = (x[r * n + i] - mean) * rstd;
      const gw = g[r * n + i] * (w ? w[i] : 1);
      dx[r * n + i] = rstd * (gw - a / n - (xh * c) / n);
    }
  }
  return { dx, dw, db };
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

const CASES: { x: number[]; ns: number[] }[] = [
  { x: [4, 10], ns: [10] },
  { x: [2, 3, 5], ns: [3, 5] },
  { x: [2, 3, 5], ns: [5] },
  { x: [2, 3, 5], ns: [2, 3, 5] },
  { x: [1, 1], ns: [1] },
  { x: [7], ns: [7] },
  { x: [3, 1, 13], ns: [1, 13] },
  { x: [5, 33], ns: [33] },
  { x: [3, 257], ns: [257] },
  { x: [70, 6], ns: [6] },
];

test('layerNorm matches the float64 reference for every weight/bias combination', () => {
  seedFor('layerNorm forward');
  ts.scope(() => {
    for (const { x: shape, ns } of CASES) {
      const n = numel(ns);
      const rows = numel(shape) / n;
      const x = ts.randn(shape, { dtype: 'float64', mean: 0.5, std: 2 });
      const w = ts.randn(ns, { dtype: 'float64' });
      const b = ts.randn(ns, { dtype: 'float64' });
      const x32 = x.to('float32');
      const w32 = w.to('float32');
      const b32 = b.to('float32');
      for (const [useW, useB] of [[false, false], [true, false], [false, true], [true, true]]) {
        for (const eps of [1e-5, 0.1]) {
          const what = `layerNorm x ${JSON.stringify(shape)} ns ${JSON.stringify(ns)} w=${useW} b=${useB} eps=${eps}`;
          const y = layerNorm(x, ns, useW ? w : undefined, useB ? b : null, eps);
          assert.equal([...y.shape], shape, `${what}: shape`);
          assert.is(y.dtype, 'float64');
          const expected = layerNormRef(flat(x), rows, n, useW ? flat(w) : null, useB ? flat(b) : null, eps);
          assertClose(flat(y), expected, 1e-11, 1e-12, `${what} f64`);
          const y32 = layerNorm(x32, ns, useW ? w32 : undefined, useB ? b32 : undefined, eps);
          assert.is(y32.dtype, 'float32');
          const expected32 = layerNormRef(flat(x32), rows, n, useW ? flat(w32) : null, useB ? flat(b32) : null, eps);
          assertClose(flat(y32), expected32, 1e-5, 1e-5, `${what} f32`);
        }
      }
      // default eps is 1e-5
      assertClose(flat(layerNorm(x, ns)), layerNormRef(flat(x), rows, n, null, null, 1e-5), 1e-11, 1e-12, 'default eps');
    }
  });
});

test('layerNorm on large inputs (rows split across threads) matches the reference', () => {
  seedFor('layerNorm threads');
  const threads = ts.cpuInfo().threads;
  ts.setNumThreads(4);
  try {
    ts.scope(() => {
      const [rows, n] = [600, 131];
      const x = ts.randn([rows, n], { dtype: 'float64', mean: -1, std: 3 });
      const w = ts.randn([n], { dtype: 'float64' });
      const b = ts.randn([n], { dtype: 'float64' });
      assertClose(flat(layerNorm(x, [n], w, b)), layerNormRef(flat(x), rows, n, flat(w), flat(b), 1e-5), 1e-11, 1e-12, 'large f64');
      const [x32, w32, b32] = [x, w, b].map((t) => t.to('float32'));
      assertClose(flat(layerNorm(x32, [n], w32, b32)), layerNormRef(flat(x32), rows, n, flat(w32), flat(b32), 1e-5), 1e-5, 1e-5, 'large f32');
    });
  } finally {
    ts.setNumThreads(threads);
  }
});

test('layerNorm in float32 keeps precision with a large common offset', () => {
  seedFor('layerNorm offset');
  ts.scope(() => {
    const x32 = ts.randn([6, 300], { dtype: 'float32', mean: 1000, std: 0.05 });
    const y = layerNorm(x32, [300]);
    // reference from the float32 values themselves (exact in double)
    assertClose(flat(y), layerNormRef(flat(x32), 6, 300, null, null, 1e-5), 1e-4, 2e-4, 'offset f32');
    // constant rows normalise to 0 (var = 0, rstd = 1/sqrt(eps))
    assert.ok(flat(layerNorm(ts.full([2, 5], 3.25), [5])).every((v) => v === 0), 'constant rows');
  });
});

test('layerNorm of non-contiguous x, weight and bias', () => {
  seedFor('layerNorm views');
  ts.scope(() => {
    const base = ts.randn([10, 4], { dtype: 'float64' });
    const xt = base.transpose(); // [4, 10]
    const w = ts.randn([10], { dtype: 'float64' });
    const b = ts.randn([10], { dtype: 'float64' });
    assertClose(flat(layerNorm(xt, [10], w, b)), layerNormRef(flat(xt), 4, 10, flat(w), flat(b), 1e-5), 1e-11, 1e-12, 'transposed x');
    const xs = ts.randn([5, 21], { dtype: 'float64' }).slice(1, 2, 20, 3); // [5, 6]
    assertClose(flat(layerNorm(xs, [6])), layerNormRef(flat(xs), 5, 6, null, null, 1e-5), 1e-11, 1e-12, 'sliced x');
    const x3 = ts.randn([2, 3, 5], { dtype: 'float64' });
    const wt = ts.randn([5, 3], { dtype: 'float64' }).transpose(); // [3, 5], non-contiguous
    const bs = ts.randn([3, 10], { dtype: 'float64' }).slice(1, 0, 10, 2); // [3, 5], non-contiguous
    assertClose(flat(layerNorm(x3, [3, 5], wt, bs)), layerNormRef(flat(x3), 2, 15, flat(wt), flat(bs), 1e-5), 1e-11, 1e-12, 'non-contiguous weight/bias');
    const xp = ts.randn([3, 4, 5], { dtype: 'float32' }).permute([1, 2, 0]); // [4, 5, 3]
    assertClose(flat(layerNorm(xp, [5, 3])), layerNormRef(flat(xp), 4, 15, null, null, 1e-5), 1e-5, 1e-5, 'permuted f32');
  });
});

test('layerNorm gradients of x, weight and bias match central differences', () => {
  seedFor('layerNorm grad');
  ts.scope(() => {
    const f64 = { dtype: 'float64' } as const;
    for (const { x: shape, ns } of [{ x: [4, 7], ns: [7] }, { x: [2, 3, 5], ns: [3, 5] }, { x: [70, 6], ns: [6] }, { x: [3, 1], ns: [1] }, { x: [5], ns: [5] }]) {
      const what = `x ${JSON.stringify(shape)} ns ${JSON.stringify(ns)}`;
      const x = ts.randn(shape, f64);
      const w = ts.randn(ns, f64);
      const b = ts.randn(ns, f64);
      gradcheck(`layerNorm x only ${what}`, (a) => layerNorm(a, ns), [x]);
      gradcheck(`layerNorm x, w, b ${what}`, (a, ww, bb) => layerNorm(a, ns, ww, bb), [x, w, b]);
      gradcheck(`layerNorm x, w ${what}`, (a, ww) => layerNorm(a, ns, ww), [x, w]);
      gradcheck(`layerNorm x, b ${what}`, (a, bb) => layerNorm(a, ns, null, bb, 0.3), [x, b]);
      // only the affine parameters require grad (dx is not computed)
      const xc = ts.randn(shape, f64);
      gradcheck(`layerNorm w, b only ${what}`, (ww, bb) => layerNorm(xc, ns, ww, bb), [w, b]);
      gradcheck(`layerNorm w only ${what}`, (ww) => layerNorm(xc, ns, ww, b), [w]);
    }
  });
});

test('layerNorm gradients through non-contiguous x and weight', () => {
  seedFor('layerNorm grad views');
  ts.scope(() => {
    const f64 = { dtype: 'float64' } as const;
    const x = ts.randn([6, 4], f64);
    const w = ts.randn([6], f64);
    const b = ts.randn([6], f64);
    gradcheck('layerNorm transposed x', (a, ww, bb) => layerNorm(a.transpose(), [6], ww, bb), [x, w, b]);
    gradcheck('layerNorm sliced x', (a) => layerNorm(a.slice(1, 1, 4), [3]), [x]);
    const w2 = ts.randn([5, 3], f64);
    const x3 = ts.randn([2, 3, 5], f64);
    gradcheck('layerNorm transposed weight', (a, ww) => layerNorm(a, [3, 5], ww.transpose()), [x3, w2]);
    gradcheck('layerNorm permuted x, output reused', (a) => {
      const y = layerNorm(a.permute([0, 2, 1]), [3]);
      return y.mul(y).add(y);
    }, [x3]);
  });
});

test('layerNorm backward equals the closed form (blocked path, float32 and float64; wide path)', () => {
  seedFor('layerNorm closed form');
  const rnd = jsRandom(12345);
  ts.scope(() => {
    for (const [rows, n] of [[300, 17], [9, 40], [2, (1 << 17) + 3]]) {
      const xs = Float64Array.from({ length: rows * n }, () => rnd() * 4 - 2);
      const gs = Float64Array.from({ length: rows * n }, () => rnd() * 2 - 1);
      const ws = Float64Array.from({ length: n }, () => rnd() + 0.5);
      const ref = layerNormGradRef(xs, gs, rows, n, ws, 1e-5);
      for (const dtype of ['float64', 'float32'] as const) {
        if (dtype === 'float32' && n > 1000) continue;
        const x = ts.tensor(xs, { shape: [rows, n], dtype, requiresGrad: true });
        const w = ts.tensor(ws, { dtype, requiresGrad: true });
        const b = ts.zeros([n], { dtype, requiresGrad: true });
        const g = ts.tensor(gs, { shape: [rows, n], dtype });
        layerNorm(x, [n], w, b).backward(g);
        const tol = dtype === 'float64' ? 1e-10 : 2e-4;
        assertClose(flat(x.grad as ts.Tensor), ref.dx, tol, tol, `dx ${rows}x${n} ${dtype}`);
        assertClose(flat(w.grad as ts.Tensor), ref.dw, tol, tol, `dweight ${rows}x${n} ${dtype}`);
        assertClose(flat(b.grad as ts.Tensor), ref.db, tol, tol, `dbias ${rows}x${n} ${dtype}`);
      }
    }
  });
});

test('layerNorm dweight/dbias are bit-identical for any thread count', () => {
  seedFor('layerNorm determinism');
  const threads = ts.cpuInfo().threads;
  ts.scope(() => {
    const x = ts.randn([1000, 64]);
    const g = ts.randn([1000, 64]);
    const run = (nt: number) => {
      ts.setNumThreads(nt);
      const w = ts.ones([64], { requiresGrad: true });
      const b = ts.zeros([64], { requiresGrad: true });
      const xl = x.detach();
      xl.requiresGrad = true;
      layerNorm(xl, [64], w, b).backward(g);
      return [flat(w.grad as ts.Tensor), flat(b.grad as ts.Tensor), flat(xl.grad as ts.Tensor)];
    };
    try {
      const one = run(1);
      for (const nt of [2, 3, 7]) {
        const many = run(nt);
        assert.equal(many[0], one[0], `dweight with ${nt} threads`);
        assert.equal(many[1], one[1], `dbias with ${nt} threads`);
        assert.equal(many[2], one[2], `dx with ${nt} threads`);
      }
    } finally {
      ts.setNumThreads(threads);
    }
  });
});

test('layerNorm frees everything it allocates (statistics live with the output)', () => {
  const before = ts.memoryStats().hostBlocks;
  ts.scope(() => {
    const x = ts.randn([8, 16], { requiresGrad: true });
    const w = ts.ones([16], { requiresGrad: true });
    const y = ts.scope(() => layerNorm(x, [16], w)); // the inner scope returns only the output
    y.sum().backward();
    assert.ok(x.grad && w.grad, 'gradients computed after the inner scope closed');
    ts.noGrad(() => layerNorm(x, [16], w));
  });
  assert.is(ts.memoryStats().hostBlocks, before, 'native blocks after the scope');
});

test('layerNorm rejects bad arguments with clear errors', () => {
  ts.scope(() => {
    const x = ts.randn([2, 3, 4]);
    const w = ts.ones([4]);
    const expectError = (fn: () => unknown, cls: typeof ts.TesseraError, patterns: (string | RegExp)[], what: string) => {
      assertThrows(fn, patterns, what);
      try {
        fn();
      } catch (e) {
        assert.instance(e, cls, `${what}: error class`);
      }
    };
    expectError(() => layerNorm(x, [3]), ts.ShapeError, ['layerNorm', 'normalizedShape [3]', 'float32[2, 3, 4]', '[..., 3]'], 'mismatched normalizedShape');
    expectError(() => layerNorm(x, [4, 3]), ts.ShapeError, ['layerNorm', 'normalizedShape [4, 3]', 'float32[2, 3, 4]'], 'mismatched 2-d normalizedShape');
    expectError(() => layerNorm(ts.randn([4]), [2, 4]), ts.ShapeError, ['layerNorm', 'float32[4]'], 'rank too small');
    expectError(() => layerNorm(x, []), ts.ArgumentError, ['layerNorm', 'non-empty'], 'empty normalizedShape');
    expectError(() => layerNorm(x, 4 as unknown as number[]), ts.ArgumentError, ['layerNorm', 'normalizedShape'], 'normalizedShape not an array');
    expectError(() => layerNorm(x, [4], ts.ones([3])), ts.ShapeError, ['layerNorm', 'weight', 'float32[3]', 'shape [4]'], 'weight shape');
    expectError(() => layerNorm(x, [3, 4], ts.ones([12])), ts.ShapeError, ['layerNorm', 'weight', 'float32[12]', '[3, 4]'], 'weight flat');
    expectError(() => layerNorm(x, [4], w, ts.ones([4, 1])), ts.ShapeError, ['layerNorm', 'bias', 'float32[4, 1]'], 'bias shape');
    expectError(() => layerNorm(x, [4], ts.ones([4], { dtype: 'float64' })), ts.DTypeError, ['layerNorm', 'weight', 'float64[4]', 'same dtype'], 'weight dtype');
    expectError(() => layerNorm(x, [4], ts.ones([4], { dtype: 'int32' })), ts.DTypeError, ['layerNorm', 'weight', 'int32[4]'], 'int weight');
    expectError(() => layerNorm(ts.tensor([[1, 2]], { dtype: 'int32' }), [2]), ts.DTypeError, ['layerNorm', 'int32[1, 2]', 'float32 or float64'], 'int x');
    expectError(() => layerNorm(x, [4], w, undefined, -1), ts.ArgumentError, ['layerNorm', 'eps', '-1'], 'negative eps');
    expectError(() => layerNorm(x, [4], w, undefined, NaN), ts.ArgumentError, ['layerNorm', 'eps'], 'NaN eps');
    expectError(() => layerNorm(x, [4], 'w' as unknown as ts.Tensor), ts.ArgumentError, ['layerNorm', 'weight must be a Tensor'], 'weight not a tensor');
    const d = ts.randn([2, 4]);
    d.dispose();
    expectError(() => layerNorm(d, [4]), ts.DisposedError, ['layerNorm', 'disposed'], 'disposed x');
    const dw = ts.ones([4]);
    dw.dispose();
    expectError(() => layerNorm(x, [4], dw), ts.DisposedError, ['layerNorm', 'weight', 'disposed'], 'disposed weight');
    // the native kernel checks its own arguments too
    assertThrows(() => runKernel('layer_norm', [x, ts.empty([2, 3, 4]), ts.empty([6]), ts.empty([6])], [1e-5, 0, 0]), ['layer_norm', '2 dimensions'], 'native rank');
    assertThrows(() => runKernel('layer_norm', [ts.empty([6, 4]), ts.empty([6, 4]), ts.empty([5]), ts.empty([6])], [1e-5, 0, 0]), ['layer_norm', 'mean', '6 elements'], 'native mean size');
    assertThrows(() => runKernel('layer_norm', [ts.empty([6, 4]), ts.empty([6, 4]), ts.empty([6]), ts.empty([6])], [1e-5, 1, 0]), ['layer_norm', 'expected 5 tensors'], 'native missing weight');
  });
});

test.run();
