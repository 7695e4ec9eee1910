// VisionTransformer: the OpenCLIP image tower (and timm's ViT), built from the engine's ops.
//
//   images [B, C, H, W] -> patches [B, N, C*p*p] -> patch_embed -> [B, N, width]
//   -> prepend class_embedding -> + positional_embedding -> ln_pre -> transformer -> ln_post
//   -> pooled: the class token ('cls') or the mean of the patch tokens ('mean') -> @ proj
//
// Patch embedding as a Linear. A Conv2d with kernel = stride = p and no padding is exactly a
// Linear applied to each non-overlapping p x p patch, so there is no conv kernel here: the image
// is unfolded with reshape/permute ([B, C, gh, p, gw, p] -> [B, gh, gw, C, p, p], one copy) and
// `patch_embed` (Linear C*p*p -> width) is applied to every patch. Patches are numbered row-major
// (n = row * gw + col), as the conv output flattened by OpenCLIP/timm. Each patch vector is laid
// out (c, ky, kx), so patch_embed.weight [width, C*p*p] is torch's Conv2d weight [width, C, p, p]
// reshaped to [width, C*p*p] (conv1.weight.reshape(width, -1) in OpenCLIP; the reverse is a
// reshape too). OpenCLIP's conv1 has no bias, hence `patchBias` defaults to false (timm: true).
//
// Names follow OpenCLIP's VisionTransformer: class_embedding [width], positional_embedding
// [1 + N, width] (row 0 for the class token), ln_pre, transformer (blocks.<i>; OpenCLIP
// resblocks.<i>), ln_post, proj [width, outputDim] (pooled @ proj; no bias). Learned embeddings
// and proj are initialised as OpenCLIP: scale * randn with scale = width^-0.5. With
// posEmbed: 'sincos' the position table is the fixed 2-D sin-cos table of MAE
// (get_2d_sincos_pos_embed with a zero row for the class token), registered as a buffer: saved
// in the state dict, never trained.
//
// ln_post is applied to every token before pooling (OpenCLIP's default final_ln_after_pool =
// False). Mean pooling averages the patch tokens only, not the class token (OpenCLIP 'avg',
// timm global_pool='avg'); the class token is kept in both modes, so the two share a layout.

import { DType, Device } from '../dtype';
import { ArgumentError, ShapeError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { cat } from '../ops/concat';
import { tensor } from '../ops/creation';
import { Module } from './module';
import { Linear } from './linear';
import { LayerNorm } from './layer_norm';
import { Transformer } from './transformer';
import { Activation } from './mlp';
import { normal } from './init';

export interface VisionTransformerConfig {
  /** Square size, or [height, width]; each must be a multiple of patchSize. */
  imageSize: number | readonly [number, number];
  patchSize: number;
  /** Input channels (default 3). */
  channels?: number;
  width: number;
  layers: number;
  heads: number;
  /** MLP hidden = mlpRatio * width (default 4). */
  mlpRatio?: number;
  /** Width of `pooled`; adds the `proj` [width, outputDim] parameter. */
  outputDim?: number;
  /** Learned (default) or fixed 2-D sin-cos position embedding (width % 4 == 0). */
  posEmbed?: 'learned' | 'sincos';
  /** Class token (default) or mean of the patch tokens. */
  pool?: 'cls' | 'mean';
  /** Bias on patch_embed (default false, as OpenCLIP's conv1). */
  patchBias?: boolean;
  activation?: Activation;
  dropout?: number;
  attnDropout?: number;
  eps?: number;
  dtype?: DType;
  device?: Device;
}

export interface TowerOutput {
  /** [B, outputDim] (or [B, width] without a projection). */
  pooled: Tensor;
  /** Every token after the final LayerNorm: [B, 1 + N, width] for images, [B, L, width] for text. */
  tokens: Tensor;
}

/**
 * MAE's fixed 2-D sin-cos position table, [(cls ? 1 : 0) + gh * gw, dim] row-major. For the
 * patch at (row i, col j), the first dim/2 entries encode j and the last dim/2 encode i, each as
 * [sin(pos * w_k), cos(pos * w_k)] with w_k = 10000^(-k / (dim / 4)), k < dim / 4. A class-token
 * row of zeros comes first when `cls`.
 */
export function sincos2dPositionEmbedding(dim: number, gh: number, gw: number, cls = true): Float64Array {
  if (!Number.isInteger(dim) || dim % 4 !== 0) throw new ArgumentError(`sincos position embedding: width must be a multiple of 4, got ${dim}`);
  const quarter = dim / 4;
  const omega = Array.from({ length: quarter }, (_, k) => 1 / 10000 ** (k / quarter));
  const lead = cls ? 1 : 0;
  const out = new Float64Array((lead + gh * gw) * dim);
  for (let i = 0; i < gh; i++)
    for (let j = 0; j < gw; j++) {
      const row = (lead + i * gw + j) * dim;
      for (let k = 0; k < quarter; k++) {
        out[row + k] = Math.sin(j * omega[k]);
        out[row + quarter + k] = Math.cos(j * omega[k]);
        out[row + 2 * quarter + k] = Math.sin(i * omega[k]);
        out[row + 3 * quarter + k] = Math.cos(i * omega[k]);
      }
    }
  return out;
}

export class VisionTransformer extends Module {
  readonly config: Readonly<VisionTransformerConfig>;
  readonly channels: number;
  readonly patchSize: number;
  readonly gridSize: readonly [number, number];
  readonly numPatches: number;
  readonly width: number;
  readonly pool: 'cls' | 'mean';
  readonly class_embedding: Tensor;
  /** Parameter (learned) or buffer (sincos), [1 + numPatches, width]. */
  readonly positional_embedding: Tensor;
  readonly proj: Tensor | null;
  readonly patch_embed: Linear;
  readonly ln_pre: LayerNorm;
  readonly transformer: Transformer;
  readonly ln_post: LayerNorm;

  constructor(config: VisionTransformerConfig) {
    super();
    this.config = Object.freeze({ ...config });
    const [ih, iw] = typeof config.imageSize === 'number' ? [config.imageSize, config.imageSize] : config.imageSize;
    const p = config.patchSize;
    if (!Number.isInteger(p) || p < 1) throw new ArgumentError(`VisionTransformer: patchSize must be a positive integer, got ${String(p)}`);
    if (!(Number.isInteger(ih) && Number.isInteger(iw) && ih > 0 && iw > 0 && ih % p === 0 && iw % p === 0))
      throw new ArgumentError(`VisionTransformer: imageSize ${ih}x${iw} must be positive multiples of patchSize ${p}`);
    const width = config.width;
    const c = config.channels ?? 3;
    this.channels = c;
    this.patchSize = p;
    this.gridSize = [ih / p, iw / p];
    this.numPatches = (ih / p) * (iw / p);
    this.width = width;
    this.pool = config.pool ?? 'cls';
    if (this.pool !== 'cls' && this.pool !== 'mean') throw new ArgumentError(`VisionTransformer: pool must be 'cls' or 'mean', got ${String(this.pool)}`);
    const posEmbed = config.posEmbed ?? 'learned';
    const t = { dtype: config.dtype ?? 'float32', device: config.device };
    const scale = width ** -0.5;

    this.class_embedding = this.param('class_embedding', normal([width], 0, scale, t));
    if (posEmbed === 'learned') {
      this.positional_embedding = this.param('positional_embedding', normal([1 + this.numPatches, width], 0, scale, t));
    } else if (posEmbed === 'sincos') {
      const table = sincos2dPositionEmbedding(width, this.gridSize[0], this.gridSize[1], true);
      this.positional_embedding = this.buffer('positional_embedding', tensor(table, { shape: [1 + this.numPatches, width], ...t }));
    } else {
      throw new ArgumentError(`VisionTransformer: posEmbed must be 'learned' or 'sincos', got ${String(posEmbed)}`);
    }
    this.proj = config.outputDim !== undefined ? this.param('proj', normal([width, config.outputDim], 0, scale, t)) : this.noParam('proj');

    this.patch_embed = this.child('patch_embed', new Linear(c * p * p, width, { bias: config.patchBias ?? false, ...t }));
    this.ln_pre = this.child('ln_pre', new LayerNorm(width, { eps: config.eps, ...t }));
    this.transformer = this.child('transformer', new Transformer(width, config.layers, config.heads, {
      mlpRatio: config.mlpRatio, activation: config.activation, dropout: config.dropout, attnDropout: config.attnDropout, eps: config.eps, ...t,
    }));
    this.ln_post = this.child('ln_post', new LayerNorm(width, { eps: config.eps, ...t }));
  }

  /** images [B, C, H, W] -> [B, numPatches, C * p * p], patch n = row * gw + col, (c, ky, kx) inside. */
  patchify(images: Tensor): Tensor {
    const [gh, gw] = this.gridSize;
    const p = this.patchSize;
    const c = this.channels;
    if (images.ndim !== 4 || images.shape[1] !== c || images.shape[2] !== gh * p || images.shape[3] !== gw * p)
      throw new ShapeError(`VisionTransformer: images must be [B, ${c}, ${gh * p}, ${gw * p}], got ${images.describe()}`);
    const b = images.shape[0];
    return images.reshape([b, c, gh, p, gw, p]).permute([0, 2, 4, 1, 3, 5]).reshape([b, gh * gw, c * p * p]);
  }

  forward(images: Tensor): TowerOutput {
    const b = images.shape[0];
    const w = this.width;
    let x = this.patch_embed.forward(this.patchify(images)); // [B, N, width]
    const cls = this.class_embedding.reshape([1, 1, w]).expand([b, 1, w]);
    x = cat([cls, x], 1).add(this.positional_embedding); // [B, 1 + N, width]
    x = this.ln_pre.forward(x);
    x = this.transformer.forward(x);
    x = this.ln_post.forward(x);
    let pooled = this.pool === 'cls' ? x.select(1, 0) : x.slice(1, 1).mean(1);
    if (this.proj) pooled = pooled.matmul(this.proj);
    return { pooled, tokens: x };
  }
}
