// Splits of the world. Sample i of a split is a pure function of (seed, split, i): its scene is
// drawn from a stream keyed by those three, retrying with the next attempt's stream until the
// scene belongs to the split. Membership is decided by CONTENT, which makes the splits disjoint by
// construction: a scene's key (scene.ts) hashes to one of 1000 buckets, train takes buckets
// 0-899, val 900-949, test 950-999, so no scene can ever appear in two of them. The held-out
// split is different: a few (shape, colour) pairs (about 10%, picked from the seed with distinct
// shapes and distinct colours, so every shape and colour is still seen in training) never occur in
// train/val/test, and every object of a held-out scene has one of those pairs.

import { ArgumentError } from '../../errors';
import { Rng, hashString } from './rng';
import { Scene, SceneConstraints, generateScene, sceneKey } from './scene';
import { COLORS, ColorName, SHAPES, ShapeName } from './vocab';

export const SPLITS = ['train', 'val', 'test', 'heldout'] as const;
export type Split = (typeof SPLITS)[number];

export const DEFAULT_SPLIT_SIZES: Readonly<Record<Split, number>> = { train: 20000, val: 1000, test: 1000, heldout: 1000 };

const BUCKETS: Readonly<Record<Exclude<Split, 'heldout'>, readonly [number, number]>> = {
  train: [0, 900],
  val: [900, 950],
  test: [950, 1000],
};

/** The split (train/val/test) a scene's content belongs to. */
export function contentSplit(scene: Scene): Exclude<Split, 'heldout'> {
  const b = hashString(sceneKey(scene)) % 1000;
  return b < BUCKETS.train[1] ? 'train' : b < BUCKETS.val[1] ? 'val' : 'test';
}

export function assertSplit(split: string, where: string): asserts split is Split {
  if (!(SPLITS as readonly string[]).includes(split)) {
    throw new ArgumentError(`${where}: unknown split '${split}', expected one of ${SPLITS.join(', ')}`);
  }
}

export type Combo = readonly [ShapeName, ColorName];

/** The held-out (shape, colour) pairs of a seed: round(10%) of all pairs, distinct shapes and colours. */
export function heldoutCombos(seed: number): Combo[] {
  const rng = Rng.keyed(seed, 'heldout-combos');
  const shapes = rng.shuffle(SHAPES);
  const colors = rng.shuffle(COLORS);
  const n = Math.min(shapes.length, colors.length, Math.max(1, Math.round(0.1 * SHAPES.length * COLORS.length)));
  const out: Combo[] = [];
  for (let k = 0; k < n; k++) out.push([shapes[k], colors[k]]);
  return out;
}

/** Draws scenes for the splits of one seed. */
export class SceneSource {
  readonly heldout: Combo[];
  private readonly heldoutSet: Set<string>;

  constructor(readonly seed: number) {
    this.heldout = heldoutCombos(seed);
    this.heldoutSet = new Set(this.heldout.map(([s, c]) => `${s}/${c}`));
  }

  isHeldoutCombo(shape: ShapeName, color: ColorName): boolean {
    return this.heldoutSet.has(`${shape}/${color}`);
  }

  /** The (shape, colour) pairs a split may use. */
  allowCombo(split: Split): (shape: ShapeName, color: ColorName) => boolean {
    return split === 'heldout' ? (s, c) => this.isHeldoutCombo(s, c) : (s, c) => !this.isHeldoutCombo(s, c);
  }

  /**
   * Scene `index` of `split` for a purpose ('' for the main samples; other purposes, e.g. the
   * single-object scenes of zero-shot classification, get their own streams and constraints).
   */
  scene(split: Split, index: number, purpose = '', count?: number): Scene {
    const constraints: SceneConstraints = { allowCombo: this.allowCombo(split), count };
    for (let attempt = 0; attempt < 100000; attempt++) {
      const rng = Rng.keyed(this.seed, split, purpose, index, attempt);
      const scene = generateScene(rng, constraints);
      if (!scene) continue;
      if (split !== 'heldout' && contentSplit(scene) !== split) continue;
      return scene;
    }
    throw new ArgumentError(`world: could not draw scene ${index} of split '${split}' (seed ${this.seed})`);
  }
}
