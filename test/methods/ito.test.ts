// ITO (lib/methods/ito.ts, lib/methods/fusion_module.ts): the multiple-alignment + fusion loss
// trains (loss falls on a fixed batch, gradients reach both towers, the temperature and the
// fusion module), the total is L_MA + lambda L_F, the fusion module is unused at inference, the
// fusion module ignores padded text positions, views are deterministic per step, bad options
// are rejected with the option's name.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { WorldPairs } from '../../lib/data/world_pairs';
import { BpeTokenizer } from '../../lib/data/bpe_tokenizer';
import { imageBatchToTensor } from '../../lib/data/image_batch';
import { ItoMethod } from '../../lib/methods/ito';
import { FusionModule } from '../../lib/methods/fusion_module';
import { methodTokenizer } from '../../lib/training/setup';
import { evaluateMethod } from '../../lib/training/evaluate';
import { ArgumentError } from '../../lib/errors';

const data = new WorldPairs(3, 32, 256);
const tok = BpeTokenizer.train(data.corpus().slice(0, 1500), { vocabSize: 300, lowercase: true });
const ctx = { dataset: data, tokenizer: methodTokenizer(tok), contextLength: 16, seed: 3 };
const idx = Array.from({ length: 12 }, (_, i) => i);

const maxAbsDiff = (a: ts.Tensor, b: ts.Tensor) => a.sub(b).abs().max().item();

test('ito: loss falls on a fixed batch; gradients reach both towers, the scale and the fusion module', () => {
  ts.manualSeed(1);
  const m = new ItoMethod(ctx, 'tiny');
  const opt = new ts.optim.AdamW(m.model.parameters(), { lr: 3e-3 });
  const losses: number[] = [];
  for (let s = 0; s < 15; s++) {
    ts.scope(() => {
      const l = m.trainingLoss(idx, 0);
      const logs = m.logs();
      // L = L_MA + lambda L_F with the default lambda 0.5.
      assert.ok(Math.abs(l.item() - (logs.loss_align + 0.5 * logs.loss_fusion)) < 1e-4, `total ${l.item()} vs parts ${JSON.stringify(logs)}`);
      l.backward();
      if (s === 0) {
        const params = new Map(m.model.namedParameters());
        for (const name of ['visual.patch_embed.weight', 'text.token_embedding.weight', 'logit_scale', 'fusion.proj', 'fusion.image_in.weight', 'fusion.text_in.weight', 'fusion.fusion_token']) {
          const p = params.get(name);
          assert.ok(p, `parameter ${name} exists`);
          assert.ok(p.grad && p.grad.abs().sum().item() > 0, `gradient reaches ${name}`);
        }
      }
      opt.step();
      opt.zeroGrad();
      losses.push(l.item());
    });
  }
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[losses.length - 1] < 0.8 * losses[0], `ito: ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
  const ev = evaluateMethod(m, data.evalSplit('val', 20));
  for (const want of ['image->text R@1', 'zero-shot color top-1', 'modality gap (centroid distance)', 'modality linear separability'])
    assert.ok(ev.rows.some((r) => r.metric === want && Number.isFinite(r.value)), `evaluation reports ${want}`);
});

test('ito: fusionWeight 0 gives the multiple-alignment loss alone (no fusion gradient)', () => {
  ts.manualSeed(2);
  const m = new ItoMethod(ctx, 'tiny', { fusionWeight: 0, views: 2, captions: 3 });
  ts.scope(() => {
    const l = m.trainingLoss(idx, 5);
    assert.ok(Math.abs(l.item() - m.logs().loss_align) < 1e-6);
    assert.is(m.logs().loss_fusion, undefined);
    // Chance level of the multi-positive loss: each row has K (resp. V) positives among B K (B V) columns.
    assert.ok(l.item() > 0.5 * Math.log(12) && l.item() < 2 * Math.log(12 * 3), `loss ${l.item()}`);
    l.backward();
    const fp = new Map(m.model.namedParameters()).get('fusion.proj')!;
    assert.ok(!fp.grad || fp.grad.abs().sum().item() === 0, 'no gradient reaches the fusion module');
  });
});

test('ito: the fusion module is discarded at inference', () => {
  ts.manualSeed(3);
  const m = new ItoMethod(ctx, 'tiny');
  const texts = ['a red circle', 'two blue squares'];
  ts.scope(() => {
    const img = imageBatchToTensor(data.evalSplit('val', 4).images);
    const e1 = m.encodeImages(img);
    const t1 = m.encodeTexts(texts);
    const l1 = ts.noGrad(() => m.trainingLoss(idx, 0).item());
    ts.noGrad(() => {
      for (const [name, p] of m.model.namedParameters()) if (name.startsWith('fusion.')) ts.copy_(p, ts.randn(p.shape).mul(3));
    });
    assert.is(maxAbsDiff(e1, m.encodeImages(img)), 0);
    assert.is(maxAbsDiff(t1, m.encodeTexts(texts)), 0);
    assert.is(maxAbsDiff(e1, m.model.encodeImages(img)), 0);
    // ... whereas the training loss (through L_F) does depend on the fusion module.
    const l2 = ts.noGrad(() => m.trainingLoss(idx, 0).item());
    assert.ok(Math.abs(l1 - l2) > 1e-3, `training loss ${l1} -> ${l2} after changing the fusion module`);
  });
});

test('fusion module: padded text positions after EOT are ignored; image tokens matter', () => {
  ts.manualSeed(4);
  const f = new FusionModule({ imageWidth: 8, textWidth: 12, width: 16, layers: 1, heads: 2, embedDim: 6 });
  ts.noGrad(() => ts.scope(() => {
    const v = ts.randn([3, 5, 8]);
    const t = ts.randn([3, 7, 12]);
    const eot = [2, 6, 4];
    const out = f.forward(v, t, eot);
    assert.equal(out.shape, [3, 6]);
    const norms = out.mul(out).sum(1).toArray() as number[];
    norms.forEach((n) => assert.ok(Math.abs(n - 1) < 1e-5, `unit norm ${n}`));
    // Change every text position after each EOT: the output must not move.
    const keepMask = new Float32Array(3 * 7);
    eot.forEach((e, r) => { for (let j = 0; j <= e; j++) keepMask[r * 7 + j] = 1; });
    const km = ts.tensor(keepMask, { shape: [3, 7, 1] });
    const t2 = t.mul(km).add(ts.randn([3, 7, 12]).mul(ts.ones([3, 7, 1]).sub(km)).mul(5));
    assert.ok(maxAbsDiff(out, f.forward(v, t2, eot)) < 1e-5, 'padding is masked');
    // Change one image token: the output moves.
    assert.ok(maxAbsDiff(out, f.forward(v.add(ts.randn([3, 5, 8])), t, eot)) > 1e-3, 'image tokens reach the fused vector');
    assert.throws(() => f.forward(v, t, [1, 2]), /eotIndex must have one entry per pair/);
    assert.throws(() => f.forward(v, ts.randn([3, 7, 10]), eot), /textTokens must be \[B, L, 12\]/);
  }));
});

test('ito: views are deterministic per step, differ between steps and views, and stack view-major', () => {
  const m = new ItoMethod(ctx, 'tiny', { views: 3 });
  ts.noGrad(() => ts.scope(() => {
    const x = imageBatchToTensor(data.trainItems([0, 1, 2, 3], 0).images);
    const a = m.augmentViews(x, 7);
    assert.equal(a.shape, [12, 3, 32, 32]);
    assert.is(maxAbsDiff(a, m.augmentViews(x, 7)), 0);
    assert.ok(maxAbsDiff(a, m.augmentViews(x, 8)) > 0.05, 'another step draws other views');
    assert.ok(maxAbsDiff(a.slice(0, 0, 4), a.slice(0, 4, 8)) > 0.05, 'view 0 differs from view 1');
  }));
});

test('ito: bad options are rejected with their name', () => {
  assert.throws(() => new ItoMethod(ctx, 'tiny', { views: 1, captions: 1 }), (e: Error) => e instanceof ArgumentError && /views \* captions must be >= 2/.test(e.message));
  assert.throws(() => new ItoMethod(ctx, 'tiny', { views: 0 }), /views must be an integer >= 1/);
  assert.throws(() => new ItoMethod(ctx, 'tiny', { fusionTemperature: 0 }), /fusionTemperature must be a finite number > 0/);
  assert.throws(() => new ItoMethod(ctx, 'tiny', { fusionWeight: -1 }), /fusionWeight must be a finite number >= 0/);
  // views 1, captions 1 is fine without the fusion loss (plain CLIP with augmentation).
  new ItoMethod(ctx, 'tiny', { views: 1, captions: 1, fusionWeight: 0 });
});

test.run();
