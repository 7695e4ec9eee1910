// Training and evaluation of the VQ-VAE tokenizer.
//
// trainVQVAE draws seeded random mini-batches from an in-memory pool of training images
// (an ImageBatch: the embedded world or Fashion-MNIST both fit in memory at these sizes), runs
// one AdamW step per batch inside ts.scope (so native memory stays flat) and prints a progress
// line every `logEvery` steps: loss, reconstruction MSE, batch perplexity and codebook usage.
//
// evaluateVQVAE measures what the issue asks of a tokenizer on held-out images:
// - reconstruction MSE of decode(encode(x)), next to the trivial baseline that predicts the mean
//   training image for every input (so "wide margin" has a number attached);
// - codebook usage (fraction of codes that appear) and perplexity exp(H(code histogram)).

import { ArgumentError, ShapeError } from '../../errors';
import { manualSeed } from '../../random';
import { scope } from '../../scope';
import { AdamW } from '../../optim/adamw';
import { decayGroups } from '../../optim/param_groups';
import { applyLr, cosineWithWarmup } from '../../optim/schedule';
import { checkImageBatch, gatherImageBatch, ImageBatch, imageBatchToTensor, sliceImageBatch } from '../image_batch';
import { codeUsage } from './codebook';
import { VQVAE, VQVAEConfig } from './vq_vae';
import { SplitMix32 } from '../batcher';

export interface TrainVQOptions {
  /** Model config (defaults filled in by VQVAE); image size and channels default to the data's. */
  config?: Partial<VQVAEConfig>;
  /** Optimisation steps (default 300). */
  steps?: number;
  /** Images per step (default 64). */
  batchSize?: number;
  /** Peak AdamW learning rate (default 4e-3), cosine decay after `warmup` steps (default 20). */
  lr?: number;
  warmup?: number;
  weightDecay?: number;
  /** Seeds the initialisation, batch order and codebook restarts (default 0). */
  seed?: number;
  /** Progress line every this many steps (default 50; 0 for none). */
  logEvery?: number;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

export interface VQStepStats {
  step: number;
  loss: number;
  reconMse: number;
  perplexity: number;
  usage: number;
}

export interface TrainVQResult {
  model: VQVAE;
  /** The mean training image (C*H*W, CHW): the baseline predictor. */
  meanImage: Float32Array;
  /** One entry per logged step. */
  history: VQStepStats[];
  seconds: number;
}

export interface VQEvaluation {
  /** MSE of decode(encode(x)) per pixel. */
  mse: number;
  /** MSE of predicting meanImage for every image. */
  baselineMse: number;
  /** mse / baselineMse. */
  ratio: number;
  /** Codes used at least once on these images, and that as a fraction of the codebook. */
  codesUsed: number;
  usage: number;
  /** exp(H) of the code histogram. */
  perplexity: number;
}

/** Per-pixel mean over the batch's images: Float32Array of C*H*W. */
export function meanImage(images: ImageBatch): Float32Array {
  checkImageBatch(images, 'meanImage');
  if (images.n === 0) throw new ShapeError('meanImage: the batch is empty');
  const per = images.channels * images.height * images.width;
  const acc = new Float64Array(per);
  for (let i = 0; i < images.n; i++) {
    const off = i * per;
    for (let j = 0; j < per; j++) acc[j] += images.data[off + j];
  }
  return Float32Array.from(acc, (v) => v / images.n);
}

/** Uniform draws in [0, 1) from the data layer's seeded counter-based generator. */
function batchRng(seed: number): () => number {
  const g = new SplitMix32((seed * 2654435761 + 12345) >>> 0);
  return () => g.nextUint32() / 4294967296;
}

/** Train a VQ-VAE on `train` (the whole pool is sampled with replacement across steps). */
export function trainVQVAE(train: ImageBatch, opts: TrainVQOptions = {}): TrainVQResult {
  checkImageBatch(train, 'trainVQVAE train');
  if (train.height !== train.width) throw new ShapeError(`trainVQVAE: images must be square, got ${train.height}x${train.width}`);
  const steps = opts.steps ?? 300;
  const batchSize = opts.batchSize ?? 64;
  const logEvery = opts.logEvery ?? 50;
  const seed = opts.seed ?? 0;
  const log = opts.log ?? ((line: string) => console.log(line));
  if (!Number.isInteger(steps) || steps < 1) throw new ArgumentError(`trainVQVAE: steps must be a positive integer, got ${String(steps)}`);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > train.n)
    throw new ArgumentError(`trainVQVAE: batchSize must be an integer in [1, ${train.n}] (the pool size), got ${String(batchSize)}`);
  const config = { imageSize: train.height, channels: train.channels, ...opts.config };
  if (config.imageSize !== train.height || config.channels !== train.channels)
    throw new ShapeError(`trainVQVAE: config wants ${config.channels}x${config.imageSize}x${config.imageSize} images, the data is ${train.channels}x${train.height}x${train.width}`);

  const start = Date.now();
  manualSeed(seed);
  const model = new VQVAE(config, { seed });
  model.setPixelStatistics(train);
  const opt = new AdamW(decayGroups(model, opts.weightDecay ?? 1e-4), { lr: opts.lr ?? 4e-3 });
  const warmup = Math.min(opts.warmup ?? 20, steps - 1);
  const schedule = cosineWithWarmup({ baseLr: opts.lr ?? 4e-3, warmupSteps: warmup, totalSteps: steps, minLr: (opts.lr ?? 4e-3) * 0.05 });
  const rng = batchRng(seed);
  const history: VQStepStats[] = [];
  const indices = new Int32Array(batchSize);
  for (let step = 0; step < steps; step++) {
    for (let i = 0; i < batchSize; i++) indices[i] = Math.floor(rng() * train.n);
    const batch = gatherImageBatch(train, indices);
    applyLr(opt, schedule(step));
    const stats = scope(() => {
      const x = imageBatchToTensor(batch);
      const out = model.forward(x);
      out.loss.backward();
      opt.step();
      opt.zeroGrad();
      const logNow = logEvery > 0 && ((step + 1) % logEvery === 0 || step === 0 || step === steps - 1);
      if (!logNow) return null;
      const u = codeUsage(out.codes, model.codebookSize);
      return { step: step + 1, loss: out.loss.item(), reconMse: out.reconLoss.item(), perplexity: u.perplexity, usage: u.usage };
    });
    if (stats) {
      history.push(stats);
      log(
        `vq step ${String(stats.step).padStart(5)}/${steps}  loss ${stats.loss.toFixed(5)}  recon ${stats.reconMse.toFixed(5)}  ` +
          `perplexity ${stats.perplexity.toFixed(1)}  usage ${(100 * stats.usage).toFixed(1)}%  restarts ${model.codebook.restarts}`,
      );
    }
  }
  opt.zeroGrad();
  return { model, meanImage: meanImage(train), history, seconds: (Date.now() - start) / 1000 };
}

/** Reconstruction MSE vs the mean-image baseline, codebook usage and perplexity on `images`. */
export function evaluateVQVAE(model: VQVAE, images: ImageBatch, mean: Float32Array, opts: { batchSize?: number } = {}): VQEvaluation {
  checkImageBatch(images, 'evaluateVQVAE images');
  const per = images.channels * images.height * images.width;
  if (mean.length !== per) throw new ShapeError(`evaluateVQVAE: mean image has ${mean.length} values, the images ${per} (${images.channels}x${images.height}x${images.width})`);
  if (images.n === 0) throw new ShapeError('evaluateVQVAE: no images');
  const bs = opts.batchSize ?? 256;
  const wasTraining = model.training;
  model.eval();
  let se = 0;
  let baseSe = 0;
  const codes = new Int32Array(images.n * model.tokensPerImage);
  try {
    for (let s = 0; s < images.n; s += bs) {
      const chunk = sliceImageBatch(images, s, Math.min(bs, images.n - s));
      const { rec, c } = scope(() => {
        const x = imageBatchToTensor(chunk);
        const code = model.encode(x);
        return { rec: model.decode(code).toTypedArray() as Float32Array, c: code.toTypedArray() as Int32Array };
      });
      codes.set(c, s * model.tokensPerImage);
      for (let i = 0; i < rec.length; i++) {
        const v = chunk.data[i];
        se += (rec[i] - v) ** 2;
        baseSe += (mean[i % per] - v) ** 2;
      }
    }
  } finally {
    model.train(wasTraining);
  }
  const count = images.n * per;
  const u = codeUsage(codes, model.codebookSize);
  const mse = se / count;
  const baselineMse = baseSe / count;
  return { mse, baselineMse, ratio: mse / baselineMse, codesUsed: u.used, usage: u.usage, perplexity: u.perplexity };
}
