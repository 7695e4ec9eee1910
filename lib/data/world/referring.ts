// Noun phrases for objects: "a large crimson circle", "the red object", "the square at the top
// left". Captions use indefinite phrases with any subset of attributes (still true); questions,
// instructions and grounding phrases need DEFINITE references that pick out exactly one object,
// so `uniqueReference` tries attribute sets from the shortest up (never using the attribute the
// question asks about) and falls back to the object's region, which is unique by construction.

import { Rng } from './rng';
import { Scene, WorldObject } from './scene';
import {
  COLOR_SYNONYMS, ColorName, OBJECT_NOUNS, REGION_PHRASES, RegionName, SHAPE_SYNONYMS, SIZE_SYNONYMS, ShapeName, SizeName,
} from './vocab';

export interface PhraseParts {
  size?: SizeName;
  color?: ColorName;
  shape?: ShapeName;
  region?: RegionName;
}

/** "large crimson circle" / "red object" (no determiner); synonyms drawn from rng. */
export function nounPhrase(rng: Rng, parts: PhraseParts, plural = false, genericNouns: readonly (readonly [string, string])[] = OBJECT_NOUNS): string {
  const words: string[] = [];
  if (parts.size) words.push(rng.pick(SIZE_SYNONYMS[parts.size]));
  if (parts.color) words.push(rng.pick(COLOR_SYNONYMS[parts.color]));
  const noun = parts.shape ? rng.pick(SHAPE_SYNONYMS[parts.shape]) : rng.pick(genericNouns);
  words.push(plural ? noun[1] : noun[0]);
  let text = words.join(' ');
  if (parts.region) text += ' ' + rng.pick(REGION_PHRASES[parts.region]);
  return text;
}

/** "a"/"an" + phrase. */
export function indefinite(phrase: string): string {
  return (/^[aeiou]/.test(phrase) ? 'an ' : 'a ') + phrase;
}

export type Attribute = 'shape' | 'color' | 'size';

function matches(o: WorldObject, parts: PhraseParts): boolean {
  return (
    (parts.shape === undefined || o.shape === parts.shape) &&
    (parts.color === undefined || o.color === parts.color) &&
    (parts.size === undefined || o.size === parts.size) &&
    (parts.region === undefined || o.region === parts.region)
  );
}

/** The objects of a scene a phrase's attributes fit. */
export function objectsMatching(scene: Scene, parts: PhraseParts): WorldObject[] {
  return scene.objects.filter((o) => matches(o, parts));
}

const ATTRIBUTE_SETS: readonly (readonly Attribute[])[] = [
  ['shape'], ['color'], ['size'], ['size', 'shape'], ['color', 'shape'], ['size', 'color'], ['size', 'color', 'shape'],
];

/**
 * The fewest attributes of object `index` (among `allowed`) that no other object shares, or its
 * region (always unique: one object per grid cell) when no attribute set is enough. Shape comes
 * along with the region whenever it is allowed, so the phrase reads "the square at the top left".
 */
export function uniqueParts(scene: Scene, index: number, allowed: readonly Attribute[]): PhraseParts {
  const o = scene.objects[index];
  for (const set of ATTRIBUTE_SETS) {
    if (!set.every((a) => allowed.includes(a))) continue;
    const parts: PhraseParts = {};
    for (const a of set) (parts as Record<Attribute, string>)[a] = o[a];
    if (objectsMatching(scene, parts).length === 1) return parts;
  }
  const parts: PhraseParts = { region: o.region };
  if (allowed.includes('shape')) parts.shape = o.shape;
  return parts;
}

/** "the red circle" / "the object on the left": a definite phrase naming exactly one object. */
export function uniqueReference(rng: Rng, scene: Scene, index: number, allowed: readonly Attribute[]): { text: string; parts: PhraseParts } {
  const parts = uniqueParts(scene, index, allowed);
  // without a shape, say "object"/"item" ("what shape is the red shape?" reads badly)
  const generic = allowed.includes('shape') ? OBJECT_NOUNS : OBJECT_NOUNS.filter(([one]) => one !== 'shape');
  return { text: 'the ' + nounPhrase(rng, parts, false, generic), parts };
}
