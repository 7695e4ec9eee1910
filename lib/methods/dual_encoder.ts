// The dual encoder shared by CLIP, SigLIP and ITO: a ViT image tower and a text transformer
// tower, each ending in a linear projection to a joint embedding space, plus the learnable
// logit scale (and, for SigLIP, bias) of the contrastive loss. Parameter names follow OpenCLIP
// (visual.*, text.*, logit_scale, logit_bias) so a state dict maps onto its CLIP models.
//
// Presets size the towers; 'tiny' is for tests, 'small' is the default of `npm run train` (a few
// minutes on 2 CPU cores), 'base' is the size of the training-step benchmark.

import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { tensor } from '../ops/creation';
import { normalize } from '../ops/normalize';
import { Module } from '../nn/module';
import { VisionTransformer } from '../nn/vit';
import { TextTransformer } from '../nn/text';

export interface TowerSizes {
  width: number;
  layers: number;
  heads: number;
}

export interface DualEncoderConfig {
  imageSize: number;
  channels: number;
  patchSize: number;
  vision: TowerSizes;
  text: TowerSizes;
  vocabSize: number;
  contextLength: number;
  embedDim: number;
  /** Initial log temperature (CLIP: log(1/0.07); SigLIP: log 10). */
  initLogitScale: number;
  /** Initial logit bias (SigLIP: -10); null: no bias parameter. */
  initLogitBias: number | null;
}

export type ModelPreset = 'tiny' | 'small' | 'base';

export const MODEL_PRESETS: Record<ModelPreset, { vision: TowerSizes; text: TowerSizes; embedDim: number; patchSize: number }> = {
  tiny: { vision: { width: 32, layers: 1, heads: 2 }, text: { width: 32, layers: 1, heads: 2 }, embedDim: 32, patchSize: 8 },
  small: { vision: { width: 64, layers: 2, heads: 4 }, text: { width: 64, layers: 2, heads: 4 }, embedDim: 64, patchSize: 4 },
  base: { vision: { width: 128, layers: 4, heads: 4 }, text: { width: 128, layers: 4, heads: 4 }, embedDim: 128, patchSize: 4 },
};

export class DualEncoder extends Module {
  readonly config: Readonly<DualEncoderConfig>;
  readonly visual: VisionTransformer;
  readonly text: TextTransformer;
  readonly logit_scale: Tensor;
  readonly logit_bias: Tensor | null;

  constructor(config: DualEncoderConfig) {
    super();
    if (config.imageSize % config.patchSize !== 0)
      throw new ArgumentError(`DualEncoder: imageSize ${config.imageSize} must be a multiple of patchSize ${config.patchSize}`);
    this.config = Object.freeze({ ...config });
    this.visual = this.child('visual', new VisionTransformer({
      imageSize: config.imageSize, patchSize: config.patchSize, channels: config.channels,
      width: config.vision.width, layers: config.vision.layers, heads: config.vision.heads, outputDim: config.embedDim,
    }));
    this.text = this.child('text', new TextTransformer({
      vocabSize: config.vocabSize, contextLength: config.contextLength,
      width: config.text.width, layers: config.text.layers, heads: config.text.heads, outputDim: config.embedDim,
    }));
    this.logit_scale = this.param('logit_scale', tensor(config.initLogitScale));
    this.logit_bias = config.initLogitBias === null ? this.noParam('logit_bias') : this.param('logit_bias', tensor(config.initLogitBias));
  }

  /** L2-normalised image embeddings [B, embedDim] of images [B, C, H, W]. */
  encodeImages(images: Tensor): Tensor {
    return normalize(this.visual.forward(images).pooled, 2, -1);
  }

  /** L2-normalised text embeddings [B, embedDim] of int32 tokens [B, L], pooled at eotIndex. */
  encodeTexts(tokens: Tensor, eotIndex: readonly number[]): Tensor {
    return normalize(this.text.forward(tokens, { eotIndex }).pooled, 2, -1);
  }
}
