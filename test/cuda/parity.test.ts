// CUDA parity: every op with a CUDA kernel (copy, fill, rand, randn, add, sub, mul, div) against
// its CPU twin on fresh random inputs, float32 and float64 (and int32 where the op takes it).
// Results must agree bit for bit: the elementwise ops are single IEEE operations on both sides,
// and rand/randn draw the same Philox stream with the same arithmetic (native/core/philox.h).
// Covers shape sweeps (odd sizes, size-1 and empty dims, 0-d), broadcasting, non-contiguous
// operands (transposed, permuted, strided slices, offsets, stride-0 expands), device moves and
// the error cases. Without a usable CUDA device the file prints why and registers no tests
// (set TESSERA_EXPECT_CUDA=1 to make that a failure, as bench/gpu/run.sh does).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { runKernel } from '../../lib/backend';
import { assertThrows, seedFor } from '../helpers/check';

type AnyTyped = Float32Array | Float64Array | Int32Array;
type FloatDType = 'float32' | 'float64';
const FLOATS: FloatDType[] = ['float32', 'float64'];

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

/** Bitwise equality (NaN equals NaN, +0 differs from -0), naming the first mismatches. */
function assertSameBits(gpu: AnyTyped, cpu: AnyTyped, what: string): void {
  assert.is(gpu.constructor, cpu.constructor, `${what}: array types differ`);
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

/** Same dtype, shape, device as expected, and the same bits as the CPU result. */
function assertParity(gpu: Tensor, cpu: Tensor, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(cpu.device, 'cpu', `${what}: reference device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
  assertSameBits(gpu.toTypedArray(), cpu.toTypedArray(), what);
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

function input(shape: number[], dtype: FloatDType | 'int32'): Tensor {
  if (dtype === 'int32') {
    // Small integers so add/sub/mul never overflow.
    const r = ts.rand(shape, { dtype: 'float64', low: -1000, high: 1000 }).toTypedArray();
    return ts.tensor(Int32Array.from(r, (v) => Math.trunc(v)), { dtype: 'int32', shape });
  }
  return ts.randn(shape, { dtype, mean: 0.25, std: 3 });
}

const SHAPES: number[][] = [[], [1], [7], [1, 1], [3, 5], [17, 33], [1, 129], [2, 1, 3], [4, 3, 2, 5], [0], [3, 0, 2], [255, 257], [1_000_003]];

// [a shape, b shape]: trailing-aligned broadcasting with size-1 and missing dims.
const BROADCASTS: [number[], number[]][] = [
  [[3, 1, 5], [4, 5]],
  [[1], [6, 7]],
  [[], [2, 3]],
  [[5, 1], [1, 6]],
  [[2, 3, 4], [3, 1]],
  [[7, 1, 1, 3], [1, 5, 2, 1]],
  [[1, 1], [1]],
  [[513, 1], [1, 129]],
];

const BINARY = ['add', 'sub', 'mul', 'div'] as const;
type BinaryName = (typeof BINARY)[number];
const binary = (op: BinaryName, a: Tensor, b: Tensor): Tensor => ts[op](a, b);

if (!usable) {
  console.log(`  cuda parity: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda parity');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda parity on ${info.deviceNames.join(', ')}`);

  const moves = suite('cuda: device moves');
  moves('to(cuda) / to(cpu) round trips are exact, for every dtype and shape', () => {
    seedFor('moves');
    for (const dtype of [...FLOATS, 'int32'] as const)
      for (const shape of SHAPES)
        leakFree(`round trip ${dtype}${JSON.stringify(shape)}`, () => {
          const x = input(shape, dtype);
          const g = x.to('cuda');
          assert.is(g.device, 'cuda');
          assert.is(g.dtype, dtype);
          const back = g.to('cpu');
          assert.is(back.device, 'cpu');
          assertSameBits(back.toTypedArray(), x.toTypedArray(), `to(cpu) ${dtype}${JSON.stringify(shape)}`);
          assertSameBits(g.toTypedArray(), x.toTypedArray(), `toTypedArray from cuda ${dtype}${JSON.stringify(shape)}`);
          assert.equal(g.toArray(), x.toArray(), `toArray from cuda ${dtype}${JSON.stringify(shape)}`);
        });
  });
  moves('to() with dtype conversion, either side of the move, and non-contiguous sources', () => {
    seedFor('moves-convert');
    leakFree('to convert', () => {
      const x = input([6, 9], 'float32').mul(ts.full([], 7));
      const xt = x.transpose();
      const g = xt.to('cuda');
      assertParity(g, xt.contiguous(), 'to(cuda) of a transposed tensor');
      for (const [from, to] of [['float32', 'float64'], ['float64', 'float32'], ['float32', 'int32'], ['float64', 'int32'], ['int32', 'float32'], ['int32', 'float64']] as const) {
        const src = from === 'int32' ? input([6, 9], 'int32') : x.to(from);
        const srcT = src.transpose();
        // same-device conversion on the GPU (copy kernel, converting) vs the CPU's
        assertParity(srcT.to('cuda').to(to), srcT.to(to), `cuda ${from}->${to}`);
        // conversion and move at once, both directions
        const both = ts.to(srcT, { device: 'cuda', dtype: to });
        assertParity(both, srcT.to(to), `to({cuda, ${to}}) from cpu ${from}`);
        const back = ts.to(srcT.to('cuda'), { device: 'cpu', dtype: to });
        assertSameBits(back.toTypedArray(), srcT.to(to).toTypedArray(), `to({cpu, ${to}}) from cuda ${from}`);
      }
      const same = g.to('cuda');
      assert.ok(same === g, 'to(same device) returns the tensor itself');
      const one = ts.full([1, 1], 2.5, { device: 'cuda' });
      assert.is(one.item(), 2.5, 'item() from cuda');
      assert.match(one.toString(), /@cuda/);
    });
  });
  moves.run();

  const copy = suite('cuda: copy / contiguous / clone');
  copy('contiguous and clone of non-contiguous views match the CPU', () => {
    seedFor('copy-views');
    for (const dtype of [...FLOATS, 'int32'] as const)
      leakFree(`views ${dtype}`, () => {
        const base = input([5, 6, 7], dtype);
        const g = base.to('cuda');
        const views: [string, (t: Tensor) => Tensor][] = [
          ['transpose', (t) => t.transpose()],
          ['permute', (t) => t.permute([2, 0, 1])],
          ['slice step 2', (t) => ts.slice(t, 2, 1, undefined, 2)],
          ['slice + offset', (t) => ts.slice(ts.slice(t, 0, 2, 4), 1, 3)],
          ['select', (t) => ts.select(t, 1, 4)],
          ['expand', (t) => ts.select(t, 0, 3).unsqueeze(0).expand([4, 6, 7])],
          ['size-1 dims', (t) => ts.slice(ts.slice(t, 0, 1, 2), 2, 6, 7)],
          ['empty slice', (t) => ts.slice(t, 1, 3, 3)],
        ];
        for (const [name, f] of views) {
          const cv = f(base);
          const gv = f(g);
          assert.is(gv.isContiguous(), cv.isContiguous(), name);
          assertParity(ts.contiguous(gv), ts.contiguous(cv), `contiguous(${name}) ${dtype}`);
          assertParity(ts.clone(gv), ts.clone(cv), `clone(${name}) ${dtype}`);
          assertSameBits(gv.toTypedArray(), cv.toTypedArray(), `toTypedArray(${name}) ${dtype}`);
          assertParity(gv.reshape([-1]), cv.reshape([-1]), `reshape(${name}) ${dtype}`);
        }
      });
  });
  copy('copy into strided destinations (the kernel slice backward uses)', () => {
    seedFor('copy-strided-dst');
    for (const dtype of FLOATS)
      leakFree(`strided dst ${dtype}`, () => {
        const src = input([4, 5], dtype);
        const run = (device: 'cpu' | 'cuda'): Tensor => {
          const dst = ts.full([6, 11], -1, { dtype, device });
          const window = ts.slice(ts.slice(dst, 0, 1, 5), 1, 1, undefined, 2); // [4, 5], strides [11, 2], offset 12
          runKernel('copy', [src.to(device), window]);
          const tdst = ts.full([5, 4], -2, { dtype, device });
          runKernel('copy', [src.to(device), tdst.transpose()]);
          return ts.tensor(Float64Array.from([...dst.toTypedArray(), ...tdst.toTypedArray()]), { dtype: 'float64' });
        };
        assertSameBits(run('cuda').toTypedArray(), run('cpu').toTypedArray(), `strided copy ${dtype}`);
      });
  });
  copy.run();

  const fill = suite('cuda: fill (zeros / ones / full)');
  fill('zeros, ones, full on cuda for every dtype and shape', () => {
    for (const dtype of [...FLOATS, 'int32'] as const)
      for (const shape of SHAPES)
        leakFree(`fill ${dtype}`, () => {
          const opts = { dtype, device: 'cuda' as const };
          assertParity(ts.zeros(shape, opts), ts.zeros(shape, { dtype }), `zeros ${dtype}${JSON.stringify(shape)}`);
          assertParity(ts.ones(shape, opts), ts.ones(shape, { dtype }), `ones ${dtype}${JSON.stringify(shape)}`);
          const v = dtype === 'int32' ? -123457 : -0.1 + Math.random();
          assertParity(ts.full(shape, v, opts), ts.full(shape, v, { dtype }), `full(${v}) ${dtype}${JSON.stringify(shape)}`);
        });
  });
  fill('special values and strided fills', () => {
    leakFree('fill special', () => {
      for (const dtype of FLOATS)
        for (const v of [Infinity, -Infinity, -0, 1e-310, 3.4e38, 1e300, 1 / 3]) {
          assertParity(ts.full([3, 3], v, { dtype, device: 'cuda' }), ts.full([3, 3], v, { dtype }), `full(${v}) ${dtype}`);
        }
      const run = (device: 'cpu' | 'cuda'): AnyTyped => {
        const t = ts.zeros([7, 8], { device });
        runKernel('fill', [ts.slice(t, 1, 1, undefined, 3).transpose()], [4.5]);
        runKernel('fill', [ts.select(t, 0, 6)], [-2]);
        const z = ts.zerosLike(t);
        assert.is(z.device, device);
        const o = ts.fullLike(t, 9);
        assert.is(o.device, device);
        return Float32Array.from([...t.toTypedArray(), ...o.toTypedArray()]);
      };
      assertSameBits(run('cuda'), run('cpu'), 'strided fill');
      // arange on cuda (native/cuda/copy.cu arange_kernel; integer steps: exact on both sides)
      assertParity(ts.arange(3, 50, 4, { device: 'cuda' }), ts.arange(3, 50, 4), 'arange on cuda');
      assertParity(ts.tensor([[1, 2], [3, 4]], { device: 'cuda', dtype: 'float64' }), ts.tensor([[1, 2], [3, 4]], { dtype: 'float64' }), 'tensor(data, cuda)');
    });
  });
  fill.run();

  const random = suite('cuda: rand / randn (same Philox stream as the CPU)');
  random('every shape and dtype, default and non-default parameters, consecutive draws', () => {
    for (const dtype of FLOATS)
      for (const shape of SHAPES)
        leakFree(`random ${dtype}`, () => {
          const tag = `${dtype}${JSON.stringify(shape)}`;
          const draw = (device: 'cpu' | 'cuda'): Tensor[] => {
            seedFor(`random ${tag}`);
            return [
              ts.rand(shape, { dtype, device }),
              ts.randn(shape, { dtype, device }),
              ts.rand(shape, { dtype, device, low: -3.75, high: 1e3 / 7 }),
              ts.randn(shape, { dtype, device, mean: -0.3, std: 2.7 }),
              ts.rand(shape, { dtype, device, low: 2.5, high: 2.5 }),
            ];
          };
          const c = draw('cpu');
          const stateCpu = ts.getRngState();
          const g = draw('cuda');
          const names = ['rand', 'randn', 'rand(low, high)', 'randn(mean, std)', 'rand(low == high)'];
          names.forEach((n, i) => assertParity(g[i], c[i], `${n} ${tag}`));
          assert.equal(ts.getRngState(), stateCpu, `stream offset after ${tag}`);
        });
  });
  random('large draws, counters past 2^32, and float32 vs float64 streams', () => {
    leakFree('random large', () => {
      for (const dtype of FLOATS) {
        for (const offset of [0, 2 ** 32 - 5, 2 ** 40 + 12345]) {
          const draw = (device: 'cpu' | 'cuda'): Tensor[] => {
            ts.setRngState({ seed: 0x5eed1234 + offset, offset });
            return [ts.rand([1 << 21 | 3], { dtype, device }), ts.randn([1 << 21 | 5], { dtype, device })];
          };
          const c = draw('cpu');
          const g = draw('cuda');
          assertParity(g[0], c[0], `rand ${dtype} offset ${offset}`);
          assertParity(g[1], c[1], `randn ${dtype} offset ${offset}`);
        }
      }
      // float32 and float64 randn from one seed agree to float32 rounding, on the GPU too
      ts.manualSeed(77);
      const z64 = ts.randn([4096], { dtype: 'float64', device: 'cuda' }).toTypedArray();
      ts.manualSeed(77);
      const z32 = ts.randn([4096], { dtype: 'float32', device: 'cuda' }).toTypedArray();
      assertSameBits(z32, Float32Array.from(z64), 'randn float32 vs float64 on cuda');
    });
  });
  random.run();

  const bin = suite('cuda: add / sub / mul / div');
  bin('shape sweep, float32 / float64 / int32', () => {
    for (const dtype of [...FLOATS, 'int32'] as const)
      for (const shape of SHAPES)
        leakFree(`binary ${dtype}`, () => {
          seedFor(`binary ${dtype}${JSON.stringify(shape)}`);
          const a = input(shape, dtype);
          const b = input(shape, dtype);
          const ga = a.to('cuda');
          const gb = b.to('cuda');
          for (const op of BINARY) {
            if (op === 'div' && dtype === 'int32') continue;
            assertParity(binary(op, ga, gb), binary(op, a, b), `${op} ${dtype}${JSON.stringify(shape)}`);
          }
        });
  });
  bin('broadcasting (size-1 and missing dims, both orders)', () => {
    for (const dtype of FLOATS)
      for (const [sa, sb] of BROADCASTS)
        leakFree(`broadcast ${dtype}`, () => {
          seedFor(`broadcast ${dtype}${JSON.stringify([sa, sb])}`);
          const a = input(sa, dtype);
          const b = input(sb, dtype);
          const ga = a.to('cuda');
          const gb = b.to('cuda');
          for (const op of BINARY) {
            assertParity(binary(op, ga, gb), binary(op, a, b), `${op} ${dtype} ${JSON.stringify(sa)} with ${JSON.stringify(sb)}`);
            assertParity(binary(op, gb, ga), binary(op, b, a), `${op} ${dtype} ${JSON.stringify(sb)} with ${JSON.stringify(sa)}`);
          }
        });
  });
  bin('non-contiguous operands: transposed, permuted, strided, offset, expanded', () => {
    for (const dtype of [...FLOATS, 'int32'] as const)
      leakFree(`strided ${dtype}`, () => {
        seedFor(`strided ${dtype}`);
        const x = input([9, 8], dtype);
        const y = input([8, 18], dtype);
        const z = input([3, 4, 8], dtype);
        const w = input([1, 8], dtype);
        // [name, operands, expected result shape]
        const cases: [string, (t: Tensor[]) => [Tensor, Tensor], number[]][] = [
          ['transposed + strided slice', ([x, y]) => [x.transpose(), ts.slice(y, 1, 0, undefined, 2)], [8, 9]],
          ['transposed + same transposed', ([x]) => [x.transpose(), x.transpose()], [8, 9]],
          ['permuted + transposed broadcast', ([, , z]) => [z.permute([2, 0, 1]), ts.select(z, 0, 1).transpose().unsqueeze(1)], [8, 3, 4]],
          ['offset rows + expanded row', ([x, , , w]) => [ts.slice(x, 0, 3, 7).transpose(), w.expand([4, 8]).transpose()], [8, 4]],
          ['strided column + offset row', ([x, y]) => [ts.select(y.transpose(), 0, 5).unsqueeze(1), ts.select(x, 0, 2)], [8, 8]],
        ];
        const cpu = [x, y, z, w];
        const gpu = cpu.map((t) => t.to('cuda'));
        for (const [name, f, shape] of cases) {
          const [ca, cb] = f(cpu);
          const [ga, gb] = f(gpu);
          assert.ok(!ga.isContiguous() || !gb.isContiguous(), `${name}: an operand is non-contiguous`);
          for (const op of BINARY) {
            if (op === 'div' && dtype === 'int32') continue;
            const r = binary(op, ga, gb);
            assert.equal([...r.shape], shape, `${op} ${name} shape`);
            assertParity(r, binary(op, ca, cb), `${op} ${dtype} ${name}`);
            assertParity(binary(op, gb, ga), binary(op, cb, ca), `${op} ${dtype} ${name} (swapped)`);
          }
        }
      });
  });
  bin('IEEE special values: division by zero, infinities, NaN, signed zeros, subnormals', () => {
    leakFree('specials', () => {
      const av = [1, -1, 0, -0, 0, Infinity, -Infinity, Infinity, NaN, 1e-310, 1e308, 3, -2.5e-320, 7];
      const bv = [0, 0, 0, 0, -0, 0, Infinity, -Infinity, 1, 1e10, 10, NaN, 3, -0];
      for (const dtype of FLOATS) {
        const a = ts.tensor(av, { dtype });
        const b = ts.tensor(bv, { dtype });
        const ga = a.to('cuda');
        const gb = b.to('cuda');
        for (const op of BINARY) assertParity(binary(op, ga, gb), binary(op, a, b), `${op} ${dtype} specials`);
      }
    });
  });
  bin('scalar operands: tensor-by-number ops on cuda', () => {
    leakFree('scalars', () => {
      // int32 tensor-by-number goes through a 0-d fill + the broadcasting kernel
      const a = input([5, 3], 'int32');
      const ga = a.to('cuda');
      for (const op of ['add', 'sub', 'mul'] as const) {
        assertParity(ts[op](ga, 7), ts[op](a, 7), `${op}(int32 cuda, 7)`);
        assertParity(ts[op](-4, ga), ts[op](-4, a), `${op}(-4, int32 cuda)`);
      }
      // a float tensor by a number is done by the fused 'affine' kernel (x * 1 + 1: exact on both)
      const xc = input([4], 'float32');
      const x = xc.to('cuda');
      assertParity(x.add(1), xc.add(1), 'float add scalar on cuda (affine)');
    });
  });
  bin.run();

  const errors = suite('cuda: errors');
  errors('ops without a CUDA kernel say so', () => {
    // The augmentation kernels are CPU-only (lib/data/augment.ts refuses CUDA tensors before
    // dispatch); calling the native op directly must name the op and the device.
    leakFree('not implemented', () => {
      const x = input([2, 3, 4, 4], 'float32').to('cuda');
      const mask = ts.ones([2]).to('cuda');
      const out = ts.zeros([2, 3, 4, 4]).to('cuda');
      assertThrows(() => runKernel('augment_hflip', [x, mask, out], []), ['augment_hflip: not implemented on cuda'], 'augment_hflip');
      assertThrows(() => runKernel('augment_grayscale', [x, mask, out], []), ['augment_grayscale: not implemented on cuda'], 'augment_grayscale');
    });
  });
  errors('mixed devices, disposed tensors, bad arguments', () => {
    leakFree('errors', () => {
      const c = input([3, 4], 'float32');
      const g = c.to('cuda');
      assertThrows(() => ts.add(c, g), ['add', 'different devices'], 'add cpu + cuda');
      assertThrows(() => ts.mul(g, c), ['mul', 'different devices'], 'mul cuda * cpu');
      const out = ts.zeros([3, 4], { device: 'cuda' });
      assertThrows(() => runKernel('add', [c, g, out]), ['add: all tensors must be on one device'], 'kernel with mixed devices');
      assertThrows(() => runKernel('copy', [c, g]), ['copy: all tensors must be on one device'], 'copy across devices');
      assertThrows(() => runKernel('rand', [out], [1, 0, 2, 1]), ['rand: need finite low <= high'], 'cuda rand low > high');
      assertThrows(() => runKernel('randn', [out], [1, 0, 0, -1]), ['randn: need finite mean and std >= 0'], 'cuda randn std < 0');
      assertThrows(() => runKernel('rand', [out], [-1, 0, 0, 1]), ['rand: seed/offset must be a non-negative integer'], 'cuda rand bad seed');
      const i = ts.zeros([3], { dtype: 'int32', device: 'cuda' });
      assertThrows(() => ts.full([3], 1e10, { dtype: 'int32', device: 'cuda' }), ['fill: value', 'does not fit in int32'], 'cuda int32 fill out of range');
      assertThrows(() => runKernel('rand', [i], [1, 0, 0, 1]), ['rand: out must be float32 or float64'], 'cuda rand int32');
      assertThrows(() => ts.div(i, i), ['div', 'float32 or float64'], 'int32 div on cuda');
      assertThrows(() => runKernel('add', [g, g, ts.zeros([4, 3], { device: 'cuda' })]), ['add: a and out must have the same shape'], 'shape mismatch');
      assertThrows(() => ts.add(g, ts.zeros([5], { device: 'cuda' })), ['add'], 'unbroadcastable');
      assertThrows(() => ts.add(g, g.to('float64')), ['same dtype'], 'dtype mismatch');
      const d = ts.randn([2, 2], { device: 'cuda' });
      d.dispose();
      assertThrows(() => d.add(d), ['disposed'], 'disposed cuda tensor');
      assertThrows(() => d.toTypedArray(), ['disposed'], 'toTypedArray of a disposed cuda tensor');
      assertThrows(() => d.to('cpu'), ['disposed'], 'to(cpu) of a disposed cuda tensor');
    });
  });
  errors('memory: device blocks are counted and returned on dispose', () => {
    const before = ts.memoryStats();
    const t = ts.zeros([1000, 1000], { dtype: 'float64', device: 'cuda' });
    const mid = ts.memoryStats();
    assert.is(mid.deviceBlocks, before.deviceBlocks + 1);
    assert.ok(mid.deviceBytes - before.deviceBytes >= 8e6, `device bytes grew by ${mid.deviceBytes - before.deviceBytes}`);
    const v = t.transpose();
    t.dispose();
    assert.is(ts.memoryStats().deviceBlocks, before.deviceBlocks + 1, 'a live view keeps the storage');
    v.dispose();
    const after = ts.memoryStats();
    assert.is(after.deviceBlocks, before.deviceBlocks);
    assert.is(after.deviceBytes, before.deviceBytes);
  });
  errors.run();
}
