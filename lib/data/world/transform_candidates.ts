// Transformation pairs and their retrieval candidate sets. A pair is (source image, instruction,
// target image) for sample i of a split: the source is that sample's image, the transformation is
// drawn from a stream keyed by (seed, split, i). A candidate set holds the true target plus hard
// negatives: about half are the SAME source under other members of the same family (other
// rotations/flips, other crops, other colours or other objects recoloured, other photometric
// changes), the rest are OTHER sources of the split under the same transformation. Any candidate
// that is pixelwise (near-)identical to the target or to another candidate is skipped, so each set
// contains exactly one true target.

import { Rng } from './rng';
import { Scene } from './scene';
import { Split } from './splits';
import {
  Transformation, TransformFamily, applyTransformation, drawTransformation, familyMembers, familyOf, instructionText,
  recolorOptions, sameTransformation,
} from './transforms';
import { ColorName, ShapeName } from './vocab';
import type { ImageBatch } from '../image_batch';

/** What the candidate builder needs from a world. */
export interface TransformSource {
  readonly seed: number;
  readonly imageSize: number;
  size(split: Split): number;
  scene(split: Split, index: number): Scene;
  image(split: Split, index: number): Float32Array;
  allowCombo(split: Split): (shape: ShapeName, color: ColorName) => boolean;
}

export interface TransformationPair {
  split: Split;
  index: number;
  source: Float32Array;
  sourceScene: Scene;
  transformation: Transformation;
  family: TransformFamily;
  instruction: string;
  target: Float32Array;
}

export interface CandidateInfo {
  /** Sample index of the candidate's source in the same split. */
  sourceIndex: number;
  transformation: Transformation;
}

export interface TransformationCandidates {
  pair: TransformationPair;
  /** K candidate images [K, 3, S, S]; exactly one (targetIndex) is the pair's target. */
  candidates: ImageBatch;
  targetIndex: number;
  info: CandidateInfo[];
}

/** Recolours in train/val/test never create a held-out pair; held-out scenes may recolour freely. */
function recolorRule(w: TransformSource, split: Split): (shape: ShapeName, color: ColorName) => boolean {
  return split === 'heldout' ? () => true : w.allowCombo(split);
}

/** The transformation and instruction of sample `index` (no pixels: cheap, used for text corpora). */
export function transformationSpec(w: TransformSource, split: Split, index: number): { transformation: Transformation; instruction: string } {
  const scene = w.scene(split, index);
  const rng = Rng.keyed(w.seed, split, 'transform', index);
  const transformation = drawTransformation(rng, scene, recolorRule(w, split));
  return { transformation, instruction: instructionText(rng, transformation, scene) };
}

export function transformationPair(w: TransformSource, split: Split, index: number): TransformationPair {
  const scene = w.scene(split, index);
  const source = w.image(split, index);
  const { transformation, instruction } = transformationSpec(w, split, index);
  const target = applyTransformation(transformation, scene, source, w.imageSize);
  return { split, index, source, sourceScene: scene, transformation, family: familyOf(transformation), instruction, target };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The same transformation as `t` for another scene, or null if it cannot apply there. */
function transferTo(t: Transformation, from: Scene, to: Scene, allow: (s: ShapeName, c: ColorName) => boolean): Transformation | null {
  if (t.kind !== 'recolor') return t;
  const options = recolorOptions(to, allow).filter((o) => o.kind === 'recolor' && o.color === t.color);
  if (options.length === 0) return null;
  const sameShape = options.find((o) => o.kind === 'recolor' && to.objects[o.object].shape === from.objects[t.object].shape);
  return sameShape ?? options[0];
}

/** Pixels closer than this (max abs difference) count as the same image. */
export const SAME_IMAGE_TOLERANCE = 1e-3;

export function transformationCandidates(w: TransformSource, split: Split, index: number, k = 8): TransformationCandidates {
  const pair = transformationPair(w, split, index);
  const rng = Rng.keyed(w.seed, split, 'candidates', index, k);
  const allow = recolorRule(w, split);
  const images: Float32Array[] = [pair.target];
  const info: CandidateInfo[] = [{ sourceIndex: index, transformation: pair.transformation }];
  const accept = (img: Float32Array, ci: CandidateInfo): void => {
    if (images.length >= k) return;
    if (images.some((other) => maxAbsDiff(other, img) < SAME_IMAGE_TOLERANCE)) return;
    images.push(img);
    info.push(ci);
  };

  // same source, other members of the family
  const siblings = (pair.family === 'recolor'
    ? recolorOptions(pair.sourceScene, allow)
    : familyMembers(pair.family)
  ).filter((t) => !sameTransformation(t, pair.transformation));
  const wantSame = Math.min(siblings.length, Math.ceil((k - 1) / 2));
  for (const t of rng.shuffle(siblings)) {
    if (images.length > wantSame) break;
    accept(applyTransformation(t, pair.sourceScene, pair.source, w.imageSize), { sourceIndex: index, transformation: t });
  }

  // other sources, same transformation
  const n = w.size(split);
  for (let tries = 0; images.length < k && tries < 20 * k && n > 1; tries++) {
    const j = (index + 1 + rng.int(n - 1)) % n;
    if (info.some((c) => c.sourceIndex === j)) continue;
    const scene = w.scene(split, j);
    const t = transferTo(pair.transformation, pair.sourceScene, scene, allow);
    if (!t) continue;
    accept(applyTransformation(t, scene, w.image(split, j), w.imageSize), { sourceIndex: j, transformation: t });
  }

  const order = rng.shuffle(images.map((_, i) => i));
  const S = w.imageSize;
  const per = 3 * S * S;
  const data = new Float32Array(images.length * per);
  order.forEach((src, dst) => data.set(images[src], dst * per));
  return {
    pair,
    candidates: { data, n: images.length, channels: 3, height: S, width: S },
    targetIndex: order.indexOf(0),
    info: order.map((src) => info[src]),
  };
}
