// SOTAlign (Roschmann, Krzakala, Mazelet, Bouniot, Akata 2026, "SOTAlign: Semi-Supervised
// Alignment of Unimodal Vision and Language Models via Optimal Transport", arXiv:2602.23353; the
// two-stage method of its method section): align two FROZEN, separately pretrained encoders
// (./unimodal_pretrain.ts) with light alignment heads, from a few image-text pairs and many
// unpaired images and texts. As implemented here:
//
// Frozen features x = ViT(image) in R^dx, y = Text(caption) in R^dy (never trained here). The
// first nPairs training items are the pairs (x_p, y_p), one caption each; every training item's
// image and (another) caption form the unpaired pools, drawn so a batch's images and texts come
// from different items (a fixed random permutation of the texts).
//
// (1) Linear teacher, closed form (regularised CCA): with the means mu and covariances S of the
//     UNPAIRED pools, S_x <- S_x + r tr(S_x)/dx I (same for y), whitening W_x = S_x^-1/2,
//     W_y = S_y^-1/2 (Jacobi eigendecomposition), the paired cross-covariance
//     M = (1/n) sum_p W_x (x_p - mu_x) (W_y (y_p - mu_y))^T = U S V^T (top k), the teacher maps
//     t_x(x) = S^1/2 U^T W_x (x - mu_x),  t_y(y) = S^1/2 V^T W_y (y - mu_y),
//     so <t_x(x), t_y(y)> is the CCA similarity weighted by the canonical correlations.
//     Teacher similarity on an unpaired batch: Kstar_ij = cos(t_x(x_i), t_y(y_j)).
// (2) Student: alignment heads f (images) and g (texts), Linear (or a 2-layer MLP) on the
//     standardised frozen features, L2-normalised; K_ij = <f(x_i), g(y_j)>.
//     Loss per step, on B unpaired images and B unpaired texts plus a batch of pairs:
//       L = CLIP(f(x_p), g(y_p); logit_scale)  +  lambda KLOT(Kstar, K)
//     KLOT(Kstar, K) = KL(P* || P), P* the entropic OT plan (uniform marginals) of cost -Kstar
//     at epsStar (0.005, sharp), P the plan of -K at eps (0.05) (ts.losses.klot; float64);
//     its gradient (P - P*) / eps transfers the teacher's relational structure to the heads
//     without forcing K = Kstar. lambda = 0 is the "heads on the pairs only" baseline.
// The trainable model is ONLY the heads (+ the contrastive temperature, clamped at 100); the
// encoders are pretrained once in the constructor (deterministic in ctx.seed, whatever the global
// RNG state) and are not saved in checkpoints: they are rebuilt, identically, on resume / eval.

import { Tensor } from '../tensor';
import '../tensor_methods';
import { noGrad } from '../autograd';
import { scope, keep } from '../scope';
import { tensor } from '../ops/creation';
import { copy_ } from '../ops/view';
import { cat } from '../ops/concat';
import { normalize } from '../ops/normalize';
import { ArgumentError } from '../errors';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { MLP } from '../nn/mlp';
import { VisionTransformer } from '../nn/vit';
import { TextTransformer } from '../nn/text';
import { clipLossFused } from '../losses/contrastive';
import { klot } from '../losses/ot';
import { imageBatchToTensor } from '../data/image_batch';
import { shuffledIndices } from '../data/batcher';
import { getRngState, manualSeed, setRngState } from '../random';
import { stepIndices } from '../training/loop';
import { MODEL_PRESETS } from './dual_encoder';
import { Method, MethodContext } from './method';
import { tokenize } from './text_batch';
import { pretrainImageEncoder, pretrainTextEncoder } from './unimodal_pretrain';

const MAX_LOGIT_SCALE = Math.log(100);

export interface FrozenEncoders {
  visual: VisionTransformer;
  text: TextTransformer;
}

export interface SotalignOptions {
  /** Encoder / joint-space size (MODEL_PRESETS of the dual encoder). */
  preset: 'tiny' | 'small' | 'base';
  /** Paired training items (the first nPairs); must be >= 2 and <= the training size. */
  nPairs: number;
  /** Weight lambda of KLOT (default 1; 0: contrastive on the pairs only). */
  klotWeight?: number;
  epsStar?: number;
  eps?: number;
  head?: 'linear' | 'mlp';
  /** Pairs per step for the contrastive term (default min(128, nPairs)). */
  pairBatch?: number;
  /** CCA ridge r (default 0.1) and teacher rank k (default the joint dimension). */
  ridge?: number;
  teacherDim?: number;
  /** Unimodal pretraining: steps per encoder (default 300), batch (128), lr (1e-3). */
  pretrainSteps?: number;
  pretrainBatch?: number;
  pretrainLr?: number;
  /** Reuse encoders pretrained by another instance (same data set, tokenizer and preset). */
  encoders?: FrozenEncoders;
  log?: (line: string) => void;
}

// ---- small dense linear algebra (Float64, row-major) for the closed-form teacher ----

/** Symmetric eigendecomposition by cyclic Jacobi: values descending, vectors as columns of V [n, n]. */
export function symmetricEigen(A: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  if (A.length !== n * n) throw new ArgumentError(`symmetricEigen: A has ${A.length} entries, expected ${n}x${n}`);
  const a = Float64Array.from(A);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, tot = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { const x = a[i * n + j] ** 2; tot += x; if (i !== j) off += x; }
    if (off <= 1e-22 * tot) break;
    for (let p = 0; p < n - 1; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const kp = a[k * n + p], kq = a[k * n + q];
          a[k * n + p] = c * kp - s * kq; a[k * n + q] = s * kp + c * kq;
          const vp = v[k * n + p], vq = v[k * n + q];
          v[k * n + p] = c * vp - s * vq; v[k * n + q] = s * vp + c * vq;
        }
        for (let k = 0; k < n; k++) {
          const pk = a[p * n + k], qk = a[q * n + k];
          a[p * n + k] = c * pk - s * qk; a[q * n + k] = s * pk + c * qk;
        }
      }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => { for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src]; });
  return { values, vectors };
}

function matmulF64(A: Float64Array, B: Float64Array, n: number, k: number, m: number): Float64Array {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let l = 0; l < k; l++) { const x = A[i * k + l]; if (x !== 0) for (let j = 0; j < m; j++) C[i * m + j] += x * B[l * m + j]; }
  return C;
}

function transposeF64(A: Float64Array, n: number, m: number): Float64Array {
  const T = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) T[j * n + i] = A[i * m + j];
  return T;
}

/** Mean [d] and (ridge-regularised) inverse square root of the covariance [d, d] of rows X [n, d]. */
function whitening(X: Float32Array, n: number, d: number, ridge: number): { mu: Float64Array; W: Float64Array } {
  const mu = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += X[i * d + j] / n;
  const S = new Float64Array(d * d);
  for (let i = 0; i < n; i++)
    for (let a = 0; a < d; a++) { const xa = X[i * d + a] - mu[a]; for (let b = a; b < d; b++) S[a * d + b] += xa * (X[i * d + b] - mu[b]); }
  let tr = 0;
  for (let a = 0; a < d; a++) { for (let b = a; b < d; b++) { S[a * d + b] /= n - 1; S[b * d + a] = S[a * d + b]; } tr += S[a * d + a]; }
  for (let a = 0; a < d; a++) S[a * d + a] += (ridge * tr) / d + 1e-12;
  const { values, vectors } = symmetricEigen(S, d);
  const W = new Float64Array(d * d);
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) { let s = 0; for (let k = 0; k < d; k++) s += (vectors[a * d + k] * vectors[b * d + k]) / Math.sqrt(values[k]); W[a * d + b] = s; }
  return { mu, W };
}

/** The linear teacher: t(z) = (z - mu) A for each modality; canonical correlations rho. */
export interface LinearTeacher {
  muX: Tensor; ax: Tensor; muY: Tensor; ay: Tensor;
  rho: Float64Array;
}

/**
 * Regularised CCA teacher (see the top of the file) from unpaired pools X [nx, dx], Y [ny, dy]
 * (means, covariances) and pairs Xp [n, dx], Yp [n, dy] (cross-covariance), rank k.
 */
export function fitLinearTeacher(X: Float32Array, Y: Float32Array, Xp: Float32Array, Yp: Float32Array, dx: number, dy: number, k: number, ridge: number): LinearTeacher {
  const op = 'fitLinearTeacher';
  const n = Xp.length / dx;
  if (!Number.isInteger(n) || Yp.length !== n * dy || n < 2) throw new ArgumentError(`${op}: pairs Xp [${Xp.length / dx}, ${dx}] and Yp [${Yp.length / dy}, ${dy}] must have the same number (>= 2) of rows`);
  if (X.length % dx || Y.length % dy) throw new ArgumentError(`${op}: X (${X.length}) / Y (${Y.length}) are not multiples of dx ${dx} / dy ${dy}`);
  if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(dx, dy))) throw new ArgumentError(`${op}: rank k must be an integer in [1, ${Math.min(dx, dy)}], got ${k}`);
  const wx = whitening(X, X.length / dx, dx, ridge);
  const wy = whitening(Y, Y.length / dy, dy, ridge);
  const center = (Z: Float32Array, mu: Float64Array, d: number) => Float64Array.from(Z, (z, i) => z - mu[i % d]);
  const xw = matmulF64(center(Xp, wx.mu, dx), wx.W, n, dx, dx);
  const yw = matmulF64(center(Yp, wy.mu, dy), wy.W, n, dy, dy);
  const M = matmulF64(transposeF64(xw, n, dx), yw, dx, n, dy).map((v) => v / n);
  const { values, vectors: V } = symmetricEigen(matmulF64(transposeF64(M, dx, dy), M, dy, dx, dy), dy);
  const MV = matmulF64(M, V, dx, dy, dy);
  const U = new Float64Array(dx * k), Vk = new Float64Array(dy * k), rho = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const s = Math.sqrt(Math.max(values[j], 1e-24));
    rho[j] = s;
    const w = Math.sqrt(s);
    for (let a = 0; a < dx; a++) U[a * k + j] = (MV[a * dy + j] / s) * w;
    for (let b = 0; b < dy; b++) Vk[b * k + j] = V[b * dy + j] * w;
  }
  const t = (data: Float64Array, shape: number[]) => keep(tensor(Float32Array.from(data), { shape }));
  return {
    muX: t(wx.mu, [dx]), ax: t(matmulF64(wx.W, U, dx, dx, k), [dx, k]),
    muY: t(wy.mu, [dy]), ay: t(matmulF64(wy.W, Vk, dy, dy, k), [dy, k]),
    rho,
  };
}

// ---- the trainable alignment heads ----

export class AlignmentHeads extends Module {
  readonly image_head: Linear | MLP;
  readonly text_head: Linear | MLP;
  readonly logit_scale: Tensor;
  /** Standardisation of the frozen features (fixed, from the unpaired pools). */
  readonly image_mu: Tensor; readonly image_sd: Tensor; readonly text_mu: Tensor; readonly text_sd: Tensor;

  constructor(dx: number, dy: number, dim: number, kind: 'linear' | 'mlp', stats: { imageMu: Tensor; imageSd: Tensor; textMu: Tensor; textSd: Tensor }) {
    super();
    const head = (d: number) => (kind === 'mlp' ? new MLP(d, 2 * dim, { outDim: dim }) : new Linear(d, dim));
    this.image_head = this.child('image_head', head(dx));
    this.text_head = this.child('text_head', head(dy));
    this.logit_scale = this.param('logit_scale', tensor(Math.log(1 / 0.07)));
    this.image_mu = this.buffer('image_mu', stats.imageMu); this.image_sd = this.buffer('image_sd', stats.imageSd);
    this.text_mu = this.buffer('text_mu', stats.textMu); this.text_sd = this.buffer('text_sd', stats.textSd);
  }

  /** L2-normalised joint embeddings of frozen image features [B, dx]. */
  images(x: Tensor): Tensor {
    return normalize(this.image_head.forward(x.sub(this.image_mu).div(this.image_sd)), 2, -1);
  }

  texts(y: Tensor): Tensor {
    return normalize(this.text_head.forward(y.sub(this.text_mu).div(this.text_sd)), 2, -1);
  }
}

class NoParameters extends Module {}

function columnStats(Z: Float32Array, d: number): { mu: Tensor; sd: Tensor } {
  const n = Z.length / d;
  const mu = new Float32Array(d), sd = new Float32Array(d);
  for (let i = 0; i < Z.length; i++) mu[i % d] += Z[i] / n;
  for (let i = 0; i < Z.length; i++) sd[i % d] += (Z[i] - mu[i % d]) ** 2 / n;
  return { mu: tensor(mu), sd: tensor(sd.map((v) => Math.sqrt(v) + 1e-6)) };
}

export class SotalignMethod implements Method {
  readonly name = 'sotalign';
  readonly model: AlignmentHeads;
  readonly encoders: FrozenEncoders;
  readonly teacher: LinearTeacher;
  readonly nPairs: number;
  private readonly klotWeight: number;
  private readonly epsStar: number;
  private readonly eps: number;
  private readonly pairBatch: number;
  /** Frozen features: unpaired images / texts of every training item, and the pairs. */
  private readonly imageFeats: Tensor;
  private readonly textFeats: Tensor;
  private readonly pairImageFeats: Tensor;
  private readonly pairTextFeats: Tensor;
  private readonly textPerm: Int32Array;
  private readonly pairCache = new Map<number, Int32Array>();
  private last: Record<string, number> = {};

  constructor(readonly ctx: MethodContext, opts: SotalignOptions) {
    const ds = ctx.dataset;
    const p = MODEL_PRESETS[opts.preset];
    if (!p) throw new ArgumentError(`sotalign: preset must be tiny, small or base, got ${String(opts.preset)}`);
    if (!(Number.isInteger(opts.nPairs) && opts.nPairs >= 2 && opts.nPairs <= ds.trainSize))
      throw new ArgumentError(`sotalign: nPairs must be an integer in [2, ${ds.trainSize}] (the training size), got ${String(opts.nPairs)}`);
    this.nPairs = opts.nPairs;
    this.klotWeight = opts.klotWeight ?? 1;
    this.epsStar = opts.epsStar ?? 0.005;
    this.eps = opts.eps ?? 0.05;
    this.pairBatch = Math.min(opts.pairBatch ?? 128, this.nPairs);
    if (!(this.klotWeight >= 0)) throw new ArgumentError(`sotalign: klotWeight must be >= 0, got ${String(opts.klotWeight)}`);
    const log = opts.log ?? (() => undefined);
    const dim = p.embedDim;
    const patch = ds.imageSize % p.patchSize === 0 ? p.patchSize : ds.imageSize % 7 === 0 ? 7 : 4;
    if (opts.encoders) this.encoders = opts.encoders;
    else {
      const pre = { featureDim: dim, steps: opts.pretrainSteps ?? 300, batchSize: Math.min(opts.pretrainBatch ?? 128, ds.trainSize), lr: opts.pretrainLr ?? 1e-3, seed: ctx.seed };
      const t0 = Date.now();
      // Seeded here (and the caller's RNG state restored) so `tessera eval` rebuilds the very
      // encoders the heads were trained on, whatever the RNG state it builds the method in.
      const rngBefore = getRngState();
      manualSeed(ctx.seed + 1_000_003);
      const visual = pretrainImageEncoder(ds, patch, { ...pre, tower: p.vision, log: (s, l) => log(`image pretrain ${s}: NT-Xent ${l.toFixed(3)}`) }).encoder;
      const text = pretrainTextEncoder(ds, ctx.tokenizer, ctx.contextLength, { ...pre, tower: p.text, log: (s, l) => log(`text pretrain ${s}: NT-Xent ${l.toFixed(3)}`) }).encoder;
      this.encoders = { visual, text };
      setRngState(rngBefore);
      log(`unimodal pretraining: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    }
    // Frozen features of the pools (one caption per item, draw 1) and of the pairs (draw 0).
    const all = Array.from({ length: ds.trainSize }, (_, i) => i);
    const pairs = all.slice(0, this.nPairs);
    this.imageFeats = keep(this.frozenImageFeatures(all));
    this.textFeats = keep(this.frozenTextFeatures(all, 1));
    this.pairImageFeats = keep(this.imageFeats.slice(0, 0, this.nPairs).contiguous());
    this.pairTextFeats = keep(this.frozenTextFeatures(pairs, 0));
    this.textPerm = shuffledIndices(ds.trainSize, ctx.seed + 104729, 0);
    const X = this.imageFeats.toTypedArray() as Float32Array, Y = this.textFeats.toTypedArray() as Float32Array;
    const dx = this.imageFeats.shape[1], dy = this.textFeats.shape[1];
    this.teacher = fitLinearTeacher(X, Y, this.pairImageFeats.toTypedArray() as Float32Array, this.pairTextFeats.toTypedArray() as Float32Array,
      dx, dy, opts.teacherDim ?? Math.min(dim, dx, dy), opts.ridge ?? 0.1);
    log(`linear teacher: top canonical correlations ${Array.from(this.teacher.rho.slice(0, 4), (r) => r.toFixed(3)).join(', ')}`);
    const sx = columnStats(X, dx), sy = columnStats(Y, dy);
    this.model = new AlignmentHeads(dx, dy, dim, opts.head ?? 'linear', { imageMu: sx.mu, imageSd: sx.sd, textMu: sy.mu, textSd: sy.sd });
  }

  private frozenImageFeatures(indices: number[]): Tensor {
    const parts: Tensor[] = [];
    for (let s = 0; s < indices.length; s += 256)
      parts.push(keep(noGrad(() => scope(() => this.encoders.visual.forward(imageBatchToTensor(this.ctx.dataset.trainItems(indices.slice(s, s + 256), 0, 0).images)).pooled))));
    const out = cat(parts, 0);
    parts.forEach((t) => t.dispose());
    return out;
  }

  private frozenTextFeatures(indices: number[], draw: number): Tensor {
    const parts: Tensor[] = [];
    for (let s = 0; s < indices.length; s += 512) {
      const texts = this.ctx.dataset.trainItems(indices.slice(s, s + 512), draw, 1).captions.map((c) => c[0]);
      parts.push(keep(noGrad(() => scope(() => this.frozenText(texts)))));
    }
    const out = cat(parts, 0);
    parts.forEach((t) => t.dispose());
    return out;
  }

  private frozenText(texts: string[]): Tensor {
    const { tokens, eot } = tokenize(this.ctx.tokenizer, texts, this.ctx.contextLength);
    return this.encoders.text.forward(tokens, { eotIndex: eot }).pooled;
  }

  /** Teacher embeddings t_x(x), t_y(y), L2-normalised. */
  teacherImages(x: Tensor): Tensor {
    return normalize(x.sub(this.teacher.muX).matmul(this.teacher.ax), 2, -1);
  }

  teacherTexts(y: Tensor): Tensor {
    return normalize(y.sub(this.teacher.muY).matmul(this.teacher.ay), 2, -1);
  }

  trainingLoss(indices: readonly number[], step: number): Tensor {
    const pidx = tensor(stepIndices(this.nPairs, this.pairBatch, this.ctx.seed + 13, step, this.pairCache), { dtype: 'int32' });
    const fp = this.model.images(this.pairImageFeats.indexSelect(0, pidx));
    const gp = this.model.texts(this.pairTextFeats.indexSelect(0, pidx));
    const scale = this.model.logit_scale.item();
    if (scale > MAX_LOGIT_SCALE) noGrad(() => copy_(this.model.logit_scale, tensor(MAX_LOGIT_SCALE)));
    const contrastive = clipLossFused(fp, gp, this.model.logit_scale);
    this.last = { contrastive: contrastive.item(), temperature: Math.exp(Math.min(scale, MAX_LOGIT_SCALE)) };
    if (this.klotWeight === 0) return contrastive;
    const xu = this.imageFeats.indexSelect(0, tensor(Array.from(indices), { dtype: 'int32' }));
    const yu = this.textFeats.indexSelect(0, tensor(indices.map((i) => this.textPerm[i]), { dtype: 'int32' }));
    const Kstar = noGrad(() => this.teacherImages(xu).matmul(this.teacherTexts(yu).T).to('float64'));
    const K = this.model.images(xu).matmul(this.model.texts(yu).T).to('float64');
    const kl = klot(Kstar, K, { epsStar: this.epsStar, eps: this.eps }).to('float32');
    this.last.klot = kl.item();
    return contrastive.add(kl.mul(this.klotWeight));
  }

  logs(): Record<string, number> {
    return this.last;
  }

  encodeImages(images: Tensor): Tensor {
    return this.model.images(noGrad(() => this.encoders.visual.forward(images).pooled));
  }

  encodeTexts(texts: string[]): Tensor {
    return this.model.texts(noGrad(() => this.frozenText(texts)));
  }

  /** Baseline (a): the linear teacher alone as a Method (no trainable parameters). */
  teacherMethod(): Method {
    const model = new NoParameters();
    return {
      name: 'sotalign-teacher', model,
      trainingLoss: () => { throw new ArgumentError('sotalign-teacher: the linear teacher is fitted in closed form; it has no training loss'); },
      encodeImages: (images) => this.teacherImages(noGrad(() => this.encoders.visual.forward(images).pooled)),
      encodeTexts: (texts) => this.teacherTexts(noGrad(() => this.frozenText(texts))),
    };
  }
}
