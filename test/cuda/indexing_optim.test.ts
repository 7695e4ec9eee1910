// CUDA parity for the indexing and optimizer kernels (native/cuda/{indexing,optim}.cu) against
// their CPU twins, on fresh random inputs (the seed is printed; replay with TEST_SEED=...).
//
// Comparisons:
//  * gather, index_select, embedding are copies: bitwise equal, for float32, float64 and int32.
//  * scatter_add, index_add, embedding_backward accumulate with atomicAdd on the GPU, so repeated
//    targets are summed in no fixed order: float32 rtol 1e-5 / atol 1e-5, float64 rtol 1e-12 /
//    atol 1e-12; int32 is exact (bitwise), and so are floats when every target is distinct.
//  * adamw_step / sgd_step / lion_step: the CPU's operation sequence, but FMA contraction may
//    differ: float32 rtol 1e-5 / atol 1e-6, float64 rtol 1e-12 / atol 1e-14 after several steps.
//  * sum_squares: double accumulation in both, different order: rtol 1e-12 (float64 out).
// Non-contiguous inputs (transposed, sliced, expanded), empty tensors, the index-value errors (the
// same messages on both devices) and the optimizers' argument errors are covered. Without a usable
// CUDA device the file prints why and registers no tests (TESSERA_EXPECT_CUDA=1 makes that a
// failure), as test/cuda/parity.test.ts.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { runKernel } from '../../lib/backend';
import { assertClose, assertThrows, seedFor } from '../helpers/check';

type FloatDType = 'float32' | 'float64';
type DataDType = FloatDType | 'int32';
const FLOATS: FloatDType[] = ['float32', 'float64'];

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

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

/** gpu (on cuda) against cpu: same dtype and shape, values within rtol/atol (bitwise when both are 0). */
function assertNear(gpu: Tensor, cpu: Tensor, rtol: number, atol: number, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(cpu.device, 'cpu', `${what}: reference device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
  if (rtol === 0 && atol === 0) assertSameBits(gpu.toTypedArray(), cpu.toTypedArray(), what);
  else assertClose(gpu.toTypedArray(), cpu.toTypedArray(), rtol, atol, what);
}

function leakFree(what: string, body: () => void): void {
  const before = ts.memoryStats();
  ts.scope(body);
  const after = ts.memoryStats();
  assert.is(after.deviceBlocks, before.deviceBlocks, `${what}: device blocks leaked`);
  assert.is(after.hostBlocks, before.hostBlocks, `${what}: host blocks leaked`);
}

function data(shape: number[], dtype: DataDType): Tensor {
  if (dtype === 'int32') {
    const r = ts.rand(shape, { dtype: 'float64', low: -1000, high: 1000 }).toTypedArray();
    return ts.tensor(Int32Array.from(r, (v) => Math.trunc(v)), { dtype: 'int32', shape });
  }
  return ts.randn(shape, { dtype, mean: 0.25, std: 3 });
}

/** int32 indices uniform in [0, bound). */
function indices(shape: number[], bound: number): Tensor {
  const r = ts.rand(shape, { dtype: 'float64' }).toTypedArray();
  return ts.tensor(Int32Array.from(r, (v) => Math.min(bound - 1, Math.floor(v * bound))), { dtype: 'int32', shape });
}

/** Tolerance of an accumulating (atomicAdd) result. */
const accTol = (dtype: DataDType): [number, number] => (dtype === 'int32' ? [0, 0] : dtype === 'float32' ? [1e-5, 1e-5] : [1e-12, 1e-12]);

if (!usable) {
  console.log(`  cuda indexing/optim parity: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda indexing/optim parity');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda indexing/optim parity on ${info.deviceNames.join(', ')}`);
  const DTYPES: DataDType[] = ['float32', 'float64', 'int32'];

  // ---------------------------------------------------------------- indexing
  const ix = suite('cuda: gather / scatter_add / index_select / index_add / embedding');

  ix('gather and scatterAdd over every dim, smaller index shapes, every dtype', () => {
    const cases: [number[], number[]][] = [
      [[5, 6, 7], [5, 6, 7]],
      [[5, 6, 7], [3, 9, 2]], // index larger than x along dim only
      [[1], [4]],
      [[4, 1, 3], [4, 1, 3]],
      [[33, 129], [17, 300]],
      [[3, 0, 2], [3, 0, 2]],
      [[1000, 8], [1500, 8]],
    ];
    for (const dtype of DTYPES)
      for (const [xs, is] of cases)
        for (let dim = 0; dim < xs.length; dim++)
          leakFree(`gather ${dtype}`, () => {
            const what = `${dtype} x ${JSON.stringify(xs)} index ${JSON.stringify(is)} dim ${dim}`;
            seedFor(`gather ${what}`);
            if (xs[dim] === 0) return;
            const ishape = is.map((s, d) => (d === dim ? s : Math.min(s, xs[d])));
            const x = data(xs, dtype);
            const index = indices(ishape, xs[dim]);
            assertNear(ts.gather(x.to('cuda'), dim, index.to('cuda')), ts.gather(x, dim, index), 0, 0, `gather ${what}`);
            // scatterAdd: src at least as large as index; out = x + scattered src
            const src = data(ishape.map((s) => s + 1), dtype);
            const got = ts.scatterAdd(x.to('cuda'), dim, index.to('cuda'), src.to('cuda'));
            assertNear(got, ts.scatterAdd(x, dim, index, src), ...accTol(dtype), `scatterAdd ${what}`);
          });
  });

  ix('non-contiguous x, index and src; distinct targets are bitwise', () => {
    for (const dtype of FLOATS)
      leakFree(`strided gather ${dtype}`, () => {
        seedFor(`strided gather ${dtype}`);
        const x = data([8, 9], dtype);
        const xt = x.transpose(); // [9, 8]
        const idxBase = indices([8, 6], 9);
        const it = idxBase.transpose(); // [6, 8], values < 9
        assertNear(ts.gather(xt.to('cuda'), 0, it.to('cuda')), ts.gather(xt, 0, it), 0, 0, `gather transposed ${dtype}`);
        const xe = ts.select(x, 0, 3).unsqueeze(0).expand([5, 9]);
        const ie = indices([5, 4], 9);
        assertNear(ts.gather(xe.to('cuda'), 1, ie.to('cuda')), ts.gather(xe, 1, ie), 0, 0, `gather expanded ${dtype}`);
        const srcT = data([9, 6], dtype).transpose(); // [6, 9]
        assertNear(ts.scatterAdd(xt.to('cuda'), 0, it.to('cuda'), srcT.to('cuda')), ts.scatterAdd(xt, 0, it, srcT), ...accTol(dtype), `scatterAdd transposed ${dtype}`);
        // a permutation along dim: every target distinct, so the atomics add exactly once
        const perm = ts.tensor(Int32Array.from([4, 0, 8, 2, 6, 1, 7, 3, 5]), { dtype: 'int32', shape: [1, 9] }).expand([8, 9]);
        const src = data([8, 9], dtype);
        assertNear(ts.scatterAdd(x.to('cuda'), 1, perm.to('cuda'), src.to('cuda')), ts.scatterAdd(x, 1, perm, src), 0, 0, `scatterAdd permutation ${dtype}`);
      });
  });

  ix('indexSelect / index_add: repeated indices, every dim, non-contiguous x', () => {
    for (const dtype of DTYPES)
      for (const shape of [[6, 5, 4], [1, 1], [300, 17], [2, 0, 3]])
        for (let dim = 0; dim < shape.length; dim++)
          leakFree(`indexSelect ${dtype}`, () => {
            const what = `${dtype}${JSON.stringify(shape)} dim ${dim}`;
            seedFor(`indexSelect ${what}`);
            if (shape[dim] === 0) return;
            const x = data(shape, dtype);
            const index = indices([shape[dim] * 2 + 1], shape[dim]);
            assertNear(ts.indexSelect(x.to('cuda'), dim, index.to('cuda')), ts.indexSelect(x, dim, index), 0, 0, `indexSelect ${what}`);
            const xt = ts.contiguous(x.transpose(0, shape.length - 1)).transpose(0, shape.length - 1); // same shape, other strides
            assertNear(ts.indexSelect(xt.to('cuda'), dim, index.to('cuda')), ts.indexSelect(xt, dim, index), 0, 0, `indexSelect strided ${what}`);
            // index_add directly (the backward kernel of indexSelect)
            const src = data(shape.map((s, d) => (d === dim ? index.shape[0] : s)), dtype);
            const run = (device: 'cpu' | 'cuda') => {
              const out = ts.contiguous(x.to(device));
              runKernel('index_add', [index.to(device), src.to(device), out], [dim]);
              return out;
            };
            assertNear(run('cuda'), run('cpu'), ...accTol(dtype), `index_add ${what}`);
          });
  });

  ix('embedding forward and backward: repeated ids, any ids shape, strided weight and ids', () => {
    for (const dtype of DTYPES)
      for (const [V, D, idsShape] of [[10, 4, [7]], [50, 33, [4, 9]], [1, 1, [3]], [1000, 64, [16, 128]], [5, 0, [3]], [7, 3, [0]], [6, 5, [2, 3, 2]]] as [number, number, number[]][])
        leakFree(`embedding ${dtype}`, () => {
          const what = `${dtype} V ${V} D ${D} ids ${JSON.stringify(idsShape)}`;
          seedFor(`embedding ${what}`);
          const w = data([V, D], dtype);
          const ids = indices(idsShape, V);
          assertNear(ts.embedding(w.to('cuda'), ids.to('cuda')), ts.embedding(w, ids), 0, 0, `embedding ${what}`);
          const wt = ts.contiguous(data([D, V], dtype)).transpose();
          assertNear(ts.embedding(wt.to('cuda'), ids.to('cuda')), ts.embedding(wt, ids), 0, 0, `embedding strided weight ${what}`);
          if (dtype === 'int32') return; // embedding_backward is float only
          const g = data([...idsShape, D], dtype);
          const bwd = (device: 'cpu' | 'cuda', idsT: Tensor, gT: Tensor) => {
            const gw = ts.full([V, D], 7, { dtype, device }); // overwritten, including rows no id selects
            runKernel('embedding_backward', [idsT.to(device), gT.to(device), gw]);
            return gw;
          };
          assertNear(bwd('cuda', ids, g), bwd('cpu', ids, g), ...accTol(dtype), `embedding_backward ${what}`);
          if (idsShape.length === 2) {
            const idsT = ts.contiguous(ids.transpose()).transpose();
            const gT = ts.contiguous(g.permute([1, 0, 2])).permute([1, 0, 2]);
            assertNear(bwd('cuda', idsT, gT), bwd('cpu', idsT, gT), ...accTol(dtype), `embedding_backward strided ${what}`);
          }
        });
  });

  ix('backward through the public ops (gather, indexSelect, embedding, scatterAdd)', () => {
    for (const dtype of FLOATS)
      leakFree(`indexing backward ${dtype}`, () => {
        seedFor(`indexing backward ${dtype}`);
        const x = data([6, 7], dtype);
        const idx = indices([6, 9], 7);
        const sel = indices([11], 6);
        const ids = indices([3, 5], 6);
        const src = data([6, 9], dtype);
        const grads = (['cpu', 'cuda'] as const).map((device) => {
          // a fresh leaf per op: each .grad is then owned (and freed) by its leaf
          const leaf = () => x.to(device).detach().requiresGrad_();
          const l1 = leaf();
          ts.backward(ts.gather(l1, 1, idx.to(device)), ts.full([6, 9], 1, { dtype }).to(device));
          const l2 = leaf();
          ts.backward(ts.indexSelect(l2, 0, sel.to(device)), ts.full([11, 7], 0.5, { dtype }).to(device));
          const l3 = leaf();
          ts.backward(ts.embedding(l3, ids.to(device)), ts.full([3, 5, 7], 2, { dtype }).to(device));
          const l4 = leaf();
          const ls = src.to(device).detach().requiresGrad_();
          ts.backward(ts.scatterAdd(l4, 1, idx.to(device), ls), ts.full([6, 7], 1.5, { dtype }).to(device));
          return [l1.grad!, l2.grad!, l3.grad!, l4.grad!, ls.grad!];
        });
        ['gather', 'indexSelect', 'embedding', 'scatterAdd x', 'scatterAdd src'].forEach((nm, i) =>
          assertNear(grads[1][i], grads[0][i], ...accTol(dtype), `${nm} backward ${dtype}`));
      });
  });

  ix('index errors: the same messages on both devices, nothing written', () => {
    leakFree('index errors', () => {
      const x = data([4, 5], 'float32');
      const cases: [string, (d: 'cpu' | 'cuda') => unknown, string[]][] = [
        ['gather', (d) => ts.gather(x.to(d), 1, ts.tensor([[0, 1], [2, 5], [1, 1], [0, 0]], { dtype: 'int32' }).to(d)), ['index value 5 at index[1, 1]', 'valid indices are [0, 5)']],
        ['gather negative', (d) => ts.gather(x.to(d), 0, ts.tensor([[0, 1, 2, 3, -2]], { dtype: 'int32' }).to(d)), ['index value -2 at index[0, 4]', 'negative indices are not supported']],
        ['indexSelect', (d) => ts.indexSelect(x.to(d), 0, ts.tensor([0, 3, 4, 1], { dtype: 'int32' }).to(d)), ['index value 4 at index[2]', 'valid indices are [0, 4)']],
        ['embedding', (d) => ts.embedding(x.to(d), ts.tensor([[0, 1], [7, 2]], { dtype: 'int32' }).to(d)), ['ids value 7 at ids[1, 0]', 'with 4 rows']],
        ['scatterAdd', (d) => ts.scatterAdd(x.to(d), 1, ts.tensor([[9]], { dtype: 'int32' }).to(d), x.to(d)), ['index value 9 at index[0, 0]']],
      ];
      const messageOf = (f: () => unknown): string => {
        try {
          f();
        } catch (e) {
          return (e as Error).message;
        }
        return '';
      };
      for (const [name, f, patterns] of cases) {
        const cpuMsg = messageOf(() => f('cpu'));
        assert.ok(cpuMsg, `${name}: the CPU throws`);
        assertThrows(() => f('cuda'), patterns, `${name} on cuda`);
        // the same text, but for the '@cuda' that describe() appends to device tensors
        assert.is(messageOf(() => f('cuda')).replace(/@cuda/g, ''), cpuMsg, `${name}: cuda and cpu messages`);
      }
      for (const device of ['cpu', 'cuda'] as const) {
        const ix2 = ts.zeros([3], { dtype: 'int32', device });
        const out = ts.zeros([3], { device });
        assertThrows(() => runKernel('index_add', [ix2, ts.zeros([3], { device }), out], [1]), ['index_add: dim must be an integer in [0, 1)'], `index_add dim ${device}`);
        assertThrows(() => runKernel('gather', [out, ix2, ix2], [0]), ['gather: x and out must have the same dtype'], `gather dtype ${device}`);
        const shared = ts.zeros([6], { dtype: 'int32', device });
        assertThrows(() => runKernel('gather', [ts.zeros([3], { dtype: 'int32', device }), ts.slice(shared, 0, 0, 3), ts.slice(shared, 0, 3, 6)], [0]), ['gather: out', 'must not share storage with index'], `gather alias ${device}`);
      }
    });
  });
  ix.run();

  // ---------------------------------------------------------------- optimizers
  const op = suite('cuda: adamw_step / sgd_step / lion_step / sum_squares');
  const optTol = (dtype: FloatDType): [number, number] => (dtype === 'float32' ? [1e-5, 1e-6] : [1e-12, 1e-14]);
  const SIZES: number[][] = [[7], [33, 65], [1_000_003], [0], [1]];

  /** Run `steps` updates of kernel on copies of the same state on both devices; compare every tensor. */
  function optParity(kernel: string, dtype: FloatDType, shape: number[], nstate: number, scalars: (step: number) => number[], what: string): void {
    const init = [data(shape, dtype), ...Array.from({ length: nstate }, (_, i) => (i === 1 && kernel === 'adamw_step' ? ts.rand(shape, { dtype }) : data(shape, dtype)))];
    const grads = [0, 1, 2].map(() => data(shape, dtype));
    const states = (['cpu', 'cuda'] as const).map((device) => {
      const st = init.map((t) => ts.clone(t.to(device)));
      for (let s = 1; s <= 3; s++) runKernel(kernel, [st[0], grads[s - 1].to(device), ...st.slice(1)], scalars(s));
      return st;
    });
    states[0].forEach((c, i) => assertNear(states[1][i], c, ...optTol(dtype), `${what} tensor ${i}`));
  }

  op('adamw_step: hyper-parameter sweep, 3 steps', () => {
    for (const dtype of FLOATS)
      for (const shape of SIZES)
        for (const [lr, b1, b2, eps, wd, gs] of [[1e-3, 0.9, 0.999, 1e-8, 0.01, 1], [0.1, 0, 0.5, 1e-3, 0, 0.25], [3e-4, 0.95, 0.99, 0, 0.1, 2]])
          leakFree(`adamw ${dtype}`, () => {
            const what = `adamw ${dtype}${JSON.stringify(shape)} lr ${lr} betas ${b1},${b2} eps ${eps} wd ${wd} scale ${gs}`;
            seedFor(what);
            optParity('adamw_step', dtype, shape, 2, (s) => [lr, b1, b2, eps, wd, s, gs], what);
          });
  });

  op('sgd_step: every combination of momentum, dampening, nesterov, weight decay, first step', () => {
    for (const dtype of FLOATS)
      for (const shape of SIZES)
        for (const [mom, damp, nesterov, wd] of [[0, 0, 0, 0], [0, 0, 0, 0.1], [0.9, 0, 0, 0], [0.9, 0.1, 0, 1e-2], [0.9, 0, 1, 0], [0.5, 0, 1, 0.3]])
          leakFree(`sgd ${dtype}`, () => {
            const what = `sgd ${dtype}${JSON.stringify(shape)} momentum ${mom} dampening ${damp} nesterov ${nesterov} wd ${wd}`;
            seedFor(what);
            optParity('sgd_step', dtype, shape, mom === 0 ? 0 : 1, (s) => [0.05, mom, damp, wd, nesterov, s === 1 ? 1 : 0, 0.5], what);
          });
  });

  op('lion_step: sweep, including zero updates (sign(0) = 0)', () => {
    for (const dtype of FLOATS)
      for (const shape of SIZES)
        for (const [lr, b1, b2, wd, gs] of [[1e-4, 0.9, 0.99, 0, 1], [1e-2, 0, 1, 0.1, 3], [3e-3, 1, 0, 0.5, 0]])
          leakFree(`lion ${dtype}`, () => {
            const what = `lion ${dtype}${JSON.stringify(shape)} lr ${lr} betas ${b1},${b2} wd ${wd} scale ${gs}`;
            seedFor(what);
            optParity('lion_step', dtype, shape, 1, () => [lr, b1, b2, wd, gs], what);
          });
  });

  op('sum_squares: block-boundary sizes, float64 and same-dtype outputs', () => {
    for (const dtype of FLOATS)
      for (const n of [0, 1, 4095, 4096, 4097, 100_000, 1_000_003])
        leakFree(`sum_squares ${dtype} ${n}`, () => {
          seedFor(`sum_squares ${dtype} ${n}`);
          const x = data([n], dtype);
          for (const outDType of dtype === 'float64' ? (['float64'] as const) : (['float64', 'float32'] as const)) {
            const run = (device: 'cpu' | 'cuda') => {
              const out = ts.full([], -1, { dtype: outDType, device });
              runKernel('sum_squares', [x.to(device), out]);
              return out;
            };
            const [rt, at] = outDType === 'float32' ? [1e-6, 0] : [1e-12, 0];
            assertNear(run('cuda'), run('cpu'), rt, at, `sum_squares ${dtype} n ${n} out ${outDType}`);
          }
        });
  });

  op('the optimizers end to end on cuda (AdamW, SGD with momentum, Lion) match the CPU', () => {
    for (const dtype of FLOATS)
      ts.scope(() => { // optimizer state is kept (outlives scopes) by design: no leak check here
        seedFor(`optim e2e ${dtype}`);
        const w0 = data([17, 9], dtype);
        const gs = [0, 1, 2, 3].map(() => data([17, 9], dtype));
        for (const make of [
          (p: Tensor[]) => new ts.optim.AdamW(p, { lr: 1e-2, weightDecay: 0.1 }),
          (p: Tensor[]) => new ts.optim.SGD(p, { lr: 1e-2, momentum: 0.9, nesterov: true }),
          (p: Tensor[]) => new ts.optim.Lion(p, { lr: 1e-3, weightDecay: 0.01 }),
        ]) {
          const finals = (['cpu', 'cuda'] as const).map((device) => {
            const p = ts.clone(w0.to(device)).detach().requiresGrad_();
            const opt = make([p]);
            for (const g of gs) {
              p.grad = ts.clone(g.to(device));
              opt.step();
            }
            return p.detach();
          });
          assertNear(finals[1], finals[0], ...optTol(dtype), `optimizer end to end ${dtype}`);
        }
      });
  });

  op('errors: same checks and messages as the CPU', () => {
    leakFree('optim errors', () => {
      for (const device of ['cpu', 'cuda'] as const) {
        const p = ts.zeros([4], { device });
        const g = ts.zeros([4], { device });
        const m = ts.zeros([4], { device });
        const v = ts.zeros([4], { device });
        assertThrows(() => runKernel('adamw_step', [p, g, m, v], [1e-3, 0.9, 0.999, 1e-8, 0, 0, 1]), ['adamw_step: step must be >= 1'], `adamw step 0 ${device}`);
        assertThrows(() => runKernel('adamw_step', [p, g, m, v], [1e-3, 1, 0.999, 1e-8, 0, 1, 1]), ['adamw_step: beta1 must be in [0, 1)'], `adamw beta1 ${device}`);
        assertThrows(() => runKernel('adamw_step', [p, g, m, m], [1e-3, 0.9, 0.999, 1e-8, 0, 1, 1]), ['adamw_step: exp_avg and exp_avg_sq must not share memory'], `adamw alias ${device}`);
        assertThrows(() => runKernel('adamw_step', [p, g, m, v], [NaN, 0.9, 0.999, 1e-8, 0, 1, 1]), ['adamw_step: lr must be finite'], `adamw NaN lr ${device}`);
        assertThrows(() => runKernel('sgd_step', [p, g], [0.1, 0.9, 0, 0, 0, 0, 1]), ['sgd_step: with momentum 0.9 expected 3 tensors'], `sgd no buffer ${device}`);
        assertThrows(() => runKernel('sgd_step', [p, g, m], [0.1, 0.9, 0.1, 0, 1, 0, 1]), ['sgd_step: nesterov momentum requires momentum > 0 and dampening = 0'], `sgd nesterov ${device}`);
        assertThrows(() => runKernel('lion_step', [p, g, ts.zeros([5], { device })], [1e-4, 0.9, 0.99, 0, 1]), ['lion_step: param and exp_avg must have the same shape'], `lion shape ${device}`);
        assertThrows(() => runKernel('sum_squares', [p, ts.zeros([2], { device })]), ['sum_squares: out must have one element'], `sum_squares out ${device}`);
        assertThrows(() => runKernel('sum_squares', [ts.zeros([3], { device, dtype: 'float64' }), ts.zeros([], { device })]), ['sum_squares: out must be float64 or float64'], `sum_squares dtype ${device}`);
      }
    });
  });
  op.run();
}
