// CUDA parity for the reduction and normalisation kernels (native/cuda/{reduce,softmax,layernorm,
// cross_entropy}.cu) against their CPU twins, on fresh random inputs (the seed is printed; replay
// with TEST_SEED=...), float32 and float64, forward and backward, through the public ops
// (ts.sum, ts.softmax, ts.layerNorm, ts.crossEntropy, ...) and through runKernel directly.
//
// Tolerances, not bit equality: the GPU kernels accumulate in double like the CPU, but add in a
// different order (trees), use CUDA's exp/log and, for softmax, an online max/sum; each .cu file's
// top comment says exactly how. amax/amin are exact and compared bit for bit.
//   float32: rtol ~1e-6 (reduce) to ~1e-5 (softmax, layer norm, cross-entropy)
//   float64: rtol ~1e-12, with an absolute tolerance scaled by the reduced length for sums.
// Shape sweeps cover size-1 and odd sizes, the warp-per-row / block-per-row / split-row /
// column-reduction kernel paths, empty dims, non-contiguous inputs, IEEE specials (NaN, +-inf) and
// the argument errors (same messages as the CPU). A backward that needs an op of another family
// without a CUDA kernel yet (e.g. affine for mean's gradient) is skipped with a printed note.
// Without a usable CUDA device the file prints why and registers no tests (set
// TESSERA_EXPECT_CUDA=1 to make that a failure), as test/cuda/parity.test.ts.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { runKernel } from '../../lib/backend';
import { assertClose, assertThrows, seedFor } from '../helpers/check';

type FloatDType = 'float32' | 'float64';
const FLOATS: FloatDType[] = ['float32', 'float64'];

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

// Ops with CUDA kernels in this family (or the shared copy/fill/binary ones): a missing kernel
// among these is a failure; a missing kernel of another family skips that backward check.
const MINE = new Set([
  'copy', 'fill', 'rand', 'randn', 'add', 'sub', 'mul', 'div',
  'sum', 'mean', 'amax', 'amin', 'logsumexp', 'var',
  'softmax', 'log_softmax', 'softmax_backward', 'log_softmax_backward',
  'layer_norm', 'layer_norm_backward', 'cross_entropy', 'cross_entropy_backward',
]);

/** Run body; if it fails only because another family's op has no CUDA kernel yet, say so and go on. */
function unlessMissing(what: string, body: () => void): void {
  try {
    body();
  } catch (e) {
    const m = e instanceof Error ? /(\w+): not implemented on cuda/.exec(e.message) : null;
    if (m && !MINE.has(m[1])) {
      console.log(`    (skipped ${what}: needs '${m[1]}' on cuda, not wired yet)`);
      return;
    }
    throw e;
  }
}

/** Bitwise equality (NaN equals NaN), naming the first mismatches. */
function assertSameBits(gpu: ArrayLike<number>, cpu: ArrayLike<number>, what: string): void {
  assert.is(gpu.length, cpu.length, `${what}: length ${gpu.length} vs ${cpu.length}`);
  let bad = 0;
  const first: string[] = [];
  for (let i = 0; i < gpu.length; i++) {
    if (!Object.is(gpu[i], cpu[i])) {
      if (bad < 4) first.push(`[${i}] cuda ${gpu[i]} cpu ${cpu[i]}`);
      bad++;
    }
  }
  if (bad) assert.unreachable(`${what}: ${bad} of ${gpu.length} elements differ: ${first.join('; ')}`);
}

/** gpu (on cuda) against cpu: same dtype and shape, values within rtol/atol (bitwise when rtol is 0). */
function assertNear(gpu: Tensor, cpu: Tensor, rtol: number, atol: number, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(cpu.device, 'cpu', `${what}: reference device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
  const g = gpu.toTypedArray();
  const c = cpu.toTypedArray();
  if (rtol === 0 && atol === 0) assertSameBits(g, c, what);
  else assertClose(g, c, rtol, atol, what);
}

/** Run body in a scope and check that it left no device or host blocks behind. */
function leakFree(what: string, body: () => void): void {
  const before = ts.memoryStats();
  ts.scope(body);
  const after = ts.memoryStats();
  assert.is(after.deviceBlocks, before.deviceBlocks, `${what}: device blocks leaked`);
  assert.is(after.hostBlocks, before.hostBlocks, `${what}: host blocks leaked`);
}

const randn = (shape: number[], dtype: FloatDType, std = 3, mean = 0.25): Tensor => ts.randn(shape, { dtype, mean, std });
const tag = (dtype: string, shape: number[], extra = ''): string => `${dtype}${JSON.stringify(shape)}${extra}`;

if (!usable) {
  console.log(`  cuda reduce/softmax/layernorm/cross_entropy parity: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda reduce/norm parity');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda reduce/softmax/layernorm/cross_entropy parity on ${info.deviceNames.join(', ')}`);

  // ---------------------------------------------------------------- reduce
  const red = suite('cuda: sum / mean / amax / amin / logsumexp / var');

  // [shape, dims]: inner == 1 (warp and block rows, split rows), inner > 1 (wide and narrow
  // column paths), full reductions, size-1 dims.
  const REDUCE_CASES: [number[], number | number[] | undefined][] = [
    [[7], undefined],
    [[1], 0],
    [[3, 5], 1],
    [[3, 5], 0],
    [[17, 33], -1],
    [[4, 1029], 1], // block per row
    [[2, 40000], 1], // split rows
    [[1_000_003], undefined], // full reduction, split rows
    [[2, 3, 4, 5], [1, 2]],
    [[2, 3, 4, 5], [0, 3]], // non-adjacent: the TS side permutes + copies
    [[3000, 5], 0], // few columns, long R: 8 threads per column
    [[64, 300], 0], // 300 columns
    [[9, 9000], 0], // >= 8192 columns: one thread per column, the CPU's order
    [[5, 1, 7], 1],
    [[1, 1], undefined],
  ];

  /** Tolerances for a reduction over r elements. */
  const tol = (dtype: FloatDType, r: number): [number, number] =>
    dtype === 'float32' ? [1e-6, 1e-6] : [1e-12, 1e-14 * Math.max(1, r) * 4];

  red('forward: every kind over a shape/dims sweep, float32 and float64', () => {
    for (const dtype of FLOATS)
      for (const [shape, dims] of REDUCE_CASES)
        leakFree(`reduce ${tag(dtype, shape)}`, () => {
          const what = tag(dtype, shape, ` dims ${JSON.stringify(dims)}`);
          seedFor(`reduce ${what}`);
          const x = randn(shape, dtype);
          const g = x.to('cuda');
          const dl = dims === undefined ? shape.map((_, i) => i) : (Array.isArray(dims) ? dims : [dims]).map((d) => (d < 0 ? d + shape.length : d));
          const r = dl.reduce((a, d) => a * shape[d], 1);
          const [rt, at] = tol(dtype, r);
          for (const keep of [false, true]) {
            assertNear(ts.sum(g, dims, keep), ts.sum(x, dims, keep), rt, at, `sum ${what} keepdim ${keep}`);
            assertNear(ts.mean(g, dims, keep), ts.mean(x, dims, keep), rt, at, `mean ${what} keepdim ${keep}`);
          }
          assertNear(ts.max(g, dims), ts.max(x, dims), 0, 0, `max ${what}`);
          assertNear(ts.min(g, dims), ts.min(x, dims), 0, 0, `min ${what}`);
          assertNear(ts.logsumexp(g, dims), ts.logsumexp(x, dims), rt, at, `logsumexp ${what}`);
          for (const correction of [1, 0, 2.5])
            assertNear(ts.variance(g, dims, false, correction), ts.variance(x, dims, false, correction), rt, at * 10, `var(correction ${correction}) ${what}`);
        });
  });

  red('forward: non-contiguous inputs (transposed, strided, expanded)', () => {
    for (const dtype of FLOATS)
      leakFree(`reduce strided ${dtype}`, () => {
        seedFor(`reduce strided ${dtype}`);
        const base = randn([12, 37], dtype);
        const gb = base.to('cuda');
        const views: [string, (t: Tensor) => Tensor][] = [
          ['transpose', (t) => t.transpose()],
          ['slice step 3', (t) => ts.slice(t, 1, 1, undefined, 3)],
          ['expand', (t) => ts.select(t, 0, 2).unsqueeze(0).expand([5, 37])],
        ];
        for (const [name, f] of views)
          for (const dims of [0, 1, undefined]) {
            const [rt, at] = tol(dtype, 40);
            const w = `${name} ${dtype} dims ${dims}`;
            assertNear(ts.sum(f(gb), dims), ts.sum(f(base), dims), rt, at, `sum ${w}`);
            assertNear(ts.max(f(gb), dims), ts.max(f(base), dims), 0, 0, `max ${w}`);
            assertNear(ts.logsumexp(f(gb), dims), ts.logsumexp(f(base), dims), rt, at, `logsumexp ${w}`);
            assertNear(ts.variance(f(gb), dims), ts.variance(f(base), dims), rt, at, `var ${w}`);
          }
      });
  });

  red('special values: NaN propagation, infinities, empty reductions, R - correction <= 0', () => {
    leakFree('reduce specials', () => {
      const rows = [
        [1, 2, NaN, 4],
        [-Infinity, -Infinity, -Infinity, -Infinity],
        [Infinity, 1, 2, 3],
        [-Infinity, 0, 1, -Infinity],
        [NaN, -Infinity, Infinity, 0],
        [-0, -0, -0, -0], // (mixed signed zeros have no defined max: left out)
      ];
      for (const dtype of FLOATS) {
        const x = ts.tensor(rows, { dtype });
        const g = x.to('cuda');
        for (const dims of [1, 0, undefined]) {
          const w = `${dtype} dims ${dims}`;
          assertNear(ts.max(g, dims), ts.max(x, dims), 0, 0, `max specials ${w}`);
          assertNear(ts.min(g, dims), ts.min(x, dims), 0, 0, `min specials ${w}`);
          assertNear(ts.logsumexp(g, dims), ts.logsumexp(x, dims), 1e-6, 1e-6, `logsumexp specials ${w}`);
          assertNear(ts.sum(g, dims), ts.sum(x, dims), 1e-6, 1e-6, `sum specials ${w}`);
          assertNear(ts.variance(g, dims), ts.variance(x, dims), 1e-6, 1e-6, `var specials ${w}`);
        }
        // the split-row path with specials far apart
        const big = ts.zeros([300000], { dtype });
        const bigArr = big.toTypedArray();
        bigArr[123457] = NaN;
        const withNaN = ts.tensor(bigArr, { dtype, shape: [300000] });
        assertNear(ts.max(withNaN.to('cuda')), ts.max(withNaN), 0, 0, `max NaN split ${dtype}`);
        assertNear(ts.logsumexp(withNaN.to('cuda')), ts.logsumexp(withNaN), 0, 0, `logsumexp NaN split ${dtype}`);
        const ninf = ts.full([300000], -Infinity, { dtype });
        assertNear(ts.logsumexp(ninf.to('cuda')), ts.logsumexp(ninf), 0, 0, `logsumexp -inf split ${dtype}`);
        // empty reductions and too few elements for the correction
        const e = ts.zeros([3, 0, 2], { dtype });
        const ge = e.to('cuda');
        assertNear(ts.sum(ge, 1), ts.sum(e, 1), 0, 0, `sum empty ${dtype}`);
        assertNear(ts.mean(ge, 1), ts.mean(e, 1), 0, 0, `mean empty ${dtype}`);
        assertNear(ts.logsumexp(ge, 1), ts.logsumexp(e, 1), 0, 0, `logsumexp empty ${dtype}`);
        assertNear(ts.variance(ge, 1), ts.variance(e, 1), 0, 0, `var empty ${dtype}`);
        assertNear(ts.sum(ge, 0), ts.sum(e, 0), 0, 0, `sum over 3 of an empty tensor ${dtype}`);
        const one = randn([4, 1], dtype);
        assertNear(ts.variance(one.to('cuda'), 1), ts.variance(one, 1), 0, 0, `var of one element ${dtype}`);
      }
    });
  });

  red('backward through the public ops', () => {
    for (const dtype of FLOATS)
      leakFree(`reduce backward ${dtype}`, () => {
        seedFor(`reduce backward ${dtype}`);
        const x = randn([6, 11], dtype);
        for (const [name, f] of [
          ['sum', (t: Tensor) => ts.sum(t, 1)],
          ['mean', (t: Tensor) => ts.mean(t, 0)],
          ['logsumexp', (t: Tensor) => ts.logsumexp(t, 1)],
          ['var', (t: Tensor) => ts.variance(t, 0)],
          ['max', (t: Tensor) => ts.max(t, 1)],
        ] as const)
          unlessMissing(`${name} backward ${dtype}`, () => {
            const grads = (['cpu', 'cuda'] as const).map((device) => {
              const leaf = x.to(device).detach().requiresGrad_();
              const y = f(leaf);
              const gy = ts.full(y.shape, 1, { dtype }).to(device);
              ts.backward(y, gy);
              return leaf.grad!;
            });
            const [rt, at] = tol(dtype, 11);
            assertNear(grads[1], grads[0], rt, at, `${name} backward ${dtype}`);
          });
      });
  });

  red('errors: same checks and messages as the CPU', () => {
    leakFree('reduce errors', () => {
      for (const device of ['cpu', 'cuda'] as const) {
        const x = ts.zeros([2, 3, 4], { device });
        assertThrows(() => runKernel('sum', [x, ts.zeros([5], { device })]), ['sum: out must have 8 elements'], `sum bad out ${device}`);
        assertThrows(() => runKernel('sum', [x.transpose(0, 2), ts.zeros([8], { device })]), ['sum: x must be contiguous'], `sum strided ${device}`);
        assertThrows(() => runKernel('var', [x, ts.zeros([8], { device })]), ['var: expected 2 tensors and 1 scalars'], `var no correction ${device}`);
        assertThrows(() => runKernel('amax', [ts.zeros([2, 3, 4], { device, dtype: 'int32' }), ts.zeros([8], { device, dtype: 'int32' })]), ['amax: x must be float32 or float64'], `amax int32 ${device}`);
        assertThrows(() => runKernel('mean', [x, ts.zeros([8], { device, dtype: 'float64' })]), ['mean: x and out must have the same dtype'], `mean dtype ${device}`);
      }
    });
  });
  red.run();

  // ---------------------------------------------------------------- softmax
  const sm = suite('cuda: softmax / log_softmax, forward and backward');
  const SM_SHAPES: number[][] = [[1], [7], [1, 1], [3, 7], [5, 1], [2, 3, 33], [64, 1000], [8, 1024], [5, 1025], [3, 5000], [2, 70000], [0, 5], [4, 0], [1000, 3]];
  const smTol = (dtype: FloatDType, log: boolean): [number, number] =>
    dtype === 'float32' ? (log ? [2e-6, 5e-6] : [5e-6, 1e-7]) : [1e-12, 1e-14];

  sm('forward and backward over a shape sweep, last dim and other dims', () => {
    for (const dtype of FLOATS)
      for (const shape of SM_SHAPES)
        leakFree(`softmax ${tag(dtype, shape)}`, () => {
          seedFor(`softmax ${tag(dtype, shape)}`);
          const x = randn(shape, dtype);
          const gx = x.to('cuda');
          const dims = shape.length > 1 ? [-1, 0] : [-1];
          for (const log of [false, true])
            for (const dim of dims) {
              const fn = log ? ts.logSoftmax : ts.softmax;
              const what = `${log ? 'logSoftmax' : 'softmax'} ${tag(dtype, shape)} dim ${dim}`;
              const [rt, at] = smTol(dtype, log);
              const yc = fn(x, dim);
              const yg = fn(gx, dim);
              assertNear(yg, yc, rt, at, what);
              // backward through the public op: grad of sum(w * y)
              const w = randn(shape, dtype, 1, 0);
              const grads = (['cpu', 'cuda'] as const).map((device) => {
                const leaf = x.to(device).detach().requiresGrad_();
                ts.backward(fn(leaf, dim), w.to(device));
                return leaf.grad!;
              });
              assertNear(grads[1], grads[0], rt * 4, at * 4, `${what} backward`);
            }
        });
  });

  sm('backward kernels directly, on the same y (bitwise inputs)', () => {
    for (const dtype of FLOATS)
      for (const [rows, n] of [[3, 7], [33, 1], [17, 1024], [4, 3001]])
        leakFree(`softmax_backward ${dtype} ${rows}x${n}`, () => {
          seedFor(`softmax_backward ${dtype} ${rows}x${n}`);
          for (const kernel of ['softmax_backward', 'log_softmax_backward']) {
            const y = kernel === 'softmax_backward' ? ts.softmax(randn([rows, n], dtype)) : ts.logSoftmax(randn([rows, n], dtype));
            const g = randn([rows, n], dtype, 1, 0);
            const out = (['cpu', 'cuda'] as const).map((device) => {
              const dx = ts.zeros([rows, n], { dtype, device });
              runKernel(kernel, [y.to(device), g.to(device), dx]);
              return dx;
            });
            const [rt, at] = dtype === 'float32' ? [1e-5, 1e-6] : [1e-12, 1e-14];
            assertNear(out[1], out[0], rt, at, `${kernel} ${dtype} ${rows}x${n}`);
          }
        });
  });

  sm('stability and IEEE specials: huge logits, -inf masks, all -inf rows, NaN, +inf', () => {
    leakFree('softmax specials', () => {
      const rows = [
        [1000, 999, -1000, 0],
        [-Infinity, 1, 2, -Infinity],
        [-Infinity, -Infinity, -Infinity, -Infinity],
        [1, NaN, 2, 3],
        [Infinity, 1, 2, 3],
        [-Infinity, -Infinity, 5, -Infinity],
        [-1e30, 1e30, 0, 3],
      ];
      for (const dtype of FLOATS) {
        const x = ts.tensor(rows, { dtype });
        for (const log of [false, true]) {
          const fn = log ? ts.logSoftmax : ts.softmax;
          const [rt, at] = smTol(dtype, log);
          assertNear(fn(x.to('cuda')), fn(x), rt, at, `${log ? 'logSoftmax' : 'softmax'} specials ${dtype}`);
          // the same rows inside a long row (block-per-row path)
          const wide = ts.cat([x, ts.full([rows.length, 3000], -Infinity, { dtype })], 1);
          assertNear(fn(wide.to('cuda')), fn(wide), rt, at, `${log ? 'logSoftmax' : 'softmax'} specials wide ${dtype}`);
        }
      }
    });
  });

  sm('non-contiguous inputs and errors', () => {
    leakFree('softmax strided', () => {
      for (const dtype of FLOATS) {
        seedFor(`softmax strided ${dtype}`);
        const x = randn([9, 40], dtype);
        const views: [string, (t: Tensor) => Tensor][] = [
          ['transpose', (t) => t.transpose()],
          ['slice', (t) => ts.slice(t, 1, 1, undefined, 3)],
          ['expand', (t) => ts.select(t, 0, 4).unsqueeze(0).expand([6, 40])],
        ];
        for (const [name, f] of views) {
          assertNear(ts.softmax(f(x.to('cuda'))), ts.softmax(f(x)), ...smTol(dtype, false), `softmax ${name} ${dtype}`);
          assertNear(ts.logSoftmax(f(x.to('cuda')), 0), ts.logSoftmax(f(x), 0), ...smTol(dtype, true), `logSoftmax ${name} ${dtype}`);
        }
      }
      for (const device of ['cpu', 'cuda'] as const) {
        const a = ts.zeros([3, 4], { device });
        assertThrows(() => runKernel('softmax', [a, ts.zeros([4, 3], { device })]), ['softmax: x and out must have the same shape'], `softmax shape ${device}`);
        assertThrows(() => runKernel('softmax', [a.transpose(), ts.zeros([4, 3], { device })]), ['softmax: x must be contiguous'], `softmax strided ${device}`);
        assertThrows(() => runKernel('log_softmax', [ts.zeros([3, 4], { device, dtype: 'int32' }), ts.zeros([3, 4], { device, dtype: 'int32' })]), ['log_softmax: x must be float32 or float64'], `log_softmax int ${device}`);
        assertThrows(() => runKernel('softmax_backward', [a, a]), ['softmax_backward: expected 3 tensors'], `softmax_backward count ${device}`);
      }
    });
  });
  sm.run();

  // ---------------------------------------------------------------- layer norm
  const ln = suite('cuda: layer_norm, forward and backward');
  const lnTol = (dtype: FloatDType): [number, number] => (dtype === 'float32' ? [1e-5, 1e-5] : [1e-11, 1e-12]);

  ln('forward and backward through ts.layerNorm: weight/bias present or not, shape sweep', () => {
    const cases: [number[], number[]][] = [
      [[4, 7], [7]],
      [[1, 1], [1]],
      [[33, 5], [5]],
      [[3, 1024], [1024]],
      [[5, 1025], [1025]],
      [[2, 3, 4, 5], [4, 5]],
      [[700, 96], [96]],
      [[3, 20000], [20000]],
      [[0, 8], [8]],
      [[6, 0], [0]],
    ];
    for (const dtype of FLOATS)
      for (const [shape, ns] of cases)
        for (const [hw, hb] of [[true, true], [true, false], [false, true], [false, false]])
          leakFree(`layerNorm ${tag(dtype, shape)}`, () => {
            const what = `layerNorm ${tag(dtype, shape)} weight ${hw} bias ${hb}`;
            seedFor(what);
            const x = randn(shape, dtype, 2, 5); // a common offset: the two-pass variance matters
            const w = hw ? randn(ns, dtype, 1, 1) : null;
            const b = hb ? randn(ns, dtype, 1, 0) : null;
            const gout = randn(shape, dtype, 1, 0);
            const run = (device: 'cpu' | 'cuda') => {
              const lx = x.to(device).detach().requiresGrad_();
              const lw = w ? w.to(device).detach().requiresGrad_() : null;
              const lb = b ? b.to(device).detach().requiresGrad_() : null;
              const y = ts.layerNorm(lx, ns, lw, lb, 1e-5);
              ts.backward(y, gout.to(device));
              return { y: y.detach(), gx: lx.grad, gw: lw?.grad ?? null, gb: lb?.grad ?? null };
            };
            const c = run('cpu');
            const g = run('cuda');
            const [rt, at] = lnTol(dtype);
            assertNear(g.y, c.y, rt, at, `${what} out`);
            if (c.gx) assertNear(g.gx!, c.gx, rt * 10, at * 10, `${what} grad x`);
            if (c.gw) assertNear(g.gw!, c.gw, rt * 10, at * 100, `${what} grad weight`);
            if (c.gb) assertNear(g.gb!, c.gb, rt * 10, at * 100, `${what} grad bias`);
          });
  });

  ln('kernels directly: saved mean/rstd, every want_grad combination, non-contiguous x', () => {
    for (const dtype of FLOATS)
      for (const [rows, n] of [[5, 9], [300, 64], [3, 2000], [1, 1]])
        leakFree(`layer_norm kernels ${dtype} ${rows}x${n}`, () => {
          const what = `layer_norm ${dtype} ${rows}x${n}`;
          seedFor(what);
          const x = randn([n, rows], dtype, 3, -2).transpose(); // non-contiguous source; the kernel needs contiguous rows
          const xc = ts.contiguous(x);
          const w = randn([n], dtype, 1, 1);
          const b = randn([n], dtype, 1, 0);
          const g = randn([rows, n], dtype, 1, 0);
          const [rt, at] = lnTol(dtype);
          const fwd = (device: 'cpu' | 'cuda') => {
            const out = ts.zeros([rows, n], { dtype, device });
            const mean = ts.zeros([rows], { dtype, device });
            const rstd = ts.zeros([rows], { dtype, device });
            runKernel('layer_norm', [xc.to(device), out, mean, rstd, w.to(device), b.to(device)], [1e-6, 1, 1]);
            return [out, mean, rstd];
          };
          const fc = fwd('cpu');
          const fg = fwd('cuda');
          ['out', 'mean', 'rstd'].forEach((nm, i) => assertNear(fg[i], fc[i], rt, at, `${what} ${nm}`));
          for (let mask = 0; mask < 8; mask++) {
            const [wx, ww, wb] = [(mask & 1) !== 0, (mask & 2) !== 0, (mask & 4) !== 0];
            for (const hasW of [true, false]) {
              const bwd = (device: 'cpu' | 'cuda', stats: Tensor[]) => {
                const outs = [
                  ...(wx ? [ts.zeros([rows, n], { dtype, device })] : []),
                  ...(ww ? [ts.zeros([n], { dtype, device })] : []),
                  ...(wb ? [ts.zeros([n], { dtype, device })] : []),
                ];
                // the CPU's saved statistics on both devices, so only the backward is compared
                runKernel('layer_norm_backward', [xc.to(device), stats[1].to(device), stats[2].to(device), g.to(device), ...(hasW ? [w.to(device)] : []), ...outs],
                  [hasW ? 1 : 0, wx ? 1 : 0, ww ? 1 : 0, wb ? 1 : 0]);
                return outs;
              };
              const bc = bwd('cpu', fc);
              const bg = bwd('cuda', fc);
              bc.forEach((t, i) => assertNear(bg[i], t, rt * 10, at * 100, `${what} backward mask ${mask} weight ${hasW} output ${i}`));
            }
          }
        });
  });

  ln('errors: same checks and messages as the CPU', () => {
    leakFree('layer_norm errors', () => {
      for (const device of ['cpu', 'cuda'] as const) {
        const x = ts.zeros([3, 4], { device });
        const v3 = ts.zeros([3], { device });
        assertThrows(() => runKernel('layer_norm', [x, x, v3, v3], [1e-5, 0]), ['layer_norm: expected 3 scalars'], `scalars ${device}`);
        assertThrows(() => runKernel('layer_norm', [x, ts.zeros([3, 4], { device }), v3, v3], [-1, 0, 0]), ['layer_norm: eps must be a finite number >= 0'], `eps ${device}`);
        assertThrows(() => runKernel('layer_norm', [x, ts.zeros([3, 4], { device }), v3, v3], [1e-5, 2, 0]), ['layer_norm: scalar has_weight must be 0 or 1'], `flag ${device}`);
        assertThrows(() => runKernel('layer_norm', [x, ts.zeros([3, 4], { device }), ts.zeros([2], { device }), v3], [1e-5, 0, 0]), ['layer_norm: mean must have 3 elements'], `mean size ${device}`);
        assertThrows(() => runKernel('layer_norm_backward', [x, v3, v3, x], [0, 1, 0, 0]), ['layer_norm_backward: expected 5 tensors and 4 scalars'], `backward count ${device}`);
      }
    });
  });
  ln.run();

  // ---------------------------------------------------------------- cross-entropy
  const ce = suite('cuda: cross_entropy, forward and backward');
  const ceTol = (dtype: FloatDType): [number, number] => (dtype === 'float32' ? [1e-5, 1e-5] : [1e-11, 1e-12]);

  function targetsFor(n: number, c: number, ignoreIndex: number, ignoreFrac: number): Tensor {
    const r = ts.rand([n], { dtype: 'float64' }).toTypedArray();
    const u = ts.rand([n], { dtype: 'float64' }).toTypedArray();
    return ts.tensor(Int32Array.from(r, (v, i) => (u[i] < ignoreFrac ? ignoreIndex : Math.min(c - 1, Math.floor(v * c)))), { dtype: 'int32', shape: [n] });
  }

  ce('forward and backward through ts.crossEntropy: reductions, ignore_index, label smoothing', () => {
    const shapes: [number, number][] = [[1, 1], [7, 10], [64, 1000], [5, 1025], [3, 40000], [300, 3], [0, 4]];
    for (const dtype of FLOATS)
      for (const [n, c] of shapes)
        for (const reduction of ['mean', 'sum', 'none'] as const)
          for (const [ignoreIndex, smoothing, ignoreFrac] of [[-100, 0, 0], [2, 0.1, 0.3], [-1, 1, 0.2]] as const)
            leakFree(`crossEntropy ${dtype}`, () => {
              const what = `crossEntropy ${dtype} [${n}, ${c}] ${reduction} ignore ${ignoreIndex} smoothing ${smoothing}`;
              seedFor(what);
              const logits = randn([n, c], dtype, 4, 0);
              const targets = targetsFor(n, c, ignoreIndex, ignoreFrac);
              const opts = { reduction, ignoreIndex, labelSmoothing: smoothing };
              const gNone = randn([n], dtype, 1, 0);
              const run = (device: 'cpu' | 'cuda') => {
                const leaf = logits.to(device).detach().requiresGrad_();
                const loss = ts.crossEntropy(leaf, targets.to(device), opts);
                const gout = (reduction === 'none' ? gNone : ts.full([], 0.75, { dtype })).to(device);
                ts.backward(loss, gout);
                return [loss.detach(), leaf.grad!];
              };
              const cc = run('cpu');
              const cg = run('cuda');
              const [rt, at] = ceTol(dtype);
              assertNear(cg[0], cc[0], rt, at, `${what} loss`);
              assertNear(cg[1], cc[1], rt, at, `${what} grad`);
            });
  });

  ce('every row ignored, non-contiguous targets, the saved lse, and out-of-range targets', () => {
    leakFree('crossEntropy edge cases', () => {
      for (const dtype of FLOATS) {
        seedFor(`ce edges ${dtype}`);
        const logits = randn([6, 5], dtype);
        const allIgnored = ts.full([6], -100, { dtype: 'int32' });
        for (const reduction of ['mean', 'sum', 'none'] as const)
          assertNear(ts.crossEntropy(logits.to('cuda'), allIgnored.to('cuda'), { reduction }), ts.crossEntropy(logits, allIgnored, { reduction }), 0, 0, `all ignored ${reduction} ${dtype}`);
        // targets as a strided view
        const t2 = ts.tensor([[0, 9], [4, 9], [1, 9], [3, 9], [2, 9], [4, 9]], { dtype: 'int32' });
        const tv = ts.select(t2, 1, 0);
        assert.ok(!tv.isContiguous());
        assertNear(ts.crossEntropy(logits.to('cuda'), ts.select(t2.to('cuda'), 1, 0)), ts.crossEntropy(logits, tv), ...ceTol(dtype), `strided targets ${dtype}`);
        // the kernels directly: lse and per-row losses, grad_out with a stride
        const kern = (device: 'cpu' | 'cuda') => {
          const out = ts.zeros([6], { dtype, device });
          const lse = ts.zeros([6], { dtype, device });
          runKernel('cross_entropy', [logits.to(device), tv.to(device), out, lse], [-100, 0.2, 0]);
          const gbase = ts.tensor([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]], { dtype }).to(device);
          const gl = ts.zeros([6, 5], { dtype, device });
          runKernel('cross_entropy_backward', [logits.to(device), tv.to(device), lse, ts.select(gbase, 1, 1), gl], [-100, 0.2, 0]);
          return [out, lse, gl];
        };
        const kc = kern('cpu');
        const kg = kern('cuda');
        ['loss', 'lse', 'grad'].forEach((nm, i) => assertNear(kg[i], kc[i], ...ceTol(dtype), `kernel ${nm} ${dtype}`));
        // out-of-range targets: the same message on both devices, nothing else runs
        for (const bad of [5, -3]) {
          const tb = ts.tensor([0, 1, bad, 2, bad, 4], { dtype: 'int32' });
          for (const device of ['cpu', 'cuda'] as const)
            assertThrows(() => ts.crossEntropy(logits.to(device), tb.to(device)),
              [`target ${bad} at row 2 is out of range: expected a class index in [0, 5) or ignore_index (-100)`], `bad target ${bad} ${device}`);
        }
      }
      for (const device of ['cpu', 'cuda'] as const) {
        const l = ts.zeros([3, 4], { device });
        const t = ts.zeros([3], { device, dtype: 'int32' });
        assertThrows(() => runKernel('cross_entropy', [l, t, ts.zeros([], { device }), ts.zeros([3], { device })], [-100, 2, 1]), ['cross_entropy: label smoothing must be in [0, 1]'], `smoothing ${device}`);
        assertThrows(() => runKernel('cross_entropy', [l, t, ts.zeros([], { device }), ts.zeros([3], { device })], [-100, 0, 3]), ['cross_entropy: reduction code must be 0 (none), 1 (mean) or 2 (sum)'], `reduction ${device}`);
        assertThrows(() => runKernel('cross_entropy', [l, ts.zeros([2], { device, dtype: 'int32' }), ts.zeros([], { device }), ts.zeros([3], { device })], [-100, 0, 1]), ['cross_entropy: targets', 'must have one entry per row'], `targets size ${device}`);
      }
    });
  });
  ce.run();
}
