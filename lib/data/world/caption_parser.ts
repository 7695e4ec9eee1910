// A parser for the world's own caption language, and a checker that holds parsed facts against a
// scene. It exists so tests (and anyone auditing a data set) can verify that every caption the
// templates produce is TRUE of its scene without trusting the generator: the parser only knows
// the vocabulary tables, it reads mentions ("a large crimson circle", "two rings"), totals ("three
// objects"), regions ("... at the top left") and relations ("... to the left of ..."), and the
// checker re-derives each fact from the scene description.

import { PhraseParts, objectsMatching } from './referring';
import { Scene, relationsBetween } from './scene';
import {
  COLORS, COLOR_SYNONYMS, NUMBER_WORDS, OBJECT_NOUNS, REGIONS, REGION_PHRASES, RELATION_PHRASES, RelationName,
  RegionName, SHAPES, SHAPE_SYNONYMS, SIZES, SIZE_SYNONYMS,
} from './vocab';

export interface ParsedMention {
  parts: PhraseParts;
  /** An exact count ("two circles", "one star", "a single ring"), or null for "a"/"the" (at least one). */
  count: number | null;
}

export interface ParsedCaption {
  mentions: ParsedMention[];
  /** "three objects" / "one shape": the number of objects in the image, when said. */
  totalCount: number | null;
  relations: { from: number; relation: RelationName; to: number }[];
  positions: { mention: number; region: RegionName }[];
  /** Words the parser did not use (frames such as "a picture of", "on a dark background"). */
  otherWords: string[];
}

type Lex =
  | { kind: 'size'; value: PhraseParts['size'] }
  | { kind: 'color'; value: PhraseParts['color'] }
  | { kind: 'shape'; value: PhraseParts['shape']; plural: boolean }
  | { kind: 'object'; plural: boolean }
  | { kind: 'number'; value: number }
  | { kind: 'det'; single: boolean; word: string }
  | { kind: 'region'; value: RegionName }
  | { kind: 'relation'; value: RelationName }
  | { kind: 'other'; word: string };

/** Lexicon entries as token sequences, longest first so multi-word phrases win. */
function buildLexicon(): [string[], Lex][] {
  const entries: [string, Lex][] = [];
  for (const s of SIZES) for (const w of SIZE_SYNONYMS[s]) entries.push([w, { kind: 'size', value: s }]);
  for (const c of COLORS) for (const w of COLOR_SYNONYMS[c]) entries.push([w, { kind: 'color', value: c }]);
  for (const s of SHAPES) {
    for (const [one, many] of SHAPE_SYNONYMS[s]) {
      entries.push([one, { kind: 'shape', value: s, plural: false }]);
      entries.push([many, { kind: 'shape', value: s, plural: true }]);
    }
  }
  for (const [one, many] of OBJECT_NOUNS) {
    entries.push([one, { kind: 'object', plural: false }]);
    entries.push([many, { kind: 'object', plural: true }]);
  }
  NUMBER_WORDS.forEach((w, i) => entries.push([w, { kind: 'number', value: i }]));
  entries.push(['a single', { kind: 'det', single: true, word: 'a single' }]);
  for (const d of ['a', 'an', 'the']) entries.push([d, { kind: 'det', single: false, word: d }]);
  for (const r of REGIONS) for (const p of REGION_PHRASES[r]) entries.push([p, { kind: 'region', value: r }]);
  for (const rel of Object.keys(RELATION_PHRASES) as RelationName[]) {
    for (const p of RELATION_PHRASES[rel]) entries.push([p, { kind: 'relation', value: rel }]);
  }
  return entries.map(([p, l]) => [p.split(' '), l] as [string[], Lex]).sort((a, b) => b[0].length - a[0].length);
}

const LEXICON = buildLexicon();

function lex(text: string): Lex[] {
  const tokens = text.toLowerCase().replace(/[,:;.!?]/g, ' ').split(/\s+/).filter((t) => t.length > 0);
  const out: Lex[] = [];
  let i = 0;
  while (i < tokens.length) {
    const hit = LEXICON.find(([words]) => words.every((w, k) => tokens[i + k] === w));
    if (hit) {
      out.push(hit[1]);
      i += hit[0].length;
    } else {
      out.push({ kind: 'other', word: tokens[i] });
      i++;
    }
  }
  return out;
}

/** Parse one caption into facts (mentions, total count, relations, positions). */
export function parseCaption(text: string): ParsedCaption {
  const items = lex(text);
  const result: ParsedCaption = { mentions: [], totalCount: null, relations: [], positions: [], otherWords: [] };
  let pendingRelation: { from: number; relation: RelationName } | null = null;
  let i = 0;
  while (i < items.length) {
    const it = items[i];
    if (it.kind === 'other') {
      result.otherWords.push(it.word);
      i++;
      continue;
    }
    if (it.kind === 'region') {
      if (result.mentions.length > 0) result.positions.push({ mention: result.mentions.length - 1, region: it.value });
      i++;
      continue;
    }
    if (it.kind === 'relation') {
      if (result.mentions.length > 0) pendingRelation = { from: result.mentions.length - 1, relation: it.value };
      i++;
      continue;
    }
    // a noun phrase: [number | det] [size] [colour] (shape | object)
    let count: number | null = null;
    let j = i;
    const head = items[j];
    const determined = head.kind === 'number' || head.kind === 'det';
    if (head.kind === 'number') { count = head.value; j++; }
    else if (head.kind === 'det') { count = head.single ? 1 : null; j++; }
    const parts: PhraseParts = {};
    const sizeItem = items[j];
    if (sizeItem?.kind === 'size') { parts.size = sizeItem.value; j++; }
    const colorItem = items[j];
    if (colorItem?.kind === 'color') { parts.color = colorItem.value; j++; }
    const noun = items[j];
    if (noun?.kind === 'shape' || noun?.kind === 'object') {
      if (noun.kind === 'shape') parts.shape = noun.value;
      j++;
      const bare = parts.size === undefined && parts.color === undefined && parts.shape === undefined;
      if (bare && count !== null) {
        result.totalCount = count; // "two objects"
      } else if (bare && !determined) {
        result.otherWords.push(items[j - 1].kind === 'object' ? 'object' : 'noun'); // "what shape is", "how many objects"
      } else {
        result.mentions.push({ parts, count });
        if (pendingRelation) {
          result.relations.push({ ...pendingRelation, to: result.mentions.length - 1 });
          pendingRelation = null;
        }
      }
      i = j;
      continue;
    }
    // a determiner not followed by a noun ("a picture of") is glue; a number or an adjective
    // without a noun is kept (as its lexicon entry) so a caller can tell it was not understood
    result.otherWords.push(it.kind === 'det' ? it.word : JSON.stringify(it));
    i++;
  }
  return result;
}

/** Every way the parsed facts disagree with the scene (empty when the caption is true). */
export function captionViolations(scene: Scene, parsed: ParsedCaption): string[] {
  const bad: string[] = [];
  const n = scene.objects.length;
  if (parsed.totalCount !== null && parsed.totalCount !== n) bad.push(`says ${parsed.totalCount} objects, scene has ${n}`);
  parsed.mentions.forEach((m, k) => {
    const hits = objectsMatching(scene, m.parts).length;
    if (m.count === null ? hits < 1 : hits !== m.count) {
      bad.push(`mention ${k} ${JSON.stringify(m.parts)} x${m.count ?? '>=1'} matches ${hits} objects`);
    }
  });
  for (const p of parsed.positions) {
    const parts = { ...parsed.mentions[p.mention].parts, region: p.region };
    if (objectsMatching(scene, parts).length === 0) bad.push(`no ${JSON.stringify(parsed.mentions[p.mention].parts)} in region ${p.region}`);
  }
  for (const r of parsed.relations) {
    const as = objectsMatching(scene, parsed.mentions[r.from].parts);
    const bs = objectsMatching(scene, parsed.mentions[r.to].parts);
    const holds = as.some((a) => bs.some((b) => a !== b && relationsBetween(a, b).includes(r.relation)));
    if (!holds) bad.push(`relation ${r.from} ${r.relation} ${r.to} does not hold`);
  }
  return bad;
}
