// CUDA matmul (native/cuda/matmul.cu) against the CPU matmul (native/cpu/matmul.cpp), and the
// caching device allocator (native/cuda/allocator.cu) as far as it is visible from TypeScript.
//
// The results are not bitwise equal: the GPU sums K in a different order, and float32 runs on TF32
// tensor cores by default. Each output is checked against an error bound scaled by
// S_ij = sum_k |a_ik| |b_kj| (computed in float64 on the CPU), which is what rounding errors of a
// dot product are proportional to:
//   float32, TF32 (default):   |gpu - cpu| <= (2e-3 + K * 2.5e-7) * S   (inputs rounded to 10-bit
//                              mantissas: <= 2^-10 per product, plus float32 sums on both sides)
//   float32, TESSERA_CUDA_MATMUL=fp32:  (1e-6 + K * 2.5e-7) * S
//   float64:                   (1e-12 + K * 5e-16) * S
// Forward over shape sweeps (odd M / N / K, 1 x K, K x 1, K = 1, sizes across tile edges),
// transposed / strided / offset / broadcast operands, batches, 1-D operands, beta (accumulate,
// scale, NaN in out ignored for beta = 0), K = 0 and empty outputs; backward through ts.matmul;
// errors. Without a usable CUDA device the file prints why and registers no tests
// (TESSERA_EXPECT_CUDA=1 makes that a failure).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { runKernel } from '../../lib/backend';
import { assertThrows, seedFor } from '../helpers/check';

type FloatDType = 'float32' | 'float64';
type Mode = 'tf32' | 'fp32';

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

function tolerance(dtype: FloatDType, mode: Mode, K: number): number {
  if (dtype === 'float64') return 1e-12 + K * 5e-16;
  return (mode === 'tf32' ? 2e-3 : 1e-6) + K * 2.5e-7;
}

/** Run body with TESSERA_CUDA_MATMUL set (read by the kernel on every call), then restore it. */
function withMode<T>(mode: Mode, body: () => T): T {
  const old = process.env.TESSERA_CUDA_MATMUL;
  process.env.TESSERA_CUDA_MATMUL = mode;
  try {
    return body();
  } finally {
    if (old === undefined) delete process.env.TESSERA_CUDA_MATMUL;
    else process.env.TESSERA_CUDA_MATMUL = old;
  }
}

/** S = |a| @ |b| in float64 on the CPU (a, b: CPU tensors of any layout). */
function scaleOf(a: Tensor, b: Tensor): Float64Array {
  return ts.matmul(ts.abs(a.to('float64')), ts.abs(b.to('float64'))).toTypedArray() as Float64Array;
}

/** gpu (a cuda tensor) agrees with cpu within tol * scale elementwise; same shape and dtype. */
function assertNear(gpu: Tensor, cpu: Tensor, scale: ArrayLike<number>, tol: number, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
  const g = gpu.toTypedArray();
  const c = cpu.toTypedArray();
  assert.is(g.length, c.length, `${what}: length`);
  assert.is(scale.length, c.length, `${what}: scale length`);
  let bad = 0;
  const first: string[] = [];
  for (let i = 0; i < g.length; i++) {
    const bound = tol * scale[i] + 1e-300;
    const ok = Object.is(g[i], c[i]) || Math.abs(g[i] - c[i]) <= bound;
    if (!ok) {
      if (bad < 4) first.push(`[${i}] cuda ${g[i]} cpu ${c[i]} (bound ${bound.toExponential(2)})`);
      bad++;
    }
  }
  if (bad) assert.unreachable(`${what}: ${bad} of ${g.length} elements out of tolerance ${tol}: ${first.join('; ')}`);
}

/** Run body in a scope and check that it left no device or host blocks behind. */
function leakFree(what: string, body: () => void): void {
  const before = ts.memoryStats();
  ts.scope(body);
  const after = ts.memoryStats();
  assert.is(after.deviceBlocks, before.deviceBlocks, `${what}: device blocks leaked`);
  assert.is(after.deviceBytes, before.deviceBytes, `${what}: device bytes leaked`);
  assert.is(after.hostBlocks, before.hostBlocks, `${what}: host blocks leaked`);
}

const input = (shape: number[], dtype: FloatDType): Tensor => ts.randn(shape, { dtype, mean: 0.1, std: 1 });
const nans = (shape: number[], dtype: FloatDType, device: 'cpu' | 'cuda'): Tensor =>
  ts.tensor(new Float64Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), { dtype, shape, device });

/** ts.matmul on the CPU and on cuda for CPU inputs a, b (moved with .to('cuda'), views rebuilt by f). */
function checkMatmul(a: Tensor, b: Tensor, mode: Mode, what: string, view: (t: Tensor[]) => [Tensor, Tensor] = (t) => [t[0], t[1]]): void {
  const [ca, cb] = view([a, b]);
  const [ga, gb] = view([a.to('cuda'), b.to('cuda')]);
  const K = ca.shape[ca.ndim - 1];
  const cpu = ts.matmul(ca, cb);
  const gpu = withMode(mode, () => ts.matmul(ga, gb));
  assertNear(gpu, cpu, scaleOf(ca, cb), tolerance(a.dtype as FloatDType, mode, K), what);
}

// [M, K, N]: odd sizes, 1 x K, K x 1, K = 1, tile edges of the 128 x 128 x 32 and 64 x 64 x 16 tiles.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 1], [3, 5, 7], [1, 300, 257], [257, 300, 1], [13, 1, 17], [17, 33, 65],
  [32, 32, 32], [64, 16, 64], [127, 31, 129], [128, 128, 128], [129, 33, 131], [200, 1000, 72],
  [255, 64, 1], [1, 512, 300], [300, 9, 5], [513, 257, 129],
];

const CASES: [FloatDType, Mode][] = [['float32', 'tf32'], ['float32', 'fp32'], ['float64', 'fp32']];

if (!usable) {
  console.log(`  cuda matmul: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda matmul');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda matmul on ${info.deviceNames.join(', ')}`);

  const fwd = suite('cuda matmul: forward parity with the CPU');
  fwd('shape sweep, row-major operands, float32 (tf32 and fp32) and float64', () => {
    for (const [dtype, mode] of CASES)
      for (const [M, K, N] of SHAPES)
        leakFree(`sweep ${dtype}`, () => {
          seedFor(`sweep ${dtype} ${mode} ${M}x${K}x${N}`);
          checkMatmul(input([M, K], dtype), input([K, N], dtype), mode, `${dtype}/${mode} [${M}, ${K}] @ [${K}, ${N}]`);
        });
  });
  fwd('transposed operands: every combination of row- and column-major a and b', () => {
    for (const [dtype, mode] of CASES)
      for (const [M, K, N] of [[37, 45, 29], [130, 67, 140], [1, 33, 9], [64, 1, 64]] as [number, number, number][])
        leakFree(`transposed ${dtype}`, () => {
          seedFor(`transposed ${dtype} ${mode} ${M}x${K}x${N}`);
          const at = input([K, M], dtype); // a = at^T: column-major [M, K]
          const bt = input([N, K], dtype); // b = bt^T: column-major [K, N]
          const a = input([M, K], dtype);
          const b = input([K, N], dtype);
          const tag = `${dtype}/${mode} [${M}, ${K}, ${N}]`;
          checkMatmul(at, b, mode, `a^T @ b ${tag}`, ([x, y]) => [x.transpose(), y]);
          checkMatmul(a, bt, mode, `a @ b^T ${tag}`, ([x, y]) => [x, y.transpose()]);
          checkMatmul(at, bt, mode, `a^T @ b^T ${tag}`, ([x, y]) => [x.transpose(), y.transpose()]);
        });
  });
  fwd('strided, offset and expanded operands (SIMT fallback and unaligned tensor-core loads)', () => {
    for (const [dtype, mode] of CASES)
      leakFree(`strided ${dtype}`, () => {
        seedFor(`strided ${dtype} ${mode}`);
        const x = input([70, 90], dtype);
        const y = input([90, 66], dtype);
        const tag = `${dtype}/${mode}`;
        // every other column of x / row of y: no unit stride along K for a, along K for b
        checkMatmul(x, y, mode, `step-2 slices ${tag}`, ([p, q]) => [ts.slice(p, 1, 0, undefined, 2), ts.slice(q, 0, 0, undefined, 2)]);
        // offset by one element: base not 16-byte aligned, rows of 90 / 66 floats (not multiples of 4)
        checkMatmul(x, y, mode, `offset views ${tag}`, ([p, q]) => [ts.slice(ts.slice(p, 0, 1), 1, 1, 34), ts.slice(ts.slice(q, 0, 1, 34), 1, 3)]);
        // offset by 4 elements, rows multiple of 4: 16-byte path with a non-zero offset
        const x4 = input([40, 64], dtype);
        const y4 = input([64, 48], dtype);
        checkMatmul(x4, y4, mode, `aligned offsets ${tag}`, ([p, q]) => [ts.slice(p, 1, 4, 36), ts.slice(ts.slice(q, 0, 4, 36), 1, 8)]);
        // a row broadcast down M (row stride 0), a column broadcast across N
        checkMatmul(input([1, 50], dtype), input([50, 1], dtype), mode, `expanded ${tag}`, ([p, q]) => [ts.expand(p, [33, 50]), ts.expand(q, [50, 21])]);
        // permuted 3-D (batch stride smaller than the row stride)
        checkMatmul(input([19, 4, 23], dtype), input([4, 23, 11], dtype), mode, `permuted batch ${tag}`, ([p, q]) => [p.permute([1, 0, 2]), q]);
      });
  });
  fwd('batched and broadcast batches, 1-D operands', () => {
    for (const [dtype, mode] of CASES)
      leakFree(`batched ${dtype}`, () => {
        seedFor(`batched ${dtype} ${mode}`);
        const tag = `${dtype}/${mode}`;
        checkMatmul(input([5, 33, 47], dtype), input([5, 47, 19], dtype), mode, `[5] batch ${tag}`);
        checkMatmul(input([4, 130, 40], dtype), input([40, 150], dtype), mode, `batch x matrix ${tag}`);
        checkMatmul(input([40, 31], dtype), input([3, 31, 7], dtype), mode, `matrix x batch ${tag}`);
        checkMatmul(input([1, 9, 12], dtype), input([6, 12, 10], dtype), mode, `[1] vs [6] batch ${tag}`);
        checkMatmul(input([2, 1, 17, 8], dtype), input([3, 8, 9], dtype), mode, `4-D broadcast ${tag}`);
        checkMatmul(input([2, 3, 17, 8], dtype), input([2, 3, 8, 9], dtype), mode, `4-D ${tag}`, ([p, q]) => [p, q.transpose(0, 1).contiguous().transpose(0, 1)]);
        checkMatmul(input([257], dtype), input([257, 30], dtype), mode, `vector @ matrix ${tag}`);
        checkMatmul(input([30, 257], dtype), input([257], dtype), mode, `matrix @ vector ${tag}`);
        checkMatmul(input([1000], dtype), input([1000], dtype), mode, `vector @ vector ${tag}`);
        checkMatmul(input([3, 20, 6], dtype), input([6], dtype), mode, `batch @ vector ${tag}`);
      });
  });
  fwd('beta: accumulate, scale, NaN in out ignored for beta = 0; K = 0; empty outputs', () => {
    for (const [dtype, mode] of CASES)
      leakFree(`beta ${dtype}`, () => {
        seedFor(`beta ${dtype} ${mode}`);
        const B = 2, M = 35, K = 70, N = 41;
        const a = input([B, M, K], dtype);
        const b = input([B, K, N], dtype);
        const start = input([B, M, N], dtype);
        const scale = scaleOf(a, b);
        const startValues = start.toTypedArray();
        for (const beta of [0, 1, 0.5, -2]) {
          const run = (device: 'cpu' | 'cuda'): Tensor => {
            const out = start.to(device).clone();
            withMode(mode, () => runKernel('matmul', [a.to(device), b.to(device), out], [beta]));
            return out;
          };
          // the bound also covers |beta * out|, which is added exactly up to one rounding
          const s = Float64Array.from(scale, (v, i) => v + Math.abs(beta * startValues[i]));
          assertNear(run('cuda'), run('cpu'), s, tolerance(dtype, mode, K), `beta ${beta} ${dtype}/${mode}`);
        }
        // beta = 0 ignores NaN / Inf already in out
        const garbage = (device: 'cpu' | 'cuda'): Tensor => {
          const out = nans([B, M, N], dtype, device);
          withMode(mode, () => runKernel('matmul', [a.to(device), b.to(device), out], [0]));
          return out;
        };
        assertNear(garbage('cuda'), garbage('cpu'), scale, tolerance(dtype, mode, K), `beta 0 over NaN ${dtype}/${mode}`);
        // K = 0: out = beta * out (zeros for beta = 0, even over NaN)
        for (const beta of [0, 1, 3]) {
          const k0 = (device: 'cpu' | 'cuda'): Tensor => {
            const out = beta === 0 ? nans([B, M, N], dtype, device) : start.to(device).clone();
            runKernel('matmul', [ts.zeros([B, M, 0], { dtype, device }), ts.zeros([B, 0, N], { dtype, device }), out], [beta]);
            return out;
          };
          const g = k0('cuda');
          const c = k0('cpu');
          assert.equal(Array.from(g.toTypedArray()), Array.from(c.toTypedArray()), `K = 0, beta ${beta} ${dtype}`);
        }
        // empty outputs
        for (const [ma, mb] of [[[0, 5], [5, 3]], [[4, 5], [5, 0]], [[0, 2, 3], [0, 3, 4]]] as [number[], number[]][]) {
          const g = ts.matmul(ts.zeros(ma, { dtype, device: 'cuda' }), ts.zeros(mb, { dtype, device: 'cuda' }));
          const c = ts.matmul(ts.zeros(ma, { dtype }), ts.zeros(mb, { dtype }));
          assert.equal([...g.shape], [...c.shape], `empty ${JSON.stringify([ma, mb])}`);
          assert.is(g.numel, 0);
        }
        // ts.matmul with K = 0 through the public op
        const z = ts.matmul(ts.zeros([3, 0], { dtype, device: 'cuda' }), ts.zeros([0, 4], { dtype, device: 'cuda' }));
        assert.equal(Array.from(z.toTypedArray()), new Array(12).fill(0), 'ts.matmul K = 0');
      });
  });
  fwd('TESSERA_CUDA_MATMUL selects TF32 tensor cores or float32 arithmetic', () => {
    leakFree('modes', () => {
      seedFor('modes');
      const a = input([96, 256], 'float32');
      const b = input([256, 80], 'float32');
      const exact = ts.matmul(a.to('float64'), b.to('float64')).toTypedArray();
      const scale = scaleOf(a, b);
      const err = (mode: Mode): number => {
        const g = withMode(mode, () => ts.matmul(a.to('cuda'), b.to('cuda'))).toTypedArray();
        let worst = 0;
        for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - exact[i]) / scale[i]);
        return worst;
      };
      const tf32 = err('tf32');
      const fp32 = err('fp32');
      console.log(`  matmul error / (|a| @ |b|), K = 256: tf32 ${tf32.toExponential(2)}, fp32 ${fp32.toExponential(2)}`);
      assert.ok(fp32 < 2e-6, `fp32 mode is float32-accurate (got ${fp32})`);
      assert.ok(tf32 > 2e-6 && tf32 < 2e-3, `tf32 mode rounds inputs to TF32 (got ${tf32})`);
      // the default (unset) is TF32
      const old = process.env.TESSERA_CUDA_MATMUL;
      delete process.env.TESSERA_CUDA_MATMUL;
      try {
        const g = ts.matmul(a.to('cuda'), b.to('cuda')).toTypedArray();
        const t = withMode('tf32', () => ts.matmul(a.to('cuda'), b.to('cuda'))).toTypedArray();
        assert.equal(Array.from(g), Array.from(t), 'default mode is tf32 (same kernel, same bits)');
      } finally {
        if (old !== undefined) process.env.TESSERA_CUDA_MATMUL = old;
      }
      // deterministic: the same call twice gives the same bits
      const r1 = ts.matmul(a.to('cuda'), b.to('cuda')).toTypedArray();
      const r2 = ts.matmul(a.to('cuda'), b.to('cuda')).toTypedArray();
      assert.equal(Array.from(r1), Array.from(r2), 'deterministic');
    });
  });
  fwd('a large product (several tiles per block row, K tail) stays within the bound', () => {
    for (const [dtype, mode] of CASES)
      leakFree(`large ${dtype}`, () => {
        seedFor(`large ${dtype} ${mode}`);
        checkMatmul(input([1031, 515], dtype), input([515, 1029], dtype), mode, `${dtype}/${mode} 1031 x 515 x 1029`);
      });
  });
  fwd.run();

  const bwd = suite('cuda matmul: backward parity with the CPU');
  bwd('gradients of ts.matmul (plain, transposed weight as in Linear, batched, vector)', () => {
    for (const [dtype, mode] of CASES)
      leakFree(`backward ${dtype}`, () => {
        seedFor(`backward ${dtype} ${mode}`);
        const cases: [string, number[], number[], (a: Tensor, b: Tensor) => Tensor][] = [
          ['a @ b', [37, 50], [50, 23], (a, b) => ts.matmul(a, b)],
          ['x @ w^T (Linear)', [33, 64], [40, 64], (a, b) => ts.matmul(a, b.transpose())],
          ['batched', [3, 17, 29], [3, 29, 13], (a, b) => ts.matmul(a, b)],
          ['a^T @ b', [41, 19], [41, 26], (a, b) => ts.matmul(a.transpose(), b)],
          ['vector @ matrix', [45], [45, 12], (a, b) => ts.matmul(a, b)],
        ];
        for (const [name, sa, sb, f] of cases) {
          const a = input(sa, dtype);
          const b = input(sb, dtype);
          const run = (device: 'cpu' | 'cuda'): [Tensor, Tensor, Tensor] => {
            const ad = a.to(device).clone();
            const bd = b.to(device).clone();
            ad.requiresGrad = true;
            bd.requiresGrad = true;
            const y = withMode(mode, () => f(ad, bd));
            seedFor(`backward grad ${name}`);
            const g = input([...y.shape], dtype).to(device);
            withMode(mode, () => ts.backward(y, g));
            return [y, ad.grad as Tensor, bd.grad as Tensor];
          };
          const [cy, cga, cgb] = run('cpu');
          const [gy, gga, ggb] = run('cuda');
          // scales: |a| @ |b| for y; |g| @ |b^T| for da; |a^T| @ |g| for db, via the same f on
          // absolute values (da and db are sums over N and over M of |g| |b| and |a| |g| terms)
          seedFor(`backward grad ${name}`);
          const g = input([...cy.shape], dtype);
          const absA = ts.abs(a.to('float64'));
          const absB = ts.abs(b.to('float64'));
          absA.requiresGrad = true;
          absB.requiresGrad = true;
          const sy = f(absA, absB);
          ts.backward(sy, ts.abs(g.to('float64')));
          // every sum (over K forward, over N for da, over M / batch for db) is at most this long
          const tol = tolerance(dtype, mode, Math.max(...sa, ...sb) * 3);
          assertNear(gy, cy, sy.toTypedArray(), tol, `${name} forward ${dtype}/${mode}`);
          assertNear(gga, cga, (absA.grad as Tensor).toTypedArray(), tol, `${name} grad a ${dtype}/${mode}`);
          assertNear(ggb, cgb, (absB.grad as Tensor).toTypedArray(), tol, `${name} grad b ${dtype}/${mode}`);
          assert.is(gga.device, 'cuda');
          assert.is(ggb.device, 'cuda');
        }
      });
  });
  bwd.run();

  const errors = suite('cuda matmul: errors');
  errors('argument checks match the CPU kernel', () => {
    leakFree('errors', () => {
      const a = input([2, 3, 4], 'float32').to('cuda');
      const b = input([2, 4, 5], 'float32').to('cuda');
      const out = ts.zeros([2, 3, 5], { device: 'cuda' });
      assertThrows(() => runKernel('matmul', [a, b, out], []), ['matmul: expected 3 tensors and 1 scalars'], 'missing beta');
      assertThrows(() => runKernel('matmul', [a, a, out], [0]), ['matmul', 'inner dimensions 4 and 3 differ'], 'inner mismatch');
      assertThrows(() => runKernel('matmul', [a, b, ts.zeros([2, 3, 6], { device: 'cuda' })], [0]), ['matmul', 'needs out of shape [2, 3, 5]'], 'out shape');
      assertThrows(() => runKernel('matmul', [a, b, ts.zeros([3, 3, 5], { device: 'cuda' })], [0]), ['matmul', 'batch sizes must equal'], 'batch mismatch');
      assertThrows(() => runKernel('matmul', [a, b.to('float64'), out], [0]), ['matmul: a and b must have the same dtype'], 'dtype mismatch');
      assertThrows(() => runKernel('matmul', [a, b, out.to('float64')], [0]), ['matmul: a and out must have the same dtype'], 'out dtype');
      const ia = ts.zeros([2, 3, 4], { dtype: 'int32', device: 'cuda' });
      const ib = ts.zeros([2, 4, 5], { dtype: 'int32', device: 'cuda' });
      assertThrows(() => runKernel('matmul', [ia, ib, ts.zeros([2, 3, 5], { dtype: 'int32', device: 'cuda' })], [0]), ['matmul: a must be float32 or float64'], 'int32');
      assertThrows(() => runKernel('matmul', [a, b, out], [NaN]), ['matmul: beta must be a number'], 'NaN beta');
      assertThrows(() => runKernel('matmul', [a, b, ts.zeros([2, 5, 3], { device: 'cuda' }).transpose(1, 2)], [0]), ['matmul: out must be contiguous'], 'strided out');
      assertThrows(() => runKernel('matmul', [a.reshape([6, 4]), b, out], [0]), ['matmul: a must have 3 dimensions'], '2-D a');
      // out overlapping an input
      const buf = ts.zeros([2, 4, 4], { device: 'cuda' });
      const sq = input([2, 4, 4], 'float32').to('cuda');
      assertThrows(() => runKernel('matmul', [buf, sq, buf], [0]), ['matmul: out', 'overlaps input a'], 'overlap');
      assertThrows(() => withMode('bogus' as Mode, () => ts.matmul(a, b)), ['matmul: TESSERA_CUDA_MATMUL must be tf32, fp32 or auto'], 'bad mode');
      assertThrows(() => ts.matmul(a, input([2, 4, 5], 'float32')), ['matmul'], 'mixed devices');
    });
  });
  errors.run();

  const alloc = suite('cuda: caching device allocator');
  alloc('freed blocks are reused, counted, and come back zeroed', () => {
    const before = ts.memoryStats();
    // a block full of data, freed, then a zero-initialized tensor of the same size: must read 0
    for (const n of [1, 100, 4096, 1 << 20, (1 << 22) + 3]) {
      const t = ts.full([n], 7.5, { device: 'cuda' });
      t.dispose();
      const z = Tensor.empty([n], 'float32', 'cuda');
      const v = z.toTypedArray();
      let nonzero = 0;
      for (let i = 0; i < v.length; i++) if (v[i] !== 0) nonzero++;
      assert.is(nonzero, 0, `reused block of ${n} floats is zeroed`);
      z.dispose();
    }
    const after = ts.memoryStats();
    assert.is(after.deviceBlocks, before.deviceBlocks, 'device blocks back to the start');
    assert.is(after.deviceBytes, before.deviceBytes, 'device bytes back to the start');
    // Allocator statistics, once lib/backend.ts reports them (deviceCachedBytes etc.).
    const s = ts.memoryStats() as unknown as Record<string, number | undefined>;
    if (typeof s.deviceCachedBytes === 'number') {
      ts.emptyCache();
      assert.is((ts.memoryStats() as unknown as Record<string, number>).deviceCachedBytes, 0, 'emptyCache empties the device cache');
      const t = ts.zeros([1 << 20], { device: 'cuda' });
      const used = ts.memoryStats() as unknown as Record<string, number>;
      t.dispose();
      const freed = ts.memoryStats() as unknown as Record<string, number>;
      assert.ok(freed.deviceCachedBytes >= 4 << 20, `a freed 4 MiB block is cached (${freed.deviceCachedBytes})`);
      if (typeof used.devicePeakBytes === 'number') assert.ok(used.devicePeakBytes >= 4 << 20, 'peak covers the block');
      ts.emptyCache();
      assert.is((ts.memoryStats() as unknown as Record<string, number>).deviceCachedBytes, 0, 'emptyCache releases it');
    } else {
      console.log('  (memoryStats() has no deviceCachedBytes yet: allocator statistics not checked)');
    }
  });
  alloc('a training-like loop of same-size allocations does not grow device memory', () => {
    const before = ts.memoryStats();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 500; i++)
      ts.scope(() => {
        const a = ts.zeros([256, 256], { device: 'cuda' });
        const b = ts.zeros([256, 256], { device: 'cuda' });
        ts.add(a, b);
      });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`  1500 device allocations + frees (256 KiB) in ${ms.toFixed(1)} ms`);
    const after = ts.memoryStats();
    assert.is(after.deviceBlocks, before.deviceBlocks);
    assert.is(after.deviceBytes, before.deviceBytes);
  });
  alloc.run();
}
