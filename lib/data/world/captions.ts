// Captions: several different, all-true descriptions of a scene, from templates with synonyms.
// Templates: a plain list of the objects, a counted list ("two objects: ..."), a bare count,
// a spatial relation between two objects, the objects with their regions, and per-shape counts
// ("two circles and a star"). Object order, which optional attributes are said, synonyms and an
// optional "a picture of"-style frame vary, so one scene yields many distinct strings. Every
// phrase is built from the scene's own attributes (vocab.ts synonyms map to exactly one value),
// so no caption can contradict the image; caption_parser.ts reads them back for the tests.

import { Rng } from './rng';
import { Scene, WorldObject, relationsBetween } from './scene';
import { indefinite, nounPhrase } from './referring';
import { NUMBER_WORDS, OBJECT_NOUNS, RELATION_PHRASES, REGION_PHRASES, SHAPES, ShapeName } from './vocab';

const FRAMES = ['', '', 'a picture of ', 'an image of ', 'a photo showing ', 'a rendering of '];
const SUFFIXES = ['', '', '', ' on a dark background'];

/** "a (large) (red) circle": shape always, colour and size when asked (or at random). */
function mention(rng: Rng, o: WorldObject, needColor = false): string {
  return indefinite(
    nounPhrase(rng, {
      size: rng.chance(0.4) ? o.size : undefined,
      color: needColor || rng.chance(0.8) ? o.color : undefined,
      shape: o.shape,
    }),
  );
}

/** "x", "x and y", "x, y and z". */
export function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return items.slice(0, -1).join(', ') + ' and ' + items[items.length - 1];
}

function listOf(rng: Rng, objects: readonly WorldObject[]): string {
  return joinList(rng.shuffle(objects).map((o) => mention(rng, o)));
}

function counted(rng: Rng, scene: Scene): string {
  const n = scene.objects.length;
  if (n === 1) {
    return rng.chance(0.5)
      ? 'a single ' + nounPhrase(rng, { color: scene.objects[0].color, shape: scene.objects[0].shape, size: rng.chance(0.4) ? scene.objects[0].size : undefined })
      : `one ${rng.pick(OBJECT_NOUNS)[0]}: ${listOf(rng, scene.objects)}`;
  }
  return `${NUMBER_WORDS[n]} ${rng.pick(OBJECT_NOUNS)[1]}: ${listOf(rng, scene.objects)}`;
}

function bareCount(rng: Rng, scene: Scene): string {
  const n = scene.objects.length;
  if (n === 1) return 'there is ' + mention(rng, scene.objects[0]);
  const noun = rng.pick(OBJECT_NOUNS)[1];
  return rng.chance(0.5) ? `there are ${NUMBER_WORDS[n]} ${noun}` : `${NUMBER_WORDS[n]} ${noun} on a dark background`;
}

/** "a blue square to the left of a green star" (colour always said so the pair is identified). */
function relation(rng: Rng, scene: Scene): string | null {
  if (scene.objects.length < 2) return null;
  const [a, b] = rng.shuffle(scene.objects);
  const rel = rng.pick(relationsBetween(a, b));
  return `${mention(rng, a, true)} ${rng.pick(RELATION_PHRASES[rel])} ${mention(rng, b, true)}`;
}

function positions(rng: Rng, scene: Scene): string {
  return joinList(rng.shuffle(scene.objects).map((o) => `${mention(rng, o)} ${rng.pick(REGION_PHRASES[o.region])}`));
}

/** "two circles and a star" (exact counts per shape). */
function perShape(rng: Rng, scene: Scene): string {
  const counts = new Map<ShapeName, number>();
  for (const o of scene.objects) counts.set(o.shape, (counts.get(o.shape) ?? 0) + 1);
  const parts = rng.shuffle(SHAPES.filter((s) => counts.has(s))).map((s) => {
    const c = counts.get(s) as number;
    const noun = nounPhrase(rng, { shape: s }, c > 1);
    return `${NUMBER_WORDS[c]} ${noun}`;
  });
  return joinList(parts);
}

const TEMPLATES: readonly ((rng: Rng, scene: Scene) => string | null)[] = [
  (rng, s) => listOf(rng, s.objects),
  counted,
  bareCount,
  relation,
  positions,
  perShape,
];

/**
 * `count` distinct true captions of a scene (fewer only if the templates cannot make that many
 * different strings, which does not happen for count <= 8). The first caption is always the
 * full list of objects; the rest come from randomly chosen templates.
 */
export function captionsFor(rng: Rng, scene: Scene, count = 8): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (let attempt = 0; attempt < count * 12 && out.length < count; attempt++) {
    const template = attempt < TEMPLATES.length ? TEMPLATES[attempt] : rng.pick(TEMPLATES);
    const body = template(rng, scene);
    if (body === null) continue;
    const framed = body.startsWith('there ') ? body : rng.pick(FRAMES) + body + (body.includes('background') ? '' : rng.pick(SUFFIXES));
    if (seen.has(framed)) continue;
    seen.add(framed);
    out.push(framed);
  }
  return out;
}
