// Parity with PyTorch: every op's float64 output and input gradients against values PyTorch
// computed for the same inputs (test/reference/ops_reference.json, made by
// test/reference/make_ops_reference.py with Debian's python3-torch).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../../lib';
import { assertClose, flat } from '../helpers/check';

interface Case {
  name: string;
  params: Record<string, unknown>;
  inputs: { shape: number[]; dtype: 'float64' | 'int32'; data: number[] }[];
  output: { shape: number[]; data: number[] };
  grads: (number[] | null)[];
}

const file = path.resolve(__dirname, '..', '..', '..', 'test', 'reference', 'ops_reference.json');
const reference = JSON.parse(fs.readFileSync(file, 'utf8')) as { torch: string; cases: Case[] };

type Op = (xs: ts.Tensor[], p: Record<string, unknown>) => ts.Tensor;
const dims = (p: Record<string, unknown>) => (p.dims === null ? undefined : (p.dims as number[]));
const ops: Record<string, Op> = {
  add: ([a, b]) => ts.add(a, b),
  sub: ([a, b]) => ts.sub(a, b),
  mul: ([a, b]) => ts.mul(a, b),
  div: ([a, b]) => ts.div(a, b),
  pow: ([a, b]) => ts.pow(a, b),
  maximum: ([a, b]) => ts.maximum(a, b),
  minimum: ([a, b]) => ts.minimum(a, b),
  neg: ([x]) => ts.neg(x),
  exp: ([x]) => ts.exp(x),
  log: ([x]) => ts.log(x),
  sqrt: ([x]) => ts.sqrt(x),
  rsqrt: ([x]) => ts.rsqrt(x),
  abs: ([x]) => ts.abs(x),
  relu: ([x]) => ts.relu(x),
  sigmoid: ([x]) => ts.sigmoid(x),
  logsigmoid: ([x]) => ts.logsigmoid(x),
  tanh: ([x]) => ts.tanh(x),
  gelu: ([x]) => ts.gelu(x),
  gelu_tanh: ([x]) => ts.gelu(x, 'tanh'),
  softplus: ([x]) => ts.softplus(x),
  softplus_b2_t1: ([x]) => ts.softplus(x, 2, 1),
  clamp: ([x]) => ts.clamp(x, -0.4, 0.6),
  pow3: ([x]) => ts.pow(x, 3),
  'pow_m1.5': ([x]) => ts.pow(x, -1.5),
  sum: ([x], p) => ts.sum(x, dims(p), p.keepdim as boolean),
  mean: ([x], p) => ts.mean(x, dims(p), p.keepdim as boolean),
  max: ([x], p) => ts.max(x, dims(p), p.keepdim as boolean),
  min: ([x], p) => ts.min(x, dims(p), p.keepdim as boolean),
  logsumexp: ([x], p) => ts.logsumexp(x, dims(p), p.keepdim as boolean),
  var: ([x], p) => ts.variance(x, dims(p), p.keepdim as boolean),
  matmul: ([a, b]) => ts.matmul(a, b),
  softmax: ([x], p) => ts.softmax(x, p.dim as number),
  log_softmax: ([x], p) => ts.logSoftmax(x, p.dim as number),
  layer_norm: ([x, w, b], p) => ts.layerNorm(x, p.shape as number[], w, b),
  layer_norm_2d: ([x], p) => ts.layerNorm(x, p.shape as number[]),
  cross_entropy: ([x, t], p) =>
    ts.crossEntropy(x, t, { reduction: p.reduction as 'mean', labelSmoothing: p.labelSmoothing as number }),
  gather: ([x, i], p) => ts.gather(x, p.dim as number, i),
  index_select: ([x, i], p) => ts.indexSelect(x, p.dim as number, i),
  embedding: ([w, i]) => ts.embedding(w, i),
  scatter_add: ([x, i, s], p) => ts.scatterAdd(x, p.dim as number, i, s),
  cat: ([a, b], p) => ts.cat([a, b], p.dim as number),
  stack: ([a, b], p) => ts.stack([a, b], p.dim as number),
  normalize: ([x], p) => ts.normalize(x, 2, p.dim as number),
};

test(`every op matches PyTorch ${reference.torch} in float64, forward and backward`, () => {
  const seen = new Set<string>();
  for (const c of reference.cases) {
    const op = ops[c.name];
    assert.ok(op, `no tessera op mapped for reference case ${c.name}`);
    seen.add(c.name);
    ts.scope(() => {
      const inputs = c.inputs.map((i) =>
        ts.tensor(i.dtype === 'int32' ? Int32Array.from(i.data) : Float64Array.from(i.data), {
          shape: i.shape,
          requiresGrad: i.dtype === 'float64' && c.grads.length > 0,
        }),
      );
      const out = op(inputs, c.params);
      const what = `${c.name} ${JSON.stringify(c.params)}`;
      assert.equal([...out.shape], c.output.shape, `${what}: shape`);
      assertClose(flat(out), c.output.data, 1e-10, 1e-12, `${what}: output`);
      if (c.grads.length) {
        const w = ts.tensor(Float64Array.from({ length: out.numel }, (_, i) => Math.sin(1.7 * i + 0.3) + 0.1), { shape: out.shape });
        out.mul(w).sum().backward();
        c.grads.forEach((g, k) => {
          if (!g) return;
          assert.ok(inputs[k].grad, `${what}: input ${k} got no gradient`);
          assertClose(flat(inputs[k].grad!), g, 1e-10, 1e-12, `${what}: gradient of input ${k}`);
        });
      }
    });
  }
  assert.ok(seen.size >= 40, `${seen.size} ops covered`);
});

test.run();
