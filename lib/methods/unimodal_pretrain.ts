// Self-supervised pretraining of the two SEPARATE unimodal encoders that SOTAlign aligns
// (Roschmann et al. 2026, arXiv:2602.23353: the method starts from frozen, independently
// pretrained vision and language models). Neither pretrainer ever sees an image-text pair.
//
//   image encoder  v = ViT(x) in R^d (the CLS token through the ViT's projection), trained with
//                  SimCLR's NT-Xent on two augmented views (lib/data/augment.ts twoViewAugment):
//                  L_img = NTXent(h(v(aug1(x))), h(v(aug2(x))); tau)
//                  The default views keep colour (hue jitter 0, saturation 0.2, no grayscale):
//                  in the embedded world colour is a semantic attribute that captions and a
//                  zero-shot task name, and SimCLR's full recipe would make the features blind
//                  to it. Pass `augment` for ITO's full recipe (hue 0.1, grayscale p 0.2).
//   text encoder   t = TextTransformer(c) in R^d (pooled at the end-of-text token), trained with
//                  NT-Xent between two different captions c, c' of the same training item (two
//                  descriptions of one scene are two "views" of its meaning; the image itself is
//                  never read):  L_txt = NTXent(h'(t(c)), h'(t(c')); tau)
// h, h' are 2-layer MLP projection heads (SimCLR) used only for the loss and then discarded;
// the encoders' d-dim outputs are the frozen features. tau = 0.2 (logitScale = log 5), AdamW.
// Every step runs inside ts.scope.

import { Tensor } from '../tensor';
import '../tensor_methods';
import { scope } from '../scope';
import { tensor } from '../ops/creation';
import { ArgumentError } from '../errors';
import { Module } from '../nn/module';
import { MLP } from '../nn/mlp';
import { VisionTransformer } from '../nn/vit';
import { TextTransformer } from '../nn/text';
import { AdamW } from '../optim/adamw';
import { cosineWithWarmup } from '../optim/schedule';
import { clipGradNorm } from '../optim/clip';
import { normalize } from '../ops/normalize';
import { ntXentLoss } from '../losses/contrastive';
import { twoViewAugment, TwoViewOptions } from '../data/augment';
import { imageBatchToTensor } from '../data/image_batch';
import { PairDataset } from '../data/pair_dataset';
import { stepIndices } from '../training/loop';
import { TowerSizes } from './dual_encoder';
import { TextTokenizer } from './method';
import { tokenize } from './text_batch';

export interface PretrainOptions {
  /** Encoder size (width, layers, heads). */
  tower: TowerSizes;
  /** Output (feature) dimension of the encoder. */
  featureDim: number;
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** NT-Xent temperature (default 0.2). */
  temperature?: number;
  /** Image views (pretrainImageEncoder; default COLOUR_PRESERVING_VIEWS; the seed is always o.seed + 1). */
  augment?: Omit<TwoViewOptions, 'seed'>;
  /** Called every 25 steps with the loss. */
  log?: (step: number, loss: number) => void;
}

export interface PretrainResult<M extends Module> {
  encoder: M;
  /** NT-Xent loss of every step. */
  losses: number[];
}

function checkOptions(o: PretrainOptions, op: string, trainSize: number): void {
  for (const k of ['featureDim', 'steps', 'batchSize'] as const)
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new ArgumentError(`${op}: ${k} must be a positive integer, got ${String(o[k])}`);
  if (o.batchSize < 2) throw new ArgumentError(`${op}: batchSize must be >= 2 (NT-Xent needs negatives), got ${o.batchSize}`);
  if (o.batchSize > trainSize) throw new ArgumentError(`${op}: batchSize ${o.batchSize} exceeds the ${trainSize} training items`);
  if (!(o.lr > 0)) throw new ArgumentError(`${op}: lr must be > 0, got ${String(o.lr)}`);
}

/** The NT-Xent loop shared by both pretrainers: `views(indices, step)` gives the two [B, D] projections. */
function ntXentLoop(params: Tensor[], o: PretrainOptions, trainSize: number, views: (idx: number[], step: number) => [Tensor, Tensor]): number[] {
  const opt = new AdamW(params, { lr: o.lr, betas: [0.9, 0.98], eps: 1e-6, weightDecay: 0.05 });
  const schedule = cosineWithWarmup({ baseLr: o.lr, warmupSteps: Math.min(20, o.steps - 1), totalSteps: o.steps });
  const scale = tensor(Math.log(1 / (o.temperature ?? 0.2)));
  const cache = new Map<number, Int32Array>();
  const losses: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    const idx = stepIndices(trainSize, o.batchSize, o.seed + 7919, step, cache);
    opt.lr = schedule(step);
    const loss = scope(() => {
      const [z1, z2] = views(idx, step);
      const l = ntXentLoss(normalize(z1, 2, -1), normalize(z2, 2, -1), scale);
      l.backward();
      clipGradNorm(params, 1.0);
      opt.step();
      opt.zeroGrad();
      return l.item();
    });
    if (!Number.isFinite(loss)) throw new Error(`unimodal pretraining diverged: NT-Xent loss ${loss} at step ${step} (lower lr)`);
    losses.push(loss);
    if (o.log && ((step + 1) % 25 === 0 || step + 1 === o.steps)) o.log(step + 1, loss);
  }
  scale.dispose();
  return losses;
}

/** Crop 0.5-1, flip, brightness/contrast 0.4, saturation 0.2, no hue jitter, no grayscale. */
export const COLOUR_PRESERVING_VIEWS: Omit<TwoViewOptions, 'seed'> = Object.freeze({
  scale: [0.5, 1] as const, jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0 }, jitterP: 0.8, grayscaleP: 0,
});

/** SimCLR pretraining of a ViT on the data set's training images (no captions are read). */
export function pretrainImageEncoder(dataset: PairDataset, patchSize: number, o: PretrainOptions): PretrainResult<VisionTransformer> {
  const op = 'pretrainImageEncoder';
  checkOptions(o, op, dataset.trainSize);
  const encoder = new VisionTransformer({
    imageSize: dataset.imageSize, patchSize, channels: dataset.channels,
    width: o.tower.width, layers: o.tower.layers, heads: o.tower.heads, outputDim: o.featureDim,
  });
  const head = new MLP(o.featureDim, 2 * o.featureDim, { activation: 'relu' });
  const params = [...encoder.parameters(), ...head.parameters()];
  const losses = ntXentLoop(params, o, dataset.trainSize, (idx, step) => {
    const x = imageBatchToTensor(dataset.trainItems(idx, step, 0).images);
    const [a, b] = twoViewAugment(x, { ...(o.augment ?? COLOUR_PRESERVING_VIEWS), seed: o.seed + 1 }, step * o.batchSize);
    return [head.forward(encoder.forward(a).pooled), head.forward(encoder.forward(b).pooled)];
  });
  encoder.eval();
  return { encoder, losses };
}

/** Pretraining of a text transformer by NT-Xent between two captions of the same training item. */
export function pretrainTextEncoder(dataset: PairDataset, tokenizer: TextTokenizer, contextLength: number, o: PretrainOptions): PretrainResult<TextTransformer> {
  const op = 'pretrainTextEncoder';
  checkOptions(o, op, dataset.trainSize);
  const encoder = new TextTransformer({
    vocabSize: tokenizer.vocabSize, contextLength,
    width: o.tower.width, layers: o.tower.layers, heads: o.tower.heads, outputDim: o.featureDim,
  });
  const head = new MLP(o.featureDim, 2 * o.featureDim, { activation: 'relu' });
  const params = [...encoder.parameters(), ...head.parameters()];
  const losses = ntXentLoop(params, o, dataset.trainSize, (idx, step) => {
    const caps = dataset.trainItems(idx, step, 2).captions;
    const enc = (texts: string[]) => {
      const { tokens, eot } = tokenize(tokenizer, texts, contextLength);
      return head.forward(encoder.forward(tokens, { eotIndex: eot }).pooled);
    };
    return [enc(caps.map((c) => c[0])), enc(caps.map((c) => c[1]))];
  });
  encoder.eval();
  return { encoder, losses };
}
