// FuseLIP (Schlarmann et al. 2025, "FuseLIP: Multimodal Embeddings via Early Fusion of Discrete
// Tokens", Sec. 3): ONE transformer over an extended vocabulary of text tokens and the discrete
// codes of a frozen image tokenizer (lib/data/vq, a VQ-VAE), so an image, a text or an
// image + text pair each map to one embedding (early fusion: the modalities attend to each other
// in every layer). Sequences are built by fuselip_tokens.ts:
//   f(x, t) = normalize( W^T LN( Enc( E[ <boi> v(x) <eoi> <bos> t <eos> <eot> ] + P ) )[eot] )
// with v(x) = VQ codes of x offset by the text vocabulary size, E the extended token embedding,
// P learned positions, Enc a pre-LN transformer with BIDIRECTIONAL attention (padding keys masked)
// and pooling at the final <eot> (the paper pools at <eot> too; its encoder is SigLIP's text
// tower). Image-only / text-only inputs drop the missing part.
//
// Training (Sec. 3.2, the multimodal SigLIP loss; the masked multimodal modelling loss is NOT
// implemented): every batch row b is one pair (u_b, w_b) of inputs, drawn per (seed, index, step)
// among the tasks, with probabilities `tasks`:
//   caption:        (image_i)                       <-> (one of its true captions)
//   transformation: (source_i + instruction_i)      <-> (target image_i)   world.transformationPair
//   vqa:            (image_i + question_i)          <-> (answer text_i)     world.question
// and  L = -(1/B) sum_i sum_j log sigmoid( z_ij (exp(s) <f(u_i), f(w_j)> + b) ),  z_ij = +1 iff
// w_i and w_j are the same text (so two "red" answers are not pushed apart) or i = j, else -1.
// s (init log 10, clamped to <= log 100) and b (init -10) are learned (SigLIP's init).
// Image codes of the training images and targets are cached by index (the tokenizer is frozen,
// and the datasets' trainItems images do not depend on the draw: no augmentation).

import * as fs from 'fs';
import * as path from 'path';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { noGrad } from '../autograd';
import { scope } from '../scope';
import { tensor } from '../ops/creation';
import { copy_ } from '../ops/view';
import { normalize } from '../ops/normalize';
import { Module } from '../nn/module';
import { TextTransformer } from '../nn/text';
import { ArgumentError, ShapeError } from '../errors';
import { sigLipLoss, SIGLIP_INIT } from '../losses/contrastive';
import { imageBatchToTensor, ImageBatch } from '../data/image_batch';
import { World } from '../data/world';
import { VQVAE, trainVQVAE, loadVQVAE, saveVQVAE } from '../data/vq';
import { PairDataset } from '../data/pair_dataset';
import { MODEL_PRESETS, ModelPreset } from './dual_encoder';
import { MethodContext } from './method';
import { ComposedEncoder } from './composed_eval';
import { FuseInput, FuseVocabulary } from './fuselip_tokens';

const MAX_LOGIT_SCALE = Math.log(100);

export type FuseTask = 'caption' | 'transformation' | 'vqa';

export interface FuseLIPOptions {
  /** The frozen image tokenizer (see trainFuseTokenizer / loadVQVAE). */
  vq: VQVAE;
  /** Where transformation pairs and questions come from (default: the dataset's world, if any). */
  world?: World;
  /** Task probabilities (normalised; default caption 0.5, transformation 0.25, vqa 0.25). */
  tasks?: Partial<Record<FuseTask, number>>;
}

export class FuseLIPModel extends Module {
  readonly encoder: TextTransformer;
  readonly logit_scale: Tensor;
  readonly logit_bias: Tensor;

  constructor(vocabSize: number, contextLength: number, preset: ModelPreset) {
    super();
    const p = MODEL_PRESETS[preset];
    if (!p) throw new ArgumentError(`FuseLIPModel: unknown model preset '${String(preset)}', expected ${Object.keys(MODEL_PRESETS).join(', ')}`);
    this.encoder = this.child('encoder', new TextTransformer({
      vocabSize, contextLength, width: p.text.width, layers: p.text.layers, heads: p.text.heads, outputDim: p.embedDim, causal: false, pool: 'eot',
    }));
    this.logit_scale = this.param('logit_scale', tensor(SIGLIP_INIT.logitScale));
    this.logit_bias = this.param('logit_bias', tensor(SIGLIP_INIT.bias));
  }
}

/** 32-bit mix of (a, b, c): the task draw of row (seed, index, step). */
function hash3(a: number, b: number, c: number): number {
  let h = (a * 0x9e3779b1) >>> 0;
  for (const v of [b, c]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export class FuseLIP implements ComposedEncoder {
  readonly name = 'fuselip';
  readonly model: FuseLIPModel;
  readonly vocab: FuseVocabulary;
  readonly vq: VQVAE;
  readonly world: World | null;
  readonly contextLength: number;
  private readonly taskCdf: [FuseTask, number][];
  private readonly codeCache = new Map<string, Int32Array>();
  private lastScale = NaN;
  private lastCounts: Record<FuseTask, number> = { caption: 0, transformation: 0, vqa: 0 };

  constructor(readonly ctx: MethodContext, preset: ModelPreset, opts: FuseLIPOptions) {
    const vq = opts.vq;
    const ds = ctx.dataset;
    if (vq.config.imageSize !== ds.imageSize || vq.config.channels !== ds.channels)
      throw new ShapeError(`FuseLIP: the VQ-VAE takes ${vq.config.channels}x${vq.config.imageSize}x${vq.config.imageSize} images, the dataset has ${ds.channels}x${ds.imageSize}x${ds.imageSize}`);
    if (!vq.frozen) vq.freeze();
    this.vq = vq;
    this.world = opts.world ?? ((ds as { world?: unknown }).world instanceof World ? (ds as unknown as { world: World }).world : null);
    this.vocab = new FuseVocabulary(ctx.tokenizer, vq.codebookSize, vq.tokensPerImage);
    this.contextLength = this.vocab.minLength(ctx.contextLength - 2);
    this.model = new FuseLIPModel(this.vocab.size, this.contextLength, preset);
    const w = { caption: 0.5, transformation: 0.25, vqa: 0.25, ...opts.tasks };
    if (!this.world) {
      w.transformation = 0;
      w.vqa = 0;
    }
    const entries = (Object.entries(w) as [FuseTask, number][]);
    for (const [k, v] of entries) if (!(v >= 0)) throw new ArgumentError(`FuseLIP: tasks.${k} must be a probability >= 0, got ${String(v)}`);
    const total = entries.reduce((s, [, v]) => s + v, 0);
    if (!(total > 0)) throw new ArgumentError('FuseLIP: the task probabilities sum to 0');
    let acc = 0;
    this.taskCdf = entries.filter(([, v]) => v > 0).map(([k, v]) => [k, (acc += v / total)]);
  }

  /** VQ codes [T] of each image (cached under `keys[i]` when given). */
  private codesOf(images: Float32Array[], keys?: string[]): Int32Array[] {
    const out: (Int32Array | undefined)[] = keys ? keys.map((k) => this.codeCache.get(k)) : images.map(() => undefined);
    const missing = out.flatMap((c, i) => (c ? [] : [i]));
    if (missing.length) {
      const { imageSize: S, channels: C } = this.vq.config;
      const per = C * S * S;
      const data = new Float32Array(missing.length * per);
      missing.forEach((i, r) => data.set(images[i], r * per));
      const codes = scope(() => this.vq.encode(imageBatchToTensor({ data, n: missing.length, channels: C, height: S, width: S })).toTypedArray() as Int32Array);
      const T = this.vq.tokensPerImage;
      missing.forEach((i, r) => {
        out[i] = codes.slice(r * T, (r + 1) * T);
        if (keys) this.codeCache.set(keys[i], out[i]!);
      });
    }
    return out as Int32Array[];
  }

  private codesOfTensor(images: Tensor): Int32Array[] {
    const n = images.shape[0];
    const flat = noGrad(() => this.vq.encode(images)).toTypedArray() as Int32Array;
    const T = this.vq.tokensPerImage;
    return Array.from({ length: n }, (_, i) => flat.slice(i * T, (i + 1) * T));
  }

  /** L2-normalised embeddings [N, D] of fused inputs. */
  embed(inputs: readonly FuseInput[]): Tensor {
    const b = this.vocab.build(inputs, this.contextLength);
    const n = inputs.length;
    const used = Math.max(...b.eotIndex) + 1; // crop the all-padding tail of the batch
    const ids = new Int32Array(n * used);
    const pad = new Float32Array(n * used);
    for (let r = 0; r < n; r++) {
      ids.set(b.ids.subarray(r * b.length, r * b.length + used), r * used);
      pad.set(b.padding.subarray(r * b.length, r * b.length + used), r * used);
    }
    const out = this.model.encoder.forward(tensor(ids, { shape: [n, used], dtype: 'int32' }), {
      eotIndex: b.eotIndex, paddingMask: tensor(pad, { shape: [n, used], dtype: 'float32' }),
    });
    return normalize(out.pooled, 2, -1);
  }

  private taskOf(index: number, step: number): FuseTask {
    const u = hash3(this.ctx.seed + 1, index, step) / 4294967296;
    for (const [k, c] of this.taskCdf) if (u < c) return k;
    return this.taskCdf[this.taskCdf.length - 1][0];
  }

  trainingLoss(indices: readonly number[], step: number): Tensor {
    const B = indices.length;
    const tasks = indices.map((i) => this.taskOf(i, step));
    const { images, captions } = this.ctx.dataset.trainItems(indices, step, 1);
    const per = images.channels * images.height * images.width;
    const srcCodes = this.codesOf(indices.map((_, r) => images.data.subarray(r * per, (r + 1) * per)), indices.map((i) => `train:${i}`));
    const left: FuseInput[] = [];
    const right: FuseInput[] = [];
    const rightKey: string[] = [];
    const tIdx = indices.flatMap((i, r) => (tasks[r] === 'transformation' ? [i] : []));
    const pairs = new Map(tIdx.map((i) => [i, this.world!.transformationPair('train', i)]));
    const tgtCodes = this.codesOf(tIdx.map((i) => pairs.get(i)!.target), tIdx.map((i) => `target:${i}`));
    const tgtOf = new Map(tIdx.map((i, k) => [i, tgtCodes[k]]));
    this.lastCounts = { caption: 0, transformation: 0, vqa: 0 };
    indices.forEach((i, r) => {
      const task = tasks[r];
      this.lastCounts[task]++;
      if (task === 'caption') {
        left.push({ codes: srcCodes[r] });
        right.push({ text: captions[r][0] });
        rightKey.push(`t:${captions[r][0]}`);
      } else if (task === 'transformation') {
        left.push({ codes: srcCodes[r], text: pairs.get(i)!.instruction });
        right.push({ codes: tgtOf.get(i)! });
        rightKey.push(`i:${r}`);
      } else {
        const q = this.world!.question('train', i);
        left.push({ codes: srcCodes[r], text: q.question });
        right.push({ text: q.answer });
        rightKey.push(`t:${q.answer}`);
      }
    });
    const groupOf = new Map<string, number>();
    const ids = Int32Array.from(rightKey, (k) => {
      if (!groupOf.has(k)) groupOf.set(k, groupOf.size);
      return groupOf.get(k)!;
    });
    const z = this.embed([...left, ...right]);
    const a = z.slice(0, 0, B);
    const b = z.slice(0, B, 2 * B);
    this.lastScale = this.model.logit_scale.item();
    if (this.lastScale > MAX_LOGIT_SCALE) {
      noGrad(() => copy_(this.model.logit_scale, tensor(MAX_LOGIT_SCALE)));
      this.lastScale = MAX_LOGIT_SCALE;
    }
    const idT = tensor(ids, { dtype: 'int32' });
    return sigLipLoss(a, b, this.model.logit_scale, this.model.logit_bias, { rowIds: idT, colIds: idT });
  }

  logs(): Record<string, number> {
    return { temperature: Math.exp(this.lastScale), bias: this.model.logit_bias.item(), ...Object.fromEntries(Object.entries(this.lastCounts).map(([k, v]) => [`n_${k}`, v])) };
  }

  encodeImages(images: Tensor): Tensor {
    return this.embed(this.codesOfTensor(images).map((codes) => ({ codes })));
  }

  encodeTexts(texts: string[]): Tensor {
    return this.embed(texts.map((text) => ({ text })));
  }

  encodeComposed(images: Tensor, texts: string[]): Tensor {
    if (images.shape[0] !== texts.length) throw new ShapeError(`FuseLIP.encodeComposed: ${images.describe()} images but ${texts.length} texts`);
    return this.embed(this.codesOfTensor(images).map((codes, i) => ({ codes, text: texts[i] })));
  }
}

/** Train a small VQ-VAE image tokenizer on `images` (defaults here: 8 x 8 patches, so 16 tokens of a 256-code book at 32 px) and freeze it. */
export function trainFuseTokenizer(images: ImageBatch, opts: FuseTokenizerOptions = {}): VQVAE {
  const res = trainVQVAE(images, {
    steps: opts.steps ?? 300, batchSize: Math.min(64, images.n), seed: opts.seed ?? 0, logEvery: 100, log: opts.log ?? (() => undefined),
    config: { patchSize: opts.patchSize ?? 8, codebookSize: opts.codebookSize ?? 256 },
  });
  return res.model.freeze();
}

export interface FuseTokenizerOptions {
  steps?: number;
  patchSize?: number;
  codebookSize?: number;
  /** Training images drawn from the dataset (default 4000). */
  images?: number;
  seed?: number;
  log?: (s: string) => void;
}

/**
 * The run's frozen image tokenizer: loaded from `file` when it exists (a resumed or evaluated
 * run), else trained on the first `images` training items of `dataset` and saved there.
 */
export function loadOrTrainFuseTokenizer(file: string, dataset: PairDataset, opts: FuseTokenizerOptions = {}): VQVAE {
  if (fs.existsSync(file)) return loadVQVAE(file);
  const n = Math.min(opts.images ?? 4000, dataset.trainSize);
  const t0 = Date.now();
  const { images } = dataset.trainItems(Array.from({ length: n }, (_, i) => i), 0, 1);
  const vq = trainFuseTokenizer(images, opts);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  saveVQVAE(file, vq);
  opts.log?.(`image tokenizer: VQ-VAE, ${vq.tokensPerImage} tokens per image, ${vq.codebookSize} codes, trained on ${n} images in ${((Date.now() - t0) / 1000).toFixed(1)}s -> ${file}`);
  return vq;
}
