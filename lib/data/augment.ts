// Batched image augmentations for contrastive training (issue "Data"): random resized crop,
// colour jitter, grayscale and horizontal flip on float32 [N, C, H, W] images (C = 1 or 3,
// values in [0, 1]), plus ITO's two-view recipe built from them.
//
// Why this shape: every op is one native kernel (native/cpu/augment.cpp) parallel over the
// batch, and randomness never enters a kernel. The recipe draws each image's parameters in
// TypeScript from its own small generator seeded by (seed, view, image index), so a batch's
// augmentations depend only on the seed and the image's position (not on thread count, batch
// size or engine RNG state), and the same parameter tensors could drive a CUDA kernel later.
// The ops take explicit per-image parameters so they can be tested one by one.
//
// Augmentations are data preparation, not differentiable: outputs never require grad and no
// autograd graph is recorded (run them as they are, or under noGrad).
//
// Colour jitter follows torchvision (brightness multiplies, contrast blends with the mean gray,
// saturation blends with the grayscale, hue rotates in HSV; each step clamps to [0, 1]) in the
// FIXED order brightness, contrast, saturation, hue (torchvision shuffles the order per image).
// Grayscale uses torchvision's ITU-R 601-2 luma, 0.2989 R + 0.587 G + 0.114 B, kept as C channels.
// The crop resamples bilinearly with half-pixel centres and no antialiasing (torch interpolate
// 'bilinear', align_corners=False, antialias=False, on the cropped image).

import { runKernel } from '../backend';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { Tensor } from '../tensor';
import { contiguousData } from '../ops/view';
import { tensor } from '../ops/creation';

/** A crop box in pixels: rows [top, top + height), columns [left, left + width). */
export interface CropBox { top: number; left: number; height: number; width: number }
/** Per-image colour jitter factors; the identity is { 1, 1, 1, 0 }. hue is in turns (torchvision: [-0.5, 0.5]). */
export interface JitterFactors { brightness: number; contrast: number; saturation: number; hue: number }
/** A per-image on/off mask: booleans, 0/1 numbers, or a float32 tensor [N]. */
export type ImageMask = readonly (boolean | number)[] | Tensor;

/** Every random choice of one view of a batch (see sampleViewParams). */
export interface ViewParams { boxes: CropBox[]; flip: boolean[]; jitter: JitterFactors[]; gray: boolean[] }

export interface TwoViewOptions {
  /** Seed of the augmentation randomness (required: the views are a function of it). */
  seed: number;
  /** Output size [height, width] (default: the input's). */
  outSize?: readonly [number, number];
  /** Crop area fraction range (ITO: [0.5, 1]). */
  scale?: readonly [number, number];
  /** Crop aspect ratio range (default [3/4, 4/3]). */
  ratio?: readonly [number, number];
  /** Jitter strengths (brightness, contrast, saturation in [0, 1), hue in [0, 0.5]); ITO: 0.4/0.4/0.4/0.1. */
  jitter?: JitterFactors;
  /** Probability an image is jittered (0.8), turned gray (0.2), flipped (0.5). */
  jitterP?: number;
  grayscaleP?: number;
  flipP?: number;
}

function checkImages(x: unknown, op: string): Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${op}: x must be a Tensor [N, C, H, W], got ${x === null ? 'null' : typeof x}`);
  x.assertAlive(op, 'x');
  if (x.ndim !== 4) throw new ShapeError(`${op}: x ${x.describe()} must be an image batch [N, C, H, W] (4 dims), got ${x.ndim} dims`);
  if (x.shape[1] !== 1 && x.shape[1] !== 3) throw new ShapeError(`${op}: x ${x.describe()} must have 1 or 3 channels (dim 1), got ${x.shape[1]}`);
  if (x.dtype !== 'float32') throw new DTypeError(`${op}: x ${x.describe()} must be float32`);
  if (x.device !== 'cpu') throw new DTypeError(`${op}: x ${x.describe()} must be on the cpu (no CUDA augmentation kernels yet)`);
  return x;
}

/** Per-image parameters as a float32 [N, k] tensor (k = 1 gives shape [N]). */
function paramTensor(rows: readonly number[][], n: number, k: number, op: string, role: string): Tensor {
  if (rows.length !== n) throw new ShapeError(`${op}: ${role} must have one entry per image (${n}), got ${rows.length}`);
  const data = new Float32Array(n * k);
  rows.forEach((r, i) => r.forEach((v, j) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`${op}: ${role}[${i}] must hold finite numbers, got ${String(v)}`);
    data[i * k + j] = v;
  }));
  return tensor(data, { shape: k === 1 ? [n] : [n, k] });
}

function maskTensor(mask: ImageMask | undefined, n: number, op: string): { t: Tensor; owned: boolean } {
  if (mask === undefined) return { t: tensor(new Float32Array(n).fill(1)), owned: true };
  if (mask instanceof Tensor) {
    mask.assertAlive(op, 'mask');
    if (mask.dtype !== 'float32' || mask.ndim !== 1 || mask.shape[0] !== n || mask.device !== 'cpu')
      throw new ShapeError(`${op}: mask ${mask.describe()} must be a float32 cpu tensor of shape [${n}] (one flag per image)`);
    return { t: mask, owned: false };
  }
  if (!Array.isArray(mask)) throw new ArgumentError(`${op}: mask must be an array of booleans/numbers or a Tensor, got ${typeof mask}`);
  return { t: paramTensor(mask.map((m) => [m === true ? 1 : m === false ? 0 : (m as number)]), n, 1, op, 'mask'), owned: true };
}

/** Run one augmentation kernel: x (made contiguous), params, a fresh output of shape outShape. */
function runAugment(kernel: string, x: Tensor, params: Tensor, ownsParams: boolean, outShape: number[]): Tensor {
  const xc = contiguousData(x);
  const out = Tensor.empty(outShape, 'float32', 'cpu', true);
  try {
    runKernel(kernel, [xc, params, out]);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    if (xc !== x) xc.dispose();
    if (ownsParams) params.dispose();
  }
  return out;
}

function checkSize(v: unknown, op: string, role: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ArgumentError(`${op}: ${role} must be an integer >= 1, got ${String(v)}`);
  return v;
}

/**
 * Crop each image to its box (pixels; inside the image, height and width >= 1, may be
 * fractional) and resize it bilinearly to [outH, outW]. boxes: one CropBox per image, or a
 * float32 tensor [N, 4] of (top, left, height, width). Returns a new [N, C, outH, outW] tensor.
 */
export function resizedCrop(x: Tensor, boxes: readonly CropBox[] | Tensor, outH: number, outW: number): Tensor {
  const op = 'resizedCrop';
  checkImages(x, op);
  const [n, c, h, w] = x.shape;
  checkSize(outH, op, 'outH');
  checkSize(outW, op, 'outW');
  let params: Tensor;
  let owned = true;
  if (boxes instanceof Tensor) {
    boxes.assertAlive(op, 'boxes');
    if (boxes.dtype !== 'float32' || boxes.ndim !== 2 || boxes.shape[0] !== n || boxes.shape[1] !== 4)
      throw new ShapeError(`${op}: boxes ${boxes.describe()} must be float32 [${n}, 4] (top, left, height, width per image)`);
    params = boxes;
    owned = false;
  } else {
    if (!Array.isArray(boxes)) throw new ArgumentError(`${op}: boxes must be an array of {top, left, height, width} or a Tensor [N, 4]`);
    boxes.forEach((b, i) => {
      if (!(b.height >= 1 && b.width >= 1 && b.top >= 0 && b.left >= 0 && b.top + b.height <= h && b.left + b.width <= w))
        throw new ArgumentError(`${op}: boxes[${i}] ${JSON.stringify(b)} must have height and width >= 1 and lie inside the ${h}x${w} image of x ${x.describe()}`);
    });
    params = paramTensor(boxes.map((b) => [b.top, b.left, b.height, b.width]), n, 4, op, 'boxes');
  }
  return runAugment('augment_resized_crop', x, params, owned, [n, c, outH, outW]);
}

/** Colour jitter with per-image factors (brightness, contrast, saturation, hue), in that order. */
export function colorJitter(x: Tensor, factors: readonly JitterFactors[] | Tensor): Tensor {
  const op = 'colorJitter';
  checkImages(x, op);
  const n = x.shape[0];
  if (factors instanceof Tensor) {
    factors.assertAlive(op, 'factors');
    if (factors.dtype !== 'float32' || factors.ndim !== 2 || factors.shape[0] !== n || factors.shape[1] !== 4)
      throw new ShapeError(`${op}: factors ${factors.describe()} must be float32 [${n}, 4] (brightness, contrast, saturation, hue per image)`);
    return runAugment('augment_color_jitter', x, factors, false, [...x.shape]);
  }
  if (!Array.isArray(factors)) throw new ArgumentError(`${op}: factors must be an array of {brightness, contrast, saturation, hue} or a Tensor [N, 4]`);
  factors.forEach((f, i) => {
    if (!(f.brightness >= 0 && f.contrast >= 0 && f.saturation >= 0 && Number.isFinite(f.hue)))
      throw new ArgumentError(`${op}: factors[${i}] ${JSON.stringify(f)} must have brightness, contrast, saturation >= 0 and a finite hue`);
  });
  const params = paramTensor(factors.map((f) => [f.brightness, f.contrast, f.saturation, f.hue]), n, 4, op, 'factors');
  return runAugment('augment_color_jitter', x, params, true, [...x.shape]);
}

/** Replace the images where mask is set (default: all) by their luma, kept as C channels. */
export function grayscale(x: Tensor, mask?: ImageMask): Tensor {
  checkImages(x, 'grayscale');
  const { t, owned } = maskTensor(mask, x.shape[0], 'grayscale');
  return runAugment('augment_grayscale', x, t, owned, [...x.shape]);
}

/** Mirror left-right the images where mask is set (default: all). */
export function hflip(x: Tensor, mask?: ImageMask): Tensor {
  checkImages(x, 'hflip');
  const { t, owned } = maskTensor(mask, x.shape[0], 'hflip');
  return runAugment('augment_hflip', x, t, owned, [...x.shape]);
}

// ---------------------------------------------------------------- the two-view recipe

/** A small deterministic generator (mulberry32 over a hash of the inputs): uniform [0, 1). */
export function augmentRng(...keys: number[]): () => number {
  let h = 0x9e3779b9;
  for (const k of keys) {
    h = Math.imul(h ^ (k >>> 0), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    h = (h + Math.floor(k / 4294967296)) >>> 0;
  }
  let s = h >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** torchvision's RandomResizedCrop.get_params: 10 tries of a random area/aspect, else a central crop. */
export function sampleCropBox(rand: () => number, height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number]): CropBox {
  const area = height * width;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * rand());
    const aspect = Math.exp(logR[0] + (logR[1] - logR[0]) * rand());
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = Math.floor(rand() * (height - h + 1));
      const left = Math.floor(rand() * (width - w + 1));
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = Math.round(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = Math.round(h * Math.max(...ratio));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

interface ResolvedOptions { scale: readonly [number, number]; ratio: readonly [number, number]; jitter: JitterFactors; jitterP: number; grayscaleP: number; flipP: number }

function resolveOptions(o: TwoViewOptions, op: string): ResolvedOptions {
  if (o === null || typeof o !== 'object' || typeof o.seed !== 'number' || !Number.isInteger(o.seed))
    throw new ArgumentError(`${op}: options.seed must be an integer, got ${o === null || typeof o !== 'object' ? String(o) : String(o.seed)}`);
  const scale = o.scale ?? [0.5, 1];
  const ratio = o.ratio ?? [3 / 4, 4 / 3];
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) throw new ArgumentError(`${op}: scale must satisfy 0 < scale[0] <= scale[1] <= 1, got [${scale.join(', ')}]`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1] && Number.isFinite(ratio[1]))) throw new ArgumentError(`${op}: ratio must satisfy 0 < ratio[0] <= ratio[1], got [${ratio.join(', ')}]`);
  const jitter = o.jitter ?? { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 };
  for (const k of ['brightness', 'contrast', 'saturation'] as const)
    if (!(jitter[k] >= 0 && jitter[k] < 1)) throw new ArgumentError(`${op}: jitter.${k} must be in [0, 1), got ${String(jitter[k])}`);
  if (!(jitter.hue >= 0 && jitter.hue <= 0.5)) throw new ArgumentError(`${op}: jitter.hue must be in [0, 0.5], got ${String(jitter.hue)}`);
  const prob = (v: number | undefined, d: number, name: string): number => {
    const p = v ?? d;
    if (!(p >= 0 && p <= 1)) throw new ArgumentError(`${op}: ${name} must be a probability in [0, 1], got ${String(v)}`);
    return p;
  };
  return { scale, ratio, jitter, jitterP: prob(o.jitterP, 0.8, 'jitterP'), grayscaleP: prob(o.grayscaleP, 0.2, 'grayscaleP'), flipP: prob(o.flipP, 0.5, 'flipP') };
}

/**
 * The random parameters of view `view` for images [start, start + n) of size height x width:
 * image i uses its own generator augmentRng(seed, view, start + i), so its augmentation does
 * not depend on the batch it is in.
 */
export function sampleViewParams(n: number, height: number, width: number, view: number, options: TwoViewOptions, start = 0): ViewParams {
  const o = resolveOptions(options, 'sampleViewParams');
  const p: ViewParams = { boxes: [], flip: [], jitter: [], gray: [] };
  const j = o.jitter;
  for (let i = 0; i < n; i++) {
    const rand = augmentRng(options.seed, view, start + i);
    p.boxes.push(sampleCropBox(rand, height, width, o.scale, o.ratio));
    p.flip.push(rand() < o.flipP);
    const jit = rand() < o.jitterP;
    const u = (s: number) => 1 - s + 2 * s * rand(); // torchvision: uniform [max(0, 1 - s), 1 + s]
    const f = { brightness: u(j.brightness), contrast: u(j.contrast), saturation: u(j.saturation), hue: -j.hue + 2 * j.hue * rand() };
    p.jitter.push(jit ? f : { brightness: 1, contrast: 1, saturation: 1, hue: 0 });
    p.gray.push(rand() < o.grayscaleP);
  }
  return p;
}

/** Apply one view's parameters: crop + resize, flip, jitter, grayscale (in that order). */
export function applyViewParams(x: Tensor, p: ViewParams, outH: number, outW: number): Tensor {
  const cropped = resizedCrop(x, p.boxes, outH, outW);
  const flipped = hflip(cropped, p.flip);
  cropped.dispose();
  const jittered = colorJitter(flipped, p.jitter);
  flipped.dispose();
  const gray = grayscale(jittered, p.gray);
  jittered.dispose();
  return gray;
}

/**
 * ITO's two-view augmentation of a batch x [N, C, H, W]: each view is an independent random
 * resized crop (scale 0.5-1), horizontal flip (p 0.5), colour jitter 0.4/0.4/0.4/0.1 (p 0.8) and
 * grayscale (p 0.2). Deterministic in (options.seed, start + image index); `start` is the index
 * of x's first image in the data set, so an image gets the same views in any batching.
 */
export function twoViewAugment(x: Tensor, options: TwoViewOptions, start = 0): [Tensor, Tensor] {
  const op = 'twoViewAugment';
  checkImages(x, op);
  resolveOptions(options, op);
  const [n, , h, w] = x.shape;
  const [oh, ow] = options.outSize ?? [h, w];
  checkSize(oh, op, 'outSize[0]');
  checkSize(ow, op, 'outSize[1]');
  const a = applyViewParams(x, sampleViewParams(n, h, w, 0, options, start), oh, ow);
  try {
    return [a, applyViewParams(x, sampleViewParams(n, h, w, 1, options, start), oh, ow)];
  } catch (e) {
    a.dispose();
    throw e;
  }
}

/** Alias: the ITO recipe. */
export const itoAugment = twoViewAugment;
