// `npm run preview`: look at the data before training on it. Writes, under --out,
//
//   <data>_samples.png (+ .png.txt)   a grid of n samples with a caption under each (the sidecar
//                                      holds the captions in full), and <data>_captions.txt with
//                                      every caption of every sample;
//   <data>_vq.png (+ .png.txt)         with --vq <checkpoint> or --train-vq: originals next to
//                                      their VQ-VAE reconstructions (original, recon, ... per row),
//                                      plus the held-out MSE / mean-image baseline / codebook
//                                      usage printed; --train-vq saves the tokenizer it trains to
//                                      <out>/vq_<data>.safetensors so --vq can reuse it.
//
// It is a thin command over library calls (createWorld, loadFashionMnist, saveImageGrid,
// trainVQVAE / loadVQVAE / evaluateVQVAE) so that what it shows is exactly what training sees;
// argument parsing is node's util.parseArgs, strict, with --help. runPreview is exported so the
// command can be driven (and tested) without a child process.

import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { ArgumentError } from '../errors';
import { scope } from '../scope';
import { fashionCaptions } from './captions_fashion';
import { loadFashionMnist } from './fashion_mnist';
import { gatherImageBatch, ImageBatch, imageBatchToTensor } from './image_batch';
import { saveImageGrid } from './image_io';
import { createWorld } from './world';
import { evaluateVQVAE, loadVQVAE, meanImage, saveVQVAE, trainVQVAE, VQVAE } from './vq';

export type PreviewData = 'world' | 'fashion-mnist';

export interface PreviewOptions {
  out: string;
  n: number;
  seed: number;
  data: PreviewData;
  /** A tokenizer checkpoint to reconstruct the samples with. */
  vq?: string;
  /** Train a small tokenizer first (ignored when vq is given). */
  trainVq: boolean;
  /** Steps of that training run. */
  vqSteps: number;
  log: (line: string) => void;
}

export const PREVIEW_USAGE = `usage: node dist/lib/data/preview.js [options]

Writes a PNG grid of data samples with their captions and, with a VQ-VAE tokenizer, a grid of
originals next to their reconstructions.

  --out <dir>          output directory (default preview)
  --n <count>          samples per grid (default 16)
  --seed <int>         world seed / sample choice (default 0)
  --data <name>        world | fashion-mnist (default world)
  --vq <checkpoint>    VQ-VAE checkpoint (from --train-vq or saveVQVAE) to reconstruct with
  --train-vq           train a small VQ-VAE first (saved as <out>/vq_<data>.safetensors)
  --vq-steps <count>   steps of that run (default 300)
  -h, --help           this text`;

function intOption(value: string | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!Number.isInteger(v) || v < min) throw new ArgumentError(`preview: --${name} must be an integer >= ${min}, got '${value}'`);
  return v;
}

/** Parse command-line arguments; null means --help was asked for. */
export function parsePreviewArgs(argv: string[]): PreviewOptions | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: 'string' },
      n: { type: 'string' },
      seed: { type: 'string' },
      data: { type: 'string' },
      vq: { type: 'string' },
      'train-vq': { type: 'boolean' },
      'vq-steps': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const data = values.data ?? 'world';
  if (data !== 'world' && data !== 'fashion-mnist') throw new ArgumentError(`preview: --data must be 'world' or 'fashion-mnist', got '${data}'`);
  return {
    out: values.out ?? 'preview',
    n: intOption(values.n, 'n', 16, 1),
    seed: intOption(values.seed, 'seed', 0, 0),
    data,
    vq: values.vq,
    trainVq: values['train-vq'] ?? false,
    vqSteps: intOption(values['vq-steps'], 'vq-steps', 300, 1),
    log: (line) => console.log(line),
  };
}

interface PreviewSource {
  /** The samples to show, with every caption of each. */
  samples: ImageBatch;
  captions: string[][];
  /** Training images for a tokenizer, and held-out ones to measure it on. */
  train: () => ImageBatch;
  heldOut: () => ImageBatch;
}

function worldSource(n: number, seed: number): PreviewSource {
  const world = createWorld({ seed, imageSize: 32 });
  const count = Math.min(n, world.size('val'));
  const captions = Array.from({ length: count }, (_, i) => world.sample('val', i).captions);
  return {
    samples: world.imageBatch('val', 0, count),
    captions,
    train: () => world.imageBatch('train', 0, Math.min(2000, world.size('train'))),
    heldOut: () => world.imageBatch('test', 0, Math.min(256, world.size('test'))),
  };
}

function fashionSource(n: number, seed: number): PreviewSource {
  const test = loadFashionMnist('test');
  const count = Math.min(n, test.images.n);
  // a seeded choice of test images (a multiplicative stride, distinct for count <= n)
  const indices = Array.from({ length: count }, (_, i) => (seed * 7919 + i * 104729) % test.images.n);
  return {
    samples: gatherImageBatch(test.images, indices),
    captions: indices.map((i) => fashionCaptions(test.labels[i], i)),
    train: () => {
      const train = loadFashionMnist('train', { limit: 2000 });
      return train.images;
    },
    heldOut: () => gatherImageBatch(test.images, Array.from({ length: Math.min(256, test.images.n) }, (_, i) => test.images.n - 1 - i)),
  };
}

/** originals and reconstructions interleaved: o0 r0 o1 r1 ... */
function interleave(a: ImageBatch, b: ImageBatch): ImageBatch {
  const per = a.channels * a.height * a.width;
  const data = new Float32Array(2 * a.n * per);
  for (let i = 0; i < a.n; i++) {
    data.set(a.data.subarray(i * per, (i + 1) * per), 2 * i * per);
    data.set(b.data.subarray(i * per, (i + 1) * per), (2 * i + 1) * per);
  }
  return { ...a, data, n: 2 * a.n };
}

/** Write the preview files; returns the paths written. */
export function runPreview(opts: PreviewOptions): string[] {
  const source = opts.data === 'world' ? worldSource(opts.n, opts.seed) : fashionSource(opts.n, opts.seed);
  fs.mkdirSync(opts.out, { recursive: true });
  const written: string[] = [];
  const samplesPng = path.join(opts.out, `${opts.data}_samples.png`);
  written.push(...saveImageGrid(samplesPng, source.samples, { labels: source.captions.map((c) => c[0]) }).files);
  const captionsTxt = path.join(opts.out, `${opts.data}_captions.txt`);
  fs.writeFileSync(captionsTxt, source.captions.map((cs, i) => cs.map((c) => `${i}\t${c}`).join('\n')).join('\n') + '\n');
  written.push(captionsTxt);
  opts.log(`wrote ${samplesPng} (${source.samples.n} samples) and ${captionsTxt}`);

  if (!opts.vq && !opts.trainVq) return written;
  let model: VQVAE;
  let mean: Float32Array;
  if (opts.vq) {
    model = loadVQVAE(opts.vq);
    const { channels: c, imageSize: sz } = model.config;
    const got = source.samples;
    if (c !== got.channels || sz !== got.height || sz !== got.width) {
      model.dispose();
      throw new ArgumentError(`preview: ${opts.vq} is a tokenizer for ${c}x${sz}x${sz} images, --data ${opts.data} gives ${got.channels}x${got.height}x${got.width}`);
    }
    mean = meanImage(source.train());
  } else {
    const train = source.train();
    const small = { codebookSize: 256, width: 32, encoderLayers: 1, decoderLayers: 1, patchSize: 4 };
    opts.log(`training a VQ-VAE on ${train.n} ${opts.data} images for ${opts.vqSteps} steps`);
    const res = trainVQVAE(train, { config: small, steps: opts.vqSteps, seed: opts.seed, logEvery: 50, log: opts.log });
    model = res.model;
    mean = res.meanImage;
    const ckpt = path.join(opts.out, `vq_${opts.data}.safetensors`);
    saveVQVAE(ckpt, model, { step: opts.vqSteps });
    written.push(ckpt);
    opts.log(`saved the tokenizer to ${ckpt} (reuse it with --vq ${ckpt})`);
  }
  try {
    const ev = evaluateVQVAE(model, source.heldOut(), mean);
    opts.log(
      `held-out: reconstruction MSE ${ev.mse.toFixed(5)} vs mean-image baseline ${ev.baselineMse.toFixed(5)} (x${ev.ratio.toFixed(3)}), ` +
        `codes used ${ev.codesUsed}/${model.codebookSize}, perplexity ${ev.perplexity.toFixed(1)}, ${model.tokensPerImage} tokens per image`,
    );
    const recon = scope(() => model.reconstruct(imageBatchToTensor(source.samples)).toTypedArray() as Float32Array);
    const pairs = interleave(source.samples, { ...source.samples, data: recon });
    const labels = Array.from({ length: pairs.n }, (_, i) => (i % 2 === 0 ? `original ${i / 2}` : `VQ recon ${(i - 1) / 2}`));
    const vqPng = path.join(opts.out, `${opts.data}_vq.png`);
    written.push(...saveImageGrid(vqPng, pairs, { labels, labelLines: 1, cols: 8 }).files);
    opts.log(`wrote ${vqPng} (originals next to reconstructions)`);
  } finally {
    model.dispose();
  }
  return written;
}

export function main(argv: string[]): number {
  try {
    const opts = parsePreviewArgs(argv);
    if (!opts) {
      console.log(PREVIEW_USAGE);
      return 0;
    }
    runPreview(opts);
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    console.error(msg.startsWith('preview:') ? msg : `preview: ${msg}`);
    if (e instanceof TypeError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) console.error(PREVIEW_USAGE);
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
