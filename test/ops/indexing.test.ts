// gather, scatterAdd, indexSelect, embedding: forward against plain-loop float64 references on
// fresh random data (every dim, negative dims, size-1 and odd sizes, transposed / sliced /
// stride-0 inputs, float32 and float64), gradients by finite differences, determinism across
// thread counts, and bad inputs, including through the native kernels' raw entry points.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { embedding, gather, indexSelect, scatterAdd } from '../../lib/ops/indexing';
import { LayoutLike, runKernel } from '../../lib/backend';
import { assertClose, assertThrows, flat, gradcheck, jsRandom, seedFor } from '../helpers/check';
import { numel, unravel } from '../helpers/reference';

type Kind = 'contiguous' | 'transposed' | 'sliced';
const KINDS: Kind[] = ['contiguous', 'transposed', 'sliced'];

function ravel(c: readonly number[], shape: readonly number[]): number {
  let f = 0;
  for (let i = 0; i < shape.length; i++) f = f * shape[i] + c[i];
  return f;
}

/** A view of logical shape `shape` laid out as `kind` over a fresh base built by `make`. */
function laidOut(shape: number[], kind: Kind, make: (base: number[]) => Tensor): Tensor {
  if (kind === 'transposed' && shape.length >= 2) {
    const base = [...shape];
    const n = base.length;
    [base[n - 2], base[n - 1]] = [base[n - 1], base[n - 2]];
    return make(base).transpose(-2, -1);
  }
  if (kind === 'sliced' && shape.length >= 1) {
    const base = [...shape];
    base[0] = 2 * base[0] + 1;
    return make(base).slice(0, 1, undefined, 2);
  }
  return make(shape);
}

const data = (shape: number[], kind: Kind, dtype: 'float32' | 'float64' = 'float64'): Tensor =>
  laidOut(shape, kind, (b) => ts.randn(b, { dtype }));

function indices(rng: () => number, shape: number[], hi: number, kind: Kind = 'contiguous'): Tensor {
  return laidOut(shape, kind, (b) => {
    const vals = Int32Array.from({ length: numel(b) }, () => Math.floor(rng() * hi));
    return ts.tensor(vals, { dtype: 'int32', shape: b });
  });
}

// --- references (plain loops over logical, row-major values)

function gatherRef(x: number[], xs: number[], dim: number, idx: number[], is: number[]): number[] {
  return idx.map((v, p) => {
    const c = unravel(p, is);
    c[dim] = v;
    return x[ravel(c, xs)];
  });
}

function scatterAddRef(x: number[], xs: number[], dim: number, idx: number[], is: number[], src: number[], ss: number[]): number[] {
  const out = [...x];
  idx.forEach((v, p) => {
    const c = unravel(p, is);
    const s = src[ravel(c, ss)];
    c[dim] = v;
    out[ravel(c, xs)] += s;
  });
  return out;
}

function indexSelectRef(x: number[], xs: number[], dim: number, idx: number[]): { out: number[]; shape: number[] } {
  const shape = xs.map((s, i) => (i === dim ? idx.length : s));
  const out = Array.from({ length: numel(shape) }, (_, p) => {
    const c = unravel(p, shape);
    c[dim] = idx[c[dim]];
    return x[ravel(c, xs)];
  });
  return { out, shape };
}

function embeddingRef(w: number[], D: number, ids: number[]): number[] {
  const out: number[] = [];
  for (const id of ids) for (let k = 0; k < D; k++) out.push(w[id * D + k]);
  return out;
}

// [x shape, dim, index shape]
const GATHER_CASES: [number[], number, number[]][] = [
  [[5], 0, [8]],
  [[1], 0, [3]],
  [[3, 4], 0, [5, 4]],
  [[3, 4], 1, [3, 7]],
  [[3, 4], -1, [2, 1]],
  [[3, 4], -2, [1, 3]],
  [[2, 3, 5], 0, [4, 3, 5]],
  [[2, 3, 5], 1, [2, 6, 2]],
  [[2, 3, 5], 2, [1, 3, 3]],
  [[2, 3, 5], -1, [2, 2, 5]],
  [[1, 1, 1], 1, [1, 4, 1]],
  [[3, 1, 2, 3], 2, [2, 1, 5, 3]],
];

test('gather matches the reference for every dim, layout and dtype', () => {
  const rng = jsRandom(seedFor('gather forward'));
  for (const [xs, dim, is] of GATHER_CASES) {
    const d = dim < 0 ? dim + xs.length : dim;
    for (const xk of KINDS)
      for (const ik of KINDS)
        for (const dtype of ['float64', 'float32'] as const) {
          const x = data(xs, xk, dtype);
          const idx = indices(rng, is, xs[d], ik);
          const out = gather(x, dim, idx);
          assert.equal(out.shape, is);
          assert.is(out.dtype, dtype);
          assertClose(flat(out), gatherRef(flat(x), xs, d, flat(idx), is), 0, 0, `gather ${JSON.stringify(xs)} dim ${dim} ${xk}/${ik} ${dtype}`);
        }
  }
  // stride-0 (expanded) index and 0-d tensors
  const x = ts.randn([4, 6], { dtype: 'float64' });
  const row = ts.tensor([[3, 0, 0, 1, 2, 3]], { dtype: 'int32' }).expand([5, 6]);
  assertClose(flat(gather(x, 0, row)), gatherRef(flat(x), [4, 6], 0, flat(row), [5, 6]), 0, 0, 'expanded index');
  assert.is(gather(ts.tensor(2.5), 0, ts.tensor(0, { dtype: 'int32' })).item(), 2.5);
  assert.equal(gather(x, 1, ts.zeros([0, 6], { dtype: 'int32' })).shape, [0, 6]);
});

test('scatterAdd matches the reference for every dim, layout and dtype', () => {
  const rng = jsRandom(seedFor('scatterAdd forward'));
  for (const [xs, dim, is] of GATHER_CASES) {
    const d = dim < 0 ? dim + xs.length : dim;
    // src at least as large as index (one case strictly larger)
    const ss = is.map((s, i) => (i === 0 ? s + 1 : s));
    for (const xk of KINDS)
      for (const ik of KINDS)
        for (const dtype of ['float64', 'float32'] as const) {
          const x = data(xs, xk, dtype);
          const idx = indices(rng, is, xs[d], ik);
          const src = data(ss, ik === 'sliced' ? 'transposed' : 'sliced', dtype);
          const out = scatterAdd(x, dim, idx, src);
          assert.equal(out.shape, xs);
          const tol = dtype === 'float32' ? 1e-5 : 1e-12;
          assertClose(flat(out), scatterAddRef(flat(x), xs, d, flat(idx), is, flat(src), ss), tol, tol, `scatterAdd ${JSON.stringify(xs)} dim ${dim} ${xk}/${ik} ${dtype}`);
        }
  }
  // x is not modified (out of place), 0-d works
  const x = ts.zeros([3], { dtype: 'float64' });
  const out = scatterAdd(x, 0, ts.tensor([1, 1, 2], { dtype: 'int32' }), ts.tensor([1, 2, 3], { dtype: 'float64' }));
  assert.equal(flat(out), [0, 3, 3]);
  assert.equal(flat(x), [0, 0, 0]);
  assert.is(scatterAdd(ts.tensor(1.5), -1, ts.tensor(0, { dtype: 'int32' }), ts.tensor(2)).item(), 3.5);
});

test('indexSelect matches the reference for every dim, layout and dtype', () => {
  const rng = jsRandom(seedFor('indexSelect forward'));
  const shapes = [[5], [1], [3, 4], [2, 3, 5], [1, 7, 1], [3, 1, 2, 3]];
  for (const xs of shapes)
    for (let dim = -xs.length; dim < xs.length; dim++) {
      const d = dim < 0 ? dim + xs.length : dim;
      for (const xk of KINDS)
        for (const ik of ['contiguous', 'sliced'] as Kind[])
          for (const dtype of ['float64', 'float32'] as const) {
            const n = 1 + Math.floor(rng() * 7);
            const x = data(xs, xk, dtype);
            const idx = indices(rng, [n], xs[d], ik);
            const out = indexSelect(x, dim, idx);
            const ref = indexSelectRef(flat(x), xs, d, flat(idx));
            assert.equal(out.shape, ref.shape);
            assertClose(flat(out), ref.out, 0, 0, `indexSelect ${JSON.stringify(xs)} dim ${dim} ${xk}/${ik} ${dtype}`);
          }
    }
  const x = ts.randn([3, 4], { dtype: 'float64' });
  const picked = indexSelect(x, 1, ts.tensor(2, { dtype: 'int32' }));
  assert.equal(picked.shape, [3, 1]);
  assert.equal(indexSelect(x, 0, ts.zeros([0], { dtype: 'int32' })).shape, [0, 4]);
});

test('embedding matches the reference for any ids shape and layout', () => {
  const rng = jsRandom(seedFor('embedding forward'));
  for (const [V, D] of [[1, 1], [7, 3], [10, 16], [5, 33]])
    for (const idsShape of [[], [1], [6], [2, 5], [3, 1, 4]])
      for (const wk of KINDS)
        for (const ik of KINDS)
          for (const dtype of ['float64', 'float32'] as const) {
            const w = data([V, D], wk, dtype);
            const ids = indices(rng, idsShape, V, ik);
            const out = embedding(w, ids);
            assert.equal(out.shape, [...idsShape, D]);
            assertClose(flat(out), embeddingRef(flat(w), D, flat(ids)), 0, 0, `embedding [${V}, ${D}] ids ${JSON.stringify(idsShape)} ${wk}/${ik} ${dtype}`);
          }
});

test('large inputs take the multi-threaded paths and still match', () => {
  const rng = jsRandom(seedFor('indexing large'));
  const x = ts.randn([300, 200], { dtype: 'float64' });
  const idx = indices(rng, [400, 200], 300);
  assertClose(flat(gather(x, 0, idx)), gatherRef(flat(x), [300, 200], 0, flat(idx), [400, 200]), 0, 0, 'gather large');
  const src = ts.randn([400, 200], { dtype: 'float64' });
  assertClose(flat(scatterAdd(x, 0, idx, src)), scatterAddRef(flat(x), [300, 200], 0, flat(idx), [400, 200], flat(src), [400, 200]), 1e-12, 1e-12, 'scatterAdd large');
  const idx1 = indices(rng, [500], 200);
  const ref = indexSelectRef(flat(x), [300, 200], 1, flat(idx1));
  assertClose(flat(indexSelect(x, 1, idx1)), ref.out, 0, 0, 'indexSelect large');
  const idx0 = indices(rng, [700], 300, 'sliced');
  assertClose(flat(indexSelect(x, 0, idx0)), indexSelectRef(flat(x), [300, 200], 0, flat(idx0)).out, 0, 0, 'indexSelect large rows');
  const x3 = ts.randn([50, 6, 20], { dtype: 'float32' }).transpose(0, 1); // outer dim strided, rows contiguous
  const idx3 = indices(rng, [333], 50);
  assertClose(flat(indexSelect(x3, 1, idx3)), indexSelectRef(flat(x3), [6, 50, 20], 1, flat(idx3)).out, 0, 0, 'indexSelect rows, strided outer');
  const w = ts.randn([1000, 32], { dtype: 'float64' });
  const ids = indices(rng, [64, 50], 1000);
  assertClose(flat(embedding(w, ids)), embeddingRef(flat(w), 32, flat(ids)), 0, 0, 'embedding large');
});

test('embedding backward sums repeated ids in position order: exact and identical for any thread count', () => {
  const rng = jsRandom(seedFor('embedding determinism'));
  const V = 50;
  const D = 24;
  const ids = indices(rng, [40, 30], V);
  const idv = flat(ids);
  const g64 = ts.randn([40, 30, D], { dtype: 'float64' });
  // reference: position-order float64 sums
  const gv = flat(g64);
  const ref = new Array(V * D).fill(0);
  idv.forEach((id, p) => {
    for (let k = 0; k < D; k++) ref[id * D + k] += gv[p * D + k];
  });
  const w = ts.randn([V, D], { dtype: 'float64', requiresGrad: true });
  embedding(w, ids).backward(g64);
  assert.equal(flat(w.grad as Tensor), ref, 'float64 grad equals the position-order sum exactly');

  // float32 (where order matters) under 1, 2 and 3 threads: bitwise identical
  const g32 = g64.to('float32');
  const idx = indices(rng, [1200, D], V);
  const src32 = g32.reshape([1200, D]);
  const runOnce = (): number[] => {
    const w32 = ts.zeros([V, D], { requiresGrad: true });
    embedding(w32, ids).backward(g32);
    return [
      ...flat(w32.grad as Tensor),
      ...flat(scatterAdd(ts.zeros([V, D]), 0, idx, src32)),
      ...flat(scatterAdd(ts.zeros([D, V]), 1, idx.T, src32.T)),
    ];
  };
  const threads = ts.cpuInfo().threads;
  const grads: number[][] = [];
  try {
    for (const n of [1, 2, 3]) {
      ts.setNumThreads(n);
      grads.push(runOnce());
    }
  } finally {
    ts.setNumThreads(threads);
  }
  assert.equal(grads[1], grads[0], '2 threads vs 1');
  assert.equal(grads[2], grads[0], '3 threads vs 1');
});

test('gather, scatterAdd, indexSelect and embedding are differentiable', () => {
  const rng = jsRandom(seedFor('indexing gradients'));
  const r = (shape: number[]) => ts.randn(shape, { dtype: 'float64' });
  // gather: repeated indices accumulate in the backward scatter
  for (const [xs, dim, is] of GATHER_CASES.slice(2, 10)) {
    const d = dim < 0 ? dim + xs.length : dim;
    const idx = indices(rng, is, xs[d], 'transposed');
    gradcheck(`gather dim ${dim}`, (x) => gather(x, dim, idx), [r(xs)]);
  }
  gradcheck('gather of a transposed x', (x) => gather(x.T, 1, indices(jsRandom(3), [4, 5], 3)), [r([3, 4])]);
  gradcheck('gather 0-d', (x) => gather(x, 0, ts.tensor(0, { dtype: 'int32' })).mul(x), [r([])]);
  // scatterAdd: grads to x and src, src larger than index
  for (const [xs, dim, is] of GATHER_CASES.slice(2, 10)) {
    const d = dim < 0 ? dim + xs.length : dim;
    const idx = indices(rng, is, xs[d]);
    const ss = is.map((s, i) => (i === xs.length - 1 ? s + 2 : s));
    gradcheck(`scatterAdd dim ${dim}`, (x, src) => scatterAdd(x, dim, idx, src).mul(x), [r(xs), r(ss)]);
  }
  gradcheck('scatterAdd with strided views', (x, src) => scatterAdd(x.T, 0, indices(jsRandom(5), [6, 3], 4, 'sliced'), src.slice(1, 0, 3)), [r([3, 4]), r([6, 5])]);
  // indexSelect
  for (const [xs, dim] of [[[5], 0], [[4, 3], 0], [[4, 3], -1], [[2, 3, 4], 1], [[2, 3, 4], 2]] as [number[], number][]) {
    const d = dim < 0 ? dim + xs.length : dim;
    const idx = indices(rng, [7], xs[d]);
    gradcheck(`indexSelect dim ${dim}`, (x) => indexSelect(x, dim, idx), [r(xs)]);
  }
  gradcheck('indexSelect of a sliced x', (x) => indexSelect(x.slice(1, 1, 5, 2), 1, ts.tensor([1, 0, 1], { dtype: 'int32' })), [r([3, 6])]);
  // embedding with repeated ids, ids transposed, weight transposed
  gradcheck('embedding', (w) => embedding(w, indices(jsRandom(9), [3, 4], 5, 'transposed')), [r([5, 3])]);
  gradcheck('embedding of a transposed weight', (w) => embedding(w.T, ts.tensor([[0, 2, 2], [1, 0, 2]], { dtype: 'int32' })), [r([4, 3])]);
});

test('out-of-range and negative indices are errors naming the op, the value, its position and the range', () => {
  const x = ts.randn([3, 4]);
  const bad = ts.tensor([[0, 1], [4, 2]], { dtype: 'int32' });
  assertThrows(() => gather(x, 1, bad), ['gather', 'value 4', 'index[1, 0]', '[0, 4)'], 'gather too large');
  assertThrows(() => gather(x, 0, ts.tensor([[0, -1]], { dtype: 'int32' })), ['gather', 'value -1', 'index[0, 1]', '[0, 3)', 'negative'], 'gather negative');
  assertThrows(() => scatterAdd(x, 1, bad, ts.ones([2, 2])), ['scatterAdd', 'value 4', 'index[1, 0]', '[0, 4)'], 'scatterAdd too large');
  assertThrows(() => indexSelect(x, 0, ts.tensor([0, 2, 3], { dtype: 'int32' })), ['indexSelect', 'value 3', 'index[2]', '[0, 3)'], 'indexSelect too large');
  assertThrows(() => indexSelect(x, -1, ts.tensor([-2], { dtype: 'int32' })), ['indexSelect', 'value -2', 'index[0]', '[0, 4)'], 'indexSelect negative');
  assertThrows(() => embedding(x, ts.tensor([[0, 1], [2, 3]], { dtype: 'int32' })), ['embedding', 'value 3', 'ids[1, 1]', '[0, 3)'], 'embedding too large');
  assertThrows(() => embedding(x, ts.tensor([-5], { dtype: 'int32' })), ['embedding', 'value -5', 'ids[0]', 'negative'], 'embedding negative');
  // the position is the logical one, for a transposed index too
  assertThrows(() => gather(x, 1, bad.T), ['gather', 'value 4', 'index[0, 1]'], 'transposed index position');
  // an error leaves the input untouched (nothing written before the check)
  const base = ts.zeros([3, 4]);
  assertThrows(() => scatterAdd(base, 0, ts.tensor([[0, 0, 0, 3]], { dtype: 'int32' }), ts.ones([1, 4])), ['scatterAdd', 'value 3'], 'scatterAdd last bad');
  assert.equal(flat(base), new Array(12).fill(0));
});

test('bad dtypes, ranks, shapes, dims and disposed tensors are errors naming the op', () => {
  const x = ts.randn([3, 4]);
  const i2 = ts.tensor([[0, 1]], { dtype: 'int32' });
  const i1 = ts.tensor([0, 1], { dtype: 'int32' });
  assertThrows(() => gather(x, 1, ts.tensor([[0, 1]])), ['gather', 'index', 'int32', 'float32[1, 2]'], 'gather float index');
  assertThrows(() => indexSelect(x, 1, ts.tensor([0, 1])), ['indexSelect', 'int32'], 'indexSelect float index');
  assertThrows(() => embedding(x, ts.tensor([0.5])), ['embedding', 'ids', 'int32'], 'embedding float ids');
  assertThrows(() => scatterAdd(x, 1, ts.tensor([[0.0]]), ts.ones([1, 1])), ['scatterAdd', 'int32'], 'scatterAdd float index');
  assertThrows(() => gather(x, 1, i1), ['gather', 'index int32[2]', 'as many dimensions', 'float32[3, 4]'], 'gather rank');
  assertThrows(() => gather(x, 0, ts.zeros([2, 5], { dtype: 'int32' })), ['gather', 'larger', 'dim 1'], 'gather index too wide');
  assertThrows(() => gather(x, 2, i2), ['gather', 'dim 2', 'out of range'], 'gather dim');
  assertThrows(() => gather(x, 1.5, i2), ['gather', 'dim'], 'gather fractional dim');
  assertThrows(() => indexSelect(x, 0, ts.zeros([1, 1], { dtype: 'int32' })), ['indexSelect', '1-D', 'int32[1, 1]'], 'indexSelect 2-D index');
  assertThrows(() => indexSelect(x, -3, i1), ['indexSelect', 'dim -3'], 'indexSelect dim');
  assertThrows(() => embedding(ts.randn([5]), i1), ['embedding', 'weight', '2-D', 'float32[5]'], 'embedding 1-D weight');
  assertThrows(() => scatterAdd(x, 0, i2, ts.ones([4])), ['scatterAdd', 'same number of dimensions'], 'scatterAdd ranks');
  assertThrows(() => scatterAdd(x, 0, ts.zeros([2, 3], { dtype: 'int32' }), ts.ones([1, 3])), ['scatterAdd', 'larger than src', 'dim 0'], 'scatterAdd src too small');
  assertThrows(() => scatterAdd(x, 0, ts.zeros([2, 5], { dtype: 'int32' }), ts.ones([2, 5])), ['scatterAdd', 'larger than x', 'dim 1'], 'scatterAdd x too narrow');
  assertThrows(() => scatterAdd(x, 0, i2, ts.ones([1, 2], { dtype: 'float64' })), ['scatterAdd', 'same dtype'], 'scatterAdd dtype');
  assertThrows(() => gather(3 as unknown as Tensor, 0, i1), ['gather', 'x', 'Tensor'], 'not a tensor');
  const dead = ts.randn([3, 4]);
  dead.dispose();
  assertThrows(() => gather(dead, 0, i2), ['gather', 'disposed'], 'gather disposed x');
  const deadIdx = ts.tensor([0], { dtype: 'int32' });
  deadIdx.dispose();
  assertThrows(() => indexSelect(x, 0, deadIdx), ['indexSelect', 'index', 'disposed'], 'indexSelect disposed index');
  assertThrows(() => embedding(dead, i1), ['embedding', 'weight', 'disposed'], 'embedding disposed weight');
  assertThrows(() => scatterAdd(x, 0, i2, dead), ['scatterAdd', 'src', 'disposed'], 'scatterAdd disposed src');
});

test('forward and backward free every temporary; a failed op frees its output', () => {
  seedFor('indexing memory');
  const x = ts.randn([4, 5], { requiresGrad: true });
  const src = ts.randn([4, 5], { requiresGrad: true });
  const idx = ts.tensor([[0, 1, 2, 3, 0], [1, 1, 1, 1, 1], [3, 2, 1, 0, 0], [0, 0, 0, 0, 0]], { dtype: 'int32' });
  const i1 = ts.tensor([3, 0, 0], { dtype: 'int32' });
  const bad = ts.tensor([[9]], { dtype: 'int32' });
  const before = ts.memoryStats().hostBlocks;
  for (let k = 0; k < 2; k++)
    ts.scope(() => {
      const loss = gather(x, 1, idx).sum().add(scatterAdd(x, 0, idx, src).sum()).add(indexSelect(x, 0, i1).sum()).add(embedding(x, idx).sum());
      loss.backward();
      (x.grad as Tensor).dispose();
      (src.grad as Tensor).dispose();
      x.grad = src.grad = null;
    });
  assert.is(ts.memoryStats().hostBlocks, before);
  assertThrows(() => gather(x, 1, bad), ['gather', 'value 9'], 'bad index');
  assertThrows(() => embedding(x, bad), ['embedding', 'value 9'], 'bad id');
  assert.is(ts.memoryStats().hostBlocks, before);
});

/** A layout the TypeScript side would never send, on `t`'s storage. */
function raw(t: Tensor, over: Partial<Omit<LayoutLike, 'storage'>> = {}): LayoutLike {
  return { storage: t.storage, dtype: t.dtype, device: t.device, offset: t.offset, shape: t.shape, strides: t.strides, ...over };
}

test('the raw native entry points validate everything before writing', () => {
  const x = ts.randn([3, 4]);
  const idx = ts.tensor([[0, 1], [2, 3]], { dtype: 'int32' });
  const out = ts.zeros([2, 2]);
  runKernel('gather', [x, idx, out], [1]); // valid call
  assertThrows(() => runKernel('gather', [x, idx, out], [0]), ['gather', 'value 3', 'index[1, 1]', '[0, 3)'], 'raw gather range');
  assertThrows(() => runKernel('gather', [x, idx, out], [NaN]), ['gather', 'dim'], 'raw NaN dim');
  assertThrows(() => runKernel('gather', [x, idx, out], [2]), ['gather', 'dim'], 'raw dim too large');
  assertThrows(() => runKernel('gather', [x, idx, out], []), ['gather', 'expected 3 tensors and 1 scalars'], 'raw scalar count');
  assertThrows(() => runKernel('gather', [x, idx], [1]), ['gather', 'expected 3 tensors'], 'raw tensor count');
  assertThrows(() => runKernel('gather', [x, x, out], [1]), ['gather', 'index must be int32'], 'raw float index');
  assertThrows(() => runKernel('gather', [x, idx, raw(out, { strides: [1, 2] })], [1]), ['gather', 'out must be contiguous'], 'raw strided out');
  assertThrows(() => runKernel('gather', [raw(idx, { dtype: 'int32' }), idx, raw(idx, { shape: [2, 2] })], [1]), ['gather', 'must not share storage'], 'raw out aliases index');
  assertThrows(() => runKernel('gather', [x, raw(idx, { shape: [2, 5], strides: [0, 0] }), ts.zeros([2, 5])], [0]), ['gather', 'larger than x', 'dim 1'], 'raw index wider than x');
  const before = flat(out);
  const lastBad = ts.tensor([[0, 1], [1, 9]], { dtype: 'int32' });
  assertThrows(() => runKernel('scatter_add', [lastBad, out, out], [1]), ['scatter_add', 'value 9', 'index[1, 1]'], 'raw scatter_add range');
  assert.equal(flat(out), before, 'nothing written before the check');
  assertThrows(() => runKernel('scatter_add', [idx, ts.ones([1, 2]), ts.zeros([3, 4])], [0]), ['scatter_add', 'larger than src'], 'raw scatter_add src');
  assertThrows(() => runKernel('index_select', [x, idx, out], [0]), ['index_select', 'index must have 1 dimensions'], 'raw index_select 2-D');
  assertThrows(() => runKernel('index_select', [x, ts.tensor([0, 1], { dtype: 'int32' }), ts.zeros([3, 3])], [1]), ['index_select', 'out must be x'], 'raw index_select out shape');
  assertThrows(() => runKernel('index_add', [ts.tensor([5], { dtype: 'int32' }), ts.ones([1, 4]), ts.zeros([3, 4])], [0]), ['index_add', 'value 5', '[0, 3)'], 'raw index_add range');
  assertThrows(() => runKernel('index_add', [ts.tensor([0], { dtype: 'int32' }), ts.ones([2, 4]), ts.zeros([3, 4])], [0]), ['index_add', 'src must be out'], 'raw index_add src shape');
  assertThrows(() => runKernel('embedding', [x, ts.tensor([3], { dtype: 'int32' }), ts.zeros([1, 4])]), ['embedding', 'value 3', '[0, 3)'], 'raw embedding range');
  assertThrows(() => runKernel('embedding', [x, ts.tensor([1], { dtype: 'int32' }), ts.zeros([1, 5])]), ['embedding', 'out must have shape'], 'raw embedding out');
  assertThrows(() => runKernel('embedding_backward', [ts.tensor([7], { dtype: 'int32' }), ts.ones([1, 4]), ts.zeros([3, 4])]), ['embedding_backward', 'value 7'], 'raw embedding_backward range');
  assertThrows(() => runKernel('embedding_backward', [ts.tensor([1], { dtype: 'int32' }), ts.ones([2, 4]), ts.zeros([3, 4])]), ['embedding_backward', 'grad_out must have shape'], 'raw embedding_backward shape');
  assertThrows(() => runKernel('embedding_backward', [ts.tensor([1], { dtype: 'int32' }), ts.ones([1, 4], { dtype: 'int32' }), ts.zeros([3, 4], { dtype: 'int32' })]), ['embedding_backward', 'float'], 'raw embedding_backward int grad');
  // the binding's own layout check still stands in front of the kernels
  assertThrows(() => runKernel('gather', [x, raw(idx, { shape: [2, 3] }), ts.zeros([2, 3])], [1]), ['gather', 'reaches past the end'], 'raw index past storage');
});

test.run();
