// EMACodebook: the quantiser of the VQ-VAE tokenizer. Each code vector z (a row of [M, D]) is
// replaced by its nearest codebook entry e_k, k = argmin_k ||z - e_k||^2, and the codebook is
// learned by exponential moving averages of the vectors assigned to each code (van den Oord et
// al. 2017, appendix A.1; Razavi et al. 2019), NOT by gradient descent:
//
//   N_k <- decay * N_k + (1 - decay) * n_k                   (n_k: how many z picked code k)
//   m_k <- decay * m_k + (1 - decay) * sum_{z -> k} z
//   e_k <- m_k / N~_k,   N~_k = (N_k + eps) / (sum N + K eps) * sum N   (Laplace smoothing)
//
// Why it is shaped this way:
// - Distances are one engine matmul: ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, and ||z||^2 does
//   not change the argmin, so only z @ E^T [M, K] and ||e||^2 [K] are read back; the engine has
//   no argmin, so the argmin is one pass over that small matrix in JS.
// - The codebook, N and m are buffers (saved in the state dict, never seen by an optimizer); the
//   EMA update runs under noGrad with engine ops (scatterAdd sums the assigned vectors) and is
//   copied in place into the buffers, so a training step allocates nothing that outlives it.
// - Dead codes: a code no batch has picked for `deadAfter` updates is restarted at a random
//   encoder output of the current batch (Dhariwal et al. 2020, Jukebox), with N_k = 1. The very
//   first update initialises the whole codebook this way (data-dependent init), recorded in the
//   `initialized` buffer so that a loaded codebook is never re-initialised.
// - unitNorm: with l2-normalised inputs the codes are re-normalised after each EMA step, so the
//   nearest code is the one of highest cosine similarity (Yu et al. 2022, ViT-VQGAN).
// - Randomness for restarts comes from a small seeded JS generator, so training is reproducible.

import { ArgumentError, ShapeError } from '../../errors';
import { noGrad } from '../../autograd';
import { Module } from '../../nn/module';
import { tensor, zeros } from '../../ops/creation';
import { embedding } from '../../ops/indexing';
import { normalize } from '../../ops/normalize';
import { Tensor } from '../../tensor';
import '../../tensor_methods';
import { SplitMix32 } from '../batcher';

export interface EMACodebookOptions {
  /** EMA decay of the cluster sizes and sums (default 0.99). */
  decay?: number;
  /** Laplace smoothing of the cluster sizes (default 1e-5). */
  epsilon?: number;
  /** Restart a code after this many updates without any assignment (default 20). */
  deadAfter?: number;
  /** Seed of the generator picking restart vectors (default 0). */
  seed?: number;
  /**
   * Keep every code on the unit sphere (re-normalised after each EMA step), for inputs that are
   * l2-normalised too (default false).
   */
  unitNorm?: boolean;
}

/** The result of quantising [M, D] code vectors. */
export interface Quantized {
  /** Nearest codebook vectors, [M, D], no gradient. */
  q: Tensor;
  /** Index of the nearest code per row, int32 [M]. */
  codes: Tensor;
  /** The same indices in JS. */
  codesArray: Int32Array;
}

/** Usage statistics of a code histogram. */
export interface CodeUsage {
  /** Codes picked at least once. */
  used: number;
  /** used / codebookSize. */
  usage: number;
  /** exp(entropy of the code histogram): the effective number of codes. */
  perplexity: number;
}

/** Fraction of codes used and perplexity exp(H) of the codes in `codes`. */
export function codeUsage(codes: ArrayLike<number>, codebookSize: number): CodeUsage {
  const hist = new Float64Array(codebookSize);
  for (let i = 0; i < codes.length; i++) hist[codes[i]]++;
  let used = 0;
  let h = 0;
  for (const c of hist) {
    if (c === 0) continue;
    used++;
    const p = c / codes.length;
    h -= p * Math.log(p);
  }
  return { used, usage: used / codebookSize, perplexity: Math.exp(h) };
}

/** Uniform draws in [0, 1) from the data layer's seeded counter-based generator. */
function makeRng(seed: number): () => number {
  const g = new SplitMix32((seed ^ 0x9e3779b9) >>> 0);
  return () => g.nextUint32() / 4294967296;
}

export class EMACodebook extends Module {
  readonly size: number;
  readonly dim: number;
  readonly decay: number;
  readonly epsilon: number;
  readonly deadAfter: number;
  readonly unitNorm: boolean;
  /** The codebook E, [size, dim]. */
  readonly embed: Tensor;
  /** EMA cluster sizes N, [size]. */
  readonly cluster_size: Tensor;
  /** EMA sums of assigned vectors m, [size, dim]. */
  readonly embed_avg: Tensor;
  /** [1]: 1 once the codebook was initialised from data. */
  readonly initialized: Tensor;
  /** Updates since each code was last picked (training bookkeeping, not saved). */
  private readonly idle: Int32Array;
  private readonly rng: () => number;
  /** Codes restarted so far (for progress output). */
  restarts = 0;

  constructor(size: number, dim: number, opts: EMACodebookOptions = {}) {
    super();
    if (!Number.isInteger(size) || size < 2) throw new ArgumentError(`EMACodebook: size must be an integer >= 2, got ${String(size)}`);
    if (!Number.isInteger(dim) || dim < 1) throw new ArgumentError(`EMACodebook: dim must be a positive integer, got ${String(dim)}`);
    this.size = size;
    this.dim = dim;
    this.decay = opts.decay ?? 0.99;
    this.epsilon = opts.epsilon ?? 1e-5;
    this.deadAfter = opts.deadAfter ?? 20;
    this.unitNorm = opts.unitNorm ?? false;
    if (!(this.decay >= 0 && this.decay < 1)) throw new ArgumentError(`EMACodebook: decay must be in [0, 1), got ${String(this.decay)}`);
    if (!(this.epsilon > 0)) throw new ArgumentError(`EMACodebook: epsilon must be > 0, got ${String(this.epsilon)}`);
    if (!Number.isInteger(this.deadAfter) || this.deadAfter < 1)
      throw new ArgumentError(`EMACodebook: deadAfter must be a positive integer, got ${String(this.deadAfter)}`);
    this.embed = this.buffer('embed', zeros([size, dim]));
    this.cluster_size = this.buffer('cluster_size', zeros([size]));
    this.embed_avg = this.buffer('embed_avg', zeros([size, dim]));
    this.initialized = this.buffer('initialized', zeros([1]));
    this.idle = new Int32Array(size);
    this.rng = makeRng(opts.seed ?? 0);
  }

  get isInitialized(): boolean {
    return this.initialized.item() > 0;
  }

  private checkInput(z: Tensor, op: string): void {
    if (z.ndim !== 2 || z.shape[1] !== this.dim || z.dtype !== 'float32')
      throw new ShapeError(`EMACodebook.${op}: z must be float32 [M, ${this.dim}], got ${z.describe()}`);
  }

  /** Nearest code for each row of z [M, D] (no gradient flows through this). */
  quantize(z: Tensor): Quantized {
    this.checkInput(z, 'quantize');
    return noGrad(() => {
      const m = z.shape[0];
      const k = this.size;
      const scores = z.detach().matmul(this.embed.T).toTypedArray() as Float32Array; // [M, K]
      const e2 = this.embed.pow(2).sum(1).toTypedArray() as Float32Array; // [K]
      const codesArray = new Int32Array(m);
      for (let i = 0; i < m; i++) {
        const row = i * k;
        let best = 0;
        let bestD = e2[0] - 2 * scores[row];
        for (let j = 1; j < k; j++) {
          const d = e2[j] - 2 * scores[row + j];
          if (d < bestD) {
            bestD = d;
            best = j;
          }
        }
        codesArray[i] = best;
      }
      const codes = tensor(codesArray, { dtype: 'int32', shape: [m] });
      return { q: embedding(this.embed, codes), codes, codesArray };
    });
  }

  /** Code vectors of `codes` (int32, any shape) -> [...codes.shape, D]. */
  lookup(codes: Tensor): Tensor {
    return noGrad(() => embedding(this.embed, codes));
  }

  /**
   * One EMA update from the batch's code vectors z [M, D] and their assignments; restarts dead
   * codes. The first call initialises every code from random rows of z.
   */
  update(z: Tensor, q: Quantized): void {
    this.checkInput(z, 'update');
    const m = z.shape[0];
    if (q.codesArray.length !== m) throw new ShapeError(`EMACodebook.update: ${q.codesArray.length} codes for ${m} vectors`);
    noGrad(() => {
      const zd = z.detach().contiguous();
      if (!this.isInitialized) {
        this.restart(zd, Array.from({ length: this.size }, (_, i) => i));
        this.initialized.copy_(tensor([1], { shape: [1] }));
        return;
      }
      const counts = new Float32Array(this.size);
      for (const c of q.codesArray) counts[c]++;
      const index = q.codes.reshape([m, 1]).expand([m, this.dim]);
      const sums = zeros([this.size, this.dim]).scatterAdd(0, index, zd);
      const d = this.decay;
      const cs = this.cluster_size.mul(d).add(tensor(counts).mul(1 - d));
      const avg = this.embed_avg.mul(d).add(sums.mul(1 - d));
      const n = cs.sum();
      const smoothed = cs.add(this.epsilon).div(n.add(this.size * this.epsilon)).mul(n);
      this.cluster_size.copy_(cs);
      this.embed_avg.copy_(avg);
      const e = avg.div(smoothed.unsqueeze(1));
      this.embed.copy_(this.unitNorm ? normalize(e, 2, 1) : e);
      const dead: number[] = [];
      for (let k = 0; k < this.size; k++) {
        this.idle[k] = counts[k] > 0 ? 0 : this.idle[k] + 1;
        if (this.idle[k] >= this.deadAfter) dead.push(k);
      }
      if (dead.length) this.restart(zd, dead);
    });
  }

  /** Set each code in `which` to a random row of z (N = 1, m = e). */
  private restart(z: Tensor, which: number[]): void {
    const m = z.shape[0];
    const zs = z.toTypedArray() as Float32Array;
    const e = this.embed.toTypedArray() as Float32Array;
    const avg = this.embed_avg.toTypedArray() as Float32Array;
    const cs = this.cluster_size.toTypedArray() as Float32Array;
    const dim = this.dim;
    for (const k of which) {
      const r = Math.min(m - 1, Math.floor(this.rng() * m));
      const row = zs.subarray(r * dim, (r + 1) * dim);
      e.set(row, k * dim);
      avg.set(row, k * dim);
      cs[k] = 1;
      this.idle[k] = 0;
    }
    this.restarts += which.length;
    this.embed.copy_(tensor(e, { shape: [this.size, dim] }));
    this.embed_avg.copy_(tensor(avg, { shape: [this.size, dim] }));
    this.cluster_size.copy_(tensor(cs, { shape: [this.size] }));
  }
}
