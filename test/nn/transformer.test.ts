// TransformerBlock / Transformer: exact parameter names, the pre-LN forward against the float64
// loop reference (with padding and causal masks), gradients through a block by central
// differences, causality through a whole stack, dropout off in eval().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { assertClose, flat, gradcheck, seedFor } from '../helpers/check';
import { blockRef } from '../helpers/nn_reference';
import { blockWeights } from '../helpers/nn_weights';

const f64 = { dtype: 'float64' } as const;

const BLOCK_NAMES = [
  'ln_1.weight [8]', 'ln_1.bias [8]',
  'attn.in_proj.weight [24, 8]', 'attn.in_proj.bias [24]', 'attn.out_proj.weight [8, 8]', 'attn.out_proj.bias [8]',
  'ln_2.weight [8]', 'ln_2.bias [8]',
  'mlp.fc1.weight [16, 8]', 'mlp.fc1.bias [16]', 'mlp.fc2.weight [8, 16]', 'mlp.fc2.bias [8]',
];

test('names: TransformerBlock children ln_1, attn, ln_2, mlp; Transformer blocks.<i>', () => {
  const blk = new nn.TransformerBlock(8, 2, { mlpRatio: 2 });
  assert.equal(blk.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`), BLOCK_NAMES);
  const tr = new nn.Transformer(8, 2, 2, { mlpRatio: 2 });
  assert.equal(tr.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`),
    [0, 1].flatMap((i) => BLOCK_NAMES.map((s) => `blocks.${i}.${s}`)));
  assert.is(tr.blocks.length, 2);
  assert.is(new nn.TransformerBlock(8, 2).mlp.fc1.outFeatures, 32, 'mlpRatio defaults to 4');
  assert.is(tr.numParameters(), 2 * (16 + 24 * 8 + 24 + 64 + 8 + 16 + 16 * 8 + 16 + 8 * 16 + 8));
  blk.dispose();
  tr.dispose();
});

test('TransformerBlock forward matches the pre-LN loop reference', () => {
  seedFor('block reference');
  ts.scope(() => {
    for (const activation of ['gelu', 'relu'] as const) {
      const blk = new nn.TransformerBlock(8, 2, { mlpRatio: 1.5, activation, eps: 1e-6, ...f64 });
      // non-trivial LayerNorm affine parameters and biases
      for (const [n, p] of blk.namedParameters()) if (n.startsWith('ln_') || n.endsWith('bias')) nn.init.normal_(p, n.endsWith('weight') ? 1 : 0, 0.3);
      const [B, L] = [2, 5];
      const x = ts.randn([B, L, 8], f64);
      const pad = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0];
      const kpm = ts.tensor(pad, { shape: [B, L] });
      for (const causal of [false, true])
        for (const mask of [null, kpm]) {
          const y = blk.forward(x, { causal, keyPaddingMask: mask });
          assertClose(flat(y), blockRef(blockWeights(blk), flat(x), B, L, mask ? pad : null, causal), 1e-11, 1e-12,
            `block ${activation} causal=${causal} padding=${mask !== null}`);
        }
      blk.dispose();
    }
  });
});

test('gradients through a TransformerBlock match central differences', () => {
  seedFor('block gradcheck');
  const blk = new nn.TransformerBlock(4, 2, { mlpRatio: 2, ...f64 });
  for (const [n, p] of blk.namedParameters()) if (n.endsWith('bias')) nn.init.normal_(p, 0, 0.2);
  ts.scope(() => {
    const x = ts.randn([2, 3, 4], f64);
    const kpm = ts.tensor([[0, 0, 1], [1, 0, 0]]);
    gradcheck('TransformerBlock', (a) => blk.forward(a, { causal: true, keyPaddingMask: kpm }), [x, ...blk.parameters()], { tol: 1e-6 });
    gradcheck('TransformerBlock no mask', (a) => blk.forward(a), [x]);
  });
  blk.dispose();
});

test('Transformer: causal stack never looks ahead; dropout only in training', () => {
  seedFor('transformer stack');
  const tr = new nn.Transformer(8, 3, 2, { mlpRatio: 2, dropout: 0.3 });
  ts.scope(() => {
    tr.eval();
    const x = ts.randn([2, 6, 8]);
    const x2 = x.clone();
    x2.slice(1, 4).copy_(ts.randn([2, 2, 8], { std: 5 }));
    const y = flat(tr.forward(x, { causal: true }));
    const y2 = flat(tr.forward(x2, { causal: true }));
    for (let b = 0; b < 2; b++) {
      const part = (a: number[], t0: number, t1: number) => a.slice((b * 6 + t0) * 8, (b * 6 + t1) * 8);
      assert.equal(part(y2, 0, 4), part(y, 0, 4), `batch ${b}: positions 0..3 unchanged`);
      assert.not.equal(part(y2, 4, 6), part(y, 4, 6), `batch ${b}: positions 4, 5 changed`);
    }
    assert.equal(flat(tr.forward(x)), flat(tr.forward(x)), 'eval is deterministic');
    tr.train();
    assert.not.equal(flat(tr.forward(x)), flat(tr.forward(x)), 'training applies dropout');
    // zero layers is the identity
    const empty = new nn.Transformer(8, 0, 2);
    assert.is(empty.forward(x), x);
  });
  tr.dispose();
});

test.run();
