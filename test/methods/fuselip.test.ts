// FuseLIP: the extended-vocabulary sequences are laid out as documented, one transformer embeds
// images, texts and image + text pairs (padding does not leak into the embedding, the text of a
// composed query changes it), the multimodal SigLIP loss falls on a fixed batch with gradients
// reaching image-code and text-token embeddings, and the composed evaluations score an oracle
// at 100% and a constant encoder at exactly the fraction of targets listed first.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { WorldPairs } from '../../lib/data/world_pairs';
import { BpeTokenizer } from '../../lib/data/bpe_tokenizer';
import { VQVAE } from '../../lib/data/vq';
import { methodTokenizer } from '../../lib/training/setup';
import { FuseVocabulary } from '../../lib/methods/fuselip_tokens';
import { FuseLIP, loadOrTrainFuseTokenizer } from '../../lib/methods/fuselip';
import { saveVQVAE } from '../../lib/data/vq';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ComposedEncoder, lateFusion, transformationRetrieval, vqaRetrieval } from '../../lib/methods/composed_eval';
import { Method } from '../../lib/methods/method';
import { Tensor } from '../../lib/tensor';

const data = new WorldPairs(3, 32, 256);
const tok = BpeTokenizer.train(data.corpus().slice(0, 3000), { vocabSize: 300, lowercase: true });
const mtok = methodTokenizer(tok);
ts.manualSeed(0);
const vq = new VQVAE({ patchSize: 8, codebookSize: 32, width: 32, encoderLayers: 1, decoderLayers: 0, heads: 2, codeDim: 16 }).freeze();

test('vocabulary: image + text, image-only and text-only sequences follow the documented layout', () => {
  const v = new FuseVocabulary(mtok, 32, 4);
  assert.is(v.size, 300 + 32 + 3);
  assert.equal([v.boi, v.eoi, v.eot], [332, 333, 334]);
  const text = tok.encode('a red circle', { addSpecial: true });
  const b = v.build([{ codes: [0, 5, 31, 2], text: 'a red circle' }, { codes: [1, 1, 1, 1] }, { text: 'a red circle' }], 32);
  const row = (r: number) => Array.from(b.ids.subarray(r * 32, r * 32 + 32));
  const r0 = row(0);
  assert.equal(r0.slice(0, 6), [332, 300, 305, 331, 302, 333]);
  assert.equal(r0.slice(6, 6 + text.length), Array.from(text));
  assert.is(r0[6 + text.length], 334);
  assert.is(b.eotIndex[0], 6 + text.length);
  assert.equal(row(1).slice(0, 7), [332, 301, 301, 301, 301, 333, 334]);
  assert.is(b.eotIndex[1], 6);
  assert.equal(row(2).slice(0, text.length + 1), [...Array.from(text), 334]);
  // padding: exactly the positions after <eot>, with the text <pad> id
  for (let r = 0; r < 3; r++)
    for (let j = 0; j < 32; j++) {
      assert.is(b.padding[r * 32 + j], j > b.eotIndex[r] ? 1 : 0);
      if (j > b.eotIndex[r]) assert.is(b.ids[r * 32 + j], tok.padId);
    }
  // a long text is truncated to the room left, keeping <eos> before <eot>
  const t = v.build([{ codes: [0, 0, 0, 0], text: 'a very long caption about many small shapes in every corner' }], 12);
  assert.is(t.eotIndex[0], 11);
  assert.is(t.ids[10], tok.eosId);
  assert.throws(() => v.build([{ codes: [0, 1, 2] }], 16), /3 image codes, expected 4/);
  assert.throws(() => v.build([{ codes: [0, 1, 2, 32] }], 16), /image code 3 is 32/);
  assert.throws(() => v.build([{ codes: [0, 1, 2, 3] }], 7), /length must be an integer >= 8/);
  assert.throws(() => v.build([{}], 16), /neither codes nor text/);
});

test('fuselip: one encoder for images, texts and pairs; padding does not leak; the text changes a composed query', () => {
  ts.manualSeed(1);
  const m = new FuseLIP({ dataset: data, tokenizer: mtok, contextLength: 16, seed: 3 }, 'tiny', { vq });
  m.model.eval();
  ts.noGrad(() => ts.scope(() => {
    const imgs = ts.tensor(data.world.imageBatch('val', 0, 2).data, { shape: [2, 3, 32, 32] });
    const img = m.encodeImages(imgs);
    const a = m.encodeComposed(imgs, ['rotate it 90 degrees clockwise', 'make it grayscale']);
    const b = m.encodeComposed(imgs, ['make it grayscale', 'make it grayscale']);
    const txt = m.encodeTexts(['a red circle', 'a small blue square at the top left of the picture']);
    for (const e of [img, a, b, txt]) {
      assert.equal(e.shape, [2, 32]);
      for (const n of e.mul(e).sum(-1).sqrt().toArray() as number[]) assert.ok(Math.abs(n - 1) < 1e-4, `unit norm, got ${n}`);
    }
    // row 1 of a and b is the same input, batched with different neighbours (other lengths)
    const d1 = a.sub(b).abs().max(-1).toArray() as number[];
    assert.ok(d1[1] < 1e-4, `same input, different batch: max diff ${d1[1]}`);
    assert.ok(d1[0] > 1e-3, `a different instruction changes the embedding: ${d1[0]}`);
    const alone = m.encodeTexts(['a red circle']);
    assert.ok((alone.sub(txt.slice(0, 0, 1)).abs().max().item() as number) < 1e-4, 'text alone = text next to a longer one');
    assert.ok((a.sub(img).abs().max().item() as number) > 1e-3, 'image + text differs from the image alone');
  }));
});

test('fuselip: the multimodal SigLIP loss falls on a fixed batch; gradients reach code and text embeddings, scale and bias', () => {
  ts.manualSeed(2);
  const m = new FuseLIP({ dataset: data, tokenizer: mtok, contextLength: 16, seed: 3 }, 'tiny', { vq });
  const opt = new ts.optim.AdamW(m.model.parameters(), { lr: 3e-3 });
  const idx = Array.from({ length: 32 }, (_, i) => i);
  const losses: number[] = [];
  for (let s = 0; s < 30; s++) {
    ts.scope(() => {
      const l = m.trainingLoss(idx, 0);
      l.backward();
      if (s === 0) {
        const p = new Map(m.model.namedParameters());
        const emb = p.get('encoder.token_embedding.weight')!.grad!;
        const rowGrad = (r: number) => emb.slice(0, r, r + 1).abs().sum().item() as number;
        const anyCode = Array.from({ length: 32 }, (_, c) => rowGrad(m.vocab.imageToken(c))).some((g) => g > 0);
        assert.ok(anyCode, 'gradient reaches image-code embeddings');
        assert.ok(rowGrad(m.vocab.eot) > 0, 'gradient reaches the <eot> embedding');
        assert.ok(rowGrad(tok.bosId) > 0, 'gradient reaches text embeddings');
        for (const name of ['logit_scale', 'logit_bias']) assert.ok(Math.abs(p.get(name)!.grad!.item() as number) > 0, `gradient reaches ${name}`);
        const logs = m.logs();
        assert.is(logs.n_caption + logs.n_transformation + logs.n_vqa, 32);
        assert.ok(logs.n_caption > 0 && logs.n_transformation > 0 && logs.n_vqa > 0, `all three tasks drawn: ${JSON.stringify(logs)}`);
      }
      opt.step();
      opt.zeroGrad();
      losses.push(l.item() as number);
    });
  }
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
});

/** A fake method embedding by a content key: images by their pixels, texts by their string. */
function keyedEncoder(composed: (pixels: Float32Array, text: string, pixKey: (p: Float32Array) => string) => string): ComposedEncoder {
  const D = 64;
  const vec = (key: string): number[] => {
    let h = 2166136261;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
    const out: number[] = [];
    for (let d = 0; d < D; d++) {
      h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0;
      out.push((h / 4294967296) * 2 - 1);
    }
    return out;
  };
  const pixKey = (p: Float32Array) => `img:${Array.from(p.filter((_, i) => i % 7 === 0), (x) => Math.round(x * 50)).join(',')}`;
  const rows = (x: Tensor) => {
    const n = x.shape[0];
    const all = x.toTypedArray() as Float32Array;
    const per = all.length / n;
    return Array.from({ length: n }, (_, i) => all.subarray(i * per, (i + 1) * per));
  };
  const model = new ts.nn.Linear(1, 1);
  return {
    name: 'keyed', model,
    trainingLoss: () => { throw new Error('not trainable'); },
    encodeImages: (x) => ts.tensor(rows(x).map((p) => vec(pixKey(p)))),
    encodeTexts: (t) => ts.tensor(t.map((s) => vec(`txt:${s}`))),
    encodeComposed: (x, t) => ts.tensor(rows(x).map((p, i) => vec(composed(p, t[i], pixKey)))),
  };
}

test('composed evaluation: an oracle scores 100%, a constant encoder the fraction of targets listed first', () => {
  const w = data.world;
  const N = 24;
  const sum = (p: Float32Array) => p.reduce((s, x) => s + x, 0).toFixed(3);
  const target = new Map<string, Float32Array>();
  const answer = new Map<string, string>();
  for (let i = 0; i < N; i++) {
    const p = w.transformationPair('test', i);
    target.set(`${sum(p.source)}|${p.instruction}`, p.target);
    const q = w.question('test', i);
    answer.set(`${sum(q.image)}|${q.question}`, q.answer);
  }
  const oracle = keyedEncoder((pix, text, pixKey) => {
    const t = target.get(`${sum(pix)}|${text}`);
    return t ? pixKey(t) : `txt:${answer.get(`${sum(pix)}|${text}`)}`;
  });
  const tr = transformationRetrieval(oracle, w, 'test', N, 8);
  const qa = vqaRetrieval(oracle, w, 'test', N);
  assert.is(tr.accuracy, 1);
  assert.is(qa.accuracy, 1);
  assert.ok(Math.abs(tr.chance - 1 / 8) < 1e-9, `chance ${tr.chance}`);
  const qChance = Array.from({ length: N }, (_, i) => 1 / w.question('test', i).answers.length).reduce((s, x) => s + x, 0) / N;
  assert.ok(Math.abs(qa.chance - qChance) < 1e-9, `VQA chance ${qa.chance} vs ${qChance}`);
  assert.is(Object.values(qa.groups).reduce((s, g) => s + g.queries, 0), N);

  const constant: Method = {
    name: 'constant', model: new ts.nn.Linear(1, 1), trainingLoss: () => { throw new Error('no'); },
    encodeImages: (x) => ts.ones([x.shape[0], 4]), encodeTexts: (t) => ts.ones([t.length, 4]),
  };
  const late = lateFusion(constant);
  const firsts = Array.from({ length: N }, (_, i) => (w.transformationCandidates('test', i, 8).targetIndex === 0 ? 1 : 0) as number).reduce((s, x) => s + x, 0) / N;
  assert.ok(Math.abs(transformationRetrieval(late, w, 'test', N, 8).accuracy - firsts) < 1e-9);
  const qFirsts = Array.from({ length: N }, (_, i) => (w.question('test', i).answerIndex === 0 ? 1 : 0) as number).reduce((s, x) => s + x, 0) / N;
  assert.ok(Math.abs(vqaRetrieval(late, w, 'test', N).accuracy - qFirsts) < 1e-9);
  const fused = ts.scope(() => late.encodeComposed(ts.ones([2, 3, 32, 32]), ['a', 'b']).toArray() as number[][]);
  assert.ok(Math.abs(fused[0][0] - 0.5) < 1e-6, `late fusion of equal unit vectors is that unit vector: ${fused[0][0]}`);
  assert.throws(() => vqaRetrieval(late, w, 'test', 0), /count must be an integer in \[1, 1000\]/);
});

test('image tokenizer: a saved one is loaded (frozen, same codes) instead of retrained', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fuselip-'));
  try {
    const file = path.join(dir, 'vq.safetensors');
    saveVQVAE(file, vq);
    const back = loadOrTrainFuseTokenizer(file, data, { log: () => { throw new Error('must not train'); } });
    assert.ok(back.frozen);
    ts.scope(() => {
      const x = ts.tensor(data.world.imageBatch('val', 0, 4).data, { shape: [4, 3, 32, 32] });
      assert.equal(Array.from(back.encode(x).toTypedArray()), Array.from(vq.encode(x).toTypedArray()));
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
