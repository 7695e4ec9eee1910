// Text-guided transformations of the embedded world: each target is checked against the source
// with index arithmetic written independently here (a flipped target is the flipped source pixel
// for pixel, a rotation moves pixel (x, y) where a clockwise turn should, a crop target is the
// crop window resampled bilinearly), recolours change only that object and to the named colour,
// instructions say what was done, and candidate sets hold exactly one true target.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  COLOR_RGB, SHAPE_PROBE, Transformation, TransformationPair, World, createWorld, nearestColorName, objectBox, parseCaption, pixelAt,
} from '../../lib/data/world';
import { objectsMatching } from '../../lib/data/world/referring';
import { applyTransformation, familyOf } from '../../lib/data/world/transforms';
import { BACKGROUND_RGB, COLOR_SYNONYMS } from '../../lib/data/world/vocab';

const sizes = { train: 2000, val: 300, test: 300, heldout: 300 };

function pairsOfKind(w: World, kind: Transformation['kind'], want: number): TransformationPair[] {
  const out: TransformationPair[] = [];
  for (let i = 0; out.length < want && i < w.size('train'); i++) {
    const p = w.transformationPair('train', i);
    if (p.transformation.kind === kind) out.push(p);
  }
  assert.is(out.length, want, `found ${out.length} ${kind} pairs`);
  return out;
}

const at = (img: Float32Array, S: number, c: number, y: number, x: number) => img[c * S * S + y * S + x];

test('a flipped target equals the flipped source pixel for pixel', () => {
  const w = createWorld({ seed: 21, sizes });
  const S = w.imageSize;
  for (const p of pairsOfKind(w, 'flip', 20)) {
    const horizontal = p.transformation.kind === 'flip' && p.transformation.axis === 'horizontal';
    assert.ok(horizontal ? /horizontal|left to right/.test(p.instruction) : /vertical|top to bottom|upside down/.test(p.instruction), p.instruction);
    for (let c = 0; c < 3; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      const want = horizontal ? at(p.source, S, c, y, S - 1 - x) : at(p.source, S, c, S - 1 - y, x);
      assert.is(at(p.target, S, c, y, x), want, `train#${p.index} ${p.instruction}: pixel (${c}, ${y}, ${x})`);
    }
  }
});

test('rotations move pixels as clockwise quarter turns and carry each object to its rotated place', () => {
  const w = createWorld({ seed: 22, imageSize: 64, sizes });
  const S = 64;
  for (const p of pairsOfKind(w, 'rotate', 20)) {
    const deg = p.transformation.kind === 'rotate' ? p.transformation.degrees : 0;
    assert.ok(deg === 180 ? /180|half/.test(p.instruction) : deg === 90 ? /(90 degrees |quarter turn )(clockwise|to the right)/.test(p.instruction) : /counterclockwise|to the left/.test(p.instruction), `${deg}: ${p.instruction}`);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      // a clockwise quarter turn sends source (row r, col c) to (row c, col S-1-r)
      let r = y, c = x;
      for (let t = 0; t < deg / 90; t++) [r, c] = [S - 1 - c, r]; // walk back from target to source
      assert.is(at(p.target, S, 1, y, x), at(p.source, S, 1, r, c), `train#${p.index} rot ${deg}: (${y}, ${x})`);
    }
    for (const o of p.sourceScene.objects) {
      if (o.shape === 'ring' || o.shape === 'triangle') continue; // probes off-centre
      let [u, v] = [o.cx, o.cy];
      for (let t = 0; t < deg / 90; t++) [u, v] = [1 - v, u];
      const rgb = pixelAt(p.target, S, Math.floor(u * S), Math.floor(v * S));
      assert.is(nearestColorName(rgb, BACKGROUND_RGB[p.sourceScene.background]), o.color, `train#${p.index}: ${o.shape} after ${deg}`);
    }
  }
});

/** The h x w window at (top, left) of channel c, cut out as its own image. */
function cutOut(img: Float32Array, S: number, c: number, top: number, left: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = at(img, S, c, top + y, left + x);
  return out;
}

/** Bilinear sample of an h x w image at (fy, fx), pixel centres at half-integers, clamped at its border. */
function bilinear(img: Float32Array, h: number, w: number, fy: number, fx: number): number {
  const y = Math.min(h - 1, Math.max(0, fy - 0.5)), x = Math.min(w - 1, Math.max(0, fx - 0.5));
  const y0 = Math.floor(y), x0 = Math.floor(x), y1 = Math.min(h - 1, y0 + 1), x1 = Math.min(w - 1, x0 + 1);
  const ty = y - y0, tx = x - x0;
  const top = img[y0 * w + x0] * (1 - tx) + img[y0 * w + x1] * tx;
  const bottom = img[y1 * w + x0] * (1 - tx) + img[y1 * w + x1] * tx;
  return top * (1 - ty) + bottom * ty;
}

test('a crop target is its crop window of the source, cut out and resized to the full image', () => {
  const w = createWorld({ seed: 23, sizes });
  const S = w.imageSize, H = S / 2;
  for (const p of pairsOfKind(w, 'crop', 15)) {
    const region = p.transformation.kind === 'crop' ? p.transformation.region : 'center';
    assert.ok(p.instruction.includes(region === 'center' ? 'cent' : region) || (region === 'center' && p.instruction.includes('middle')), p.instruction);
    const top = region === 'center' ? S / 4 : region.startsWith('bottom') ? H : 0;
    const left = region === 'center' ? S / 4 : region.endsWith('right') ? H : 0;
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      const window = cutOut(p.source, S, c, top, left, H, H);
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
        const want = bilinear(window, H, H, (y + 0.5) / 2, (x + 0.5) / 2);
        worst = Math.max(worst, Math.abs(at(p.target, S, c, y, x) - want));
      }
    }
    assert.ok(worst < 1e-5, `train#${p.index} ${p.instruction}: max error ${worst}`);
  }
});

test('a recolour changes only the named object, to the named colour, and the instruction names it uniquely', () => {
  const w = createWorld({ seed: 24, imageSize: 64, sizes });
  const S = 64;
  for (const p of pairsOfKind(w, 'recolor', 25)) {
    const t = p.transformation as Extract<Transformation, { kind: 'recolor' }>;
    const o = p.sourceScene.objects[t.object];
    assert.not.ok(w.isHeldoutCombo(o.shape, t.color), `train#${p.index}: recolour creates a held-out pair`);
    // instruction: "... <reference> ... <colour synonym>"
    const colorWord = COLOR_SYNONYMS[t.color].find((s) => p.instruction.endsWith(' ' + s));
    assert.ok(colorWord, `"${p.instruction}" does not end in a name of ${t.color}`);
    const parsed = parseCaption(p.instruction.slice(0, -(colorWord as string).length));
    const ref = parsed.mentions[0];
    const region = parsed.positions[0]?.region;
    const hits = objectsMatching(p.sourceScene, { ...ref.parts, ...(region ? { region } : {}) });
    assert.equal(hits, [o], `"${p.instruction}" does not pick out the ${o.color} ${o.shape}`);
    // pixels: changed only inside the object's box, and the probe now has the new colour
    const [x0, y0, x1, y1] = objectBox(o, S);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      if (x >= x0 && x < x1 && y >= y0 && y < y1) continue;
      for (let c = 0; c < 3; c++) assert.is(at(p.target, S, c, y, x), at(p.source, S, c, y, x), `train#${p.index}: pixel (${y}, ${x}) changed`);
    }
    const [pu, pv] = SHAPE_PROBE[o.shape];
    const probe = pixelAt(p.target, S, Math.floor((o.cx + pu * o.radius) * S), Math.floor((o.cy + pv * o.radius) * S));
    assert.is(nearestColorName(probe, BACKGROUND_RGB[p.sourceScene.background]), t.color, `train#${p.index}: ${p.instruction}`);
  }
});

test('photometric targets: grayscale is the luma in every channel, brightness and contrast are the stated maps', () => {
  const w = createWorld({ seed: 25, sizes });
  const S = w.imageSize, plane = S * S;
  const scene = w.scene('train', 0);
  const src = w.image('train', 0);
  const gray = applyTransformation({ kind: 'grayscale' }, scene, src, S);
  const bright = applyTransformation({ kind: 'brightness', direction: 'up' }, scene, src, S);
  const dark = applyTransformation({ kind: 'brightness', direction: 'down' }, scene, src, S);
  const mean = src.reduce((s, v) => s + v, 0) / src.length;
  const contrast = applyTransformation({ kind: 'contrast', direction: 'up' }, scene, src, S);
  for (let p = 0; p < plane; p++) {
    const luma = 0.299 * src[p] + 0.587 * src[p + plane] + 0.114 * src[p + 2 * plane];
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(gray[p + c * plane] - luma) < 1e-6, `gray pixel ${p}`);
  }
  for (let i = 0; i < src.length; i++) {
    assert.ok(Math.abs(bright[i] - Math.min(1, src[i] * 1.5)) < 1e-6, `brighter value ${i}`);
    assert.ok(Math.abs(dark[i] - src[i] * 0.6) < 1e-6, `darker value ${i}`);
    assert.ok(Math.abs(contrast[i] - Math.min(1, Math.max(0, (src[i] - mean) * 1.6 + mean))) < 1e-5, `contrast value ${i}`);
  }
  assert.ok(Math.max(...bright) <= 1 && Math.min(...dark) >= 0);
});

test('candidate sets: k images, exactly one equal to the target, hard negatives of the same family', () => {
  const w = createWorld({ seed: 26, sizes });
  const families = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const k = i % 2 === 0 ? 8 : 10;
    const { pair, candidates, targetIndex, info } = w.transformationCandidates('val', i, k);
    const S = w.imageSize, per = 3 * S * S;
    assert.equal([candidates.n, candidates.channels, candidates.height, candidates.width, info.length], [k, 3, S, S, k]);
    families.add(pair.family);
    let equal = 0;
    for (let j = 0; j < k; j++) {
      const img = candidates.data.subarray(j * per, (j + 1) * per);
      let diff = 0;
      for (let q = 0; q < per; q++) diff = Math.max(diff, Math.abs(img[q] - pair.target[q]));
      if (diff < 1e-6) { equal++; assert.is(j, targetIndex, `val#${i}: target found at ${j}, said ${targetIndex}`); }
      else assert.ok(diff > 1e-3, `val#${i}: candidate ${j} is nearly the target (${diff})`);
      // the candidate is what its info says: that transformation of that source
      const ci = info[j];
      const remade = applyTransformation(ci.transformation, w.scene('val', ci.sourceIndex), w.image('val', ci.sourceIndex), S);
      assert.equal(Array.from(remade), Array.from(img), `val#${i}: candidate ${j} is not ${JSON.stringify(ci)}`);
      assert.is(familyOf(ci.transformation), pair.family, `val#${i}: candidate ${j} from another family`);
    }
    assert.is(equal, 1, `val#${i}: ${equal} candidates equal the target`);
    assert.ok(info.some((c, j) => j !== targetIndex && c.sourceIndex === i), `val#${i}: no same-source negative`);
    assert.ok(info.some((c) => c.sourceIndex !== i), `val#${i}: no other-source negative`);
  }
  assert.is(families.size, 4, `families seen: ${[...families].join(', ')}`);
  assert.ok(COLOR_RGB.red[0] > 0.5);
});

test.run();
