// The composed CLIP loss against a float64 JS reference and finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertThrows, flat, gradcheck, seedFor } from '../helpers/check';

function reference(img: number[], txt: number[], n: number, d: number, logScale: number): number {
  const norm = (v: number[]) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = v.slice(i * d, (i + 1) * d);
      const len = Math.sqrt(row.reduce((s, x) => s + x * x, 0));
      out.push(...row.map((x) => x / len));
    }
    return out;
  };
  const a = norm(img);
  const b = norm(txt);
  const s = Math.exp(logScale);
  const logits = (i: number, j: number) => s * Array.from({ length: d }, (_, k) => a[i * d + k] * b[j * d + k]).reduce((x, y) => x + y, 0);
  let li = 0;
  let lt = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: n }, (_, j) => logits(i, j));
    const col = Array.from({ length: n }, (_, j) => logits(j, i));
    const lse = (xs: number[]) => Math.max(...xs) + Math.log(xs.reduce((acc, x) => acc + Math.exp(x - Math.max(...xs)), 0));
    li += lse(row) - row[i];
    lt += lse(col) - col[i];
  }
  return (li / n + lt / n) / 2;
}

test('clipLoss matches a float64 reference and its gradients match finite differences', () => {
  seedFor('clip');
  const [n, d] = [5, 7];
  const img = ts.randn([n, d], { dtype: 'float64' });
  const txt = ts.randn([n, d], { dtype: 'float64' });
  const scale = ts.tensor(Math.log(1 / 0.07), { dtype: 'float64' });
  const got = ts.losses.clipLoss(img, txt, scale).item();
  const want = reference(flat(img), flat(txt), n, d, Math.log(1 / 0.07));
  assert.ok(Math.abs(got - want) < 1e-12 * Math.max(1, Math.abs(want)), `${got} vs ${want}`);
  gradcheck('clipLoss', (a, b, s) => ts.losses.clipLoss(a, b, s), [img, txt, ts.tensor(1.3, { dtype: 'float64' })]);
});

test('clipLoss rejects mismatched inputs', () => {
  assertThrows(() => ts.losses.clipLoss(ts.ones([3, 4]), ts.ones([2, 4]), ts.zeros([])), ['clipLoss', '[3, 4]', '[2, 4]'], 'batch mismatch');
  assertThrows(() => ts.losses.clipLoss(ts.ones([3, 4]), ts.ones([3, 4]), ts.zeros([2])), ['clipLoss', 'logitScale'], 'scale');
});

test.run();
