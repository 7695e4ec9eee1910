// CUDA parity for the elementwise family: every unary op and fused backward of
// native/cuda/unary.cu, the binary ops of native/cuda/binary.cu (pow, maximum, minimum, the
// comparisons, where, and add/sub/mul/div again through the coalesced strided path) and arange
// (native/cuda/copy.cu), each against its CPU twin on fresh random inputs (seed printed), float32
// and float64 (and int32 where the op takes it).
//
// Comparison rule per op (see the top comments of unary.cu / binary.cu):
//   bit for bit  where both sides do the same IEEE operations: neg, abs, relu, sqrt, rsqrt,
//                clamp, pow_scalar with exponent 0/1/2, the backward kernels of exp, log, sqrt,
//                rsqrt, abs, relu, sigmoid, clamp and pow_scalar (0, 1, 2) fed identical inputs,
//                add/sub/mul/div/maximum/minimum/comparisons/where, arange with dyadic steps;
//   tolerance    where the GPU uses the CUDA math library (exp, log, log1p, tanh, erf, pow) and
//                the CPU its own vec_math / glibc versions, or where an fma contraction may differ:
//                |cuda - cpu| <= atol + rtol |cpu|, with float32 rtol = atol = 2e-5 and float64
//                rtol = atol = 1e-12 (a few ulp, amplified where a formula cancels, e.g. 1 + erf
//                for x << 0). NaN must match NaN and infinities must match exactly.
// Covers shape sweeps (odd sizes, size-1 and empty dims, 0-d, 1M elements), non-contiguous
// inputs and outputs (transposed, permuted, strided slices, offsets, stride-0 expands), IEEE
// special values, forward and backward through the public ops (autograd on the device), and
// the argument checks (same messages as the CPU). Without a usable CUDA device the file prints
// why and registers no tests (TESSERA_EXPECT_CUDA=1 makes that a failure).

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { runKernel } from '../../lib/backend';
import { seedFor } from '../helpers/check';

type AnyTyped = Float32Array | Float64Array | Int32Array;
type FloatDType = 'float32' | 'float64';
type AnyDType = FloatDType | 'int32';
type Device = 'cpu' | 'cuda';
const FLOATS: FloatDType[] = ['float32', 'float64'];
const ALL: AnyDType[] = ['float32', 'float64', 'int32'];

const info = ts.cudaInfo();
const usable = info.deviceCount > 0;
const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';

const TOL: Record<AnyDType, { rtol: number; atol: number }> = {
  float32: { rtol: 2e-5, atol: 2e-5 },
  float64: { rtol: 1e-12, atol: 1e-12 },
  int32: { rtol: 0, atol: 0 },
};

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

/** |gpu - cpu| <= atol + rtol |cpu| elementwise; NaN only against NaN, infinities exactly. */
function assertNearArrays(gpu: AnyTyped, cpu: AnyTyped, dtype: AnyDType, what: string): void {
  assert.is(gpu.constructor, cpu.constructor, `${what}: array types differ`);
  assert.is(gpu.length, cpu.length, `${what}: length ${gpu.length} vs ${cpu.length}`);
  const { rtol, atol } = TOL[dtype];
  let bad = 0;
  const first: string[] = [];
  for (let i = 0; i < gpu.length; i++) {
    const a = gpu[i];
    const e = cpu[i];
    if (Object.is(a, e) || a === e) continue;
    const ok = Number.isFinite(a) && Number.isFinite(e) && Math.abs(a - e) <= atol + rtol * Math.abs(e);
    if (!ok) {
      if (bad < 4) first.push(`[${i}] cuda ${a} cpu ${e}`);
      bad++;
    }
  }
  if (bad) assert.unreachable(`${what}: ${bad} of ${gpu.length} elements outside rtol ${rtol} atol ${atol}: ${first.join('; ')}`);
}

function checkMeta(gpu: Tensor, cpu: Tensor, what: string): void {
  assert.is(gpu.device, 'cuda', `${what}: result device`);
  assert.is(cpu.device, 'cpu', `${what}: reference device`);
  assert.is(gpu.dtype, cpu.dtype, `${what}: dtype`);
  assert.equal([...gpu.shape], [...cpu.shape], `${what}: shape`);
}

/** Same dtype/shape, and the CPU's bits (exact) or within the dtype's tolerance. */
function assertParity(gpu: Tensor, cpu: Tensor, exact: boolean, what: string): void {
  checkMeta(gpu, cpu, what);
  if (exact) assertSameBits(gpu.toTypedArray(), cpu.toTypedArray(), what);
  else assertNearArrays(gpu.toTypedArray(), cpu.toTypedArray(), cpu.dtype, what);
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

/** The error message fn throws (with the '@cuda' device tag of tensor descriptions removed). */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message.replace(/@cuda/g, '');
  }
  return '(no error)';
}

const tag = (shape: readonly number[]): string => JSON.stringify(shape);

// ---------------------------------------------------------------------------------------------
// Inputs

type Domain = 'any' | 'positive';

function input(shape: number[], dtype: AnyDType, domain: Domain = 'any'): Tensor {
  if (dtype === 'int32') {
    // Small integers with plenty of ties, so comparisons see equal elements too.
    const r = ts.rand(shape, { dtype: 'float64', low: -20, high: 20 }).toTypedArray();
    return ts.tensor(Int32Array.from(r, (v) => Math.trunc(v)), { dtype: 'int32', shape });
  }
  if (domain === 'positive') return ts.rand(shape, { dtype, low: 0.05, high: 4 });
  return ts.randn(shape, { dtype, mean: 0, std: 2 });
}

/** b with about a third of its elements replaced by a's (ties for the comparisons / extrema). */
function withTies(a: Tensor, b: Tensor): Tensor {
  const mask = ts.lt(ts.rand(a.shape, { dtype: 'float64' }), 0.3);
  return ts.where(mask, a, b);
}

const SHAPES: number[][] = [[], [1], [7], [1, 1], [3, 5], [17, 33], [1, 129], [2, 1, 3], [4, 3, 2, 5], [0], [3, 0, 2], [255, 257], [1_000_003]];

// IEEE special values (and a few ordinary ones around the formulas' branch points).
const SPECIALS = [0, -0, 1e-30, -1e-30, 1e-310, 0.5, -0.5, 1, -1, 3, -3, 15, -15, 30, -30, 90, -90, 200, -200, Infinity, -Infinity, NaN];

// ---------------------------------------------------------------------------------------------
// Unary ops

interface UnaryCase {
  label: string;
  kernel: string;
  scalars: number[];
  domain: Domain;
  exactForward: boolean;
  /** null: no fused backward kernel (neg and affine differentiate through other ops). */
  exactBackward: boolean | null;
  /** The public op (forward + autograd). */
  api: (x: Tensor) => Tensor;
}

const UNARY: UnaryCase[] = [
  { label: 'neg', kernel: 'neg', scalars: [], domain: 'any', exactForward: true, exactBackward: null, api: (x) => ts.neg(x) },
  { label: 'exp', kernel: 'exp', scalars: [], domain: 'any', exactForward: false, exactBackward: true, api: (x) => ts.exp(x) },
  { label: 'log', kernel: 'log', scalars: [], domain: 'positive', exactForward: false, exactBackward: true, api: (x) => ts.log(x) },
  { label: 'sqrt', kernel: 'sqrt', scalars: [], domain: 'positive', exactForward: true, exactBackward: true, api: (x) => ts.sqrt(x) },
  { label: 'rsqrt', kernel: 'rsqrt', scalars: [], domain: 'positive', exactForward: true, exactBackward: true, api: (x) => ts.rsqrt(x) },
  { label: 'abs', kernel: 'abs', scalars: [], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.abs(x) },
  { label: 'relu', kernel: 'relu', scalars: [], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.relu(x) },
  { label: 'gelu', kernel: 'gelu', scalars: [], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.gelu(x) },
  { label: 'gelu_tanh', kernel: 'gelu_tanh', scalars: [], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.gelu(x, 'tanh') },
  { label: 'sigmoid', kernel: 'sigmoid', scalars: [], domain: 'any', exactForward: false, exactBackward: true, api: (x) => ts.sigmoid(x) },
  { label: 'logsigmoid', kernel: 'logsigmoid', scalars: [], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.logsigmoid(x) },
  { label: 'softplus', kernel: 'softplus', scalars: [1, 20], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.softplus(x) },
  { label: 'softplus beta=2 threshold=3', kernel: 'softplus', scalars: [2, 3], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.softplus(x, 2, 3) },
  { label: 'softplus beta=0.3 threshold=inf', kernel: 'softplus', scalars: [0.3, Infinity], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.softplus(x, 0.3, Infinity) },
  { label: 'tanh', kernel: 'tanh', scalars: [], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.tanh(x) },
  { label: 'clamp [-0.5, 0.7]', kernel: 'clamp', scalars: [-0.5, 0.7], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.clamp(x, -0.5, 0.7) },
  { label: 'clamp min 0.1', kernel: 'clamp', scalars: [0.1, NaN], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.clamp(x, 0.1) },
  { label: 'clamp max -0.3', kernel: 'clamp', scalars: [NaN, -0.3], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.clamp(x, undefined, -0.3) },
  { label: 'clamp [1/3, 1/3]', kernel: 'clamp', scalars: [1 / 3, 1 / 3], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.clamp(x, 1 / 3, 1 / 3) },
  { label: 'pow 2', kernel: 'pow_scalar', scalars: [2], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.pow(x, 2) },
  { label: 'pow 1', kernel: 'pow_scalar', scalars: [1], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.pow(x, 1) },
  { label: 'pow 0', kernel: 'pow_scalar', scalars: [0], domain: 'any', exactForward: true, exactBackward: true, api: (x) => ts.pow(x, 0) },
  { label: 'pow 3', kernel: 'pow_scalar', scalars: [3], domain: 'any', exactForward: false, exactBackward: false, api: (x) => ts.pow(x, 3) },
  { label: 'pow -1.5', kernel: 'pow_scalar', scalars: [-1.5], domain: 'positive', exactForward: false, exactBackward: false, api: (x) => ts.pow(x, -1.5) },
  { label: 'pow 0.5', kernel: 'pow_scalar', scalars: [0.5], domain: 'positive', exactForward: false, exactBackward: false, api: (x) => ts.pow(x, 0.5) },
  { label: 'affine', kernel: 'affine', scalars: [-2.5, 0.25], domain: 'any', exactForward: false, exactBackward: null, api: (x) => ts.affine(x, -2.5, 0.25) },
  { label: 'affine 1/3', kernel: 'affine', scalars: [1 / 3, -1 / 7], domain: 'any', exactForward: false, exactBackward: null, api: (x) => ts.affine(x, 1 / 3, -1 / 7) },
];

/** Forward kernel into a fresh output (or into `out`, a view the caller owns). */
function fwd(c: UnaryCase, x: Tensor, out?: Tensor): Tensor {
  const o = out ?? ts.zeros(x.shape, { dtype: x.dtype, device: x.device });
  runKernel(c.kernel, [x, o], c.scalars);
  return o;
}

/** Backward kernel on (x, y, g) into a fresh grad_x (or into `gx`). */
function bwd(c: UnaryCase, x: Tensor, y: Tensor, g: Tensor, gx?: Tensor): Tensor {
  const o = gx ?? ts.zeros(x.shape, { dtype: x.dtype, device: x.device });
  runKernel(`${c.kernel}_backward`, [x, y, g, o], c.scalars);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Binary ops

const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
type BinaryName = (typeof BINARY)[number];
const FLOAT_ONLY = new Set<BinaryName>(['div', 'pow']);
const exactBinary = (op: BinaryName): boolean => op !== 'pow';
const binaryRun = (op: BinaryName, a: Tensor, b: Tensor): Tensor => ts[op](a, b);

/** Operands for op: pow gets a positive base with any exponent, or any base with an integer one. */
function binaryInputs(op: BinaryName, shapeA: number[], shapeB: number[], dtype: AnyDType, variant = 0): [Tensor, Tensor] {
  if (op === 'pow' && dtype !== 'int32') {
    if (variant % 2 === 0) return [input(shapeA, dtype, 'positive'), ts.clamp(input(shapeB, dtype), -4, 4)];
    const e = ts.tensor(Float64Array.from(ts.rand(shapeB, { dtype: 'float64', low: -3, high: 4 }).toTypedArray(), Math.floor), { dtype, shape: shapeB });
    return [input(shapeA, dtype), e];
  }
  const a = input(shapeA, dtype);
  let b = input(shapeB, dtype);
  if (tag(shapeA) === tag(shapeB)) b = withTies(a, b);
  return [a, b];
}

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

// ---------------------------------------------------------------------------------------------

if (!usable) {
  console.log(`  cuda elementwise: SKIPPED (no usable CUDA device: ${info.error || 'cudaInfo() reports 0 devices'})`);
  if (expectDevice) {
    const s = suite('cuda elementwise');
    s('TESSERA_EXPECT_CUDA=1 needs a usable device', () => {
      assert.unreachable(`no usable CUDA device: ${info.error} (compiled with CUDA: ${info.compiled})`);
    });
    s.run();
  }
} else {
  console.log(`  cuda elementwise on ${info.deviceNames.join(', ')}`);

  // ----- unary forward and backward kernels ------------------------------------------------
  const un = suite('cuda: unary ops and fused backward kernels');

  un('shape sweep: forward, and backward on identical inputs, float32 / float64', () => {
    for (const c of UNARY)
      for (const dtype of FLOATS)
        for (const shape of SHAPES)
          leakFree(`${c.label} ${dtype}${tag(shape)}`, () => {
            const what = `${c.label} ${dtype}${tag(shape)}`;
            seedFor(`unary ${what}`);
            const x = input(shape, dtype, c.domain);
            const gx = x.to('cuda');
            const yc = fwd(c, x);
            assertParity(fwd(c, gx), yc, c.exactForward, `${what} forward`);
            if (c.exactBackward === null) return;
            const g = input(shape, dtype);
            const dc = bwd(c, x, yc, g);
            const dg = bwd(c, gx, yc.to('cuda'), g.to('cuda'));
            assertParity(dg, dc, c.exactBackward, `${what} backward`);
          });
  });

  un('non-contiguous inputs and outputs: transposed, permuted, strided, offset, expanded', () => {
    for (const c of UNARY)
      for (const dtype of FLOATS)
        leakFree(`${c.label} ${dtype} strided`, () => {
          seedFor(`unary strided ${c.label} ${dtype}`);
          const base = input([6, 9, 8], dtype, c.domain);
          const gbase = base.to('cuda');
          const gradBase = input([6, 9, 8], dtype);
          const ggradBase = gradBase.to('cuda');
          const views: [string, (t: Tensor) => Tensor][] = [
            ['transpose', (t) => t.transpose()],
            ['permute', (t) => t.permute([2, 0, 1])],
            ['slice step 2', (t) => ts.slice(t, 2, 1, undefined, 2)],
            ['slice + offset', (t) => ts.slice(ts.slice(t, 0, 2, 5), 1, 3)],
            ['select + transpose', (t) => ts.select(t, 1, 4).transpose()],
            ['expand', (t) => ts.select(t, 0, 3).unsqueeze(0).expand([4, 9, 8])],
            ['size-1 dims', (t) => ts.slice(ts.slice(t, 0, 1, 2), 2, 6, 7)],
            ['empty slice', (t) => ts.slice(t, 1, 3, 3)],
          ];
          for (const [name, f] of views) {
            const what = `${c.label} ${dtype} ${name}`;
            const xc = f(base);
            const xg = f(gbase);
            const yc = fwd(c, xc);
            assertParity(fwd(c, xg), yc, c.exactForward, `${what} forward`);
            // Strided output: a transposed window of a larger buffer; the untouched elements
            // must survive on both devices.
            const run = (x: Tensor, device: Device): AnyTyped => {
              const shape = [...x.shape];
              const outer = [shape[shape.length - 1] + 2, ...shape.slice(0, -1)];
              const buf = ts.full(outer, -7, { dtype, device });
              const window = ts.slice(buf, 0, 1, shape[shape.length - 1] + 1).permute([...Array.from({ length: shape.length - 1 }, (_, i) => i + 1), 0]);
              fwd(c, x, window);
              return buf.toTypedArray();
            };
            if (c.exactForward) assertSameBits(run(xg, 'cuda'), run(xc, 'cpu'), `${what} strided output`);
            else assertNearArrays(run(xg, 'cuda'), run(xc, 'cpu'), dtype, `${what} strided output`);
            if (c.exactBackward === null) continue;
            // Backward with x, y and grad_y in different layouts and a strided grad_x.
            const gc = f(gradBase);
            const gg = f(ggradBase);
            const ycT = yc.contiguous();
            const dc = bwd(c, xc, ycT, gc);
            const dg = bwd(c, xg, ycT.to('cuda'), gg);
            assertParity(dg, dc, c.exactBackward, `${what} backward`);
            const runB = (x: Tensor, y: Tensor, g: Tensor, device: Device): AnyTyped => {
              const shape = [...x.shape];
              const buf = ts.full([...shape.slice(0, -1), 2 * shape[shape.length - 1] + 1], 5, { dtype, device });
              const window = ts.slice(buf, shape.length - 1, 1, undefined, 2);
              bwd(c, x, y, g, window);
              return buf.toTypedArray();
            };
            const bcpu = runB(xc, ycT, gc, 'cpu');
            const bgpu = runB(xg, ycT.to('cuda'), gg, 'cuda');
            if (c.exactBackward) assertSameBits(bgpu, bcpu, `${what} strided grad_x`);
            else assertNearArrays(bgpu, bcpu, dtype, `${what} strided grad_x`);
          }
        });
  });

  un('IEEE special values: zeros, subnormals, large, infinities, NaN', () => {
    for (const c of UNARY)
      for (const dtype of FLOATS)
        leakFree(`${c.label} ${dtype} specials`, () => {
          const what = `${c.label} ${dtype} specials`;
          const x = ts.tensor(SPECIALS, { dtype });
          const gx = x.to('cuda');
          const yc = fwd(c, x);
          assertParity(fwd(c, gx), yc, c.exactForward, `${what} forward`);
          if (c.exactBackward === null) return;
          const g = ts.tensor(SPECIALS.map((_, i) => (i % 3) - 1.25), { dtype });
          assertParity(bwd(c, gx, yc.to('cuda'), g.to('cuda')), bwd(c, x, yc, g), c.exactBackward, `${what} backward`);
        });
  });

  un('public ops on cuda: forward and autograd backward match the CPU (contiguous and views)', () => {
    for (const c of UNARY)
      for (const dtype of FLOATS)
        for (const [shape, view] of [[[3, 5], 'none'], [[17, 33], 'none'], [[2, 1, 3], 'none'], [[255, 257], 'none'], [[9, 8], 'transpose'], [[9, 8], 'slice']] as const)
          leakFree(`${c.label} ${dtype} autograd`, () => {
            const what = `${c.label} ${dtype}${tag(shape)} ${view}`;
            seedFor(`unary autograd ${what}`);
            const xc = input([...shape], dtype, c.domain).requiresGrad_();
            const xg = xc.detach().to('cuda').requiresGrad_();
            const v = (t: Tensor): Tensor => (view === 'transpose' ? t.transpose() : view === 'slice' ? ts.slice(t, 0, 1, undefined, 2) : t);
            const yc = c.api(v(xc));
            const yg = c.api(v(xg));
            assertParity(yg, yc, c.exactForward, `${what} forward`);
            const g = input([...yc.shape], dtype);
            yc.backward(g);
            yg.backward(g.to('cuda'));
            assert.ok(xc.grad && xg.grad, `${what}: gradients exist`);
            // The forward outputs feed the backward and differ by a few ulp where the forward
            // is not exact, so gradients are compared with the tolerance unless both are exact.
            const exact = c.exactForward && (c.exactBackward ?? true);
            assertParity(xg.grad!, xc.grad!, exact, `${what} gradient`);
            xc.grad!.dispose();
            xg.grad!.dispose();
            xc.grad = null;
            xg.grad = null;
          });
  });

  un('argument checks: the same errors as the CPU, before any launch', () => {
    leakFree('unary errors', () => {
      const cases: [string, (d: Device) => void][] = [
        ['int32 input', (d) => runKernel('exp', [ts.zeros([3], { dtype: 'int32', device: d }), ts.zeros([3], { dtype: 'int32', device: d })])],
        ['shape mismatch', (d) => runKernel('gelu', [ts.zeros([3, 2], { device: d }), ts.zeros([2, 3], { device: d })])],
        ['dtype mismatch', (d) => runKernel('tanh', [ts.zeros([3], { device: d }), ts.zeros([3], { dtype: 'float64', device: d })])],
        ['missing scalars', (d) => runKernel('clamp', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d })], [1])],
        ['extra scalars', (d) => runKernel('relu', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d })], [1])],
        ['softplus beta 0', (d) => runKernel('softplus', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d })], [0, 20])],
        ['softplus no scalars', (d) => runKernel('softplus', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d })])],
        ['backward tensor count', (d) => runKernel('exp_backward', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d }), ts.zeros([3], { device: d })])],
        ['backward grad_y shape', (d) => runKernel('sigmoid_backward', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d }), ts.zeros([4], { device: d }), ts.zeros([3], { device: d })])],
        ['backward grad_x dtype', (d) => runKernel('tanh_backward', [ts.zeros([3], { device: d }), ts.zeros([3], { device: d }), ts.zeros([3], { device: d }), ts.zeros([3], { dtype: 'float64', device: d })])],
        ['backward int32', (d) => runKernel('relu_backward', [0, 1, 2, 3].map(() => ts.zeros([3], { dtype: 'int32', device: d })))],
        ['pow_scalar_backward scalars', (d) => runKernel('pow_scalar_backward', [0, 1, 2, 3].map(() => ts.zeros([3], { device: d })), [])],
      ];
      for (const [name, f] of cases) {
        const cpu = errorOf(() => f('cpu'));
        const gpu = errorOf(() => f('cuda'));
        assert.ok(cpu !== '(no error)', `${name}: the CPU kernel rejects it`);
        assert.is(gpu, cpu, `${name}: same error on cuda`);
      }
      assert.is(errorOf(() => ts.exp(ts.zeros([2], { dtype: 'int32', device: 'cuda' }))), errorOf(() => ts.exp(ts.zeros([2], { dtype: 'int32' }))), 'public op int32');
    });
  });
  un.run();

  // ----- binary ops and where --------------------------------------------------------------
  const bin = suite('cuda: pow / maximum / minimum / comparisons / where (and add/sub/mul/div)');

  bin('shape sweep, float32 / float64 / int32', () => {
    for (const dtype of ALL)
      for (const shape of SHAPES)
        for (const op of BINARY) {
          if (FLOAT_ONLY.has(op) && dtype === 'int32') continue;
          for (const variant of op === 'pow' ? [0, 1] : [0])
            leakFree(`${op} ${dtype}${tag(shape)}`, () => {
              const what = `${op} ${dtype}${tag(shape)}${variant ? ' integer exponents' : ''}`;
              seedFor(`binary ${what}`);
              const [a, b] = binaryInputs(op, shape, shape, dtype, variant);
              assertParity(binaryRun(op, a.to('cuda'), b.to('cuda')), binaryRun(op, a, b), exactBinary(op), what);
            });
        }
  });

  bin('broadcasting (size-1 and missing dims, both orders)', () => {
    for (const dtype of ALL)
      for (const [sa, sb] of BROADCASTS)
        leakFree(`broadcast ${dtype}`, () => {
          for (const op of BINARY) {
            if (FLOAT_ONLY.has(op) && dtype === 'int32') continue;
            const what = `${op} ${dtype} ${tag(sa)} with ${tag(sb)}`;
            seedFor(`broadcast ${what}`);
            const [a, b] = binaryInputs(op, sa, sb, dtype);
            const ga = a.to('cuda');
            const gb = b.to('cuda');
            assertParity(binaryRun(op, ga, gb), binaryRun(op, a, b), exactBinary(op), what);
            if (op !== 'pow') assertParity(binaryRun(op, gb, ga), binaryRun(op, b, a), true, `${what} (swapped)`);
          }
        });
  });

  bin('non-contiguous operands and outputs: transposed, permuted, strided, offset, expanded', () => {
    for (const dtype of ALL)
      leakFree(`strided ${dtype}`, () => {
        seedFor(`binary strided ${dtype}`);
        const x = input([9, 8], dtype, 'any');
        const y = input([8, 18], dtype, 'any');
        const z = input([3, 4, 8], dtype, 'any');
        const w = input([1, 8], dtype, 'any');
        // Positive copies for pow's base.
        const px = dtype === 'int32' ? x : ts.abs(x).add(ts.full([], 0.1, { dtype }));
        const cases: [string, (t: Tensor[]) => [Tensor, Tensor], number[]][] = [
          ['transposed + strided slice', ([x, y]) => [x.transpose(), ts.slice(y, 1, 0, undefined, 2)], [8, 9]],
          ['transposed + same transposed', ([x]) => [x.transpose(), x.transpose()], [8, 9]],
          ['permuted + transposed broadcast', ([, , z]) => [z.permute([2, 0, 1]), ts.select(z, 0, 1).transpose().unsqueeze(1)], [8, 3, 4]],
          ['offset rows + expanded row', ([x, , , w]) => [ts.slice(x, 0, 3, 7).transpose(), w.expand([4, 8]).transpose()], [8, 4]],
          ['strided column + offset row', ([x, y]) => [ts.select(y.transpose(), 0, 5).unsqueeze(1), ts.select(x, 0, 2)], [8, 8]],
        ];
        for (const op of BINARY) {
          if (FLOAT_ONLY.has(op) && dtype === 'int32') continue;
          const cpu = [op === 'pow' ? px : x, y, z, w];
          const gpu = cpu.map((t) => t.to('cuda'));
          for (const [name, f, shape] of cases) {
            const [ca, cb] = f(cpu);
            const [ga, gb] = f(gpu);
            const r = binaryRun(op, ga, gb);
            assert.equal([...r.shape], shape, `${op} ${name} shape`);
            assertParity(r, binaryRun(op, ca, cb), exactBinary(op), `${op} ${dtype} ${name}`);
          }
          // Strided output via the kernel: a transposed window of a larger buffer.
          const run = (device: Device): AnyTyped => {
            const [a, b] = [cpu[0], cpu[0]].map((t) => t.to(device));
            const buf = ts.full([10, 11], 3, { dtype, device });
            const window = ts.slice(ts.slice(buf, 0, 1, 9), 1, 2, 10).transpose(); // [8, 8]: slice of [8, 9]
            runKernel(op, [ts.slice(a, 0, 0, 8).transpose(), ts.slice(b, 0, 1, 9), window]);
            return buf.toTypedArray();
          };
          if (exactBinary(op)) assertSameBits(run('cuda'), run('cpu'), `${op} ${dtype} strided output`);
          else assertNearArrays(run('cuda'), run('cpu'), dtype, `${op} ${dtype} strided output`);
        }
      });
  });

  bin('IEEE special values: NaN, infinities, signed zeros, subnormals', () => {
    leakFree('binary specials', () => {
      const av = [1, -1, 0, -0, 0, Infinity, -Infinity, Infinity, NaN, 1e-310, 1e308, 3, -2.5e-320, 7, NaN, 2, -2, 0, -0, 0.5, -8, 1, -1];
      const bv = [0, 0, 0, 0, -0, 0, Infinity, -Infinity, 1, 1e10, 10, NaN, 3, -0, NaN, -Infinity, 3, -1, -3, Infinity, 1 / 3, NaN, Infinity];
      for (const dtype of FLOATS) {
        const a = ts.tensor(av, { dtype });
        const b = ts.tensor(bv, { dtype });
        const ga = a.to('cuda');
        const gb = b.to('cuda');
        for (const op of BINARY) {
          assertParity(binaryRun(op, ga, gb), binaryRun(op, a, b), exactBinary(op), `${op} ${dtype} specials`);
          assertParity(binaryRun(op, gb, ga), binaryRun(op, b, a), exactBinary(op), `${op} ${dtype} specials (swapped)`);
        }
      }
      const ia = ts.tensor([2147483647, -2147483648, 0, 5, -5], { dtype: 'int32' });
      const ib = ts.tensor([-2147483648, 2147483647, 0, 5, 4], { dtype: 'int32' });
      for (const op of BINARY) {
        if (FLOAT_ONLY.has(op)) continue;
        assertParity(binaryRun(op, ia.to('cuda'), ib.to('cuda')), binaryRun(op, ia, ib), true, `${op} int32 extremes`);
      }
    });
  });

  bin('where: every cond dtype with every value dtype, broadcasting, views, special conds', () => {
    for (const cdt of ALL)
      for (const dtype of ALL)
        leakFree(`where ${cdt} ${dtype}`, () => {
          for (const [sc, sa, sb] of [[[5, 7], [5, 7], [5, 7]], [[1_000_003], [1_000_003], [1_000_003]], [[3, 1, 7], [4, 1], [7]], [[], [2, 3], [2, 3]], [[0, 3], [3], [1]], [[255, 1], [1, 257], [255, 257]]] as number[][][]) {
            const what = `where cond ${cdt} values ${dtype} ${tag(sc)} ${tag(sa)} ${tag(sb)}`;
            seedFor(what);
            const cond = cdt === 'int32' ? ts.tensor(Int32Array.from(input(sc, 'int32').toTypedArray(), (v) => (v % 3 === 0 ? 0 : v)), { dtype: 'int32', shape: sc }) : ts.where(ts.lt(ts.rand(sc, { dtype: cdt }), 0.4), ts.zeros(sc, { dtype: cdt }), input(sc, cdt));
            const a = input(sa, dtype);
            const b = input(sb, dtype);
            assertParity(ts.where(cond.to('cuda'), a.to('cuda'), b.to('cuda')), ts.where(cond, a, b), true, what);
          }
          // Non-contiguous cond and values.
          const cond = input([6, 5], cdt);
          const a = input([5, 6], dtype);
          const b = input([5, 12], dtype);
          const f = (c: Tensor, x: Tensor, y: Tensor): Tensor => ts.where(c.transpose(), x, ts.slice(y, 1, 1, undefined, 2));
          assertParity(f(cond.to('cuda'), a.to('cuda'), b.to('cuda')), f(cond, a, b), true, `where ${cdt} ${dtype} views`);
          // Strided output through the kernel.
          const run = (device: Device): AnyTyped => {
            const buf = ts.full([7, 6], 9, { dtype, device });
            const window = ts.slice(buf, 0, 1, 6).transpose(); // [6, 5]
            runKernel('where', [cond.to(device), a.to(device).transpose(), ts.slice(b.to(device), 1, 0, 6).transpose(), window]);
            return buf.toTypedArray();
          };
          assertSameBits(run('cuda'), run('cpu'), `where ${cdt} ${dtype} strided output`);
        });
    leakFree('where special conds', () => {
      for (const cdt of FLOATS) {
        const cond = ts.tensor([NaN, -0, 0, Infinity, -Infinity, 1e-310, -1], { dtype: cdt });
        const a = ts.tensor([1, 2, 3, 4, 5, 6, 7], { dtype: 'float64' });
        const b = ts.tensor([-1, -2, -3, -4, -5, -6, -7], { dtype: 'float64' });
        assertParity(ts.where(cond.to('cuda'), a.to('cuda'), b.to('cuda')), ts.where(cond, a, b), true, `where special conds ${cdt}`);
      }
    });
  });

  bin('autograd on cuda: pow, maximum / minimum (ties split), where', () => {
    for (const dtype of FLOATS)
      for (const shape of [[3, 5], [17, 33], [255, 257]])
        leakFree(`binary autograd ${dtype}`, () => {
          const what = `${dtype}${tag(shape)}`;
          seedFor(`binary autograd ${what}`);
          const base = input(shape, dtype, 'positive');
          const expo = ts.clamp(input(shape, dtype), -3, 3);
          const other = withTies(base, input(shape, dtype, 'positive'));
          const mask = ts.lt(ts.rand(shape, { dtype }), 0.5);
          const fns: [string, (a: Tensor, b: Tensor, m: Tensor) => Tensor, boolean][] = [
            ['pow', (a, b) => ts.pow(a, b), false],
            ['maximum', (a, b) => ts.maximum(a, b), true],
            ['minimum', (a, b) => ts.minimum(a, b), true],
            ['where', (a, b, m) => ts.where(m, a, b), true],
          ];
          for (const [name, fn, exact] of fns) {
            const second = name === 'pow' ? expo : other;
            const [ac, bc] = [base.detach().requiresGrad_(), second.detach().requiresGrad_()];
            const [ag, bg] = [base.to('cuda').requiresGrad_(), second.to('cuda').requiresGrad_()];
            const yc = fn(ac, bc, mask);
            const yg = fn(ag, bg, mask.to('cuda'));
            assertParity(yg, yc, exact, `${name} ${what} forward`);
            const g = input(shape, dtype);
            yc.backward(g);
            yg.backward(g.to('cuda'));
            assertParity(ag.grad!, ac.grad!, exact, `${name} ${what} grad a`);
            assertParity(bg.grad!, bc.grad!, exact, `${name} ${what} grad b`);
            for (const t of [ac, bc, ag, bg]) {
              t.grad!.dispose();
              t.grad = null;
            }
          }
        });
  });

  bin('argument checks: the same errors as the CPU, before any launch', () => {
    leakFree('binary errors', () => {
      const z = (shape: number[], dtype: AnyDType, d: Device) => ts.zeros(shape, { dtype, device: d });
      const cases: [string, (d: Device) => void][] = [
        ['pow int32', (d) => runKernel('pow', [z([3], 'int32', d), z([3], 'int32', d), z([3], 'int32', d)])],
        ['maximum shape', (d) => runKernel('maximum', [z([3], 'float32', d), z([3], 'float32', d), z([4], 'float32', d)])],
        ['lt dtype', (d) => runKernel('lt', [z([3], 'float32', d), z([3], 'float64', d), z([3], 'float32', d)])],
        ['ge out dtype', (d) => runKernel('ge', [z([3], 'float32', d), z([3], 'float32', d), z([3], 'int32', d)])],
        ['eq count', (d) => runKernel('eq', [z([3], 'float32', d), z([3], 'float32', d)])],
        ['ne scalars', (d) => runKernel('ne', [z([3], 'float32', d), z([3], 'float32', d), z([3], 'float32', d)], [1])],
        ['where count', (d) => runKernel('where', [z([3], 'float32', d), z([3], 'float32', d), z([3], 'float32', d)])],
        ['where cond shape', (d) => runKernel('where', [z([4], 'float32', d), z([3], 'float32', d), z([3], 'float32', d), z([3], 'float32', d)])],
        ['where value dtypes', (d) => runKernel('where', [z([3], 'int32', d), z([3], 'float32', d), z([3], 'float64', d), z([3], 'float32', d)])],
        ['where out dtype', (d) => runKernel('where', [z([3], 'int32', d), z([3], 'float32', d), z([3], 'float32', d), z([3], 'float64', d)])],
      ];
      for (const [name, f] of cases) {
        const cpu = errorOf(() => f('cpu'));
        const gpu = errorOf(() => f('cuda'));
        assert.ok(cpu !== '(no error)', `${name}: the CPU kernel rejects it`);
        assert.is(gpu, cpu, `${name}: same error on cuda`);
      }
    });
  });
  bin.run();

  // ----- arange ------------------------------------------------------------------------------
  const ar = suite('cuda: arange kernel');
  ar('every dtype, dyadic and integer steps bit for bit, other steps within 1 ulp, strided outputs', () => {
    leakFree('arange', () => {
      // [start, step, n, exact]
      const cases: [number, number, number, boolean][] = [
        [0, 1, 0, true],
        [0, 1, 1, true],
        [3, 4, 12, true],
        [-5, 1, 1_000_003, true],
        [10, -3, 77, true],
        [-3.5, 0.25, 1000, true],
        [1e6, -0.125, 4097, true],
        [0, 0.1, 1000, false],
        [-1, 1 / 3, 3001, false],
        [2.5, -0.7, 513, false],
      ];
      for (const [start, step, n, exact] of cases)
        for (const dtype of ALL) {
          if (dtype === 'int32' && !(Number.isInteger(start) && Number.isInteger(step))) continue;
          const what = `arange(${start}, step ${step}, n ${n}) ${dtype}`;
          const run = (device: Device): Tensor => {
            const t = ts.zeros([n], { dtype, device });
            runKernel('arange', [t], [start, step]);
            return t;
          };
          const c = run('cpu');
          const g = run('cuda');
          if (exact || dtype === 'int32') assertParity(g, c, true, what);
          else {
            // one rounding (fma) vs two: at most an ulp of the larger term apart
            checkMeta(g, c, what);
            const gv = g.toTypedArray();
            const cv = c.toTypedArray();
            for (let i = 0; i < n; i++) {
              const tol = (Math.abs(start) + Math.abs(i * step)) * (dtype === 'float32' ? 2 ** -23 : 2 ** -52);
              if (!(Math.abs(gv[i] - cv[i]) <= tol)) assert.unreachable(`${what}: [${i}] cuda ${gv[i]} cpu ${cv[i]}`);
            }
          }
          // Strided output: every third element of a buffer.
          const runStrided = (device: Device): AnyTyped => {
            const buf = ts.full([3 * n + 2], -1, { dtype, device });
            runKernel('arange', [ts.slice(buf, 0, 1, undefined, 3)], [start, step]);
            return buf.toTypedArray();
          };
          if (exact) assertSameBits(runStrided('cuda'), runStrided('cpu'), `${what} strided`);
        }
      const errs: [string, (d: Device) => void][] = [
        ['2-d out', (d) => runKernel('arange', [ts.zeros([2, 3], { device: d })], [0, 1])],
        ['missing step', (d) => runKernel('arange', [ts.zeros([3], { device: d })], [0])],
      ];
      for (const [name, f] of errs) {
        const cpu = errorOf(() => f('cpu'));
        assert.ok(cpu !== '(no error)', `${name}: the CPU kernel rejects it`);
        assert.is(errorOf(() => f('cuda')), cpu, `arange ${name}: same error on cuda`);
      }
    });
  });
  ar.run();
}
