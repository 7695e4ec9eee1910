// crossEntropy: forward against a float64 JS reference for every reduction, with and without
// label smoothing and ignored rows (size-1 and odd N and C, float32 and float64), all rows
// ignored, non-contiguous logits and targets, huge logits, gradients by central differences
// (also through views), float32 gradients against float64, out-of-range targets reported with
// their value and row (in the forward and in the backward), and errors for bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { runKernel } from '../../lib/backend';
import { crossEntropy, CrossEntropyReduction } from '../../lib/ops/cross_entropy';
import { assertClose, assertThrows, flat, gradcheck, jsRandom, seedFor } from '../helpers/check';

// ---- independent reference: plain float64 loops over [N, C] row-major logits.
function ceRef(x: ArrayLike<number>, N: number, C: number, t: ArrayLike<number>, reduction: CrossEntropyReduction, ignore: number, eps: number): number[] {
  const losses: number[] = [];
  let count = 0;
  for (let i = 0; i < N; i++) {
    if (t[i] === ignore) {
      losses.push(0);
      continue;
    }
    count++;
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[i * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[i * C + c] - m);
    const lse = m + Math.log(s);
    const nll = lse - x[i * C + t[i]];
    let smooth = 0;
    for (let c = 0; c < C; c++) smooth += lse - x[i * C + c];
    losses.push((1 - eps) * nll + (eps * smooth) / C);
  }
  if (reduction === 'none') return losses;
  const total = losses.reduce((a, b) => a + b, 0);
  return [reduction === 'sum' ? total : total / count];
}

/** Random class indices in [0, C), with about `ignoreFrac` of rows set to `ignore`. */
function randomTargets(seed: number, N: number, C: number, ignore: number, ignoreFrac: number): number[] {
  const r = jsRandom(seed);
  return Array.from({ length: N }, () => (r() < ignoreFrac ? ignore : Math.min(C - 1, Math.floor(r() * C))));
}

const int32 = (v: number[]) => ts.tensor(Int32Array.from(v));
const REDUCTIONS: CrossEntropyReduction[] = ['mean', 'sum', 'none'];
const SIZES: [number, number][] = [[1, 1], [1, 5], [4, 3], [7, 10], [33, 17], [5, 1037], [3, 2]];

test('crossEntropy matches the float64 reference (reductions, smoothing, ignored rows; f64 and f32)', () => {
  const seed = seedFor('crossEntropy forward');
  ts.scope(() => {
    for (const [N, C] of SIZES) {
      const x = ts.randn([N, C], { dtype: 'float64', std: 3 });
      const x32 = x.to('float32');
      for (const ignore of [-100, 1]) {
        for (const frac of [0, 0.3]) {
          const t = randomTargets(seed + N * 31 + C, N, C, ignore, frac);
          const tt = int32(t);
          for (const reduction of REDUCTIONS) {
            for (const eps of [0, 0.1, 1]) {
              const what = `crossEntropy [${N}, ${C}] ${reduction} eps ${eps} ignore ${ignore} frac ${frac}`;
              const opts = { reduction, ignoreIndex: ignore, labelSmoothing: eps };
              const y = crossEntropy(x, tt, opts);
              assert.equal([...y.shape], reduction === 'none' ? [N] : [], `${what}: shape`);
              assert.is(y.dtype, 'float64');
              assertClose(flat(y), ceRef(flat(x), N, C, t, reduction, ignore, eps), 1e-12, 1e-12, `${what} f64`);
              const y32 = crossEntropy(x32, tt, opts);
              assert.is(y32.dtype, 'float32');
              assertClose(flat(y32), ceRef(flat(x32), N, C, t, reduction, ignore, eps), 1e-5, 1e-5, `${what} f32`);
            }
          }
        }
      }
      // defaults: mean, ignoreIndex -100, no smoothing
      const t = randomTargets(seed + 7, N, C, -100, 0.2);
      assertClose(flat(crossEntropy(x, int32(t))), ceRef(flat(x), N, C, t, 'mean', -100, 0), 1e-12, 1e-12, `defaults [${N}, ${C}]`);
    }
  });
});

test('crossEntropy on large inputs (rows split across threads) matches the reference', () => {
  const seed = seedFor('crossEntropy threads');
  const threads = ts.cpuInfo().threads;
  ts.setNumThreads(4);
  try {
    ts.scope(() => {
      const [N, C] = [400, 263];
      const x = ts.randn([N, C], { dtype: 'float64', std: 2 });
      const t = randomTargets(seed, N, C, -100, 0.1);
      for (const reduction of REDUCTIONS) {
        const opts = { reduction, labelSmoothing: 0.1 };
        assertClose(flat(crossEntropy(x, int32(t), opts)), ceRef(flat(x), N, C, t, reduction, -100, 0.1), 1e-12, 1e-12, `large ${reduction} f64`);
        const x32 = x.to('float32');
        assertClose(flat(crossEntropy(x32, int32(t), opts)), ceRef(flat(x32), N, C, t, reduction, -100, 0.1), 1e-5, 1e-5, `large ${reduction} f32`);
      }
      const grad = (nt: number) => {
        ts.setNumThreads(nt);
        const xl = x.detach();
        xl.requiresGrad = true;
        crossEntropy(xl, int32(t), { labelSmoothing: 0.1 }).backward();
        return flat(xl.grad as ts.Tensor);
      };
      const multi = grad(4);
      assert.equal(grad(1), multi, 'backward: same bits for 1 and 4 threads');
      // gradient against the closed form (softmax - smoothed one-hot) / count
      const xs = flat(x);
      const count = t.filter((v) => v !== -100).length;
      const expected: number[] = [];
      for (let i = 0; i < N; i++) {
        let m = -Infinity;
        for (let c = 0; c < C; c++) m = Math.max(m, xs[i * C + c]);
        let s = 0;
        for (let c = 0; c < C; c++) s += Math.exp(xs[i * C + c] - m);
        for (let c = 0; c < C; c++) {
          const p = Math.exp(xs[i * C + c] - m) / s;
          const target = (c === t[i] ? 0.9 : 0) + 0.1 / C;
          expected.push(t[i] === -100 ? 0 : (p - target) / count);
        }
      }
      assertClose(multi, expected, 1e-10, 1e-15, 'closed-form gradient');
    });
  } finally {
    ts.setNumThreads(threads);
  }
});

test('crossEntropy with every row ignored: mean is NaN, sum is 0, gradient is 0', () => {
  ts.scope(() => {
    const x = ts.randn([3, 4], { dtype: 'float64', requiresGrad: true });
    const t = int32([-100, -100, -100]);
    assert.ok(Number.isNaN(crossEntropy(x, t).item()), 'mean of nothing');
    assert.is(crossEntropy(x, t, { reduction: 'sum' }).item(), 0);
    assert.equal(flat(crossEntropy(x, t, { reduction: 'none' })), [0, 0, 0]);
    crossEntropy(x, t, { reduction: 'sum', labelSmoothing: 0.2 }).backward();
    assert.ok(flat(x.grad as ts.Tensor).every((v) => v === 0), 'zero gradient');
    // ignoreIndex may be a valid class: those rows are skipped
    const t2 = int32([2, 0, 2]);
    const y = crossEntropy(x.detach(), t2, { ignoreIndex: 2 });
    assertClose([y.item()], ceRef(flat(x), 3, 4, [2, 0, 2], 'mean', 2, 0), 1e-12, 1e-12, 'ignoreIndex = 2');
    // N = 0
    const e = crossEntropy(ts.zeros([0, 4]), int32([]), { reduction: 'none' });
    assert.equal([...e.shape], [0]);
    assert.is(crossEntropy(ts.zeros([0, 4]), int32([]), { reduction: 'sum' }).item(), 0);
  });
});

test('crossEntropy of non-contiguous logits and targets', () => {
  const seed = seedFor('crossEntropy views');
  ts.scope(() => {
    const base = ts.randn([6, 9], { dtype: 'float64' });
    const lt = base.transpose(); // [9, 6]
    const t = randomTargets(seed, 9, 6, -100, 0.2);
    for (const reduction of REDUCTIONS)
      assertClose(flat(crossEntropy(lt, int32(t), { reduction, labelSmoothing: 0.05 })), ceRef(flat(lt), 9, 6, t, reduction, -100, 0.05), 1e-12, 1e-12, `transposed ${reduction}`);
    const ls = base.slice(1, 1, 9, 2); // [6, 4]
    // strided targets: every other element of a longer int32 tensor
    const tAll = randomTargets(seed + 1, 12, 4, -100, 0);
    const tStrided = int32(tAll).slice(0, 0, 12, 2);
    assert.not.ok(tStrided.isContiguous());
    const tPicked = tAll.filter((_, i) => i % 2 === 0);
    assertClose(flat(crossEntropy(ls, tStrided, { reduction: 'none' })), ceRef(flat(ls), 6, 4, tPicked, 'none', -100, 0), 1e-12, 1e-12, 'sliced logits, strided targets');
  });
});

test('crossEntropy is stable for huge logits', () => {
  ts.scope(() => {
    for (const dtype of ['float32', 'float64'] as const) {
      const data = [1e4, -1e4, 0, 3e3, 3e3 + 1, -5e3, -1e30, 1e30, 0];
      const x = ts.tensor(data, { shape: [3, 3], dtype });
      const t = [0, 1, 0];
      const y = crossEntropy(x, int32(t), { reduction: 'none' });
      const ref = ceRef(flat(x), 3, 3, t, 'none', -100, 0);
      assert.ok(flat(y).every(Number.isFinite), `finite ${dtype}: ${flat(y)}`);
      assertClose(flat(y), ref, 1e-6, 1e-3, `huge ${dtype}`);
    }
  });
});

test('crossEntropy gradient matches central differences (every reduction, smoothing, ignored rows)', () => {
  const seed = seedFor('crossEntropy grad');
  ts.scope(() => {
    for (const [N, C] of [[5, 4], [1, 1], [1, 6], [8, 3]] as [number, number][]) {
      const t = randomTargets(seed + N * 7 + C, N, C, -100, N > 2 ? 0.3 : 0);
      const tt = int32(t);
      for (const reduction of REDUCTIONS) {
        for (const eps of [0, 0.2]) {
          const x = ts.randn([N, C], { dtype: 'float64', std: 2 });
          gradcheck(`crossEntropy [${N}, ${C}] ${reduction} eps ${eps}`, (a) => crossEntropy(a, tt, { reduction, labelSmoothing: eps }), [x]);
        }
      }
      // ignoreIndex that is a valid class
      const x = ts.randn([N, C], { dtype: 'float64' });
      // ('sum': with C = 1 every row is ignored, and a mean over no rows is NaN)
      const t0 = int32(randomTargets(seed + N * 7 + C + 1, N, C, 0, 0.3));
      gradcheck(`crossEntropy [${N}, ${C}] ignoreIndex 0`, (a) => crossEntropy(a, t0, { reduction: 'sum', ignoreIndex: 0, labelSmoothing: 0.1 }), [x]);
    }
  });
});

test('crossEntropy gradient through non-contiguous logits', () => {
  const seed = seedFor('crossEntropy grad views');
  ts.scope(() => {
    const x = ts.randn([5, 7], { dtype: 'float64' });
    const t7 = int32(randomTargets(seed, 7, 5, -100, 0.2));
    gradcheck('crossEntropy transposed', (a) => crossEntropy(a.transpose(), t7, { labelSmoothing: 0.1 }), [x]);
    const t5 = int32(randomTargets(seed + 1, 5, 3, -100, 0));
    gradcheck('crossEntropy sliced', (a) => crossEntropy(a.slice(1, 1, 7, 2), t5, { reduction: 'none' }), [x]);
    gradcheck('crossEntropy composed', (a) => crossEntropy(a.mul(a), t5.detach(), { reduction: 'sum' }).add(crossEntropy(a.slice(1, 0, 3), t5)), [x]);
  });
});

test('crossEntropy float32 gradient agrees with float64', () => {
  const seed = seedFor('crossEntropy grad f32');
  ts.scope(() => {
    const x64 = ts.randn([6, 1030], { dtype: 'float64', std: 2 });
    const t = int32(randomTargets(seed, 6, 1030, -100, 0.2));
    const grads = (['float64', 'float32'] as const).map((dtype) => {
      const x = x64.to(dtype).detach();
      x.requiresGrad = true;
      crossEntropy(x, t, { labelSmoothing: 0.1 }).backward();
      return flat(x.grad as ts.Tensor);
    });
    assertClose(grads[1], grads[0], 1e-4, 1e-8, 'f32 grad');
  });
});

test('crossEntropy reports out-of-range targets with their value and row', () => {
  ts.scope(() => {
    const x = ts.randn([4, 5]);
    for (const [bad, row] of [[5, 2], [-1, 0], [1000000, 3], [-101, 1]]) {
      const t = [0, 1, 2, 3];
      t[row] = bad;
      assertThrows(() => crossEntropy(x, int32(t)), ['cross_entropy', `target ${bad}`, `row ${row}`, '[0, 5)'], `target ${bad} at row ${row}`);
    }
    // ignoreIndex changes what is valid
    assertThrows(() => crossEntropy(x, int32([0, -100, 1, 2]), { ignoreIndex: -1 }), ['target -100', 'row 1'], 'custom ignoreIndex');
    assert.ok(Number.isFinite(crossEntropy(x, int32([0, -1, 1, 2]), { ignoreIndex: -1 }).item()), 'custom ignoreIndex accepted');
    // C = 0: every non-ignored target is out of range
    assertThrows(() => crossEntropy(ts.zeros([2, 0]), int32([-100, 0])), ['cross_entropy', 'target 0', 'row 1'], 'no classes');
    // the engine is fine afterwards
    assert.ok(Number.isFinite(crossEntropy(x, int32([4, 3, 2, 1])).item()), 'valid call after errors');
    // targets changed between forward and backward are checked again by the backward kernel
    const xl = ts.randn([4, 5], { requiresGrad: true });
    const tt = int32([0, 1, 2, 3]);
    const loss = crossEntropy(xl, tt);
    tt.storage.native.write(2 * 4, Int32Array.from([7]));
    assertThrows(() => loss.backward(), ['cross_entropy_backward', 'target 7', 'row 2'], 'backward validation');
  });
});

test('crossEntropy rejects bad arguments with clear errors', () => {
  ts.scope(() => {
    const x = ts.randn([3, 4]);
    const t = int32([0, 1, 2]);
    const expectError = (fn: () => unknown, cls: typeof ts.TesseraError, patterns: (string | RegExp)[], what: string) => {
      assertThrows(fn, patterns, what);
      try {
        fn();
      } catch (e) {
        assert.instance(e, cls, `${what}: error class`);
      }
    };
    expectError(() => crossEntropy(ts.tensor([[1, 2]], { dtype: 'int32' }), int32([0])), ts.DTypeError, ['crossEntropy', 'logits', 'int32[1, 2]', 'float32 or float64'], 'int logits');
    expectError(() => crossEntropy(ts.randn([2, 3, 4]), int32([0, 1])), ts.ShapeError, ['crossEntropy', 'logits', '[N, C]', 'float32[2, 3, 4]'], 'rank 3 logits');
    expectError(() => crossEntropy(ts.randn([4]), int32([0])), ts.ShapeError, ['crossEntropy', 'float32[4]'], 'rank 1 logits');
    expectError(() => crossEntropy(x, ts.tensor([0, 1, 2])), ts.DTypeError, ['crossEntropy', 'targets', 'int32', 'float32[3]'], 'float targets');
    expectError(() => crossEntropy(x, int32([0, 1])), ts.ShapeError, ['crossEntropy', 'targets', 'shape [3]', 'int32[2]'], 'short targets');
    expectError(() => crossEntropy(x, ts.tensor([[0, 1, 2]], { dtype: 'int32' })), ts.ShapeError, ['crossEntropy', 'targets', 'int32[1, 3]'], '2-d targets');
    expectError(() => crossEntropy(x, t, { reduction: 'avg' as CrossEntropyReduction }), ts.ArgumentError, ['crossEntropy', 'reduction', 'avg'], 'bad reduction');
    expectError(() => crossEntropy(x, t, { reduction: 'toString' as CrossEntropyReduction }), ts.ArgumentError, ['crossEntropy', 'reduction'], 'inherited-name reduction');
    expectError(() => crossEntropy(x, t, { labelSmoothing: 1.5 }), ts.ArgumentError, ['crossEntropy', 'labelSmoothing', '1.5'], 'smoothing > 1');
    expectError(() => crossEntropy(x, t, { labelSmoothing: NaN }), ts.ArgumentError, ['crossEntropy', 'labelSmoothing'], 'NaN smoothing');
    expectError(() => crossEntropy(x, t, { ignoreIndex: 0.5 }), ts.ArgumentError, ['crossEntropy', 'ignoreIndex', '0.5'], 'fractional ignoreIndex');
    expectError(() => crossEntropy(x, null as unknown as ts.Tensor), ts.ArgumentError, ['crossEntropy', 'targets must be a Tensor'], 'null targets');
    const dl = ts.randn([3, 4]);
    dl.dispose();
    expectError(() => crossEntropy(dl, t), ts.DisposedError, ['crossEntropy', 'logits', 'disposed'], 'disposed logits');
    const dt = int32([0, 1, 2]);
    dt.dispose();
    expectError(() => crossEntropy(x, dt), ts.DisposedError, ['crossEntropy', 'targets', 'disposed'], 'disposed targets');
    // the native kernel checks its own arguments
    assertThrows(() => runKernel('cross_entropy', [x, ts.tensor([0, 1, 2]), ts.empty([]), ts.empty([3])], [-100, 0, 1]), ['cross_entropy', 'targets must be int32'], 'native float targets');
    assertThrows(() => runKernel('cross_entropy', [x, t, ts.empty([]), ts.empty([3])], [-100, 0, 5]), ['cross_entropy', 'reduction'], 'native reduction code');
    assertThrows(() => runKernel('cross_entropy', [x, t, ts.empty([3]), ts.empty([2])], [-100, 0, 0]), ['cross_entropy', 'lse', '3 elements'], 'native lse size');
    assertThrows(() => runKernel('cross_entropy', [x.transpose(), int32([0, 1, 2, 3]), ts.empty([]), ts.empty([4])], [-100, 0, 1]), ['cross_entropy', 'logits', 'contiguous'], 'native non-contiguous');
  });
});

test('crossEntropy frees everything it allocates', () => {
  const before = ts.memoryStats().hostBlocks;
  ts.scope(() => {
    const x = ts.randn([8, 5], { requiresGrad: true });
    const t = int32([0, 1, 2, 3, 4, 0, 1, -100]);
    const loss = ts.scope(() => crossEntropy(x, t)); // the saved lse must survive this scope
    loss.backward();
    assert.ok(x.grad, 'gradient');
    ts.noGrad(() => crossEntropy(x, t, { reduction: 'none' }));
    try {
      crossEntropy(x, int32([0, 1, 2, 3, 4, 0, 1, 9]));
    } catch {
      // expected: out-of-range target; nothing may leak
    }
  });
  assert.is(ts.memoryStats().hostBlocks, before, 'native blocks after the scope');
});

test.run();
