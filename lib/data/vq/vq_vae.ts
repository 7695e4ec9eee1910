// VQVAE: FuseLIP's discrete image tokenizer. An image becomes a grid of integer codes (one per
// p x p patch) and back:
//
//   images [N, C, H, W] -> standardise (per-channel mean/std buffers) -> patches [N, T, C*p*p]
//   -> patch_embed + 2-D sin-cos positions -> encoder transformer -> enc_ln -> to_code
//   -> l2-normalise: z [N, T, D] -> quantiser (EMACodebook on the unit sphere, straight-through)
//   -> codes [N, T] / z_q -> sqrt(D) * z_q -> from_code + positions -> decoder transformer
//   -> dec_ln -> to_pixels -> sigmoid -> unpatchify
//
// Why it is shaped this way:
// - Patches are unfolded with reshape/permute exactly as lib/nn/vit.ts does (a conv with kernel =
//   stride = p is a Linear per patch), and folded back with the inverse permute, so there is no
//   conv kernel: the token grid is T = (H/p) * (W/p), row-major.
// - Transformer blocks over the token grid give each code context; the decoder mirrors the
//   encoder. Positions are the fixed sin-cos table (a buffer), so nothing about them is learned.
// - Scale matters on the embedded world (dark backgrounds, small bright shapes): without input
//   standardisation a 200-step run sat on the mean-image plateau (held-out MSE = baseline, the
//   decoder ignoring content) and left it only after ~180 steps; with it, MSE was 0.44 x the
//   baseline at 200 steps. So the input is standardised with per-channel statistics of the
//   training images (buffers set by setPixelStatistics, saved with the weights). z and the codes
//   are l2-normalised (cosine-similarity lookup, as ViT-VQGAN), so the encoder cannot shrink z to
//   dodge the commitment loss, and the decoder sees sqrt(D) * z_q, whose entries are O(1) like
//   the position table's (these two did not change the plateau on their own).
// - Loss = MSE(reconstruction, image) + beta * ||z - sg(q)||^2 (commitment). The codebook moves
//   by EMA inside EMACodebook.update, never by gradient; the decoder's gradient reaches the
//   encoder through the straight-through estimator z_q = z + sg(q - z).
// - A frozen model (freeze(), and every model loadVQVAE returns) is in eval mode, its parameters
//   do not require grad, and forward() refuses to update the codebook.

import { ArgumentError, DTypeError, ShapeError } from '../../errors';
import { noGrad } from '../../autograd';
import { Module } from '../../nn/module';
import { Linear } from '../../nn/linear';
import { LayerNorm } from '../../nn/layer_norm';
import { Transformer } from '../../nn/transformer';
import { sincos2dPositionEmbedding } from '../../nn/vit';
import { full, tensor } from '../../ops/creation';
import { checkImageBatch, ImageBatch } from '../image_batch';
import { normalize } from '../../ops/normalize';
import { Tensor } from '../../tensor';
import '../../tensor_methods';
import { EMACodebook, Quantized } from './codebook';

export interface VQVAEConfig {
  /** Square image size (default 32); a multiple of patchSize. */
  imageSize: number;
  /** Image channels (default 3). */
  channels: number;
  /** Patch side (default 4: 64 tokens for a 32 x 32 image). */
  patchSize: number;
  /** Transformer width (default 64). */
  width: number;
  /** Transformer blocks in the encoder (default 2) and decoder (default 1). */
  encoderLayers: number;
  decoderLayers: number;
  /** Attention heads (default 4). */
  heads: number;
  /** MLP hidden = mlpRatio * width (default 2). */
  mlpRatio: number;
  /** Code vector size D (default 32). */
  codeDim: number;
  /** Number of codes K (default 512). */
  codebookSize: number;
  /** Commitment weight (default 0.25). */
  beta: number;
  /** EMA decay (default 0.99). */
  decay: number;
  /** Restart a code unused for this many steps (default 20). */
  deadAfter: number;
}

export const DEFAULT_VQVAE_CONFIG: Readonly<VQVAEConfig> = Object.freeze({
  imageSize: 32,
  channels: 3,
  patchSize: 4,
  width: 64,
  encoderLayers: 2,
  decoderLayers: 1,
  heads: 4,
  mlpRatio: 2,
  codeDim: 32,
  codebookSize: 512,
  beta: 0.25,
  decay: 0.99,
  deadAfter: 20,
});

/** Everything one forward pass produces. */
export interface VQForward {
  /** Reconstructed images [N, C, H, W] in (0, 1). */
  recon: Tensor;
  /** reconLoss + beta * commitLoss (scalar, differentiable). */
  loss: Tensor;
  /** Mean squared pixel error (scalar). */
  reconLoss: Tensor;
  /** ||z - sg(q)||^2 averaged over elements (scalar). */
  commitLoss: Tensor;
  /** Codes, row-major [N * T]. */
  codes: Int32Array;
}

/** Fill defaults and check every field; throws ArgumentError naming the field. */
export function resolveVQVAEConfig(partial: Partial<VQVAEConfig> = {}): VQVAEConfig {
  const c: VQVAEConfig = { ...DEFAULT_VQVAE_CONFIG, ...partial };
  for (const key of Object.keys(DEFAULT_VQVAE_CONFIG) as (keyof VQVAEConfig)[]) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`VQVAE config: ${key} must be a finite number, got ${String(v)}`);
  }
  const ints: (keyof VQVAEConfig)[] = ['imageSize', 'channels', 'patchSize', 'width', 'heads', 'codeDim', 'codebookSize', 'deadAfter'];
  for (const key of ints)
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new ArgumentError(`VQVAE config: ${key} must be a positive integer, got ${c[key]}`);
  for (const key of ['encoderLayers', 'decoderLayers'] as const)
    if (!Number.isInteger(c[key]) || c[key] < 0) throw new ArgumentError(`VQVAE config: ${key} must be a non-negative integer, got ${c[key]}`);
  if (c.imageSize % c.patchSize !== 0) throw new ArgumentError(`VQVAE config: imageSize ${c.imageSize} must be a multiple of patchSize ${c.patchSize}`);
  if (c.width % 4 !== 0) throw new ArgumentError(`VQVAE config: width must be a multiple of 4 (sin-cos positions), got ${c.width}`);
  if (c.width % c.heads !== 0) throw new ArgumentError(`VQVAE config: width ${c.width} must be divisible by heads ${c.heads}`);
  if (c.codebookSize < 2) throw new ArgumentError(`VQVAE config: codebookSize must be >= 2, got ${c.codebookSize}`);
  if (!(c.beta >= 0)) throw new ArgumentError(`VQVAE config: beta must be >= 0, got ${c.beta}`);
  if (!(c.mlpRatio > 0)) throw new ArgumentError(`VQVAE config: mlpRatio must be > 0, got ${c.mlpRatio}`);
  return c;
}

export class VQVAE extends Module {
  readonly config: Readonly<VQVAEConfig>;
  readonly grid: number;
  readonly pos_embed: Tensor;
  /** Per-channel pixel mean and std the encoder standardises its input with, [C] each. */
  readonly pixel_mean: Tensor;
  readonly pixel_std: Tensor;
  readonly patch_embed: Linear;
  readonly encoder: Transformer;
  readonly enc_ln: LayerNorm;
  readonly to_code: Linear;
  readonly codebook: EMACodebook;
  readonly from_code: Linear;
  readonly decoder: Transformer;
  readonly dec_ln: LayerNorm;
  readonly to_pixels: Linear;
  private frozenFlag = false;

  constructor(config: Partial<VQVAEConfig> = {}, opts: { seed?: number } = {}) {
    super();
    const c = resolveVQVAEConfig(config);
    this.config = Object.freeze(c);
    this.grid = c.imageSize / c.patchSize;
    const patchDim = c.channels * c.patchSize * c.patchSize;
    const block = { mlpRatio: c.mlpRatio };
    const table = sincos2dPositionEmbedding(c.width, this.grid, this.grid, false);
    this.pos_embed = this.buffer('pos_embed', tensor(table, { shape: [this.tokensPerImage, c.width], dtype: 'float32' }));
    this.pixel_mean = this.buffer('pixel_mean', full([c.channels], 0.5));
    this.pixel_std = this.buffer('pixel_std', full([c.channels], 0.25));
    this.patch_embed = this.child('patch_embed', new Linear(patchDim, c.width));
    this.encoder = this.child('encoder', new Transformer(c.width, c.encoderLayers, c.heads, block));
    this.enc_ln = this.child('enc_ln', new LayerNorm(c.width));
    this.to_code = this.child('to_code', new Linear(c.width, c.codeDim));
    this.codebook = this.child('codebook', new EMACodebook(c.codebookSize, c.codeDim, { decay: c.decay, deadAfter: c.deadAfter, seed: opts.seed, unitNorm: true }));
    this.from_code = this.child('from_code', new Linear(c.codeDim, c.width));
    this.decoder = this.child('decoder', new Transformer(c.width, c.decoderLayers, c.heads, block));
    this.dec_ln = this.child('dec_ln', new LayerNorm(c.width));
    this.to_pixels = this.child('to_pixels', new Linear(c.width, patchDim));
  }

  /** Set the input standardisation from training images (per-channel mean and std). */
  setPixelStatistics(images: ImageBatch): void {
    checkImageBatch(images, 'VQVAE.setPixelStatistics');
    const c = this.config.channels;
    if (images.channels !== c || images.n === 0)
      throw new ShapeError(`VQVAE.setPixelStatistics: expected a non-empty batch of ${c}-channel images, got n=${images.n}, channels=${images.channels}`);
    const plane = images.height * images.width;
    const mean = new Float32Array(c);
    const std = new Float32Array(c);
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < images.n; i++) {
        const off = (i * c + ch) * plane;
        for (let j = 0; j < plane; j++) {
          const v = images.data[off + j];
          s += v;
          s2 += v * v;
        }
      }
      const count = images.n * plane;
      mean[ch] = s / count;
      std[ch] = Math.max(Math.sqrt(Math.max(s2 / count - mean[ch] ** 2, 0)), 1e-3);
    }
    this.pixel_mean.copy_(tensor(mean));
    this.pixel_std.copy_(tensor(std));
  }

  get codebookSize(): number {
    return this.config.codebookSize;
  }

  get tokensPerImage(): number {
    return this.grid * this.grid;
  }

  get frozen(): boolean {
    return this.frozenFlag;
  }

  /** Eval mode, no parameter requires grad, the codebook never updates again. */
  freeze(): this {
    this.eval();
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
      p.requiresGrad = false;
    }
    this.frozenFlag = true;
    return this;
  }

  private checkImages(images: Tensor, op: string): void {
    const { channels: c, imageSize: s } = this.config;
    if (images.ndim !== 4 || images.shape[1] !== c || images.shape[2] !== s || images.shape[3] !== s)
      throw new ShapeError(`VQVAE.${op}: images must be [N, ${c}, ${s}, ${s}], got ${images.describe()}`);
    if (images.dtype !== 'float32') throw new DTypeError(`VQVAE.${op}: images must be float32, got ${images.describe()}`);
  }

  /** images [N, C, H, W] -> [N, T, C*p*p], patch t = row * grid + col, (c, ky, kx) inside. */
  patchify(images: Tensor): Tensor {
    const { channels: c, patchSize: p } = this.config;
    const g = this.grid;
    const n = images.shape[0];
    return images.reshape([n, c, g, p, g, p]).permute([0, 2, 4, 1, 3, 5]).reshape([n, g * g, c * p * p]);
  }

  /** The inverse of patchify: [N, T, C*p*p] -> [N, C, H, W]. */
  unpatchify(patches: Tensor): Tensor {
    const { channels: c, patchSize: p, imageSize: s } = this.config;
    const g = this.grid;
    const n = patches.shape[0];
    return patches.reshape([n, g, g, c, p, p]).permute([0, 3, 1, 4, 2, 5]).reshape([n, c, s, s]);
  }

  /** Continuous code vectors z [N, T, D] before quantisation, l2-normalised. */
  encodeContinuous(images: Tensor): Tensor {
    this.checkImages(images, 'encode');
    const shape = [1, this.config.channels, 1, 1];
    const standardized = images.sub(this.pixel_mean.reshape(shape)).div(this.pixel_std.reshape(shape));
    let x = this.patch_embed.forward(this.patchify(standardized)).add(this.pos_embed);
    x = this.encoder.forward(x);
    return normalize(this.to_code.forward(this.enc_ln.forward(x)), 2, -1);
  }

  /** Code vectors [N, T, D] -> images [N, C, H, W] in (0, 1). */
  decodeVectors(zq: Tensor): Tensor {
    let x = this.from_code.forward(zq.mul(Math.sqrt(this.config.codeDim))).add(this.pos_embed);
    x = this.decoder.forward(x);
    return this.unpatchify(this.to_pixels.forward(this.dec_ln.forward(x)).sigmoid());
  }

  /**
   * Full pass with losses. In training mode (and not frozen) the codebook takes one EMA step
   * from this batch; call it inside ts.scope so the temporaries are freed.
   */
  forward(images: Tensor): VQForward {
    const z = this.encodeContinuous(images);
    const [n, t, d] = z.shape;
    const flat = z.reshape([n * t, d]);
    const quant: Quantized = this.codebook.quantize(flat);
    const q = quant.q;
    const zq = flat.add(q.sub(flat).detach()).reshape([n, t, d]);
    const recon = this.decodeVectors(zq);
    const reconLoss = recon.sub(images).pow(2).mean();
    const commitLoss = flat.sub(q).pow(2).mean();
    const loss = reconLoss.add(commitLoss.mul(this.config.beta));
    if (this.training && !this.frozenFlag) this.codebook.update(flat, quant);
    return { recon, loss, reconLoss, commitLoss, codes: quant.codesArray };
  }

  /** images float32 [N, C, H, W] -> codes int32 [N, T] (no gradient). */
  encode(images: Tensor): Tensor {
    return noGrad(() => {
      const z = this.encodeContinuous(images);
      const [n, t, d] = z.shape;
      const { codes } = this.codebook.quantize(z.reshape([n * t, d]));
      return codes.reshape([n, t]);
    });
  }

  /** codes int32 [N, T] -> images float32 [N, C, H, W] in (0, 1) (no gradient). */
  decode(codes: Tensor): Tensor {
    if (codes.dtype !== 'int32') throw new DTypeError(`VQVAE.decode: codes must be int32, got ${codes.describe()}`);
    if (codes.ndim !== 2 || codes.shape[1] !== this.tokensPerImage)
      throw new ShapeError(`VQVAE.decode: codes must be [N, ${this.tokensPerImage}], got ${codes.describe()}`);
    return noGrad(() => this.decodeVectors(this.codebook.lookup(codes)));
  }

  /** encode then decode (no gradient). */
  reconstruct(images: Tensor): Tensor {
    return noGrad(() => {
      const codes = this.encode(images);
      const out = this.decode(codes);
      codes.dispose();
      return out;
    });
  }
}
