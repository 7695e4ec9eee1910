// Questions, grounding phrases and zero-shot labels of the embedded world, checked against the
// PIXELS where possible: count answers equal the number of foreground components, colour answers
// the colour at the object, position answers the region of the object's component centroid,
// size answers its pixel extent; each question's reference is parsed back and must pick out
// exactly one object without naming the attribute asked about.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ANSWER_VOCABULARY, QUESTION_TYPES, SHAPE_PROBE, Scene, WorldObject, connectedComponents, createWorld, foregroundMask, nearestColorName,
  parseCaption, pixelAt, regionOf,
} from '../../lib/data/world';
import { objectsMatching } from '../../lib/data/world/referring';
import { BACKGROUND_RGB } from '../../lib/data/world/vocab';
import { ArgumentError } from '../../lib/errors';

const sizes = { train: 2000, val: 300, test: 300, heldout: 300 };
const S = 64;

/** The component holding the object's probe pixel, read from the image alone. */
function componentOf(image: Float32Array, scene: Scene, o: WorldObject) {
  const bg = BACKGROUND_RGB[scene.background];
  const comps = connectedComponents(foregroundMask(image, S, bg), S);
  const [pu, pv] = SHAPE_PROBE[o.shape];
  const px = Math.floor((o.cx + pu * o.radius) * S), py = Math.floor((o.cy + pv * o.radius) * S);
  const own = comps.filter((c) => px >= c.box[0] && px < c.box[2] && py >= c.box[1] && py < c.box[3]);
  assert.is(own.length, 1, 'probe pixel not inside exactly one component');
  return { comp: own[0], comps, color: nearestColorName(pixelAt(image, S, px, py), bg) };
}

test('answers are correct: re-derived from the pixels and from the parsed question', () => {
  const w = createWorld({ seed: 31, imageSize: S, sizes });
  const seen = new Set<string>();
  for (const split of ['train', 'test', 'heldout'] as const) {
    for (let i = 0; i < 150; i++) {
      const q = w.question(split, i);
      const scene = w.scene(split, i);
      const where = `${split}#${i} "${q.question}" -> ${q.answer}`;
      seen.add(q.type);
      assert.equal(q.answers, ANSWER_VOCABULARY[q.type]);
      assert.is(q.answers[q.answerIndex], q.answer, where);
      if (q.type === 'count') {
        const n = connectedComponents(foregroundMask(q.image, S, BACKGROUND_RGB[scene.background]), S).length;
        assert.is(q.answer, ['zero', 'one', 'two', 'three'][n], where);
        continue;
      }
      // the reference: the one mention that says something ("the shape of ..." is a bare noun)
      const parsed = parseCaption(q.question);
      const refs = parsed.mentions
        .map((m, k) => ({ ...m.parts, ...(parsed.positions.find((p) => p.mention === k) ? { region: parsed.positions.find((p) => p.mention === k)?.region } : {}) }))
        .filter((parts) => Object.keys(parts).length > 0);
      assert.is(refs.length, 1, `${where}: ${refs.length} references`);
      const parts = refs[0];
      const hits = objectsMatching(scene, parts);
      assert.is(hits.length, 1, `${where}: reference fits ${hits.length} objects`);
      assert.is(hits[0], scene.objects[q.objectIndex as number], `${where}: wrong object`);
      const o = hits[0];
      const key = q.type === 'position' ? 'region' : q.type;
      assert.is((parts as Record<string, unknown>)[key], undefined, `${where}: the reference gives the answer away`);
      const { comp, color } = componentOf(q.image, scene, o);
      if (q.type === 'color') assert.is(q.answer, color, where);
      if (q.type === 'shape') assert.is(q.answer, o.shape, where);
      if (q.type === 'position') assert.is(q.answer, regionOf(comp.cx, comp.cy), where);
      if (q.type === 'size') {
        const extent = Math.max(comp.box[2] - comp.box[0], comp.box[3] - comp.box[1]);
        assert.is(q.answer, extent > 15 ? 'large' : 'small', `${where}: ${extent} px wide`);
      }
    }
  }
  assert.equal([...seen].sort(), [...QUESTION_TYPES].sort());
});

function cutOutBilinear(img: Float32Array, c: number, box: number[], outSize: number, y: number, x: number): number {
  const [x0, y0, x1, y1] = box;
  const h = y1 - y0, w = x1 - x0;
  const fy = Math.min(h - 1, Math.max(0, ((y + 0.5) * h) / outSize - 0.5)), fx = Math.min(w - 1, Math.max(0, ((x + 0.5) * w) / outSize - 0.5));
  const ya = Math.floor(fy), xa = Math.floor(fx), yb = Math.min(h - 1, ya + 1), xb = Math.min(w - 1, xa + 1);
  const v = (yy: number, xx: number) => img[c * S * S + (y0 + yy) * S + x0 + xx];
  const ty = fy - ya, tx = fx - xa;
  return (v(ya, xa) * (1 - tx) + v(ya, xb) * tx) * (1 - ty) + (v(yb, xa) * (1 - tx) + v(yb, xb) * tx) * ty;
}

test('region phrases pick out their object, boxes hold its pixels, crops are the boxes resized', () => {
  const w = createWorld({ seed: 32, imageSize: S, sizes });
  for (let i = 0; i < 60; i++) {
    const scene = w.scene('val', i);
    const image = w.image('val', i);
    const regions = w.regionPhrases('val', i, 48);
    assert.is(regions.length, scene.objects.length);
    for (const r of regions) {
      const parsed = parseCaption(r.phrase);
      const parts = { ...parsed.mentions[0].parts, ...(parsed.positions[0] ? { region: parsed.positions[0].region } : {}) };
      assert.equal(objectsMatching(scene, parts), [scene.objects[r.objectIndex]], `val#${i}: "${r.phrase}"`);
      const { comp } = componentOf(image, scene, scene.objects[r.objectIndex]);
      const [x0, y0, x1, y1] = r.box;
      assert.ok(comp.box[0] >= x0 && comp.box[1] >= y0 && comp.box[2] <= x1 && comp.box[3] <= y1, `val#${i}: ${comp.box} not inside ${r.box}`);
      assert.ok((x1 - x0) * (y1 - y0) <= 2.2 * (comp.box[2] - comp.box[0]) * (comp.box[3] - comp.box[1]), `val#${i}: box ${r.box} loose`);
      assert.is(r.crop.length, 3 * 48 * 48);
      let worst = 0;
      for (let c = 0; c < 3; c++) for (let y = 0; y < 48; y++) for (let x = 0; x < 48; x++) {
        worst = Math.max(worst, Math.abs(r.crop[c * 48 * 48 + y * 48 + x] - cutOutBilinear(image, c, r.box, 48, y, x)));
      }
      assert.ok(worst < 1e-5, `val#${i}: crop differs from the box resized by ${worst}`);
    }
  }
});

test('zero-shot labels match the pixels; prompts form an ensemble per class', () => {
  const w = createWorld({ seed: 33, imageSize: S, sizes });
  for (const task of ['shape', 'color', 'count'] as const) {
    const { images, labels, classNames } = w.classificationBatch(task, 'test', 0, 60);
    assert.equal([images.n, images.channels, images.height], [60, 3, S]);
    const hist = new Map<number, number>();
    for (let k = 0; k < 60; k++) {
      const scene = w.classificationScene(task, 'test', k);
      const img = images.data.subarray(k * 3 * S * S, (k + 1) * 3 * S * S);
      const comps = connectedComponents(foregroundMask(img, S, BACKGROUND_RGB[scene.background]), S);
      hist.set(labels[k], (hist.get(labels[k]) ?? 0) + 1);
      if (task === 'count') { assert.is(labels[k], comps.length - 1, `count #${k}`); continue; }
      assert.is(comps.length, 1, `${task} #${k}: not a single object`);
      const o = scene.objects[0];
      if (task === 'shape') assert.is(classNames[labels[k]], o.shape);
      else assert.is(classNames[labels[k]], componentOf(img, scene, o).color, `colour #${k}`);
    }
    assert.ok(hist.size >= Math.min(3, classNames.length), `${task}: labels ${[...hist.keys()]}`);
    for (const name of classNames) {
      const prompts = w.prompts(task, name);
      assert.ok(prompts.length >= 4 && prompts.every((p) => p.includes(name)), `${task}/${name}: ${prompts}`);
    }
  }
  assert.ok(w.prompts('color', 'orange').includes('an orange object.'));
  assert.throws(() => w.prompts('shape', 'hexagon'), (e: Error) => e instanceof ArgumentError && /'hexagon' is not a class of task 'shape'/.test(e.message));
  // held-out classification scenes use held-out pairs only
  const held = new Set(w.heldoutCombos.map(([s, c]) => `${s}/${c}`));
  for (let k = 0; k < 30; k++) {
    const o = w.classificationScene('shape', 'heldout', k).objects[0];
    assert.ok(held.has(`${o.shape}/${o.color}`), `heldout #${k}: ${o.color} ${o.shape}`);
  }
});

test.run();
