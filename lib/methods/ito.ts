// ITO, "Images and Texts as One via Synergizing Multiple Alignment and Training-Time Fusion"
// (Liu et al. 2026, arXiv 2603.02767), on the shared dual encoder (./dual_encoder.ts).
//
// Sec. 3.2, multimodal multiple alignment. Each training sample i contributes V augmented views
// of its image (lib/data/augment.ts: views 0 and 1 are exactly twoViewAugment, ITO's recipe:
// random resized crop 0.5-1, flip, colour jitter 0.4/0.4/0.4/0.1, grayscale 0.2) and K of its
// true captions. With x_{i,v} = normalize(f_img(view v of image i)) and
// y_{i,k} = normalize(f_txt(caption k of i)), every (x_{i,v}, y_{i,k}) pair is a positive and every
// pair of different samples a negative, in one fused multi-positive InfoNCE over the
// [B V] x [B K] logit matrix s = exp(t) x y^T (group id = the sample's data-set index):
//   L_MA = 1/2 mean_{rows r} -1/|P_r| sum_{c in P_r} log softmax_c(s_r.)
//        + 1/2 mean_{cols c} -1/|P'_c| sum_{r in P'_c} log softmax_r(s_.c)
//
// Sec. 3.3, training-time multimodal fusion. A lightweight transformer F (./fusion_module.ts)
// reads the token sequences of both towers of one (view, caption) pair and returns a fused joint
// embedding. Two fused views of each sample, a_i = F(view 0, caption 0) and
// b_i = F(view 1 mod V, caption 1 mod K), are contrasted with NT-Xent at temperature tau:
//   L_F = mean over the 2B anchors of -log softmax_{l != anchor}(z z^T / tau)[partner]
// The gradient of L_F reaches the encoders through the token sequences, which is what couples the
// two towers; F itself is discarded at inference (encodeImages / encodeTexts never call it).
//
// Objective:  L = L_MA + lambda L_F   (lambda = fusionWeight).
// The learnable CLIP temperature t is clamped to <= log 100 as OpenCLIP and ./clip.ts do.
//
// Defaults: V = 2 (the paper's two-view recipe), K = 2, one fusion layer. The paper's method
// section could not be retrieved here, so lambda = 0.5 and tau = 0.1 are our choices (SLIP-style
// SimCLR temperature), not values quoted from the paper.

import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { noGrad } from '../autograd';
import { cat } from '../ops/concat';
import { tensor } from '../ops/creation';
import { copy_ } from '../ops/view';
import { normalize } from '../ops/normalize';
import { imageBatchToTensor } from '../data/image_batch';
import { applyViewParams, augmentRng, sampleViewParams, twoViewAugment, TwoViewOptions } from '../data/augment';
import { multiPositiveClipLoss, ntXentLoss } from '../losses/contrastive';
import { DualEncoder, DualEncoderConfig, MODEL_PRESETS, ModelPreset } from './dual_encoder';
import { FusionModule } from './fusion_module';
import { Method, MethodContext } from './method';
import { tokenize } from './text_batch';

const MAX_LOGIT_SCALE = Math.log(100);

export interface ItoOptions {
  /** Augmented image views per sample per step (V >= 1; default 2, the two-view recipe). */
  views: number;
  /** True captions per sample per step (K >= 1; default 2). */
  captions: number;
  /** Weight lambda of the fusion loss (0: multiple alignment only). */
  fusionWeight: number;
  /** Transformer blocks of the fusion module (default 1). */
  fusionLayers: number;
  /** NT-Xent temperature tau of the fusion loss (default 0.1). */
  fusionTemperature: number;
  /** Colour jitter and grayscale in the views (default true, the paper's recipe); false: crop + flip only. */
  colorAugment: boolean;
}

export const ITO_DEFAULTS: Readonly<ItoOptions> = Object.freeze({
  views: 2, captions: 2, fusionWeight: 0.5, fusionLayers: 1, fusionTemperature: 0.1, colorAugment: true,
});

/** The dual encoder plus the training-only fusion module (state-dict names: visual.*, text.*, logit_scale, fusion.*). */
export class ItoModel extends DualEncoder {
  readonly fusion: FusionModule;

  constructor(config: DualEncoderConfig, fusionLayers: number, fusionHeads: number) {
    super(config);
    this.fusion = this.child('fusion', new FusionModule({
      imageWidth: config.vision.width, textWidth: config.text.width, width: config.embedDim,
      layers: fusionLayers, heads: fusionHeads, embedDim: config.embedDim,
    }));
  }
}

function checkOptions(o: ItoOptions): void {
  const int = (k: 'views' | 'captions' | 'fusionLayers', min: number) => {
    if (!Number.isInteger(o[k]) || o[k] < min) throw new ArgumentError(`ito: ${k} must be an integer >= ${min}, got ${String(o[k])}`);
  };
  int('views', 1);
  int('captions', 1);
  int('fusionLayers', 1);
  if (!(o.fusionWeight >= 0 && Number.isFinite(o.fusionWeight))) throw new ArgumentError(`ito: fusionWeight must be a finite number >= 0, got ${String(o.fusionWeight)}`);
  if (!(o.fusionTemperature > 0 && Number.isFinite(o.fusionTemperature)))
    throw new ArgumentError(`ito: fusionTemperature must be a finite number > 0, got ${String(o.fusionTemperature)}`);
  if (o.fusionWeight > 0 && o.views * o.captions < 2)
    throw new ArgumentError(`ito: the fusion loss contrasts two different (view, caption) pairs per sample, so views * captions must be >= 2 when fusionWeight > 0 (got views ${o.views}, captions ${o.captions})`);
  if (typeof o.colorAugment !== 'boolean') throw new ArgumentError(`ito: colorAugment must be a boolean, got ${String(o.colorAugment)}`);
}

export class ItoMethod implements Method {
  readonly name = 'ito';
  readonly model: ItoModel;
  readonly options: Readonly<ItoOptions>;
  private last: Record<string, number> = {};

  constructor(readonly ctx: MethodContext, preset: ModelPreset, options: Partial<ItoOptions> = {}) {
    const o = { ...ITO_DEFAULTS, ...options };
    checkOptions(o);
    this.options = Object.freeze(o);
    const p = MODEL_PRESETS[preset];
    if (!p) throw new ArgumentError(`ito: unknown model preset '${String(preset)}' (expected tiny, small or base)`);
    const ds = ctx.dataset;
    this.model = new ItoModel({
      imageSize: ds.imageSize,
      channels: ds.channels,
      patchSize: ds.imageSize % p.patchSize === 0 ? p.patchSize : ds.imageSize % 7 === 0 ? 7 : 4,
      vision: p.vision,
      text: p.text,
      vocabSize: ctx.tokenizer.vocabSize,
      contextLength: ctx.contextLength,
      embedDim: p.embedDim,
      initLogitScale: Math.log(1 / 0.07),
      initLogitBias: null,
    }, o.fusionLayers, p.vision.heads);
  }

  /** The V augmented views of images [B, C, H, W], stacked view-major: row v * B + i. */
  augmentViews(images: Tensor, step: number): Tensor {
    const [n, , h, w] = images.shape;
    const seed = Math.floor(augmentRng(this.ctx.seed, step, 0x170)() * 2 ** 31);
    const aug: TwoViewOptions = this.options.colorAugment ? { seed } : { seed, jitterP: 0, grayscaleP: 0 };
    const V = this.options.views;
    const views: Tensor[] = [];
    if (V >= 2) views.push(...twoViewAugment(images, aug));
    else views.push(applyViewParams(images, sampleViewParams(n, h, w, 0, aug), h, w));
    for (let v = 2; v < V; v++) views.push(applyViewParams(images, sampleViewParams(n, h, w, v, aug), h, w));
    return V === 1 ? views[0] : cat(views, 0);
  }

  trainingLoss(indices: readonly number[], step: number): Tensor {
    const { views: V, captions: K, fusionWeight, fusionTemperature } = this.options;
    const B = indices.length;
    const { images, captions } = this.ctx.dataset.trainItems(indices, step, K);
    const x = noGrad(() => this.augmentViews(imageBatchToTensor(images), step));
    const vis = this.model.visual.forward(x);
    const img = normalize(vis.pooled, 2, -1); // [V B, D]
    const texts: string[] = [];
    for (let k = 0; k < K; k++) for (let i = 0; i < B; i++) texts.push(captions[i][k]);
    const { tokens, eot } = tokenize(this.ctx.tokenizer, texts, this.ctx.contextLength);
    const txo = this.model.text.forward(tokens, { eotIndex: eot });
    const txt = normalize(txo.pooled, 2, -1); // [K B, D]

    let scale = this.model.logit_scale.item();
    if (scale > MAX_LOGIT_SCALE) {
      noGrad(() => copy_(this.model.logit_scale, tensor(MAX_LOGIT_SCALE)));
      scale = MAX_LOGIT_SCALE;
    }
    const group = (reps: number) => tensor(Array.from({ length: reps * B }, (_, r) => indices[r % B]), { dtype: 'int32' });
    const align = multiPositiveClipLoss(img, txt, this.model.logit_scale, group(V), group(K));
    this.last = { temperature: Math.exp(scale), loss_align: align.item() };
    if (fusionWeight === 0) return align;

    const vb = (1 % V) * B;
    const kb = (1 % K) * B;
    const fa = this.model.fusion.forward(vis.tokens.slice(0, 0, B), txo.tokens.slice(0, 0, B), eot.slice(0, B));
    const fb = this.model.fusion.forward(vis.tokens.slice(0, vb, vb + B), txo.tokens.slice(0, kb, kb + B), eot.slice(kb, kb + B));
    const fused = ntXentLoss(fa, fb, tensor(Math.log(1 / fusionTemperature)));
    this.last.loss_fusion = fused.item();
    return align.add(fused.mul(fusionWeight));
  }

  logs(): Record<string, number> {
    return { ...this.last };
  }

  /** Inference path: the dual encoder's image tower only (the fusion module is not used). */
  encodeImages(images: Tensor): Tensor {
    return this.model.encodeImages(images);
  }

  /** Inference path: the dual encoder's text tower only (the fusion module is not used). */
  encodeTexts(texts: string[]): Tensor {
    const { tokens, eot } = tokenize(this.ctx.tokenizer, texts, this.ctx.contextLength);
    return this.model.encodeTexts(tokens, eot);
  }
}
