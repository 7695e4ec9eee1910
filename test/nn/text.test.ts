// TextTransformer: exact parameter names (OpenCLIP layout), OpenCLIP's init statistics, EOT
// pooling (argmax of the ids in JS, or an explicit eotIndex) and mean pooling over non-padded
// positions, causality (tokens after EOT cannot change the pooled vector), padding masks,
// argument errors, a state-dict round trip, and ~20 steps of SGD on a toy task inside scope()
// with flat native memory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { crossEntropy } from '../../lib/ops/cross_entropy';
import { assertClose, assertThrows, flat, seedFor } from '../helpers/check';

const f64 = { dtype: 'float64' } as const;
const shapes = (m: nn.Module) => m.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`);

/** Row r of a [B, n] flat array times proj [n, m]. */
function rowTimes(v: number[], proj: number[], n: number, m: number): number[] {
  return Array.from({ length: m }, (_, j) => v.reduce((s, x, i) => s + x * proj[i * m + j], 0));
}

function std(xs: number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
}

test('names and shapes of a small TextTransformer', () => {
  const txt = new nn.TextTransformer({ vocabSize: 50, contextLength: 7, width: 8, layers: 1, heads: 2, outputDim: 4, mlpRatio: 2 });
  assert.equal(shapes(txt), [
    'positional_embedding [7, 8]', 'text_projection [8, 4]',
    'token_embedding.weight [50, 8]',
    'transformer.blocks.0.ln_1.weight [8]', 'transformer.blocks.0.ln_1.bias [8]',
    'transformer.blocks.0.attn.in_proj.weight [24, 8]', 'transformer.blocks.0.attn.in_proj.bias [24]',
    'transformer.blocks.0.attn.out_proj.weight [8, 8]', 'transformer.blocks.0.attn.out_proj.bias [8]',
    'transformer.blocks.0.ln_2.weight [8]', 'transformer.blocks.0.ln_2.bias [8]',
    'transformer.blocks.0.mlp.fc1.weight [16, 8]', 'transformer.blocks.0.mlp.fc1.bias [16]',
    'transformer.blocks.0.mlp.fc2.weight [8, 16]', 'transformer.blocks.0.mlp.fc2.bias [8]',
    'ln_final.weight [8]', 'ln_final.bias [8]',
  ]);
  assert.equal(txt.namedBuffers(), [], 'the causal mask is not part of the state');
  const bare = new nn.TextTransformer({ vocabSize: 50, contextLength: 7, width: 8, layers: 0, heads: 2 });
  assert.equal(bare.namedParameters().map(([n]) => n), ['positional_embedding', 'token_embedding.weight', 'ln_final.weight', 'ln_final.bias']);
  txt.dispose();
  bare.dispose();
});

test("OpenCLIP's init: embeddings, per-layer stds, projection", () => {
  seedFor('text init');
  const [W, LAYERS] = [64, 2];
  const txt = new nn.TextTransformer({ vocabSize: 300, contextLength: 77, width: W, layers: LAYERS, heads: 4, outputDim: 64 });
  const near = (t: ts.Tensor, want: number, what: string) => {
    const s = std(flat(t));
    assert.ok(Math.abs(s / want - 1) < 0.06, `${what}: std ${s} vs ${want}`);
  };
  near(txt.token_embedding.weight, 0.02, 'token_embedding');
  near(txt.positional_embedding, 0.01, 'positional_embedding');
  near(txt.text_projection!, W ** -0.5, 'text_projection');
  const blk = txt.transformer.blocks.at(0);
  near(blk.attn.in_proj.weight, W ** -0.5, 'in_proj');
  near(blk.attn.out_proj.weight, W ** -0.5 * (2 * LAYERS) ** -0.5, 'out_proj');
  near(blk.mlp.fc1.weight, (2 * W) ** -0.5, 'fc1');
  near(blk.mlp.fc2.weight, W ** -0.5 * (2 * LAYERS) ** -0.5, 'fc2');
  txt.dispose();
});

test('EOT pooling: argmax of the ids by default, or the given eotIndex; causal; padding', () => {
  seedFor('text eot');
  const txt = new nn.TextTransformer({ vocabSize: 20, contextLength: 6, width: 8, layers: 2, heads: 2, outputDim: 3, ...f64 });
  ts.scope(() => {
    // EOT token is 19 (the largest id); 0 pads
    const ids = [[3, 7, 19, 0, 0, 0], [5, 19, 0, 0, 0, 0], [1, 2, 3, 4, 5, 19]];
    const tokens = ts.tensor(ids, { dtype: 'int32' });
    assert.equal(nn.eotIndexFromTokens(tokens), [2, 1, 5]);
    assert.equal(nn.eotIndexFromTokens(ts.tensor([[4, 9, 9, 1]], { dtype: 'int32' })), [1], 'first of equal maxima, as torch.argmax');
    const { pooled, tokens: out } = txt.forward(tokens);
    assert.equal([...out.shape], [3, 6, 8]);
    assert.equal([...pooled.shape], [3, 3]);
    const ov = flat(out);
    const proj = flat(txt.text_projection!);
    const expected = [2, 1, 5].flatMap((e, b) => rowTimes(ov.slice((b * 6 + e) * 8, (b * 6 + e + 1) * 8), proj, 8, 3));
    assertClose(flat(pooled), expected, 1e-12, 1e-12, 'pooled = eot token @ text_projection');
    // explicit eotIndex, as numbers or an int32 tensor
    const other = [0, 3, 4];
    const ex = other.flatMap((e, b) => rowTimes(ov.slice((b * 6 + e) * 8, (b * 6 + e + 1) * 8), proj, 8, 3));
    assertClose(flat(txt.forward(tokens, { eotIndex: other }).pooled), ex, 1e-12, 1e-12, 'eotIndex numbers');
    assertClose(flat(txt.forward(tokens, { eotIndex: ts.tensor(other, { dtype: 'int32' }) }).pooled), ex, 1e-12, 1e-12, 'eotIndex tensor');
    // causal: whatever follows EOT cannot change the pooled vector or the earlier tokens
    const changed = ts.tensor([[3, 7, 19, 11, 4, 8], [5, 19, 17, 2, 2, 2], [1, 2, 3, 4, 5, 19]], { dtype: 'int32' });
    const r2 = txt.forward(changed);
    assert.equal(flat(r2.pooled), flat(pooled), 'pooled unchanged by tokens after EOT');
    assert.equal(flat(r2.tokens).slice(0, 3 * 8), ov.slice(0, 3 * 8), 'earlier positions unchanged');
    // a key padding mask on the positions after EOT changes nothing under causal attention
    const pm = ts.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], { dtype: 'int32' });
    assertClose(flat(txt.forward(tokens, { paddingMask: pm }).pooled), flat(pooled), 1e-13, 1e-13, 'padding after EOT');
    // shorter sequences use the first L rows of positional_embedding
    assert.equal([...txt.forward(ts.tensor([[1, 19]], { dtype: 'int32' })).tokens.shape], [1, 2, 8]);
    assertThrows(() => txt.forward(ts.tensor([[1, 2]])), ['TextTransformer', 'int32'], 'float tokens');
    assertThrows(() => txt.forward(ts.zeros([1, 7], { dtype: 'int32' })), ['TextTransformer', '1 <= L <= 6'], 'too long');
    assertThrows(() => txt.forward(tokens, { eotIndex: [1, 2] }), ['eotIndex', '3 entries'], 'eotIndex length');
    assertThrows(() => txt.forward(tokens, { paddingMask: ts.zeros([3, 5]) }), ['paddingMask', '[3, 6]'], 'mask shape');
    assertThrows(() => txt.forward(ts.tensor([[1, 25]], { dtype: 'int32' })), ['embedding', '25'], 'id out of range');
  });
  txt.dispose();
});

test('mean pooling averages the non-padded positions; padded tokens cannot change it', () => {
  seedFor('text mean');
  const txt = new nn.TextTransformer({ vocabSize: 20, contextLength: 5, width: 8, layers: 1, heads: 2, causal: false, pool: 'mean', ...f64 });
  ts.scope(() => {
    const tokens = ts.tensor([[3, 7, 9, 0, 0], [5, 6, 7, 8, 9]], { dtype: 'int32' });
    const pm = ts.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]);
    const { pooled, tokens: out } = txt.forward(tokens, { paddingMask: pm });
    const ov = flat(out);
    const mean = (b: number, n: number) => [...Array(8).keys()].map((c) => [...Array(n).keys()].reduce((s, t) => s + ov[(b * 5 + t) * 8 + c], 0) / n);
    assertClose(flat(pooled), [...mean(0, 3), ...mean(1, 5)], 1e-12, 1e-12, 'masked mean');
    const p2 = txt.forward(ts.tensor([[3, 7, 9, 15, 1], [5, 6, 7, 8, 9]], { dtype: 'int32' }), { paddingMask: pm }).pooled;
    assertClose(flat(p2), flat(pooled), 1e-13, 1e-13, 'padded tokens ignored (bidirectional attention)');
    // without a mask: the plain mean over all positions
    const all = txt.forward(tokens);
    const av = flat(all.tokens);
    const full = [0, 1].flatMap((b) => [...Array(8).keys()].map((c) => [0, 1, 2, 3, 4].reduce((s, t) => s + av[(b * 5 + t) * 8 + c], 0) / 5));
    assertClose(flat(all.pooled), full, 1e-12, 1e-12, 'unmasked mean');
    // an all-padding row pools to zeros, without NaN
    const empty = txt.forward(tokens, { paddingMask: ts.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]) }).pooled;
    assert.ok(flat(empty).slice(0, 8).every((v) => v === 0), 'all padded -> zeros');
  });
  txt.dispose();
});

test('state dict round trip between two TextTransformers', () => {
  seedFor('text state dict');
  ts.scope(() => {
    const cfg = { vocabSize: 30, contextLength: 4, width: 8, layers: 1, heads: 2, outputDim: 2 };
    const a = new nn.TextTransformer(cfg);
    const b = new nn.TextTransformer(cfg);
    const tok = ts.tensor([[1, 2, 29, 0]], { dtype: 'int32' });
    assert.not.equal(flat(b.forward(tok).pooled), flat(a.forward(tok).pooled));
    b.loadStateDict(a.stateDict());
    assert.equal(flat(b.forward(tok).pooled), flat(a.forward(tok).pooled));
    a.dispose();
    b.dispose();
  });
});

test('a tiny TextTransformer learns a toy task with plain SGD; memory stays flat', () => {
  seedFor('text train');
  const V = 12;
  const txt = new nn.TextTransformer({ vocabSize: V, contextLength: 6, width: 16, layers: 2, heads: 2, outputDim: 2, mlpRatio: 2 });
  // label: does token 1 occur before the EOT token (V - 1)? Sequences of ids 1..9, then EOT, then 0s.
  const rows: number[][] = [];
  const labels: number[] = [];
  for (let n = 0; n < 16; n++) {
    const len = 2 + (n % 4);
    const row = Array.from({ length: len }, (_, i) => 2 + ((n * 5 + i * 3) % 8));
    if (n % 2) row[(n >> 1) % len] = 1;
    labels.push(n % 2);
    rows.push([...row, V - 1, ...new Array(5 - len).fill(0)]);
  }
  const tokens = ts.tensor(rows, { dtype: 'int32' });
  const targets = ts.tensor(labels, { dtype: 'int32' });
  const eot = nn.eotIndexFromTokens(tokens);
  const params = txt.parameters();
  const lr = 0.02;
  const losses: number[] = [];
  const mem: { blocks: number; bytes: number }[] = [];
  for (let step = 0; step < 20; step++) {
    losses.push(ts.scope(() => {
      const loss = crossEntropy(txt.forward(tokens, { eotIndex: eot }).pooled, targets);
      loss.backward();
      ts.noGrad(() => {
        for (const p of params) p.copy_(p.sub(p.grad!.mul(lr)));
      });
      txt.zeroGrad();
      return loss.item();
    }));
    const s = ts.memoryStats();
    mem.push({ blocks: s.hostBlocks, bytes: s.hostBytes });
  }
  if (process.env.SHOW_LOSSES) console.log(losses.map((l) => l.toFixed(3)).join(' '));
  assert.ok(losses.every(Number.isFinite), 'finite losses');
  assert.ok(losses[19] < 0.3 * losses[0], `loss goes down: ${losses[0].toFixed(3)} -> ${losses[19].toFixed(3)}`);
  for (let i = 2; i < mem.length; i++) assert.equal(mem[i], mem[1], `native memory after step ${i} equals that after step 1`);
  tokens.dispose();
  targets.dispose();
  txt.dispose();
});

test.run();
