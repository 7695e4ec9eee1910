// TextTransformer: the OpenCLIP text tower.
//
//   tokens int32 [B, L] -> token_embedding + positional_embedding[:L] -> transformer (causal)
//   -> ln_final -> pooled: the end-of-text position ('eot') or the mean of the non-padded
//   positions ('mean') -> @ text_projection
//
// Names and init follow OpenCLIP's TextTransformer: token_embedding (N(0, 0.02^2)),
// positional_embedding [contextLength, width] (N(0, 0.01^2)), transformer, ln_final,
// text_projection [width, outputDim] (N(0, width^-1)), and per block in_proj.weight
// ~ N(0, width^-1), out_proj.weight and mlp.fc2.weight ~ N(0, width^-1 / (2 layers)),
// mlp.fc1.weight ~ N(0, 1 / (2 width)). OpenCLIP's attn_mask buffer is not persistent, and here
// the causal mask is the cached one of scaledDotProductAttention, so it is not in the state dict.
//
// EOT pooling. OpenCLIP pools at text.argmax(dim=-1): its tokenizer gives the end-of-text token
// the largest id, so the argmax of the ids is the EOT position. There is no argmax op, so the
// caller may pass `eotIndex` (int32 [B], or numbers: the EOT position of each row); without it
// the position is computed in JS from the token ids (a read of tokens: first position of the
// largest id in each row, as torch.argmax). The rows are then picked with gather (whose
// backward scatters the gradient back to those positions only). With causal attention the
// positions after EOT cannot influence the pooled vector, so padding needs no mask there.
//
// Mean pooling averages the positions where paddingMask is 0 (all positions without a mask);
// a row with every position padded pools to zeros.

import { DType, Device } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { tensor } from '../ops/creation';
import { Module } from './module';
import { Embedding } from './embedding';
import { LayerNorm } from './layer_norm';
import { Transformer } from './transformer';
import { Activation } from './mlp';
import { normal, normal_ } from './init';
import { TowerOutput } from './vit';

export interface TextTransformerConfig {
  vocabSize: number;
  contextLength: number;
  width: number;
  layers: number;
  heads: number;
  /** MLP hidden = mlpRatio * width (default 4). */
  mlpRatio?: number;
  /** Width of `pooled`; adds the `text_projection` [width, outputDim] parameter. */
  outputDim?: number;
  /** Causal self-attention (default true, as CLIP). */
  causal?: boolean;
  /** End-of-text position (default) or mean over non-padded positions. */
  pool?: 'eot' | 'mean';
  activation?: Activation;
  dropout?: number;
  attnDropout?: number;
  eps?: number;
  dtype?: DType;
  device?: Device;
}

export interface TextForwardOptions {
  /** [B, L]: nonzero = padding (ignored as a key; excluded from mean pooling). */
  paddingMask?: Tensor | null;
  /** EOT position per row, int32 [B] or numbers (default: argmax of the token ids, in JS). */
  eotIndex?: Tensor | readonly number[];
}

/** Position of the (first) largest token id in each row of int32 tokens [B, L] (OpenCLIP's EOT). */
export function eotIndexFromTokens(tokens: Tensor): number[] {
  if (tokens.ndim !== 2) throw new ShapeError(`eotIndexFromTokens: tokens must be [B, L], got ${tokens.describe()}`);
  const [b, l] = tokens.shape;
  const ids = tokens.toTypedArray();
  const out: number[] = [];
  for (let r = 0; r < b; r++) {
    let best = 0;
    for (let j = 1; j < l; j++) if (ids[r * l + j] > ids[r * l + best]) best = j;
    out.push(best);
  }
  return out;
}

export class TextTransformer extends Module {
  readonly config: Readonly<TextTransformerConfig>;
  readonly contextLength: number;
  readonly width: number;
  readonly causal: boolean;
  readonly pool: 'eot' | 'mean';
  readonly positional_embedding: Tensor;
  readonly text_projection: Tensor | null;
  readonly token_embedding: Embedding;
  readonly transformer: Transformer;
  readonly ln_final: LayerNorm;

  constructor(config: TextTransformerConfig) {
    super();
    this.config = Object.freeze({ ...config });
    const { vocabSize, contextLength, width, layers, heads } = config;
    if (!Number.isInteger(contextLength) || contextLength < 1)
      throw new ArgumentError(`TextTransformer: contextLength must be a positive integer, got ${String(contextLength)}`);
    this.contextLength = contextLength;
    this.width = width;
    this.causal = config.causal ?? true;
    this.pool = config.pool ?? 'eot';
    if (this.pool !== 'eot' && this.pool !== 'mean') throw new ArgumentError(`TextTransformer: pool must be 'eot' or 'mean', got ${String(this.pool)}`);
    const t = { dtype: config.dtype ?? 'float32', device: config.device };

    this.positional_embedding = this.param('positional_embedding', normal([contextLength, width], 0, 0.01, t));
    this.text_projection = config.outputDim !== undefined
      ? this.param('text_projection', normal([width, config.outputDim], 0, width ** -0.5, t))
      : this.noParam('text_projection');
    this.token_embedding = this.child('token_embedding', new Embedding(vocabSize, width, { initStd: 0.02, ...t }));
    this.transformer = this.child('transformer', new Transformer(width, layers, heads, {
      mlpRatio: config.mlpRatio, activation: config.activation, dropout: config.dropout, attnDropout: config.attnDropout, eps: config.eps, ...t,
    }));
    this.ln_final = this.child('ln_final', new LayerNorm(width, { eps: config.eps, ...t }));

    // OpenCLIP's TextTransformer.init_parameters
    const projStd = width ** -0.5 * (2 * Math.max(layers, 1)) ** -0.5;
    const attnStd = width ** -0.5;
    const fcStd = (2 * width) ** -0.5;
    for (const blk of this.transformer.blocks) {
      normal_(blk.attn.in_proj.weight, 0, attnStd);
      normal_(blk.attn.out_proj.weight, 0, projStd);
      normal_(blk.mlp.fc1.weight, 0, fcStd);
      normal_(blk.mlp.fc2.weight, 0, projStd);
    }
  }

  forward(tokens: Tensor, opts: TextForwardOptions = {}): TowerOutput {
    if (tokens.dtype !== 'int32') throw new DTypeError(`TextTransformer: tokens must be int32, got ${tokens.describe()}`);
    if (tokens.ndim !== 2 || tokens.shape[1] < 1 || tokens.shape[1] > this.contextLength)
      throw new ShapeError(`TextTransformer: tokens must be [B, L] with 1 <= L <= ${this.contextLength}, got ${tokens.describe()}`);
    const [b, l] = tokens.shape;
    const w = this.width;
    const pm = opts.paddingMask ?? null;
    if (pm && (pm.ndim !== 2 || pm.shape[0] !== b || pm.shape[1] !== l))
      throw new ShapeError(`TextTransformer: paddingMask must be [B, L] = [${b}, ${l}], got ${pm.describe()}`);

    let x = this.token_embedding.forward(tokens).add(this.positional_embedding.slice(0, 0, l));
    x = this.transformer.forward(x, { causal: this.causal, keyPaddingMask: pm });
    x = this.ln_final.forward(x);

    let pooled: Tensor;
    if (this.pool === 'eot') {
      let idx: Tensor;
      if (opts.eotIndex instanceof Tensor) {
        idx = opts.eotIndex;
        if (idx.dtype !== 'int32' || idx.ndim !== 1 || idx.shape[0] !== b)
          throw new ShapeError(`TextTransformer: eotIndex must be int32 [${b}], got ${idx.describe()}`);
      } else {
        const pos = opts.eotIndex ?? eotIndexFromTokens(tokens);
        if (pos.length !== b) throw new ShapeError(`TextTransformer: eotIndex must have ${b} entries, got ${pos.length}`);
        idx = tensor([...pos], { dtype: 'int32', device: tokens.device });
      }
      pooled = x.gather(1, idx.reshape([b, 1, 1]).expand([b, 1, w])).reshape([b, w]);
    } else if (pm) {
      const keepPos = (pm.dtype === x.dtype ? pm : pm.to(x.dtype)).eq(0).reshape([b, l, 1]); // 1 = real token
      pooled = x.mul(keepPos).sum(1).div(keepPos.sum(1).clamp(1));
    } else {
      pooled = x.mean(1);
    }
    if (this.text_projection) pooled = pooled.matmul(this.text_projection);
    return { pooled, tokens: x };
  }
}
