// LayerNorm over the trailing `normalizedShape` dims (torch.nn.LayerNorm): weight = 1, bias = 0
// at init, same names and shapes as torch, so state dicts load either way. The math is the
// fused native layerNorm op (one kernel forward, one backward for x, weight and bias).

import { DType, Device } from '../dtype';
import { ArgumentError } from '../errors';
import { layerNorm } from '../ops/layernorm';
import { Tensor } from '../tensor';
import { Module } from './module';
import { ones, zeros } from './init';

export interface LayerNormOptions {
  eps?: number;
  /** Learn a per-element scale and shift (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, also learn the shift (default true; torch >= 2.1's `bias`). */
  bias?: boolean;
  dtype?: DType;
  device?: Device;
}

export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;

  constructor(normalizedShape: number | readonly number[], opts: LayerNormOptions = {}) {
    super();
    const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (ns.length === 0 || !ns.every((s) => Number.isInteger(s) && s >= 1))
      throw new ArgumentError(`LayerNorm: normalizedShape must be a positive integer or a non-empty array of them, got ${JSON.stringify(normalizedShape)}`);
    this.normalizedShape = Object.freeze(ns);
    this.eps = opts.eps ?? 1e-5;
    const o = { dtype: opts.dtype ?? 'float32', device: opts.device };
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? this.param('weight', ones(ns, o)) : this.noParam('weight');
    this.bias = affine && (opts.bias ?? true) ? this.param('bias', zeros(ns, o)) : this.noParam('bias');
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}
