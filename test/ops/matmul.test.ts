// matmul through the TypeScript op: all the PyTorch shape cases (1-D, 2-D, batched, broadcast
// batch), transposed operands without copies, float64 reference and gradients.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';

/** Reference matmul on row-major data with batch broadcasting. */
function refMatmul(a: ts.Tensor, b: ts.Tensor): number[] {
  return ts.noGrad(() => {
    // expand through the engine's views but compute with JS loops in float64
    const a2 = a.ndim === 1 ? a.unsqueeze(0) : a;
    const b2 = b.ndim === 1 ? b.unsqueeze(-1) : b;
    const batch = a2.ndim > 2 || b2.ndim > 2 ? ts.add(ts.zeros(a2.shape.slice(0, -2), { dtype: 'float64' }), ts.zeros(b2.shape.slice(0, -2), { dtype: 'float64' })).shape : [];
    const [M, K] = a2.shape.slice(-2);
    const N = b2.shape[b2.ndim - 1];
    const ae = flat(a2.to('float64').expand([...batch, M, K]).contiguous());
    const be = flat(b2.to('float64').expand([...batch, K, N]).contiguous());
    const B = batch.reduce((x, y) => x * y, 1);
    const out: number[] = [];
    for (let z = 0; z < B; z++)
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += ae[z * M * K + i * K + k] * be[z * K * N + k * N + j];
          out.push(s);
        }
    return out;
  });
}

const cases: [number[], number[], number[]][] = [
  [[3, 4], [4, 5], [3, 5]],
  [[4], [4, 5], [5]],
  [[3, 4], [4], [3]],
  [[4], [4], []],
  [[2, 3, 4], [4, 5], [2, 3, 5]],
  [[3, 4], [2, 4, 5], [2, 3, 5]],
  [[2, 1, 3, 4], [5, 4, 2], [2, 5, 3, 2]],
  [[1, 1], [1, 1], [1, 1]],
  [[7, 33], [33, 13], [7, 13]],
  [[65, 129], [129, 31], [65, 31]],
];

test('matmul follows torch.matmul shape rules and matches a float64 reference', () => {
  seedFor('matmul');
  for (const [sa, sb, so] of cases) {
    ts.scope(() => {
      const a = ts.randn(sa, { dtype: 'float64' });
      const b = ts.randn(sb, { dtype: 'float64' });
      const out = ts.matmul(a, b);
      assert.equal([...out.shape], so, `shape ${sa} @ ${sb}`);
      const expected = refMatmul(a, b);
      assertClose(flat(out), expected, 1e-12, 1e-12, `f64 ${sa} @ ${sb}`);
      const k = sa[sa.length - 1];
      assertClose(flat(ts.matmul(a.to('float32'), b.to('float32'))), expected, 1e-5, 2e-6 * k, `f32 ${sa} @ ${sb}`);
    });
  }
});

test('matmul reads transposed and sliced operands correctly', () => {
  seedFor('matmul strided');
  ts.scope(() => {
    const a = ts.randn([6, 5], { dtype: 'float64' });
    const b = ts.randn([7, 6], { dtype: 'float64' });
    assertClose(flat(ts.matmul(a.T, b.T)), refMatmul(a.T.contiguous(), b.T.contiguous()), 1e-12, 1e-12, 'both transposed');
    const s = ts.randn([9, 8], { dtype: 'float64' }).slice(0, 1, 9, 2).slice(1, 0, 7, 3);
    const c = ts.randn([3, 4], { dtype: 'float64' });
    assertClose(flat(ts.matmul(s, c)), refMatmul(s.contiguous(), c), 1e-12, 1e-12, 'strided both dims');
  });
});

test('matmul gradients match central differences for every shape case', () => {
  seedFor('matmul grad');
  for (const [sa, sb] of cases.slice(0, 8)) {
    gradcheck(`matmul ${sa} @ ${sb}`, (a, b) => ts.matmul(a, b), [ts.randn(sa, { dtype: 'float64' }), ts.randn(sb, { dtype: 'float64' })]);
  }
  gradcheck('matmul transposed', (a, b) => ts.matmul(a.T, b), [ts.randn([4, 3], { dtype: 'float64' }), ts.randn([4, 2], { dtype: 'float64' })]);
});

test('matmul rejects mismatched shapes and dtypes with clear errors', () => {
  assertThrows(() => ts.matmul(ts.ones([2, 3]), ts.ones([4, 5])), ['matmul', '[2, 3]', '[4, 5]', 'inner dimensions 3 and 4'], 'inner mismatch');
  assertThrows(() => ts.matmul(ts.ones([2, 2, 3]), ts.ones([3, 3, 4])), ['matmul', 'broadcast'], 'batch mismatch');
  assertThrows(() => ts.matmul(ts.ones([2, 3]), ts.ones([3, 4], { dtype: 'float64' })), ['matmul', 'same dtype'], 'dtype mismatch');
  assertThrows(() => ts.matmul(ts.ones([]), ts.ones([3])), ['matmul', 'at least 1 dim'], '0-d');
  assertThrows(() => ts.matmul(ts.tensor([1], { dtype: 'int32' }), ts.tensor([1], { dtype: 'int32' })), ['matmul', 'int32'], 'int');
});

test.run();
