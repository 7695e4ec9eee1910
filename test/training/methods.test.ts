// CLIP and SigLIP on the dual encoder learn on the embedded world: a few AdamW steps on a fixed
// batch lower the loss, gradients reach both towers and the temperature (and SigLIP's bias), and
// the evaluation suite reports every metric with its chance level.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { WorldPairs } from '../../lib/data/world_pairs';
import { BpeTokenizer } from '../../lib/data/bpe_tokenizer';
import { ContrastiveMethod } from '../../lib/methods/clip';
import { methodTokenizer } from '../../lib/training/setup';
import { evaluateMethod } from '../../lib/training/evaluate';

const data = new WorldPairs(3, 32, 256);
const tok = BpeTokenizer.train(data.corpus().slice(0, 3000), { vocabSize: 300, lowercase: true });

for (const kind of ['clip', 'siglip'] as const) {
  test(`${kind}: loss falls on a fixed batch; gradients reach both towers, the scale${kind === 'siglip' ? ' and the bias' : ''}`, () => {
    ts.manualSeed(1);
    const m = new ContrastiveMethod(kind, { dataset: data, tokenizer: methodTokenizer(tok), contextLength: 16, seed: 3 }, 'tiny');
    const opt = new ts.optim.AdamW(m.model.parameters(), { lr: 1e-3 });
    const idx = Array.from({ length: 32 }, (_, i) => i);
    const losses: number[] = [];
    for (let s = 0; s < 40; s++) {
      ts.scope(() => {
        const l = m.trainingLoss(idx, 0);
        l.backward();
        if (s === 0) {
          for (const name of ['visual.patch_embed.weight', 'text.token_embedding.weight', 'logit_scale', ...(kind === 'siglip' ? ['logit_bias'] : [])]) {
            const p = new Map(m.model.namedParameters()).get(name)!;
            assert.ok(p.grad && Math.abs(p.grad.abs().sum().item()) > 0, `gradient reaches ${name}`);
          }
        }
        opt.step();
        opt.zeroGrad();
        losses.push(l.item());
      });
    }
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[losses.length - 1] < 0.85 * losses[0], `${kind}: ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
    const ev = evaluateMethod(m, data.evalSplit('val', 20));
    const names = ev.rows.map((r) => r.metric);
    for (const want of ['image->text R@1', 'text->image R@10', 'zero-shot shape top-1', 'zero-shot color top-1', 'zero-shot count top-1', 'modality gap (centroid distance)', 'modality linear separability'])
      assert.ok(names.includes(want), `evaluation reports ${want}`);
    for (const r of ev.rows) assert.ok(Number.isFinite(r.value), `${r.metric} = ${r.value}`);
  });
}

test.run();
