// VisionTransformer: exact parameter names (OpenCLIP layout), the patch embedding against a
// loop Conv2d with stride = kernel (weight [width, C, p, p] reshaped), the MAE sin-cos table,
// pooling, buffers vs parameters, state-dict round trip, and ~20 steps of SGD on a toy task
// inside scope() with flat native memory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { crossEntropy } from '../../lib/ops/cross_entropy';
import { assertClose, assertThrows, flat, seedFor } from '../helpers/check';
import { linearRef } from '../helpers/nn_reference';

const f64 = { dtype: 'float64' } as const;
const shapes = (m: nn.Module) => m.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`);

const blockNames = (i: number, w: number, h: number) => [
  `transformer.blocks.${i}.ln_1.weight [${w}]`, `transformer.blocks.${i}.ln_1.bias [${w}]`,
  `transformer.blocks.${i}.attn.in_proj.weight [${3 * w}, ${w}]`, `transformer.blocks.${i}.attn.in_proj.bias [${3 * w}]`,
  `transformer.blocks.${i}.attn.out_proj.weight [${w}, ${w}]`, `transformer.blocks.${i}.attn.out_proj.bias [${w}]`,
  `transformer.blocks.${i}.ln_2.weight [${w}]`, `transformer.blocks.${i}.ln_2.bias [${w}]`,
  `transformer.blocks.${i}.mlp.fc1.weight [${h}, ${w}]`, `transformer.blocks.${i}.mlp.fc1.bias [${h}]`,
  `transformer.blocks.${i}.mlp.fc2.weight [${w}, ${h}]`, `transformer.blocks.${i}.mlp.fc2.bias [${w}]`,
];

test('names and shapes of a small ViT (learned and sin-cos position embeddings)', () => {
  const vit = new nn.VisionTransformer({ imageSize: 8, patchSize: 4, channels: 3, width: 8, layers: 2, heads: 2, outputDim: 6 });
  assert.equal(shapes(vit), [
    'class_embedding [8]', 'positional_embedding [5, 8]', 'proj [8, 6]',
    'patch_embed.weight [8, 48]',
    'ln_pre.weight [8]', 'ln_pre.bias [8]',
    ...blockNames(0, 8, 32), ...blockNames(1, 8, 32),
    'ln_post.weight [8]', 'ln_post.bias [8]',
  ]);
  assert.equal(vit.namedBuffers(), []);
  const sc = new nn.VisionTransformer({ imageSize: [8, 12], patchSize: 4, channels: 1, width: 8, layers: 1, heads: 2, posEmbed: 'sincos', pool: 'mean', patchBias: true, mlpRatio: 2 });
  assert.equal(shapes(sc), [
    'class_embedding [8]',
    'patch_embed.weight [8, 16]', 'patch_embed.bias [8]',
    'ln_pre.weight [8]', 'ln_pre.bias [8]',
    ...blockNames(0, 8, 16),
    'ln_post.weight [8]', 'ln_post.bias [8]',
  ]);
  assert.equal(sc.namedBuffers().map(([n, b]) => `${n} [${b.shape.join(', ')}]`), ['positional_embedding [7, 8]']);
  assert.equal([...sc.stateDict().keys()].filter((k) => !k.startsWith('transformer')),
    ['class_embedding', 'patch_embed.weight', 'patch_embed.bias', 'ln_pre.weight', 'ln_pre.bias', 'ln_post.weight', 'ln_post.bias', 'positional_embedding']);
  assert.equal(sc.gridSize, [2, 3]);
  vit.dispose();
  sc.dispose();
});

test('patch_embed on patchify(images) equals a stride-p Conv2d with weight [width, C, p, p]', () => {
  seedFor('vit patchify');
  const vit = new nn.VisionTransformer({ imageSize: [6, 9], patchSize: 3, channels: 2, width: 4, layers: 0, heads: 1, patchBias: true, ...f64 });
  ts.scope(() => {
    const [B, C, H, W, P, D] = [2, 2, 6, 9, 3, 4];
    const img = ts.randn([B, C, H, W], f64);
    const iv = flat(img);
    const at = (b: number, c: number, y: number, x: number) => iv[((b * C + c) * H + y) * W + x];
    // patchify: patch n = row * gw + col, inner order (c, ky, kx)
    const patches = vit.patchify(img);
    assert.equal([...patches.shape], [B, 6, C * P * P]);
    const ref: number[] = [];
    for (let b = 0; b < B; b++)
      for (let gy = 0; gy < 2; gy++)
        for (let gx = 0; gx < 3; gx++)
          for (let c = 0; c < C; c++) for (let ky = 0; ky < P; ky++) for (let kx = 0; kx < P; kx++) ref.push(at(b, c, gy * P + ky, gx * P + kx));
    assert.equal(flat(patches), ref);
    // conv2d(img, w4 [D, C, P, P], stride P) + bias, output [B, D, gh, gw] -> tokens [B, gh*gw, D]
    const w4 = flat(vit.patch_embed.weight); // [D, C*P*P] is w4 flattened
    const bias = flat(vit.patch_embed.bias!);
    const conv: number[] = [];
    for (let b = 0; b < B; b++)
      for (let gy = 0; gy < 2; gy++)
        for (let gx = 0; gx < 3; gx++)
          for (let o = 0; o < D; o++) {
            let s = bias[o];
            for (let c = 0; c < C; c++)
              for (let ky = 0; ky < P; ky++)
                for (let kx = 0; kx < P; kx++) s += w4[((o * C + c) * P + ky) * P + kx] * at(b, c, gy * P + ky, gx * P + kx);
            conv.push(s);
          }
    assertClose(flat(vit.patch_embed.forward(patches)), conv, 1e-12, 1e-12, 'patch embedding = conv');
    assertThrows(() => vit.patchify(ts.randn([1, 2, 6, 8], f64)), ['VisionTransformer', '[B, 2, 6, 9]'], 'image size');
  });
  vit.dispose();
});

test('sin-cos table follows MAE get_2d_sincos_pos_embed (cls row zero)', () => {
  // numpy structure: grid = meshgrid(grid_w, grid_h); emb = [1d(D/2, grid[0]), 1d(D/2, grid[1])]
  const mae = (dim: number, gh: number, gw: number): number[] => {
    const oneD = (d: number, pos: number[]) => {
      const omega = Array.from({ length: d / 2 }, (_, k) => 1 / 10000 ** (k / (d / 2)));
      return pos.map((p) => [...omega.map((o) => Math.sin(p * o)), ...omega.map((o) => Math.cos(p * o))]);
    };
    const g0: number[] = [];
    const g1: number[] = [];
    for (let i = 0; i < gh; i++) for (let j = 0; j < gw; j++) { g0.push(j); g1.push(i); }
    const a = oneD(dim / 2, g0);
    const b = oneD(dim / 2, g1);
    return [...new Array(dim).fill(0), ...a.flatMap((r, n) => [...r, ...b[n]])];
  };
  assertClose(Array.from(nn.sincos2dPositionEmbedding(16, 3, 4)), mae(16, 3, 4), 1e-15, 1e-15, 'MAE table');
  // literal values for width 8 (omega = [1, 0.01]) at patch row 1, col 2 of a 2 x 3 grid
  const t = nn.sincos2dPositionEmbedding(8, 2, 3);
  const row = Array.from(t.slice((1 + 1 * 3 + 2) * 8, (1 + 1 * 3 + 2) * 8 + 8));
  assertClose(row, [Math.sin(2), Math.sin(0.02), Math.cos(2), Math.cos(0.02), Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)], 0, 1e-15, 'literal row');
  assertThrows(() => nn.sincos2dPositionEmbedding(6, 2, 2), ['multiple of 4'], 'width % 4');
  ts.scope(() => {
    const vit = new nn.VisionTransformer({ imageSize: 4, patchSize: 2, channels: 1, width: 8, layers: 0, heads: 1, posEmbed: 'sincos', ...f64 });
    assert.equal(flat(vit.positional_embedding), Array.from(nn.sincos2dPositionEmbedding(8, 2, 2)));
    assert.ok(!vit.positional_embedding.requiresGrad, 'the sin-cos table is not trained');
    vit.dispose();
  });
});

test('forward: shapes, cls and mean pooling, projection; round trip through the state dict', () => {
  seedFor('vit forward');
  ts.scope(() => {
    const cfg = { imageSize: 8, patchSize: 4, channels: 3, width: 8, layers: 1, heads: 2, outputDim: 5, ...f64 } as const;
    const vit = new nn.VisionTransformer(cfg);
    const img = ts.randn([3, 3, 8, 8], f64);
    const { pooled, tokens } = vit.forward(img);
    assert.equal([...tokens.shape], [3, 5, 8]);
    assert.equal([...pooled.shape], [3, 5]);
    const tv = flat(tokens);
    const proj = flat(vit.proj!);
    const cls = [0, 1, 2].flatMap((b) => tv.slice(b * 40, b * 40 + 8));
    assertClose(flat(pooled), linearRef(cls, 3, transpose(proj, 8, 5), 5, 8, null), 1e-12, 1e-12, 'cls pooling');
    // tokens are ln_post outputs: every token has mean ~0, and the class token depends on the image
    assert.ok(Math.abs(tv.slice(0, 8).reduce((a, b) => a + b) / 8) < 1e-12);
    // mean pooling averages the patch tokens only
    const mv = new nn.VisionTransformer({ ...cfg, pool: 'mean' });
    mv.loadStateDict(vit.stateDict());
    const out = mv.forward(img);
    assert.equal(flat(out.tokens), tv, 'same weights, same tokens');
    const mean = [0, 1, 2].flatMap((b) => [...Array(8).keys()].map((c) => [1, 2, 3, 4].reduce((s, t) => s + tv[b * 40 + t * 8 + c], 0) / 4));
    assertClose(flat(out.pooled), linearRef(mean, 3, transpose(proj, 8, 5), 5, 8, null), 1e-12, 1e-12, 'mean pooling');
    // without outputDim, pooled is the width
    const np = new nn.VisionTransformer({ ...cfg, outputDim: undefined });
    assert.equal([...np.forward(img).pooled.shape], [3, 8]);
    // round trip: a second instance loads the first one's state and agrees exactly
    const other = new nn.VisionTransformer(cfg);
    assert.not.equal(flat(other.forward(img).pooled), flat(pooled));
    other.loadStateDict(vit.stateDict());
    assert.equal(flat(other.forward(img).pooled), flat(pooled));
    for (const m of [vit, mv, np, other]) m.dispose();
  });
});

/** [r, c] row-major -> [c, r]. */
function transpose(a: number[], r: number, c: number): number[] {
  const out = new Array<number>(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  return out;
}

test('a tiny ViT learns a toy task with plain SGD; memory stays flat', () => {
  seedFor('vit train');
  const vit = new nn.VisionTransformer({ imageSize: 8, patchSize: 4, channels: 1, width: 16, layers: 2, heads: 2, outputDim: 2, mlpRatio: 2 });
  // label 1: a bright image, label 0: a dark one, both with a fixed texture on top
  const N = 16;
  const data = new Float32Array(N * 64);
  const labels: number[] = [];
  for (let n = 0; n < N; n++) {
    labels.push(n % 2);
    for (let i = 0; i < 64; i++) data[n * 64 + i] = 0.3 * Math.sin(n * 7.1 + i * 1.3) + (n % 2 ? 0.5 : -0.5);
  }
  const images = ts.tensor(data, { shape: [N, 1, 8, 8] });
  const targets = ts.tensor(labels, { dtype: 'int32' });
  const params = vit.parameters();
  const lr = 0.05;
  const losses: number[] = [];
  const mem: { blocks: number; bytes: number }[] = [];
  for (let step = 0; step < 20; step++) {
    losses.push(ts.scope(() => {
      const loss = crossEntropy(vit.forward(images).pooled, targets);
      loss.backward();
      ts.noGrad(() => {
        for (const p of params) p.copy_(p.sub(p.grad!.mul(lr)));
      });
      vit.zeroGrad();
      return loss.item();
    }));
    const s = ts.memoryStats();
    mem.push({ blocks: s.hostBlocks, bytes: s.hostBytes });
  }
  if (process.env.SHOW_LOSSES) console.log(losses.map((l) => l.toFixed(3)).join(" "));
  assert.ok(losses.every(Number.isFinite), "finite losses");
  assert.ok(losses[19] < 0.25 * losses[0], `loss goes down: ${losses[0].toFixed(3)} -> ${losses[19].toFixed(3)}`);
  for (let i = 2; i < mem.length; i++) assert.equal(mem[i], mem[1], `native memory after step ${i} equals that after step 1`);
  images.dispose();
  targets.dispose();
  vit.dispose();
});

test.run();
