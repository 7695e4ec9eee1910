// MLP: the transformer feed-forward block, fc2(drop(act(fc1(x)))) then dropout again (timm's
// Mlp: dropout after the activation and after the output projection).
//
// Names: torch-like `fc1` / `fc2` (timm's Mlp uses the same). OpenCLIP calls these `c_fc` and
// `c_proj` (`mlp.c_fc.weight`, `mlp.c_proj.weight`, ...); the shapes are identical, so loading an
// OpenCLIP checkpoint is a rename: c_fc -> fc1, c_proj -> fc2. The activation is a name, not a
// child module, as it holds no state: 'gelu' is the exact erf GELU (OpenCLIP's nn.GELU),
// 'gelu_tanh' the tanh approximation, 'relu' ReLU.

import { DType, Device } from '../dtype';
import { ArgumentError } from '../errors';
import { dropout } from '../ops/dropout';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { Module } from './module';
import { Linear } from './linear';

export type Activation = 'gelu' | 'gelu_tanh' | 'relu';

export interface MLPOptions {
  activation?: Activation;
  /** Dropout probability after the activation and after fc2, in training (default 0). */
  dropout?: number;
  /** Biases on fc1 and fc2 (default true). */
  bias?: boolean;
  /** Output width (default dim). */
  outDim?: number;
  dtype?: DType;
  device?: Device;
}

export function activate(x: Tensor, activation: Activation): Tensor {
  switch (activation) {
    case 'gelu':
      return x.gelu();
    case 'gelu_tanh':
      return x.gelu('tanh');
    case 'relu':
      return x.relu();
    default:
      throw new ArgumentError(`activation must be 'gelu', 'gelu_tanh' or 'relu', got ${String(activation)}`);
  }
}

export class MLP extends Module {
  readonly activation: Activation;
  readonly p: number;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, opts: MLPOptions = {}) {
    super();
    this.activation = opts.activation ?? 'gelu';
    if (!['gelu', 'gelu_tanh', 'relu'].includes(this.activation))
      throw new ArgumentError(`MLP: activation must be 'gelu', 'gelu_tanh' or 'relu', got ${String(this.activation)}`);
    this.p = opts.dropout ?? 0;
    if (!(this.p >= 0 && this.p <= 1)) throw new ArgumentError(`MLP: dropout must be a probability in [0, 1], got ${String(this.p)}`);
    const lin = { bias: opts.bias ?? true, dtype: opts.dtype, device: opts.device };
    this.fc1 = this.child('fc1', new Linear(dim, hidden, lin));
    this.fc2 = this.child('fc2', new Linear(hidden, opts.outDim ?? dim, lin));
  }

  /** x [..., dim] -> [..., outDim]. */
  forward(x: Tensor): Tensor {
    let h = activate(this.fc1.forward(x), this.activation);
    h = dropout(h, this.p, this.training);
    return dropout(this.fc2.forward(h), this.p, this.training);
  }
}
