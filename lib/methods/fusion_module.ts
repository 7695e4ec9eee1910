// ITO's lightweight training-time multimodal fusion module (Liu et al. 2026, arXiv 2603.02767,
// Sec. 3.3 "training-time multimodal fusion"): a small transformer that reads the token
// sequences of BOTH towers of the dual encoder at once, so the fusion loss back-propagates a
// cross-modal interaction signal into the image and text encoders. It exists only for training:
// ITO's encodeImages / encodeTexts never call it, and it is discarded at inference.
//
// As implemented (our reading of the paper; widths and depth are options):
//   u   = [ c ; W_v V + e_v ; W_t T + e_t ]               (concatenation along the sequence)
//   h   = LN(Transformer_k(u))                             (bidirectional, padded text keys masked)
//   f   = normalize(h_0 P)                                 (the fusion token, projected to D)
// with V [B, 1+N, w_v] the image tower's tokens after ln_post, T [B, L, w_t] the text tower's
// tokens after ln_final, W_v / W_t linear maps to the fusion width w_f, e_v / e_t learned
// modality-type embeddings, c a learned fusion token, P [w_f, D] the output projection into the
// joint space and k the number of fusion layers (default 1: "lightweight"). Text positions after
// each caption's end-of-text token are key-padding-masked (they carry no caption content).

import { ArgumentError, ShapeError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { cat } from '../ops/concat';
import { tensor } from '../ops/creation';
import { normalize } from '../ops/normalize';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { LayerNorm } from '../nn/layer_norm';
import { Transformer } from '../nn/transformer';
import { normal } from '../nn/init';

export interface FusionModuleConfig {
  /** Width of the image tower's tokens. */
  imageWidth: number;
  /** Width of the text tower's tokens. */
  textWidth: number;
  /** Width of the fusion transformer. */
  width: number;
  /** Transformer blocks (>= 1). */
  layers: number;
  heads: number;
  /** Size of the joint embedding space the fused vector is projected to. */
  embedDim: number;
}

export class FusionModule extends Module {
  readonly config: Readonly<FusionModuleConfig>;
  readonly fusion_token: Tensor;
  /** Row 0: image type embedding, row 1: text type embedding. */
  readonly type_embedding: Tensor;
  readonly image_in: Linear;
  readonly text_in: Linear;
  readonly transformer: Transformer;
  readonly ln_post: LayerNorm;
  readonly proj: Tensor;

  constructor(config: FusionModuleConfig) {
    super();
    for (const k of ['imageWidth', 'textWidth', 'width', 'layers', 'heads', 'embedDim'] as const) {
      const v = config[k];
      if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`FusionModule: ${k} must be a positive integer, got ${String(v)}`);
    }
    if (config.width % config.heads !== 0)
      throw new ArgumentError(`FusionModule: width ${config.width} must be a multiple of heads ${config.heads}`);
    this.config = Object.freeze({ ...config });
    const w = config.width;
    const scale = w ** -0.5;
    this.fusion_token = this.param('fusion_token', normal([w], 0, scale));
    this.type_embedding = this.param('type_embedding', normal([2, w], 0, scale));
    this.image_in = this.child('image_in', new Linear(config.imageWidth, w));
    this.text_in = this.child('text_in', new Linear(config.textWidth, w));
    this.transformer = this.child('transformer', new Transformer(w, config.layers, config.heads));
    this.ln_post = this.child('ln_post', new LayerNorm(w));
    this.proj = this.param('proj', normal([w, config.embedDim], 0, scale));
  }

  /**
   * Fused, L2-normalised embeddings [B, embedDim] of B (image, caption) pairs: imageTokens
   * [B, 1+N, imageWidth], textTokens [B, L, textWidth], eotIndex[b] the end-of-text position of
   * caption b (positions after it are masked out as keys).
   */
  forward(imageTokens: Tensor, textTokens: Tensor, eotIndex: readonly number[]): Tensor {
    const c = this.config;
    if (imageTokens.ndim !== 3 || imageTokens.shape[2] !== c.imageWidth)
      throw new ShapeError(`FusionModule: imageTokens must be [B, tokens, ${c.imageWidth}], got ${imageTokens.describe()}`);
    if (textTokens.ndim !== 3 || textTokens.shape[2] !== c.textWidth)
      throw new ShapeError(`FusionModule: textTokens must be [B, L, ${c.textWidth}], got ${textTokens.describe()}`);
    const b = imageTokens.shape[0];
    if (textTokens.shape[0] !== b)
      throw new ShapeError(`FusionModule: imageTokens ${imageTokens.describe()} and textTokens ${textTokens.describe()} must hold the same number of pairs (dim 0)`);
    const ni = imageTokens.shape[1];
    const l = textTokens.shape[1];
    if (eotIndex.length !== b) throw new ShapeError(`FusionModule: eotIndex must have one entry per pair (${b}), got ${eotIndex.length}`);
    const w = c.width;
    const v = this.image_in.forward(imageTokens).add(this.type_embedding.select(0, 0));
    const t = this.text_in.forward(textTokens).add(this.type_embedding.select(0, 1));
    const tok = this.fusion_token.reshape([1, 1, w]).expand([b, 1, w]);
    const u = cat([tok, v, t], 1); // [B, 1 + ni + l, w]
    const total = 1 + ni + l;
    const mask = new Float32Array(b * total);
    eotIndex.forEach((e, r) => {
      if (!Number.isInteger(e) || e < 0 || e >= l) throw new ArgumentError(`FusionModule: eotIndex[${r}] must be an integer in [0, ${l}), got ${String(e)}`);
      for (let j = e + 1; j < l; j++) mask[r * total + 1 + ni + j] = 1;
    });
    const kpm = tensor(mask, { shape: [b, total] });
    const h = this.ln_post.forward(this.transformer.forward(u, { keyPaddingMask: kpm }));
    return normalize(h.select(1, 0).matmul(this.proj), 2, -1);
  }
}
