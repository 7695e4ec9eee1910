// Pre-LN transformer block and stack (OpenCLIP's ResidualAttentionBlock / Transformer, timm's
// Block), the shared trunk of the vision and text towers:
//
//   x = x + attn(ln_1(x))        x = x + mlp(ln_2(x))
//
// Children keep OpenCLIP's names (ln_1, attn, ln_2, mlp), so a block's state dict differs from
// an OpenCLIP one only inside attn (in_proj_weight -> in_proj.weight, see attention.ts) and mlp
// (c_fc / c_proj -> fc1 / fc2, see mlp.ts). The stack holds its blocks as `blocks.<i>`
// (OpenCLIP: `resblocks.<i>`). Pre-LN keeps an identity path from input to output, which is
// what lets these train without warm-up tricks; the final LayerNorm belongs to the tower
// (ln_post / ln_final), not to the stack.

import { DType, Device } from '../dtype';
import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { Module } from './module';
import { LayerNorm } from './layer_norm';
import { AttentionForwardOptions, MultiHeadAttention } from './attention';
import { Activation, MLP } from './mlp';
import { ModuleList } from './container';

export interface TransformerBlockOptions {
  /** MLP hidden width = round(mlpRatio * dim) (default 4). */
  mlpRatio?: number;
  /** Dropout in the MLP (after the activation and after fc2), in training (default 0). */
  dropout?: number;
  /** Dropout on the attention probabilities, in training (default: `dropout`). */
  attnDropout?: number;
  activation?: Activation;
  /** LayerNorm epsilon (default 1e-5, as torch and OpenCLIP). */
  eps?: number;
  /** Biases on every Linear (default true). */
  bias?: boolean;
  dtype?: DType;
  device?: Device;
}

export class TransformerBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;

  constructor(dim: number, heads: number, opts: TransformerBlockOptions = {}) {
    super();
    const mlpRatio = opts.mlpRatio ?? 4;
    const hidden = Math.round(mlpRatio * dim);
    if (!(hidden >= 1)) throw new ArgumentError(`TransformerBlock: mlpRatio ${String(mlpRatio)} gives no hidden units for dim ${dim}`);
    const t = { dtype: opts.dtype, device: opts.device };
    const p = opts.dropout ?? 0;
    this.ln_1 = this.child('ln_1', new LayerNorm(dim, { eps: opts.eps, ...t }));
    this.attn = this.child('attn', new MultiHeadAttention(dim, heads, { dropout: opts.attnDropout ?? p, bias: opts.bias, ...t }));
    this.ln_2 = this.child('ln_2', new LayerNorm(dim, { eps: opts.eps, ...t }));
    this.mlp = this.child('mlp', new MLP(dim, hidden, { activation: opts.activation, dropout: p, bias: opts.bias, ...t }));
  }

  /** x [B, L, dim] -> [B, L, dim]. */
  forward(x: Tensor, opts: AttentionForwardOptions = {}): Tensor {
    const y = x.add(this.attn.forward(this.ln_1.forward(x), opts));
    return y.add(this.mlp.forward(this.ln_2.forward(y)));
  }
}

export type TransformerOptions = TransformerBlockOptions;

export class Transformer extends Module {
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly blocks: ModuleList<TransformerBlock>;

  constructor(width: number, layers: number, heads: number, opts: TransformerOptions = {}) {
    super();
    if (!Number.isInteger(layers) || layers < 0) throw new ArgumentError(`Transformer: layers must be a non-negative integer, got ${String(layers)}`);
    this.width = width;
    this.layers = layers;
    this.heads = heads;
    this.blocks = this.child('blocks', new ModuleList<TransformerBlock>());
    for (let i = 0; i < layers; i++) this.blocks.append(new TransformerBlock(width, heads, opts));
  }

  /** x [B, L, width] -> [B, L, width] through every block in order. */
  forward(x: Tensor, opts: AttentionForwardOptions = {}): Tensor {
    let y = x;
    for (const b of this.blocks) y = b.forward(y, opts);
    return y;
  }
}
