// CUDA parity of the fused kernels (native/cuda/flash_attention.cu, native/cuda/contrastive.cu)
// against their CPU twins, through the public TS functions (ts.flashAttention, ts.losses.*) with
// the inputs moved to 'cuda': forward values and backward gradients, float32 and float64, shape
// sweeps with odd sizes (lengths not multiples of the tiles, head dims 1..160, D not a multiple
// of 32), non-contiguous inputs, masks, causal, fully masked rows, ids, NT-Xent, SigLIP.
// The GPU kernels sum in a different order (tiles, FMA, trees, atomics in flash attention's dq)
// and use CUDA's exp, so results are compared with a tolerance per dtype (TOL below), not bit
// for bit. Without a usable CUDA device the file prints why and registers no tests (set
// TESSERA_EXPECT_CUDA=1 to make that a failure, as test/cuda/parity.test.ts does).
//
// Needs (outside this file): the op_table rows for the CUDA kernels, and lib/losses/contrastive.ts
// accepting CUDA tensors (its "only the CPU is supported" checks).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { assertClose, seedFor } from '../helpers/check';

type FloatDType = 'float32' | 'float64';
const FLOATS: FloatDType[] = ['float32', 'float64'];
// [rtol, atol] per dtype (values are O(1): atol covers elements that cancel to ~0).
const TOL: Record<FloatDType, [number, number]> = { float32: [2e-4, 2e-5], float64: [1e-10, 1e-12] };

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

function close(gpu: Tensor, cpu: Tensor, dtype: FloatDType, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
  const [rtol, atol] = TOL[dtype];
  const g = Array.from(gpu.toTypedArray());
  for (const v of g) if (!Number.isFinite(v)) assert.unreachable(`${what}: non-finite value ${v} on cuda`);
  assertClose(g, Array.from(cpu.toTypedArray()), rtol, atol, what);
}

/** Leaf copies on `device` (requiresGrad) of CPU tensors. */
function leaves(xs: Tensor[], device: 'cpu' | 'cuda'): Tensor[] {
  return xs.map((x) => {
    const t = device === 'cpu' ? x.clone() : x.to('cuda');
    t.requiresGrad = true;
    return t;
  });
}

function leakFree(what: string, body: () => void): void {
  const before = ts.memoryStats();
  ts.scope(body);
  const after = ts.memoryStats();
  assert.is(after.deviceBlocks, before.deviceBlocks, `${what}: device blocks leaked`);
  assert.is(after.deviceBytes, before.deviceBytes, `${what}: device bytes leaked`);
}

if (!usable) {
  console.log(`  cuda fused kernels: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda fused kernels');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda fused kernels on ${info.deviceNames.join(', ')}`);

  // ---------------------------------------------------------------------------------------------
  const fa = suite('cuda: flashAttention vs CPU');

  interface FaCase {
    B: number;
    H: number;
    Lq: number;
    Lk: number;
    hd: number;
    hdv: number;
    causal?: boolean;
    mask?: 'none' | 'some' | 'all-of-batch0' | 'broadcast';
    layout?: 'contiguous' | 'transposed';
    scale?: number;
  }
  const FA_CASES: FaCase[] = [
    { B: 1, H: 1, Lq: 1, Lk: 1, hd: 16, hdv: 16 },
    { B: 2, H: 3, Lq: 17, Lk: 33, hd: 16, hdv: 16 },
    { B: 1, H: 2, Lq: 65, Lk: 63, hd: 64, hdv: 64, causal: true },
    { B: 2, H: 2, Lq: 100, Lk: 100, hd: 32, hdv: 48, mask: 'some' },
    { B: 2, H: 1, Lq: 37, Lk: 70, hd: 128, hdv: 128, causal: true, mask: 'some' },
    { B: 2, H: 2, Lq: 9, Lk: 40, hd: 24, hdv: 8, mask: 'all-of-batch0' },
    { B: 3, H: 2, Lq: 31, Lk: 29, hd: 40, hdv: 40, mask: 'broadcast', layout: 'transposed' },
    { B: 1, H: 1, Lq: 5, Lk: 3, hd: 7, hdv: 160, causal: true, scale: 0.3 },
    { B: 1, H: 2, Lq: 130, Lk: 257, hd: 96, hdv: 96, layout: 'transposed' },
    { B: 1, H: 1, Lq: 3, Lk: 0, hd: 8, hdv: 8 },
    { B: 1, H: 1, Lq: 0, Lk: 5, hd: 8, hdv: 8 },
  ];

  function faInputs(c: FaCase, dtype: FloatDType): { q: Tensor; k: Tensor; v: Tensor; g: Tensor; mask: Tensor | null } {
    const mk = (L: number, d: number): Tensor =>
      c.layout === 'transposed'
        ? ts.randn([c.B, L, c.H, d], { dtype }).permute([0, 2, 1, 3]) // [B, H, L, d], non-contiguous
        : ts.randn([c.B, c.H, L, d], { dtype });
    const q = mk(c.Lq, c.hd);
    const k = mk(c.Lk, c.hd);
    const v = mk(c.Lk, c.hdv);
    const g = ts.randn([c.B, c.H, c.Lq, c.hdv], { dtype });
    let mask: Tensor | null = null;
    const kind = c.mask ?? 'none';
    if (kind !== 'none') {
      const rows = kind === 'broadcast' ? 1 : c.B;
      const vals = new Int32Array(rows * c.Lk);
      for (let b = 0; b < rows; b++)
        for (let j = 0; j < c.Lk; j++) vals[b * c.Lk + j] = kind === 'all-of-batch0' ? (b === 0 ? 1 : j % 3 === 0 ? 1 : 0) : (j * 7 + b) % 5 === 0 ? 1 : 0;
      mask = ts.tensor(vals, { dtype: 'int32', shape: [rows, c.Lk] });
    }
    return { q, k, v, g, mask };
  }

  fa('forward and backward match the CPU (shapes, causal, masks, strides, empty)', () => {
    for (const dtype of FLOATS)
      for (const c of FA_CASES) {
        const tag = `${dtype} ${JSON.stringify(c)}`;
        leakFree(tag, () => {
          seedFor(`fa ${tag}`);
          const { q, k, v, g, mask } = faInputs(c, dtype);
          const run = (device: 'cpu' | 'cuda') => {
            const xs = leaves([q, k, v], device);
            const m = mask ? (device === 'cpu' ? mask : mask.to('cuda')) : null;
            const o = ts.flashAttention(xs[0], xs[1], xs[2], { causal: c.causal ?? false, keyPaddingMask: m, scale: c.scale });
            o.backward(device === 'cpu' ? g : g.to('cuda'));
            return { o, dq: xs[0].grad!, dk: xs[1].grad!, dv: xs[2].grad! };
          };
          const want = run('cpu');
          const got = run('cuda');
          close(got.o, want.o, dtype, `out ${tag}`);
          close(got.dq, want.dq, dtype, `dq ${tag}`);
          close(got.dk, want.dk, dtype, `dk ${tag}`);
          close(got.dv, want.dv, dtype, `dv ${tag}`);
        });
      }
  });

  fa('fully masked rows give zeros (never NaN) on cuda, forward and backward', () => {
    for (const dtype of FLOATS)
      leakFree(`masked rows ${dtype}`, () => {
        seedFor(`fa masked ${dtype}`);
        const q = ts.randn([2, 1, 6, 16], { dtype });
        const k = ts.randn([2, 1, 6, 16], { dtype });
        const v = ts.randn([2, 1, 6, 16], { dtype });
        const mask = ts.tensor(new Int32Array([1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1]), { dtype: 'int32', shape: [2, 6] });
        const xs = leaves([q, k, v], 'cuda');
        const o = ts.flashAttention(xs[0], xs[1], xs[2], { keyPaddingMask: mask.to('cuda') });
        o.backward(ts.onesLike(o));
        const out = Array.from(o.toTypedArray());
        for (let i = 0; i < 6 * 16; i++) assert.is(out[i], 0, `batch 0 (all keys padded) output ${i}`);
        for (const t of [o, xs[0].grad!, xs[1].grad!, xs[2].grad!])
          for (const x of t.toTypedArray()) assert.ok(Number.isFinite(x), 'finite');
        const dq = Array.from(xs[0].grad!.toTypedArray());
        for (let i = 0; i < 6 * 16; i++) assert.is(dq[i], 0, `batch 0 dq ${i}`);
      });
  });

  fa('a float32 long sequence (2048 keys, hd 64) agrees with the CPU', () => {
    leakFree('fa long', () => {
      seedFor('fa long');
      const c: FaCase = { B: 1, H: 2, Lq: 1000, Lk: 2048, hd: 64, hdv: 64, causal: true };
      const { q, k, v, g } = faInputs(c, 'float32');
      const xs = leaves([q, k, v], 'cuda');
      const o = ts.flashAttention(xs[0], xs[1], xs[2], { causal: true });
      o.backward(g.to('cuda'));
      const ref = leaves([q, k, v], 'cpu');
      const oc = ts.flashAttention(ref[0], ref[1], ref[2], { causal: true });
      oc.backward(g);
      close(o, oc, 'float32', 'out long');
      close(xs[0].grad!, ref[0].grad!, 'float32', 'dq long');
      close(xs[1].grad!, ref[1].grad!, 'float32', 'dk long');
      close(xs[2].grad!, ref[2].grad!, 'float32', 'dv long');
    });
  });
  fa.run();

  // ---------------------------------------------------------------------------------------------
  const con = suite('cuda: fused contrastive losses vs CPU');

  type LossFn = (xs: Tensor[], ids: Tensor[] | null) => Tensor;
  /** Loss and gradients of every input on CPU and CUDA; compare. */
  function lossParity(what: string, dtype: FloatDType, inputs: Tensor[], ids: Tensor[] | null, f: LossFn): void {
    const run = (device: 'cpu' | 'cuda') => {
      const xs = leaves(inputs, device);
      const idv = ids ? ids.map((t) => (device === 'cpu' ? t : t.to('cuda'))) : null;
      const loss = f(xs, idv);
      loss.backward();
      return { loss, grads: xs.map((x) => x.grad!) };
    };
    const want = run('cpu');
    const got = run('cuda');
    close(got.loss, want.loss, dtype, `${what}: loss`);
    got.grads.forEach((g, i) => close(g, want.grads[i], dtype, `${what}: grad of input ${i}`));
  }

  const SIZES: [number, number, number][] = [[1, 1, 1], [5, 5, 3], [33, 33, 31], [64, 64, 64], [100, 100, 129], [257, 257, 40]];
  const ID_SIZES: [number, number, number][] = [[7, 3, 5], [40, 65, 33], [130, 70, 200]];

  con('clipLossFused (offset 0, both directions): shape sweep, non-contiguous inputs', () => {
    for (const dtype of FLOATS)
      for (const [n, , d] of SIZES)
        leakFree(`clip ${dtype} ${n}x${d}`, () => {
          seedFor(`clip ${dtype} ${n} ${d}`);
          const a = ts.randn([n, d], { dtype, std: 0.3 });
          const b = ts.randn([d, n], { dtype, std: 0.3 }).transpose(); // non-contiguous [n, d]
          const s = ts.full([], Math.log(1 / 0.07), { dtype });
          lossParity(`clipLossFused ${dtype} [${n}, ${d}]`, dtype, [a, b, s], null, ([x, y, z]) => ts.losses.clipLossFused(x, y, z));
        });
  });

  con('multiPositiveClipLoss (ids, N != M, rows without positives)', () => {
    for (const dtype of FLOATS)
      for (const [n, m, d] of ID_SIZES)
        leakFree(`multi ${dtype} ${n}x${m}x${d}`, () => {
          seedFor(`multi ${dtype} ${n} ${m} ${d}`);
          const a = ts.randn([n, d], { dtype, std: 0.3 });
          const b = ts.randn([m, d], { dtype, std: 0.3 });
          const s = ts.full([], 2.3, { dtype });
          const rid = ts.tensor(Int32Array.from({ length: n }, (_, i) => (i * 5) % 11), { dtype: 'int32' });
          const cid = ts.tensor(Int32Array.from({ length: m }, (_, j) => (j * 3) % 13), { dtype: 'int32' });
          lossParity(`multiPositiveClipLoss ${dtype} [${n}, ${m}, ${d}]`, dtype, [a, b, s], [rid, cid], ([x, y, z], ids) =>
            ts.losses.multiPositiveClipLoss(x, y, z, ids![0], ids![1]));
        });
  });

  con('ntXentLoss (offset N, self mask, a and b the same tensor)', () => {
    for (const dtype of FLOATS)
      for (const [n, , d] of SIZES.slice(0, 5))
        leakFree(`ntxent ${dtype} ${n}x${d}`, () => {
          seedFor(`ntxent ${dtype} ${n} ${d}`);
          const z1 = ts.randn([n, d], { dtype, std: 0.3 });
          const z2 = ts.randn([n, d], { dtype, std: 0.3 });
          const s = ts.full([], Math.log(2), { dtype });
          lossParity(`ntXentLoss ${dtype} [${n}, ${d}]`, dtype, [z1, z2, s], null, ([x, y, z]) => ts.losses.ntXentLoss(x, y, z));
        });
  });

  con('sigLipLoss (diagonal and ids, bias)', () => {
    for (const dtype of FLOATS) {
      for (const [n, , d] of SIZES)
        leakFree(`siglip ${dtype} ${n}x${d}`, () => {
          seedFor(`siglip ${dtype} ${n} ${d}`);
          const a = ts.randn([n, d], { dtype, std: 0.3 });
          const b = ts.randn([n, d], { dtype, std: 0.3 });
          const s = ts.full([], Math.log(10), { dtype });
          const bias = ts.full([], -10, { dtype });
          lossParity(`sigLipLoss ${dtype} [${n}, ${d}]`, dtype, [a, b, s, bias], null, ([x, y, z, w]) => ts.losses.sigLipLoss(x, y, z, w));
        });
      for (const [n, m, d] of ID_SIZES)
        leakFree(`siglip ids ${dtype} ${n}x${m}x${d}`, () => {
          seedFor(`siglip ids ${dtype} ${n} ${m} ${d}`);
          const a = ts.randn([n, d], { dtype, std: 0.3 });
          const b = ts.randn([m, d], { dtype, std: 0.3 });
          const s = ts.full([], 1.5, { dtype });
          const bias = ts.full([], -2, { dtype });
          const rid = ts.tensor(Int32Array.from({ length: n }, (_, i) => i % 4), { dtype: 'int32' });
          const cid = ts.tensor(Int32Array.from({ length: m }, (_, j) => j % 6), { dtype: 'int32' });
          lossParity(`sigLipLoss ids ${dtype} [${n}, ${m}, ${d}]`, dtype, [a, b, s, bias], [rid, cid], ([x, y, z, w], ids) =>
            ts.losses.sigLipLoss(x, y, z, w, { rowIds: ids![0], colIds: ids![1] }));
        });
    }
  });

  con('argument errors are the CPU twin\'s, raised before any launch', () => {
    leakFree('contrastive errors', () => {
      const a = ts.randn([4, 3]).to('cuda');
      const b = ts.randn([4, 3]).to('cuda');
      const bad = ts.full([], Infinity).to('cuda');
      assert.throws(() => ts.losses.clipLossFused(a, b, bad), /finite/);
      const rid = ts.tensor(new Int32Array([1, 2, 3, 4]), { dtype: 'int32' }).to('cuda');
      const cid = ts.tensor(new Int32Array([5, 6, 7, 8]), { dtype: 'int32' }).to('cuda');
      assert.throws(() => ts.losses.multiPositiveClipLoss(a, b, ts.zeros([]).to('cuda'), rid, cid), /positive/);
    });
  });
  con.run();
}
