// Captions of the embedded world are TRUE of their image: every caption is parsed back (with the
// parser of the world's own templates) into mentions, counts, regions and relations, and each
// fact is re-derived from the scene description; the colours they name are checked against the
// pixels too. Also: several distinct captions per image, and a false caption IS caught.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  SHAPE_PROBE, captionViolations, createWorld, nearestColorName, parseCaption, pixelAt,
} from '../../lib/data/world';
import { objectsMatching } from '../../lib/data/world/referring';
import { BACKGROUND_RGB } from '../../lib/data/world/vocab';

const sizes = { train: 2000, val: 300, test: 300, heldout: 300 };
/** Words the templates may use outside the vocabulary (frames and glue). */
const FILLER = new Set(['a', 'an', 'and', 'picture', 'of', 'image', 'photo', 'showing', 'rendering', 'on', 'dark', 'background', 'there', 'is', 'are']);

test('every caption parses back into facts that are true of its scene', () => {
  const w = createWorld({ seed: 4, sizes });
  let checked = 0;
  let relations = 0, positions = 0, totals = 0, exact = 0;
  for (const split of ['train', 'val', 'heldout'] as const) {
    for (let i = 0; i < 200; i++) {
      const { scene, captions } = w.sample(split, i);
      for (const c of captions) {
        const parsed = parseCaption(c);
        assert.ok(parsed.mentions.length > 0 || parsed.totalCount !== null, `${split}#${i}: nothing parsed from "${c}"`);
        const stray = parsed.otherWords.filter((x) => !FILLER.has(x));
        assert.equal(stray, [], `${split}#${i}: unparsed words in "${c}"`);
        assert.equal(captionViolations(scene, parsed), [], `${split}#${i}: "${c}" is false`);
        checked++;
        relations += parsed.relations.length;
        positions += parsed.positions.length;
        totals += parsed.totalCount !== null ? 1 : 0;
        exact += parsed.mentions.filter((m) => m.count !== null).length;
      }
    }
  }
  // every kind of fact was actually exercised
  assert.ok(checked >= 600 * 5 && relations > 100 && positions > 300 && totals > 300 && exact > 300,
    `checked ${checked} captions, ${relations} relations, ${positions} positions, ${totals} totals, ${exact} exact counts`);
});

test('each image has at least 5 distinct captions, deterministic per (seed, split, index)', () => {
  const w = createWorld({ seed: 4, sizes });
  for (let i = 0; i < 300; i++) {
    const caps = w.sample('train', i).captions;
    assert.ok(new Set(caps).size >= 5, `train#${i} has only ${new Set(caps).size} distinct captions: ${caps.join(' | ')}`);
  }
  assert.equal(w.captions('test', 17), createWorld({ seed: 4, sizes }).captions('test', 17));
  assert.equal(w.captionBatch('val', 5, 3, 2), [0, 1, 2].map((k) => w.captions('val', 5 + k).slice(0, 2)));
});

test('the checker rejects false captions (wrong colour, count, region, relation)', () => {
  const w = createWorld({ seed: 4, sizes });
  let i = 0;
  while (w.scene('train', i).objects.length !== 2) i++;
  const scene = w.scene('train', i);
  const [a, b] = scene.objects;
  const wrongColor = a.color === 'red' ? 'blue' : 'red';
  const badOnes = [
    `a ${wrongColor} ${a.shape}`,
    'three objects',
    `two ${a.shape === 'star' ? 'rings' : 'stars'}`,
    `a ${a.color} ${a.shape} ${a.region === 'center' ? 'at the top left' : 'in the center'}`,
  ];
  const rel = b.cx < a.cx ? 'to the left of' : 'to the right of';
  if (Math.abs(a.cx - b.cx) > 0.2) badOnes.push(`a ${a.color} ${a.shape} ${rel} a ${b.color} ${b.shape}`);
  for (const c of badOnes) assert.ok(captionViolations(scene, parseCaption(c)).length > 0, `"${c}" was accepted for ${JSON.stringify(scene.objects)}`);
  assert.equal(captionViolations(scene, parseCaption(`two objects: a ${a.color} ${a.shape} and a ${b.color} ${b.shape}`)), []);
});

test('the colour a caption names is the colour of the pixels at that object', () => {
  const w = createWorld({ seed: 6, imageSize: 64, sizes });
  let checked = 0;
  for (let i = 0; i < 150; i++) {
    const { scene, captions, image } = w.sample('train', i);
    for (const c of captions) {
      for (const m of parseCaption(c).mentions) {
        if (!m.parts.color || !m.parts.shape) continue;
        const [o] = objectsMatching(scene, { shape: m.parts.shape, color: m.parts.color });
        const [pu, pv] = SHAPE_PROBE[o.shape];
        const x = Math.floor((o.cx + pu * o.radius) * 64), y = Math.floor((o.cy + pv * o.radius) * 64);
        assert.is(nearestColorName(pixelAt(image, 64, x, y), BACKGROUND_RGB[scene.background]), m.parts.color, `train#${i}: "${c}"`);
        checked++;
      }
    }
  }
  assert.ok(checked > 1000, `only ${checked} colour mentions checked`);
});

test('textCorpus returns the requested number of world sentences, deterministically', () => {
  const w = createWorld({ seed: 4, sizes });
  const corpus = w.textCorpus(3000);
  assert.is(corpus.length, 3000);
  assert.equal(corpus.slice(2000), createWorld({ seed: 4, sizes }).textCorpus(3000).slice(2000));
  assert.ok(corpus.includes(w.captions('train', 0)[0]));
  assert.ok(corpus.some((s) => s.startsWith('how many')), 'no questions in the corpus');
  assert.ok(corpus.some((s) => /rotate|flip|zoom|crop|brightness|contrast|grayscale/.test(s)), 'no instructions in the corpus');
  assert.ok(corpus.includes('a picture of a star.'), 'no class prompts in the corpus');
});

test.run();
