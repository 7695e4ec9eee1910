// The VQ-VAE image tokenizer (lib/data/vq): a short seeded training run on the embedded world
// (1500 training images, 250 steps of 64, a 256-code book, 64 tokens per 32 x 32 image)
// beats the mean-image baseline by a wide margin and uses most of its codebook on held-out
// images; encode/decode shapes and dtypes; the EMA codebook update and dead-code restarts
// against hand-computed values; save -> load gives identical codes and a frozen model; bad
// checkpoints and bad inputs are clear errors.
//
// The file runs on one native thread (restored afterwards): at these kernel sizes (~100k floats)
// two threads on a shared, loaded 2-core machine spend most of their time waiting for each
// other (an add of 131k floats measured 12 ms with 2 threads, 0.2 ms with 1).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { ImageBatch, imageBatchToTensor } from '../../lib/data/image_batch';
import { EMACodebook, VQVAE, codeUsage, evaluateVQVAE, loadVQVAE, saveVQVAE, trainVQVAE, VQEvaluation } from '../../lib/data/vq';
import { createWorld } from '../../lib/data/world';
import { assertThrows, flat } from '../helpers/check';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-vq-'));
const small = { codebookSize: 256, width: 32, encoderLayers: 1, decoderLayers: 1, heads: 4, codeDim: 32, patchSize: 4 };

const world = createWorld({ seed: 0, imageSize: 32 });
/** n world images of a split from `start`. */
const images = (split: 'train' | 'val' | 'test', start: number, n: number): ImageBatch => world.imageBatch(split, start, n);

let trained: VQVAE | null = null;
let evaluation: VQEvaluation | null = null;

const threadsBefore = ts.cpuInfo().threads;
test.before(() => ts.setNumThreads(1));

test('a short training run beats the mean-image baseline by a wide margin and uses most of its codebook', () => {
  const train = images('train', 0, 1500);
  const heldOut = images('val', 0, 256);
  const lines: string[] = [];
  const res = trainVQVAE(train, { config: small, steps: 250, batchSize: 64, seed: 0, logEvery: 125, log: (l) => lines.push(l) });
  trained = res.model;
  evaluation = evaluateVQVAE(res.model, heldOut, res.meanImage);
  const e = evaluation;
  console.log(`  ${lines.join('\n  ')}`);
  console.log(`  held-out: MSE ${e.mse.toFixed(5)} vs mean-image baseline ${e.baselineMse.toFixed(5)} (ratio ${e.ratio.toFixed(3)}), ` +
    `${e.codesUsed}/256 codes used, perplexity ${e.perplexity.toFixed(1)}, ${res.seconds.toFixed(1)} s`);
  assert.is(lines.length, 3, 'progress lines at steps 1, 125, 250');
  assert.match(lines[2], /recon [0-9.]+ +perplexity [0-9.]+ +usage [0-9.]+%/);
  assert.ok(e.baselineMse > 0.01, `baseline MSE ${e.baselineMse} is that of varied images`);
  assert.ok(e.ratio < 0.5, `reconstruction MSE ${e.mse} must be < 0.5 x the baseline ${e.baselineMse}`);
  assert.ok(e.usage > 0.5, `codebook usage ${e.usage} must be > 50%`);
  assert.ok(e.perplexity > 50, `perplexity ${e.perplexity}`);
  assert.ok(res.history[2].reconMse < res.history[0].reconMse / 2, 'the training loss went down');
});

test('encode gives int32 [N, T] codes within the codebook, decode float32 [N, 3, 32, 32] images in (0, 1)', () => {
  const model = trained!;
  assert.is(model.tokensPerImage, 64);
  assert.is(model.codebookSize, 256);
  ts.scope(() => {
    const x = imageBatchToTensor(images('test', 0, 5));
    const codes = model.encode(x);
    assert.is(codes.dtype, 'int32');
    assert.equal([...codes.shape], [5, 64]);
    const c = flat(codes);
    assert.ok(c.every((v) => Number.isInteger(v) && v >= 0 && v < 256), 'codes in [0, 256)');
    const decoded = model.decode(codes);
    assert.is(decoded.dtype, 'float32');
    assert.equal([...decoded.shape], [5, 3, 32, 32]);
    const px = flat(decoded);
    assert.ok(px.every((v) => v > 0 && v < 1), 'sigmoid output in (0, 1)');
    assert.not.ok(decoded.requiresGrad, 'decode records no graph');
    // decode(encode(x)) is close to x: the same MSE the evaluation measured, within noise
    const xv = flat(x);
    const mse = px.reduce((s, v, i) => s + (v - xv[i]) ** 2, 0) / px.length;
    assert.ok(mse < 3 * evaluation!.mse + 0.01, `round-trip MSE ${mse}`);
  });
});

test('patchify and unpatchify are inverse and follow the row-major (c, ky, kx) patch layout', () => {
  const model = new VQVAE({ ...small, codebookSize: 16 });
  ts.scope(() => {
    const x = ts.rand([2, 3, 32, 32]);
    const p = model.patchify(x);
    assert.equal([...p.shape], [2, 64, 48]);
    // patch (row 1, col 2) of image 1, channel 2, pixel (ky 3, kx 1) is x[1, 2, 4 + 3, 8 + 1]
    const xv = flat(x);
    const pv = flat(p);
    assert.is(pv[(1 * 64 + 1 * 8 + 2) * 48 + 2 * 16 + 3 * 4 + 1], xv[((1 * 3 + 2) * 32 + 7) * 32 + 9]);
    assert.equal(flat(model.unpatchify(p)), xv);
  });
  model.dispose();
});

test('the EMA update moves codes to the mean of their vectors (Laplace-smoothed) and restarts dead codes', () => {
  const cb = new EMACodebook(4, 2, { decay: 0.5, deadAfter: 2, seed: 3 });
  ts.scope(() => {
    const z = ts.tensor([[0, 0], [1, 1], [4, 0], [4.2, 0], [0, 4]]);
    cb.update(z, cb.quantize(z)); // first call: every code becomes a row of z
    assert.ok(cb.isInitialized);
    const e0 = flat(cb.embed);
    for (let k = 0; k < 4; k++) {
      const row = e0.slice(2 * k, 2 * k + 2);
      assert.ok(flat(z).some((_, i) => i % 2 === 0 && flat(z)[i] === row[0] && flat(z)[i + 1] === row[1]), `code ${k} = a row of z`);
    }
    assert.equal(flat(cb.cluster_size), [1, 1, 1, 1]);
    // a hand-made codebook: codes 0 and 1 attract the batch, codes 2 and 3 are far away
    cb.embed.copy_(ts.tensor([[0, 0], [4, 0], [100, 100], [-100, 100]]));
    cb.embed_avg.copy_(ts.tensor([[0, 0], [4, 0], [100, 100], [-100, 100]]));
    cb.cluster_size.copy_(ts.tensor([1, 1, 1, 1]));
    const batch = ts.tensor([[0, 1], [0, 3], [4, 2], [5, 0]]);
    const q = cb.quantize(batch);
    assert.equal(Array.from(q.codesArray), [0, 0, 1, 1]);
    assert.equal(flat(q.q), [0, 0, 0, 0, 4, 0, 4, 0]);
    cb.update(batch, q);
    // N = 0.5 * 1 + 0.5 * [2, 2, 0, 0]; m = 0.5 * e + 0.5 * sums
    const n = [1.5, 1.5, 0.5, 0.5];
    assert.equal(flat(cb.cluster_size), n);
    const m = [0.5 * 0 + 0.5 * 0, 0.5 * 0 + 0.5 * 4, 0.5 * 4 + 0.5 * 9, 0.5 * 0 + 0.5 * 2, 50, 50, -50, 50];
    assert.ok(flat(cb.embed_avg).every((v, i) => Math.abs(v - m[i]) < 1e-6), `embed_avg ${flat(cb.embed_avg)}`);
    const total = 4;
    const smooth = n.map((v) => ((v + 1e-5) / (total + 4e-5)) * total);
    const expected = m.map((v, i) => v / smooth[Math.floor(i / 2)]);
    assert.ok(flat(cb.embed).every((v, i) => Math.abs(v - expected[i]) < 1e-4), `embed ${flat(cb.embed)} vs ${expected}`);
    // codes 2 and 3 stay unused: after deadAfter = 2 updates they restart at rows of the batch
    cb.update(batch, cb.quantize(batch));
    const e = flat(cb.embed);
    const rows = [[0, 1], [0, 3], [4, 2], [5, 0]];
    for (const k of [2, 3]) assert.ok(rows.some(([a, b]) => e[2 * k] === a && e[2 * k + 1] === b), `dead code ${k} restarted at a batch row, got ${e.slice(2 * k, 2 * k + 2)}`);
    assert.is(flat(cb.cluster_size)[2], 1);
    assert.is(cb.restarts, 4 + 2);
  });
  cb.dispose();
});

test('the straight-through estimator gives the encoder a gradient; the codebook gets none', () => {
  ts.manualSeed(5);
  const model = new VQVAE({ ...small, codebookSize: 8 });
  ts.scope(() => {
    const out = model.forward(ts.rand([2, 3, 32, 32]));
    out.loss.backward();
    const g = model.patch_embed.weight.grad;
    assert.ok(g !== null && flat(g).some((v) => v !== 0), 'patch_embed.weight has a non-zero gradient');
    assert.ok(model.to_code.weight.grad !== null, 'to_code gets a gradient through z_q = z + sg(q - z)');
    assert.not.ok(model.parameters().includes(model.codebook.embed), 'the codebook is a buffer, not a parameter');
    assert.not.ok(model.codebook.embed.requiresGrad);
  });
  model.dispose();
});

test('save -> load gives identical codes and reconstructions, and the loaded tokenizer is frozen', () => {
  const model = trained!;
  const file = path.join(tmp, 'vq.safetensors');
  saveVQVAE(file, model, { step: 250 });
  const loaded = loadVQVAE(file);
  assert.equal(loaded.config, model.config);
  assert.ok(loaded.frozen);
  assert.not.ok(loaded.training, 'eval mode');
  assert.ok(loaded.parameters().length > 0);
  assert.ok(loaded.parameters().every((p) => !p.requiresGrad), 'no parameter requires grad');
  ts.scope(() => {
    const x = imageBatchToTensor(images('test', 5, 8));
    assert.equal(flat(loaded.encode(x)), flat(model.encode(x)));
    assert.equal(flat(loaded.reconstruct(x)), flat(model.reconstruct(x)));
    // forward on a frozen model neither builds a graph nor moves the codebook
    const before = flat(loaded.codebook.embed);
    loaded.train();
    const out = loaded.forward(x);
    assert.not.ok(out.loss.requiresGrad, 'no graph through frozen parameters');
    assert.equal(flat(loaded.codebook.embed), before);
  });
  loaded.dispose();
});

test('bad checkpoints are clear errors: missing key, wrong config, not a VQ-VAE, bad config value', () => {
  const model = trained!;
  const good = path.join(tmp, 'good.safetensors');
  saveVQVAE(good, model);
  const { tensors, metadata } = ts.loadSafetensors(good);
  try {
    const missing = path.join(tmp, 'missing.safetensors');
    const fewer = new Map(tensors);
    fewer.delete('model.codebook.embed');
    ts.saveSafetensors(missing, fewer, { metadata });
    assertThrows(() => loadVQVAE(missing), ['missing.safetensors', 'missing keys: codebook.embed'], 'missing key');

    const extra = JSON.parse(metadata.extra) as { config: Record<string, number> };
    const withConfig = (name: string, config: Record<string, unknown>, format = 'tessera-vqvae/1'): string => {
      const file = path.join(tmp, name);
      ts.saveSafetensors(file, tensors, { metadata: { ...metadata, extra: JSON.stringify({ ...extra, format, config }) } });
      return file;
    };
    assertThrows(() => loadVQVAE(withConfig('k512.safetensors', { ...extra.config, codebookSize: 512 })),
      ['k512.safetensors', 'codebook.embed: expected [512, 32], got [256, 32]'], 'wrong codebook size');
    assertThrows(() => loadVQVAE(withConfig('nocd.safetensors', { ...extra.config, codeDim: undefined })),
      ['nocd.safetensors', 'config.codeDim must be a number'], 'config field missing');
    assertThrows(() => loadVQVAE(withConfig('patch5.safetensors', { ...extra.config, patchSize: 5 })),
      ['patch5.safetensors', 'imageSize 32 must be a multiple of patchSize 5'], 'impossible config');
    assertThrows(() => loadVQVAE(withConfig('other.safetensors', extra.config, 'some-model/1')),
      ['other.safetensors', 'not a VQ-VAE checkpoint'], 'other format');
    const notCkpt = path.join(tmp, 'plain.safetensors');
    ts.saveSafetensors(notCkpt, { w: ts.zeros([2]) });
    assertThrows(() => loadVQVAE(notCkpt), ['plain.safetensors', 'not a tessera checkpoint'], 'plain safetensors');
    assertThrows(() => loadVQVAE(path.join(tmp, 'absent.safetensors')), ['absent.safetensors'], 'no file');
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
});

test('bad inputs name the tensor and the expected shape', () => {
  const model = trained!;
  ts.scope(() => {
    assertThrows(() => model.encode(ts.rand([2, 1, 32, 32])), ['VQVAE.encode', '[N, 3, 32, 32]', '[2, 1, 32, 32]'], 'wrong channels');
    assertThrows(() => model.encode(ts.rand([2, 3, 28, 28])), ['VQVAE.encode', '[N, 3, 32, 32]'], 'wrong size');
    assertThrows(() => model.decode(ts.zeros([2, 64])), ['VQVAE.decode', 'int32'], 'float codes');
    assertThrows(() => model.decode(ts.zeros([2, 16], { dtype: 'int32' })), ['VQVAE.decode', '[N, 64]'], 'wrong token count');
    assertThrows(() => model.decode(ts.full([1, 64], 256, { dtype: 'int32' })), ['256'], 'code out of range');
  });
  assertThrows(() => new VQVAE({ imageSize: 30, patchSize: 4 }), ['imageSize 30', 'patchSize 4'], 'bad config');
  assertThrows(() => trainVQVAE(images('train', 0, 4), { batchSize: 8 }), ['batchSize', '[1, 4]'], 'batch larger than the pool');
  assert.equal(codeUsage([0, 0, 1, 1], 4), { used: 2, usage: 0.5, perplexity: 2 });
});

test.after(() => {
  ts.setNumThreads(threadsBefore);
  trained?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
