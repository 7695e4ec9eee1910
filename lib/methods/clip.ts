// CLIP (Radford et al. 2021) and SigLIP (Zhai et al. 2023) on the shared dual encoder: one
// caption per image per step, the fused softmax InfoNCE loss (clipLossFused) or the fused
// pairwise sigmoid loss (sigLipLoss) with a learnable temperature (and bias for SigLIP). The
// temperature is clamped to at most 100 as OpenCLIP does (logit_scale <= log 100).

import { Tensor } from '../tensor';
import '../tensor_methods';
import { noGrad } from '../autograd';
import { tensor } from '../ops/creation';
import { copy_ } from '../ops/view';
import { imageBatchToTensor } from '../data/image_batch';
import { clipLossFused, sigLipLoss, SIGLIP_INIT } from '../losses/contrastive';
import { DualEncoder, MODEL_PRESETS, ModelPreset } from './dual_encoder';
import { Method, MethodContext } from './method';
import { tokenize } from './text_batch';

const MAX_LOGIT_SCALE = Math.log(100);

export type ContrastiveKind = 'clip' | 'siglip';

export class ContrastiveMethod implements Method {
  readonly model: DualEncoder;
  private lastScale = NaN;

  constructor(readonly name: ContrastiveKind, readonly ctx: MethodContext, preset: ModelPreset) {
    const p = MODEL_PRESETS[preset];
    const ds = ctx.dataset;
    this.model = new DualEncoder({
      imageSize: ds.imageSize,
      channels: ds.channels,
      patchSize: ds.imageSize % p.patchSize === 0 ? p.patchSize : ds.imageSize % 7 === 0 ? 7 : 4,
      vision: p.vision,
      text: p.text,
      vocabSize: ctx.tokenizer.vocabSize,
      contextLength: ctx.contextLength,
      embedDim: p.embedDim,
      initLogitScale: name === 'siglip' ? SIGLIP_INIT.logitScale : Math.log(1 / 0.07),
      initLogitBias: name === 'siglip' ? SIGLIP_INIT.bias : null,
    });
  }

  trainingLoss(indices: readonly number[], step: number): Tensor {
    const { images, captions } = this.ctx.dataset.trainItems(indices, step, 1);
    const img = this.model.encodeImages(imageBatchToTensor(images));
    const { tokens, eot } = tokenize(this.ctx.tokenizer, captions.map((c) => c[0]), this.ctx.contextLength);
    const txt = this.model.encodeTexts(tokens, eot);
    this.lastScale = this.model.logit_scale.item();
    if (this.lastScale > MAX_LOGIT_SCALE) {
      noGrad(() => copy_(this.model.logit_scale, tensor(MAX_LOGIT_SCALE)));
      this.lastScale = MAX_LOGIT_SCALE;
    }
    return this.name === 'siglip'
      ? sigLipLoss(img, txt, this.model.logit_scale, this.model.logit_bias!)
      : clipLossFused(img, txt, this.model.logit_scale);
  }

  logs(): Record<string, number> {
    return { temperature: Math.exp(this.lastScale) };
  }

  encodeImages(images: Tensor): Tensor {
    return this.model.encodeImages(images);
  }

  encodeTexts(texts: string[]): Tensor {
    const { tokens, eot } = tokenize(this.ctx.tokenizer, texts, this.ctx.contextLength);
    return this.model.encodeTexts(tokens, eot);
  }
}
