// Embedding: a lookup table weight [num, dim]; forward(ids) picks rows (ts.embedding), whose
// backward is a deterministic scatter-add into the rows that were used.
//
// The weight keeps torch.nn.Embedding's name and layout, so OpenCLIP's `token_embedding.weight`
// loads as is. torch initialises it N(0, 1); OpenCLIP re-initialises token embeddings with
// std 0.02, hence the `initStd` option rather than a second init pass.

import { DType, Device } from '../dtype';
import { ArgumentError } from '../errors';
import { embedding } from '../ops/indexing';
import { Tensor } from '../tensor';
import { Module } from './module';
import { normal } from './init';

export interface EmbeddingOptions {
  /** Standard deviation of the N(0, std^2) init (default 1, as torch; OpenCLIP uses 0.02). */
  initStd?: number;
  dtype?: DType;
  device?: Device;
}

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  /** [numEmbeddings, embeddingDim]. */
  readonly weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    for (const [k, v] of [['numEmbeddings', numEmbeddings], ['embeddingDim', embeddingDim]] as const)
      if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`Embedding: ${k} must be a positive integer, got ${String(v)}`);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = this.param('weight', normal([numEmbeddings, embeddingDim], 0, opts.initStd ?? 1, { dtype: opts.dtype, device: opts.device }));
  }

  /** ids: int32 of any shape, values in [0, numEmbeddings) -> [...ids.shape, embeddingDim]. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
