// Linear: y = x W^T + b, with W kept in torch's [out, in] layout.
//
// Why [out, in] and not [in, out] (which would make the forward a plain x.matmul(W)): the state
// dict then maps 1:1, with no transposes, to torch.nn.Linear and to every checkpoint built on it
// (OpenCLIP, timm), and the fans torch's default init uses come out the same. It costs nothing:
// W.T is a strided view and the matmul kernel reads transposed operands directly, without a copy.
//
// Inputs with more than two dims are flattened to [rows, in] first (free for a contiguous x), so
// the forward is one 2-D GEMM and the weight gradient one GEMM over all rows, instead of a
// batched product against a broadcast weight whose per-batch gradients must then be summed.

import { DType, Device } from '../dtype';
import { ShapeError, ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { Module } from './module';
import { linearBiasInit, linearWeightInit } from './init';

export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  dtype?: DType;
  device?: Device;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** [outFeatures, inFeatures], as torch.nn.Linear.weight. */
  readonly weight: Tensor;
  /** [outFeatures], or null with bias: false. */
  readonly bias: Tensor | null;

  /** torch.nn.Linear(in, out, bias): weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)) (torch's default). */
  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    for (const [k, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const)
      if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`Linear: ${k} must be a positive integer, got ${String(v)}`);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const o = { dtype: opts.dtype ?? 'float32', device: opts.device };
    this.weight = this.param('weight', linearWeightInit(outFeatures, inFeatures, o));
    this.bias = (opts.bias ?? true) ? this.param('bias', linearBiasInit(outFeatures, inFeatures, o)) : this.noParam('bias');
  }

  /** x [..., in] -> [..., out]. */
  forward(x: Tensor): Tensor {
    if (x.ndim === 0 || x.shape[x.ndim - 1] !== this.inFeatures)
      throw new ShapeError(`Linear(${this.inFeatures} -> ${this.outFeatures}): input ${x.describe()} must have last dim ${this.inFeatures}`);
    const lead = x.shape.slice(0, -1);
    const x2 = x.ndim > 2 ? x.reshape([-1, this.inFeatures]) : x;
    let y = x2.matmul(this.weight.T);
    if (this.bias) y = y.add(this.bias);
    return x.ndim > 2 ? y.reshape([...lead, this.outFeatures]) : y;
  }
}
