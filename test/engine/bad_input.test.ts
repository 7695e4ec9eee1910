// Bad input never crashes the process. Hundreds of randomly corrupted calls go through the
// public API and straight into the native entry points; every one must raise a JS Error whose
// message names the op. (A crash would abort the whole test process, failing the run.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { addon, NativeStorage } from '../../lib/backend';
import { jsRandom, SEED } from '../helpers/check';

const rnd = jsRandom(SEED + 1);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];

function expectError(fn: () => unknown, op: string, what: string): void {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `${what}: expected an Error, got ${err === null ? 'a normal return' : String(err)}`);
  assert.ok((err as Error).message.includes(op), `${what}: message "${(err as Error).message}" should name ${op}`);
}

// ---------------------------------------------------------------- public API

type Bad = { op: string; call: () => unknown };
const disposed = () => {
  const t = ts.ones([2, 3]);
  t.dispose();
  return t;
};
const badTensors = (): unknown[] => [null, undefined, 'x', [1, 2], {}, NaN, disposed()];

function publicCases(): Bad[] {
  const f = () => ts.randn([2, 3]);
  const i32 = () => ts.tensor([1, 2], { dtype: 'int32' });
  const g = () => pick(badTensors()) as ts.Tensor;
  const any = <T>(v: unknown) => v as T;
  return [
    { op: 'add', call: () => ts.add(f(), ts.ones([4])) },
    { op: 'add', call: () => ts.add(f(), g()) },
    { op: 'sub', call: () => ts.sub(g(), f()) },
    { op: 'mul', call: () => ts.mul(f(), ts.ones([2, 3], { dtype: 'float64' })) },
    { op: 'div', call: () => ts.div(i32(), i32()) },
    { op: 'pow', call: () => ts.pow(f(), g()) },
    { op: 'maximum', call: () => ts.maximum(f(), ts.ones([3, 2])) },
    { op: 'where', call: () => ts.where(g(), f(), f()) },
    { op: 'exp', call: () => ts.exp(i32()) },
    { op: 'log', call: () => ts.log(g()) },
    { op: 'clamp', call: () => ts.clamp(f(), NaN, 1) },
    { op: 'softplus', call: () => ts.softplus(f(), -1) },
    { op: 'gelu', call: () => ts.gelu(f(), any('erf')) },
    { op: 'sum', call: () => ts.sum(f(), pick([2, -3, 7, 0.5, NaN])) },
    { op: 'mean', call: () => ts.mean(f(), [0, 0]) },
    { op: 'max', call: () => ts.max(ts.zeros([0, 2]), 0) },
    { op: 'logsumexp', call: () => ts.logsumexp(i32()) },
    { op: 'var', call: () => ts.variance(g()) },
    { op: 'matmul', call: () => ts.matmul(f(), f()) },
    { op: 'matmul', call: () => ts.matmul(f(), g()) },
    { op: 'bmm', call: () => ts.bmm(f(), f()) },
    { op: 'reshape', call: () => f().reshape([pick([4, 5, 7, -2, NaN]), 2]) },
    { op: 'view', call: () => f().T.view([6]) },
    { op: 'permute', call: () => f().permute(pick([[0], [0, 0], [0, 2], [1, 0, 2]])) },
    { op: 'transpose', call: () => f().transpose(0, pick([2, -3, 9])) },
    { op: 'slice', call: () => f().slice(pick([2, -3]), 0, 1) },
    { op: 'slice', call: () => f().slice(0, 0.5) },
    { op: 'select', call: () => f().select(0, pick([2, -3, 100])) },
    { op: 'expand', call: () => f().expand([pick([3, 4]), 3]) },
    { op: 'unsqueeze', call: () => f().unsqueeze(pick([3, -4])) },
    { op: 'flatten', call: () => f().flatten(1, 0) },
    { op: 'to', call: () => f().to(any(pick(['float16', 'gpu', 'int8']))) },
    { op: 'zeros', call: () => ts.zeros([pick([-1, NaN, 1.5, Infinity])]) },
    { op: 'ones', call: () => ts.ones([1e7, 1e7]) },
    { op: 'full', call: () => ts.full([2], NaN) },
    { op: 'empty', call: () => ts.empty(any(pick([null, 3, 'abc']))) },
    { op: 'arange', call: () => ts.arange(0, pick([NaN, Infinity]), 1) },
    { op: 'rand', call: () => ts.rand([2], { low: 1, high: pick([0, NaN]) }) },
    { op: 'randn', call: () => ts.randn([2], { std: pick([-1, NaN, Infinity]) }) },
    { op: 'tensor', call: () => ts.tensor(any(pick([[[1], [2, 3]], ['a'], null, { a: 1 }]))) },
    { op: 'tensor', call: () => ts.tensor([0.5], { dtype: 'int32' }) },
    { op: 'item', call: () => f().item() },
    { op: 'backward', call: () => f().sum().backward() },
    { op: 'toTypedArray', call: () => disposed().toTypedArray() },
  ];
}

test('random bad calls through the public API each raise an Error naming the op', () => {
  const cases = publicCases();
  let n = 0;
  for (let round = 0; round < 12; round++) {
    for (const c of cases) {
      ts.scope(() => expectError(c.call, c.op, `${c.op} (round ${round})`));
      n++;
    }
  }
  assert.ok(n >= 300, `ran ${n} bad calls`);
});

// ---------------------------------------------------------------- native entry points

const goodLayout = (n: number, dtype = 0): number[] => [dtype, 0, 0, 1, n, 1];

interface NativeCase {
  what: string;
  args: unknown[];
}

function nativeCase(name: string, store: NativeStorage, freed: NativeStorage): NativeCase {
  const n = 4; // store holds 16 float32 / 8 float64 elements (64 bytes)
  const kind = Math.floor(rnd() * 11);
  const three = (l: number[]) => [...l, ...l, ...l];
  switch (kind) {
    case 0: // offset past the end
      return { what: 'offset past end', args: [[store, store, store], Float64Array.from(three([0, 0, 60, 1, n, 1])), new Float64Array(0)] };
    case 1: // shape larger than storage
      return { what: 'shape too large', args: [[store, store, store], Float64Array.from(three([0, 0, 0, 2, 1000, 1000, 1000, 1])), new Float64Array(0)] };
    case 2: // freed storage
      return { what: 'freed storage', args: [[freed, freed, freed], Float64Array.from(three(goodLayout(n))), new Float64Array(0)] };
    case 3: // bad dtype code
      return { what: 'bad dtype', args: [[store, store, store], Float64Array.from(three(goodLayout(n, pick([3, -1, 1.5, NaN, 99])))), new Float64Array(0)] };
    case 4: // too many dims
      return { what: 'ndim 9', args: [[store], Float64Array.from([0, 0, 0, 9, ...new Array(9).fill(1), ...new Array(9).fill(1)]), new Float64Array(0)] };
    case 5: // layout shorter than the tensors need
      return { what: 'short layout', args: [[store, store, store], Float64Array.from(goodLayout(n)), new Float64Array(0)] };
    case 6: // layout longer than the tensors need
      return { what: 'long layout', args: [[store], Float64Array.from([...goodLayout(n), 1, 2, 3]), new Float64Array(0)] };
    case 7: // not a Storage
      return { what: 'not a storage', args: [[pick([{}, 1, null, 'x', new Float32Array(4)]), store, store], Float64Array.from(three(goodLayout(n))), new Float64Array(0)] };
    case 8: // wrong argument types
      return { what: 'wrong arg types', args: pick([[], [store], [[store], [0, 0, 0, 1, 4, 1], []], [[store], new Float32Array(6), new Float64Array(0)], [1, 2, 3]]) };
    case 9: // negative / NaN stride or shape
      return { what: 'negative stride', args: [[store, store, store], Float64Array.from(three([0, 0, 0, 1, n, pick([-1, NaN, 0.5])])), new Float64Array(0)] };
    default: // device code says cuda but storage is on the cpu
      return { what: 'device mismatch', args: [[store, store, store], Float64Array.from(three([0, 1, 0, 1, n, 1])), new Float64Array(0)] };
  }
}

test('random malformed calls straight into every native op each raise an Error naming the op', () => {
  const store = new addon.Storage(64, 0);
  const freed = new addon.Storage(64, 0);
  freed.free();
  const names = Object.keys(addon.ops);
  assert.ok(names.length >= 40, `${names.length} native ops`);
  let n = 0;
  for (let round = 0; round < 8; round++) {
    for (const name of names) {
      const c = nativeCase(name, store, freed);
      const fn = addon.ops[name] as unknown as (...a: unknown[]) => void;
      expectError(() => fn(...c.args), name, `native ${name}: ${c.what}`);
      n++;
    }
  }
  assert.ok(n >= 300, `ran ${n} native bad calls`);
  store.free();
});

test('kernels validate semantic arguments too: wrong counts, shapes and dtypes', () => {
  const a = new addon.Storage(64, 0);
  const f32 = (k: number) => [0, 0, 0, 1, k, 1];
  const cases: [string, unknown[]][] = [
    ['add', [[a, a], Float64Array.from([...f32(4), ...f32(4)]), new Float64Array(0)]],
    ['add', [[a, a, a], Float64Array.from([...f32(4), ...f32(3), ...f32(4)]), new Float64Array(0)]],
    ['add', [[a, a, a], Float64Array.from([...f32(4), 1, 0, 0, 1, 4, 1, ...f32(4)]), new Float64Array(0)]],
    ['exp', [[a, a], Float64Array.from([2, 0, 0, 1, 4, 1, 2, 0, 0, 1, 4, 1]), new Float64Array(0)]],
    ['clamp', [[a, a], Float64Array.from([...f32(4), ...f32(4)]), new Float64Array(0)]],
    ['rand', [[a], Float64Array.from(f32(4)), Float64Array.from([-1, 0, 0, 1])]],
    ['randn', [[a], Float64Array.from(f32(4)), Float64Array.from([0, 0.5, 0, 1])]],
    ['sum', [[a, a], Float64Array.from([...f32(4), ...f32(1)]), new Float64Array(0)]],
    ['fill', [[a], Float64Array.from([2, 0, 0, 1, 4, 1]), Float64Array.from([1e12])]],
  ];
  for (const [name, args] of cases) {
    const fn = addon.ops[name] as unknown as (...x: unknown[]) => void;
    expectError(() => fn(...args), name, `native ${name}`);
  }
  expectError(() => new addon.Storage(-1, 0), 'Storage', 'negative storage');
  expectError(() => new addon.Storage(2 ** 41, 0), 'Storage', 'huge storage');
  expectError(() => new addon.Storage(8, 7), 'Storage', 'bad device');
  expectError(() => a.read(60, 8), 'Storage.read', 'read past end');
  expectError(() => a.write(62, new Float32Array(1)), 'Storage.write', 'write past end');
  a.free();
  expectError(() => a.read(0, 4), 'Storage.read', 'read freed');
});

test.run();
