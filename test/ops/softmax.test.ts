// softmax / logSoftmax: forward against a float64 JS reference over every dim (size-1, odd and
// vector-length-straddling sizes), float32 against the same reference, non-contiguous inputs,
// numerical stability (huge logits, -inf masks), gradients by central differences (also
// through non-contiguous views), and errors for bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { runKernel } from '../../lib/backend';
import { logSoftmax, softmax } from '../../lib/ops/softmax';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';

// ---- independent reference: plain loops in float64 over a row-major array of `shape`.
function softmaxRef(x: ArrayLike<number>, shape: readonly number[], dim: number, log: boolean): number[] {
  const nd = shape.length;
  const d = dim < 0 ? dim + nd : dim;
  let outer = 1;
  for (let i = 0; i < d; i++) outer *= shape[i];
  let inner = 1;
  for (let i = d + 1; i < nd; i++) inner *= shape[i];
  const n = shape[d];
  const out = new Array<number>(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number) => (o * n + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < n; k++) m = Math.max(m, x[at(k)]);
      let s = 0;
      for (let k = 0; k < n; k++) s += Math.exp(x[at(k)] - m);
      for (let k = 0; k < n; k++) out[at(k)] = log ? x[at(k)] - m - Math.log(s) : Math.exp(x[at(k)] - m) / s;
    }
  }
  return out;
}

const OPS = [
  { name: 'softmax', fn: softmax, log: false },
  { name: 'logSoftmax', fn: logSoftmax, log: true },
] as const;

const SHAPES: number[][] = [[1], [7], [1, 1], [3, 7], [5, 1], [1, 9], [2, 3, 33], [4, 1, 5], [2, 3, 4, 5], [3, 17, 2]];

for (const { name, fn, log } of OPS) {
  test(`${name} matches the float64 reference over every dim (float64 and float32)`, () => {
    seedFor(`${name} forward`);
    ts.scope(() => {
      for (const shape of SHAPES) {
        const x = ts.randn(shape, { dtype: 'float64', std: 3 });
        const x32 = x.to('float32');
        const data = flat(x);
        const data32 = flat(x32); // the float32-rounded inputs, exactly representable in double
        for (let dim = -shape.length; dim < shape.length; dim++) {
          const what = `${name} ${JSON.stringify(shape)} dim ${dim}`;
          const y = fn(x, dim);
          assert.equal([...y.shape], shape, `${what}: shape`);
          assert.is(y.dtype, 'float64');
          assert.ok(y.isContiguous(), `${what}: output contiguous`);
          assertClose(flat(y), softmaxRef(data, shape, dim, log), 1e-12, 1e-13, `${what} f64`);
          const y32 = fn(x32, dim);
          assert.is(y32.dtype, 'float32');
          assertClose(flat(y32), softmaxRef(data32, shape, dim, log), 2e-6, log ? 2e-6 : 1e-7, `${what} f32`);
        }
        // default dim is the last
        assertClose(flat(fn(x)), flat(fn(x, shape.length - 1)), 0, 0, `${name} default dim`);
      }
    });
  });

  test(`${name} on long rows (vector bodies and tails) matches the reference`, () => {
    seedFor(`${name} long`);
    ts.scope(() => {
      for (const shape of [[3, 1037], [2, 4099], [1, 16], [2, 31], [1, 65]]) {
        const x = ts.randn(shape, { dtype: 'float64', std: 4 });
        const x32 = x.to('float32');
        assertClose(flat(fn(x)), softmaxRef(flat(x), shape, -1, log), 1e-12, 1e-13, `${name} ${shape} f64`);
        assertClose(flat(fn(x32)), softmaxRef(flat(x32), shape, -1, log), 4e-6, log ? 4e-6 : 1e-8, `${name} ${shape} f32`);
        // a dim that is not last, on a large tensor (transpose + copy path)
        assertClose(flat(fn(x, 0)), softmaxRef(flat(x), shape, 0, log), 1e-12, 1e-13, `${name} ${shape} dim 0`);
      }
    });
  });

  test(`${name} of non-contiguous inputs (transposed, sliced, permuted views)`, () => {
    seedFor(`${name} views`);
    ts.scope(() => {
      const base = ts.randn([7, 12], { dtype: 'float64' });
      const t = base.transpose(); // [12, 7], strides [1, 12]
      assert.not.ok(t.isContiguous());
      const tData = flat(t);
      for (const dim of [0, 1, -1]) {
        assertClose(flat(fn(t, dim)), softmaxRef(tData, [12, 7], dim, log), 1e-12, 1e-13, `${name} transposed dim ${dim}`);
        const t32 = t.to('float32');
        assertClose(flat(fn(t32, dim)), softmaxRef(flat(t32), [12, 7], dim, log), 2e-6, 2e-6, `${name} transposed f32 dim ${dim}`);
      }
      const s = base.slice(1, 1, 11, 3); // [7, 4], row stride 12, column stride 3
      for (const dim of [0, 1]) assertClose(flat(fn(s, dim)), softmaxRef(flat(s), [7, 4], dim, log), 1e-12, 1e-13, `${name} sliced dim ${dim}`);
      const p = ts.randn([3, 4, 5], { dtype: 'float64' }).permute([2, 0, 1]); // [5, 3, 4]
      for (const dim of [0, 1, 2]) assertClose(flat(fn(p, dim)), softmaxRef(flat(p), [5, 3, 4], dim, log), 1e-12, 1e-13, `${name} permuted dim ${dim}`);
    });
  });
}

test('softmax and logSoftmax on large tensors (rows split across threads) match the reference', () => {
  seedFor('softmax threads');
  const threads = ts.cpuInfo().threads;
  ts.setNumThreads(4);
  try {
    ts.scope(() => {
      const shape = [300, 257];
      const x = ts.randn(shape, { dtype: 'float64', std: 3 });
      const x32 = x.to('float32');
      for (const { name, fn, log } of OPS) {
        for (const dim of [1, 0]) {
          assertClose(flat(fn(x, dim)), softmaxRef(flat(x), shape, dim, log), 1e-12, 1e-13, `${name} large dim ${dim}`);
          assertClose(flat(fn(x32, dim)), softmaxRef(flat(x32), shape, dim, log), 4e-6, log ? 4e-6 : 1e-8, `${name} large f32 dim ${dim}`);
        }
        // the backward kernel on the same sizes: against the same op run single-threaded
        const g = ts.randn(shape, { dtype: 'float64' });
        const grad = (nt: number) => {
          ts.setNumThreads(nt);
          const xl = x.detach();
          xl.requiresGrad = true;
          fn(xl, 1).backward(g);
          return flat(xl.grad as ts.Tensor);
        };
        const multi = grad(4);
        assert.equal(grad(1), multi, `${name} backward: same bits for 1 and 4 threads`);
        ts.setNumThreads(4);
      }
    });
  } finally {
    ts.setNumThreads(threads);
  }
});

test('softmax and logSoftmax are stable for huge logits and exact for -inf masks', () => {
  ts.scope(() => {
    for (const dtype of ['float32', 'float64'] as const) {
      const big = ts.tensor([[1000, 1001, 1002], [-1e4, 0, 1e4], [1e30, 1e30, -1e30]], { dtype: 'float64' }).to(dtype);
      const p = flat(softmax(big));
      const e = softmaxRef(flat(big), [3, 3], -1, false);
      assertClose(p, e, 1e-6, 1e-7, `softmax huge ${dtype}`);
      assert.ok(p.every(Number.isFinite), `softmax huge ${dtype}: finite`);
      const lp = flat(logSoftmax(big));
      assertClose(lp, softmaxRef(flat(big), [3, 3], -1, true), 1e-6, 1e-6, `logSoftmax huge ${dtype}`);

      const masked = ts.tensor([[0, -Infinity, 1, -Infinity], [-Infinity, -Infinity, -Infinity, 2]], { dtype });
      const pm = flat(softmax(masked));
      assert.is(pm[1], 0);
      assert.is(pm[3], 0);
      assert.is(pm[4], 0);
      assert.is(pm[7], 1);
      assertClose([pm[0], pm[2]], [1 / (1 + Math.E), Math.E / (1 + Math.E)], 1e-6, 0, `softmax masked ${dtype}`);
      const lm = flat(logSoftmax(masked));
      assert.is(lm[1], -Infinity);
      assert.is(lm[7], 0);
      // a row that is entirely -inf has no distribution: NaN, as PyTorch
      const allMasked = flat(softmax(ts.full([1, 3], -Infinity, { dtype })));
      assert.ok(allMasked.every(Number.isNaN), `softmax all -inf ${dtype}: ${allMasked}`);
    }
  });
});

test('softmax of a 0-d tensor, of size-1 dims and of empty tensors', () => {
  ts.scope(() => {
    const s = ts.tensor(3.5, { dtype: 'float64' });
    const y = softmax(s);
    assert.equal([...y.shape], []);
    assert.is(y.item(), 1);
    assert.is(logSoftmax(s, 0).item(), 0);
    assert.equal(flat(softmax(ts.randn([4, 1]), 1)), [1, 1, 1, 1]);
    const e1 = softmax(ts.zeros([0, 5]));
    assert.equal([...e1.shape], [0, 5]);
    const e2 = logSoftmax(ts.zeros([3, 0]), 1);
    assert.equal([...e2.shape], [3, 0]);
    assert.equal([...softmax(ts.zeros([3, 0]), 0).shape], [3, 0]);
  });
});

for (const { name, fn } of OPS) {
  test(`${name} gradient matches central differences over every dim (float64)`, () => {
    seedFor(`${name} grad`);
    ts.scope(() => {
      for (const shape of [[3, 4, 5], [1, 6], [5, 1], [9]]) {
        for (let dim = 0; dim < shape.length; dim++) {
          const x = ts.randn(shape, { dtype: 'float64' });
          gradcheck(`${name} ${shape} dim ${dim}`, (a) => fn(a, dim), [x]);
        }
      }
      // 0-d
      gradcheck(`${name} 0-d`, (a) => fn(a), [ts.tensor(0.7, { dtype: 'float64' })]);
    });
  });

  test(`${name} gradient through non-contiguous inputs`, () => {
    seedFor(`${name} grad views`);
    ts.scope(() => {
      const x = ts.randn([4, 6], { dtype: 'float64' });
      gradcheck(`${name} transposed dim -1`, (a) => fn(a.transpose(), -1), [x]);
      gradcheck(`${name} transposed dim 0`, (a) => fn(a.transpose(), 0), [x]);
      gradcheck(`${name} sliced`, (a) => fn(a.slice(1, 1, 6, 2), 1), [x]);
      const y = ts.randn([2, 3, 5], { dtype: 'float64' });
      gradcheck(`${name} permuted`, (a) => fn(a.permute([2, 0, 1]), 1), [y]);
      // the op's output used twice downstream, and a second op on top
      gradcheck(`${name} composed`, (a) => fn(fn(a, 1).mul(a), 0), [x]);
    });
  });

  test(`${name} float32 gradient agrees with float64`, () => {
    seedFor(`${name} grad f32`);
    ts.scope(() => {
      const x64 = ts.randn([5, 37], { dtype: 'float64', std: 2 });
      const w = ts.randn([5, 37], { dtype: 'float64' });
      const grads = (['float64', 'float32'] as const).map((dtype) => {
        const x = x64.to(dtype).detach();
        x.requiresGrad = true;
        fn(x, 1).mul(w.to(dtype)).sum().backward();
        return flat(x.grad as ts.Tensor);
      });
      assertClose(grads[1], grads[0], 1e-4, 2e-6, `${name} f32 grad`);
    });
  });
}

test('softmax and logSoftmax reject bad arguments with clear errors', () => {
  ts.scope(() => {
    const x = ts.randn([2, 3]);
    assertThrows(() => softmax(ts.tensor([1, 2, 3], { dtype: 'int32' })), ['softmax', 'int32[3]', 'float32 or float64'], 'int input');
    assertThrows(() => logSoftmax(ts.tensor([1, 2], { dtype: 'int32' })), ['logSoftmax', 'int32[2]'], 'int input log');
    assertThrows(() => softmax(x, 2), ['softmax', 'dim 2', 'float32[2, 3]'], 'dim too large');
    assertThrows(() => logSoftmax(x, -3), ['logSoftmax', 'dim -3', 'float32[2, 3]'], 'dim too negative');
    assertThrows(() => softmax(x, 0.5), ['softmax', 'dim must be an integer'], 'fractional dim');
    assertThrows(() => softmax([1, 2] as unknown as ts.Tensor), ['softmax', 'must be a Tensor'], 'not a tensor');
    try {
      softmax(x, 2);
    } catch (e) {
      assert.instance(e, ts.ShapeError);
    }
    const d = ts.randn([2, 2]);
    d.dispose();
    assertThrows(() => softmax(d), ['softmax', 'disposed'], 'disposed');
    try {
      logSoftmax(d);
    } catch (e) {
      assert.instance(e, ts.DisposedError);
    }
  });
});

test('the native softmax kernels check their layouts (no out-of-bounds access)', () => {
  ts.scope(() => {
    const x = ts.randn([4, 6]);
    const out = ts.empty([4, 6]);
    assertThrows(() => runKernel('softmax', [x.transpose(), ts.empty([6, 4])]), ['softmax', 'x must be contiguous'], 'non-contiguous');
    assertThrows(() => runKernel('softmax', [x, ts.empty([4, 5])]), ['softmax', 'same shape'], 'shape mismatch');
    assertThrows(() => runKernel('log_softmax', [x, ts.empty([4, 6], { dtype: 'float64' })]), ['log_softmax', 'same dtype'], 'dtype mismatch');
    assertThrows(() => runKernel('softmax', [x.reshape([24]), out.reshape([24])]), ['softmax', '2 dimensions'], 'rank');
    assertThrows(() => runKernel('softmax_backward', [x, out]), ['softmax_backward', 'expected 3 tensors'], 'arity');
    assertThrows(() => runKernel('softmax', [ts.tensor([[1, 2]], { dtype: 'int32' }), ts.empty([1, 2], { dtype: 'int32' })]), ['softmax', 'float32 or float64'], 'int kernel');
  });
});

test.run();
