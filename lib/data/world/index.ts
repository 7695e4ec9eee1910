// The embedded world: tessera's default data set, a procedural image-text world generated
// deterministically from a seed (no files). Scenes of 1-3 coloured shapes on a dark background,
// rendered at any size, with everything the image-text methods need:
//
//   const world = createWorld({ seed: 0, imageSize: 32 });       // sizes: train 20000, val/test/heldout 1000
//   world.size('train')                                            // number of samples of a split
//   world.sample('train', i)      -> { image: Float32Array [3,S,S] in [0,1], captions: string[] (8, all true), scene }
//   world.imageBatch('val', start, count) -> ImageBatch (NCHW float32)
//   world.captionBatch('val', start, count, perImage?) -> string[][]
//   world.scene(split, i) / world.render(scene)                   // the structured description / its pixels
//   world.transformationPair(split, i)        -> { source, instruction, target, transformation, family, ... }
//   world.transformationCandidates(split, i, k = 8) -> { pair, candidates: ImageBatch [k,3,S,S], targetIndex, info }
//   world.question(split, i)      -> { image, question, answer, answers (vocabulary of its type), answerIndex, type }
//   world.regionPhrases(split, i, cropSize?) -> [{ phrase, box [x0,y0,x1,y1), crop [3,c,c], objectIndex }]
//   world.classNames(task), world.prompts(task, className)    // zero-shot: task 'shape' | 'color' | 'count'
//   world.classificationBatch(task, split, start, count) -> { images, labels: Int32Array, classNames }
//   world.textCorpus(count)       -> prompts, captions, instructions, questions, answers (for a tokenizer)
//   world.heldoutCombos, world.isHeldoutCombo(shape, colour)  // pairs that occur ONLY in the 'heldout' split
//   world.classificationScene(task, split, i), world.captions(split, i, count?)
//   parseCaption(text), captionViolations(scene, parsed)       // read captions back, check them against a scene
//   connectedComponents, foregroundMask, nearestColorName      // read facts back from pixels (audits, tests)
//
// Transformation families: crop (4 quarters + centre), orientation (rotate 90/180/270 clockwise,
// flip horizontal/vertical), recolor (one object to another colour, re-rendered; in train/val/test
// never to a held-out pair), photometric (grayscale, brighter/darker, more/less contrast).
// Question types: color, shape, count, position (9 regions), size; answers come from
// ANSWER_VOCABULARY[type]. Zero-shot tasks: shape and color (single-object scenes), count.
//
// Sample i of a split is a pure function of (seed, split, i); splits are disjoint by scene content
// (splits.ts). Scenes are cached (they are tiny); pixels are rendered on demand (about 1 ms per
// 32 x 32 image), so a split is never materialised as a whole.

import { ArgumentError } from '../../errors';
import type { ImageBatch } from '../image_batch';
import { Rng } from './rng';
import { Scene } from './scene';
import { renderScene } from './raster';
import { captionsFor } from './captions';
import { DEFAULT_SPLIT_SIZES, SceneSource, Split, assertSplit, Combo } from './splits';
import {
  TransformSource, TransformationCandidates, TransformationPair, transformationCandidates, transformationPair, transformationSpec,
} from './transform_candidates';
import { QuestionText, questionFor } from './questions';
import { RegionPhrase, regionPhrasesFor } from './regions';
import { CLASS_NAMES, ClassificationTask, classPrompts } from './classes';
import { ColorName, ShapeName } from './vocab';

export type { Split } from './splits';
export type { Scene, WorldObject } from './scene';
export type { Transformation, TransformFamily, CropRegion } from './transforms';
export type { TransformationPair, TransformationCandidates, CandidateInfo } from './transform_candidates';
export type { QuestionType } from './questions';
export type { RegionPhrase } from './regions';
export type { ClassificationTask } from './classes';
export type { ShapeName, ColorName, SizeName, RegionName } from './vocab';
export { SHAPES, COLORS, SIZES, REGIONS, COLOR_RGB } from './vocab';
export { SPLITS } from './splits';
export type { Combo } from './splits';
export { ANSWER_VOCABULARY, QUESTION_TYPES } from './questions';
export { CLASSIFICATION_TASKS, CLASS_NAMES } from './classes';
export { TRANSFORM_FAMILIES } from './transforms';
export { parseCaption, captionViolations } from './caption_parser';
export { sceneKey, objectBox, relationsBetween, regionOf } from './scene';
export { SHAPE_PROBE } from './shapes';
export { pixelAt, nearestColorName, foregroundMask, connectedComponents } from './pixel_checks';
export type { Component } from './pixel_checks';

export interface WorldOptions {
  seed?: number;
  /** Side of the square images in pixels (default 32). */
  imageSize?: number;
  /** Samples per split (defaults: train 20000, val 1000, test 1000, heldout 1000). */
  sizes?: Partial<Record<Split, number>>;
  /** Captions per sample (default 8, at least 5 distinct). */
  captionsPerImage?: number;
}

export interface WorldSample {
  split: Split;
  index: number;
  /** [3, S, S] CHW float32 in [0, 1]. */
  image: Float32Array;
  captions: string[];
  scene: Scene;
}

export interface QuestionSample extends QuestionText {
  split: Split;
  index: number;
  image: Float32Array;
}

export interface ClassificationBatch {
  images: ImageBatch;
  /** Class index per image, into classNames. */
  labels: Int32Array;
  classNames: readonly string[];
}

const SCENE_CACHE_LIMIT = 200000;

export class World implements TransformSource {
  readonly seed: number;
  readonly imageSize: number;
  readonly captionsPerImage: number;
  readonly heldoutCombos: readonly Combo[];
  private readonly sizes: Record<Split, number>;
  private readonly source: SceneSource;
  private readonly cache = new Map<string, Scene>();

  constructor(opts: WorldOptions = {}) {
    const seed = opts.seed ?? 0;
    const imageSize = opts.imageSize ?? 32;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new ArgumentError(`createWorld: seed must be a non-negative safe integer, got ${seed}`);
    if (!Number.isInteger(imageSize) || imageSize < 8 || imageSize > 4096) {
      throw new ArgumentError(`createWorld: imageSize must be an integer in [8, 4096], got ${imageSize}`);
    }
    this.seed = seed;
    this.imageSize = imageSize;
    this.captionsPerImage = opts.captionsPerImage ?? 8;
    if (!Number.isInteger(this.captionsPerImage) || this.captionsPerImage < 1 || this.captionsPerImage > 16) {
      throw new ArgumentError(`createWorld: captionsPerImage must be an integer in [1, 16], got ${this.captionsPerImage}`);
    }
    this.sizes = { ...DEFAULT_SPLIT_SIZES };
    for (const [split, n] of Object.entries(opts.sizes ?? {})) {
      assertSplit(split, 'createWorld sizes');
      if (!Number.isInteger(n) || (n as number) < 0) throw new ArgumentError(`createWorld: size of split '${split}' must be a non-negative integer, got ${n}`);
      this.sizes[split] = n as number;
    }
    this.source = new SceneSource(seed);
    this.heldoutCombos = this.source.heldout;
  }

  size(split: Split): number {
    assertSplit(split, 'World.size');
    return this.sizes[split];
  }

  private checkIndex(split: Split, index: number, where: string): void {
    assertSplit(split, where);
    if (!Number.isInteger(index) || index < 0 || index >= this.sizes[split]) {
      throw new ArgumentError(`${where}: index ${index} is outside split '${split}' of size ${this.sizes[split]}`);
    }
  }

  allowCombo(split: Split): (shape: ShapeName, color: ColorName) => boolean {
    return this.source.allowCombo(split);
  }

  isHeldoutCombo(shape: ShapeName, color: ColorName): boolean {
    return this.source.isHeldoutCombo(shape, color);
  }

  private cached(key: string, make: () => Scene): Scene {
    let s = this.cache.get(key);
    if (!s) {
      s = make();
      if (this.cache.size >= SCENE_CACHE_LIMIT) this.cache.clear();
      this.cache.set(key, s);
    }
    return s;
  }

  /** The scene description of sample `index` (do not mutate: it is cached). */
  scene(split: Split, index: number): Scene {
    this.checkIndex(split, index, 'World.scene');
    return this.cached(`${split}:${index}`, () => this.source.scene(split, index));
  }

  /** Pixels of any scene at this world's image size: [3, S, S] CHW float32 in [0, 1]. */
  render(scene: Scene): Float32Array {
    return renderScene(scene, this.imageSize);
  }

  image(split: Split, index: number): Float32Array {
    return this.render(this.scene(split, index));
  }

  captions(split: Split, index: number, count = this.captionsPerImage): string[] {
    return captionsFor(Rng.keyed(this.seed, split, 'captions', index), this.scene(split, index), count);
  }

  sample(split: Split, index: number): WorldSample {
    const scene = this.scene(split, index);
    return { split, index, image: this.render(scene), captions: this.captions(split, index), scene };
  }

  private checkRange(split: Split, start: number, count: number, where: string): void {
    assertSplit(split, where);
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.sizes[split]) {
      throw new ArgumentError(`${where}: samples [${start}, ${start + count}) are outside split '${split}' of size ${this.sizes[split]}`);
    }
  }

  /** Images [start, start + count) of a split as one NCHW batch. */
  imageBatch(split: Split, start: number, count: number): ImageBatch {
    this.checkRange(split, start, count, 'World.imageBatch');
    const S = this.imageSize;
    const per = 3 * S * S;
    const data = new Float32Array(count * per);
    for (let k = 0; k < count; k++) renderScene(this.scene(split, start + k), S, data, k * per);
    return { data, n: count, channels: 3, height: S, width: S };
  }

  /** The captions of samples [start, start + count): `perImage` of them each (default all). */
  captionBatch(split: Split, start: number, count: number, perImage = this.captionsPerImage): string[][] {
    this.checkRange(split, start, count, 'World.captionBatch');
    const out: string[][] = [];
    for (let k = 0; k < count; k++) out.push(this.captions(split, start + k).slice(0, perImage));
    return out;
  }

  transformationPair(split: Split, index: number): TransformationPair {
    this.checkIndex(split, index, 'World.transformationPair');
    return transformationPair(this, split, index);
  }

  transformationCandidates(split: Split, index: number, k = 8): TransformationCandidates {
    this.checkIndex(split, index, 'World.transformationCandidates');
    if (!Number.isInteger(k) || k < 2) throw new ArgumentError(`World.transformationCandidates: k must be an integer >= 2, got ${k}`);
    return transformationCandidates(this, split, index, k);
  }

  question(split: Split, index: number): QuestionSample {
    this.checkIndex(split, index, 'World.question');
    const scene = this.scene(split, index);
    const q = questionFor(Rng.keyed(this.seed, split, 'question', index), scene);
    return { ...q, split, index, image: this.render(scene) };
  }

  regionPhrases(split: Split, index: number, cropSize = this.imageSize): RegionPhrase[] {
    this.checkIndex(split, index, 'World.regionPhrases');
    if (!Number.isInteger(cropSize) || cropSize < 1) throw new ArgumentError(`World.regionPhrases: cropSize must be a positive integer, got ${cropSize}`);
    const scene = this.scene(split, index);
    return regionPhrasesFor(Rng.keyed(this.seed, split, 'regions', index), scene, this.render(scene), this.imageSize, cropSize);
  }

  classNames(task: ClassificationTask): readonly string[] {
    const names = CLASS_NAMES[task];
    if (!names) throw new ArgumentError(`World.classNames: unknown task '${task}', expected shape, color or count`);
    return names;
  }

  prompts(task: ClassificationTask, className: string): string[] {
    if (!this.classNames(task).includes(className)) {
      throw new ArgumentError(`World.prompts: '${className}' is not a class of task '${task}' (${this.classNames(task).join(', ')})`);
    }
    return classPrompts(task, className);
  }

  /** The scene of classification sample `index` (single-object scenes for shape and colour). */
  classificationScene(task: ClassificationTask, split: Split, index: number): Scene {
    this.checkIndex(split, index, 'World.classificationScene');
    if (task === 'count') return this.scene(split, index);
    this.classNames(task);
    return this.cached(`single:${split}:${index}`, () => this.source.scene(split, index, 'single', 1));
  }

  /** Images and labels of classification samples [start, start + count). */
  classificationBatch(task: ClassificationTask, split: Split, start: number, count: number): ClassificationBatch {
    this.checkRange(split, start, count, 'World.classificationBatch');
    const classNames = this.classNames(task);
    const S = this.imageSize;
    const per = 3 * S * S;
    const data = new Float32Array(count * per);
    const labels = new Int32Array(count);
    for (let k = 0; k < count; k++) {
      const scene = this.classificationScene(task, split, start + k);
      renderScene(scene, S, data, k * per);
      const o = scene.objects[0];
      labels[k] = task === 'count' ? scene.objects.length - 1 : task === 'shape' ? classNames.indexOf(o.shape) : classNames.indexOf(o.color);
    }
    return { images: { data, n: count, channels: 3, height: S, width: S }, labels, classNames };
  }

  /**
   * `count` strings of the world's language (fewer only if the train split runs out), in a fixed
   * order: the class prompts, then per train sample its captions, transformation instruction,
   * question and answer. No pixels are rendered, so this is fast.
   */
  textCorpus(count: number): string[] {
    if (!Number.isInteger(count) || count < 0) throw new ArgumentError(`World.textCorpus: count must be a non-negative integer, got ${count}`);
    const out: string[] = [];
    for (const task of ['shape', 'color', 'count'] as const) {
      for (const c of CLASS_NAMES[task]) out.push(...classPrompts(task, c));
    }
    for (let i = 0; out.length < count && i < this.sizes.train; i++) {
      const scene = this.scene('train', i);
      out.push(...this.captions('train', i));
      out.push(transformationSpec(this, 'train', i).instruction);
      const q = questionFor(Rng.keyed(this.seed, 'train', 'question', i), scene);
      out.push(q.question, q.answer);
    }
    return out.slice(0, count);
  }
}

export function createWorld(opts: WorldOptions = {}): World {
  return new World(opts);
}
