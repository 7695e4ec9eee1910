// The embedded world's scenes and images: determinism (same seed -> same bytes, other seed ->
// other data), image shapes and value ranges, disjoint splits, held-out (shape, colour) pairs,
// and the scene description checked against the PIXELS: one foreground component per object,
// each centred where the scene says, in the named region, with the named colour at its probe.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  COLORS, SHAPES, SHAPE_PROBE, Scene, Split, World, connectedComponents, createWorld, foregroundMask, nearestColorName, pixelAt,
  regionOf, sceneKey,
} from '../../lib/data/world';
import { BACKGROUND_RGB } from '../../lib/data/world/vocab';
import { ArgumentError } from '../../lib/errors';

const small = { train: 3000, val: 400, test: 400, heldout: 300 };

test('same seed gives the same bytes and captions; another seed gives different data', () => {
  const a = createWorld({ seed: 7, sizes: small });
  const b = createWorld({ seed: 7, sizes: small });
  const c = createWorld({ seed: 8, sizes: small });
  const ia = a.imageBatch('train', 10, 20);
  const ib = b.imageBatch('train', 10, 20);
  assert.equal(Buffer.from(ia.data.buffer), Buffer.from(ib.data.buffer));
  assert.equal(a.sample('val', 3).captions, b.sample('val', 3).captions);
  // random access gives the same sample as sequential access
  const late = createWorld({ seed: 7, sizes: small }).sample('train', 25);
  assert.equal(Buffer.from(late.image.buffer), Buffer.from(ia.data.subarray(15 * 3072, 16 * 3072).slice().buffer));
  const ic = c.imageBatch('train', 10, 20);
  let same = 0;
  for (let i = 0; i < 20; i++) if (sceneKey(a.scene('train', 10 + i)) === sceneKey(c.scene('train', 10 + i))) same++;
  assert.is(same, 0, 'seed 8 reproduces scenes of seed 7');
  let diff = 0;
  for (let i = 0; i < ia.data.length; i++) diff = Math.max(diff, Math.abs(ia.data[i] - ic.data[i]));
  assert.ok(diff > 0.5, `images of seeds 7 and 8 differ by at most ${diff}`);
});

test('images are [3, S, S] float32 in [0, 1] at any imageSize; batches are NCHW', () => {
  for (const S of [16, 32, 48]) {
    const w = createWorld({ seed: 1, imageSize: S, sizes: small });
    const b = w.imageBatch('test', 0, 30);
    assert.equal([b.n, b.channels, b.height, b.width], [30, 3, S, S]);
    assert.is(b.data.length, 30 * 3 * S * S);
    let lo = Infinity, hi = -Infinity;
    for (const v of b.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    assert.ok(lo >= 0 && hi <= 1, `S=${S}: values in [${lo}, ${hi}]`);
    assert.ok(hi > 0.8, `S=${S}: no bright object pixels (max ${hi})`);
    assert.equal(Array.from(w.sample('test', 4).image), Array.from(b.data.subarray(4 * 3 * S * S, 5 * 3 * S * S)));
  }
});

test('sizes are configurable and out-of-range requests throw ArgumentError naming the split', () => {
  const w = createWorld({ sizes: { train: 5 } });
  assert.is(w.size('train'), 5);
  assert.is(w.size('val'), 1000);
  assert.is(createWorld().size('train'), 20000);
  assert.throws(() => w.sample('train', 5), (e: Error) => e instanceof ArgumentError && /index 5 .*'train' of size 5/.test(e.message));
  assert.throws(() => w.imageBatch('train', 3, 3), (e: Error) => e instanceof ArgumentError && /\[3, 6\)/.test(e.message));
  assert.throws(() => w.size('dev' as Split), (e: Error) => e instanceof ArgumentError && /unknown split 'dev'/.test(e.message));
  assert.throws(() => createWorld({ imageSize: 4 }), (e: Error) => e instanceof ArgumentError && /imageSize .* got 4/.test(e.message));
});

test('train, val and test share no scene (content keys are disjoint)', () => {
  const w = createWorld({ seed: 3, sizes: small });
  const owner = new Map<string, Split>();
  for (const split of ['train', 'val', 'test'] as const) {
    for (let i = 0; i < w.size(split); i++) {
      const key = sceneKey(w.scene(split, i));
      const prev = owner.get(key);
      assert.ok(prev === undefined || prev === split, `scene ${split}#${i} also appears in ${prev}`);
      owner.set(key, split);
    }
  }
  assert.ok(owner.size > 3700, `only ${owner.size} distinct scenes in 3800 samples`);
});

test('held-out (shape, colour) pairs never occur in train/val/test and make up every held-out object', () => {
  const w = createWorld({ seed: 11, sizes: small });
  const held = new Set(w.heldoutCombos.map(([s, c]) => `${s}/${c}`));
  assert.is(held.size, Math.round(0.1 * SHAPES.length * COLORS.length));
  assert.is(new Set(w.heldoutCombos.map(([s]) => s)).size, held.size, 'held-out pairs repeat a shape');
  const seen = new Set<string>();
  for (const split of ['train', 'val', 'test'] as const) {
    for (let i = 0; i < w.size(split); i++) {
      for (const o of w.scene(split, i).objects) {
        assert.not.ok(held.has(`${o.shape}/${o.color}`), `${split}#${i} has held-out ${o.color} ${o.shape}`);
        seen.add(o.shape);
        seen.add(o.color);
      }
    }
  }
  assert.is(seen.size, SHAPES.length + COLORS.length, 'some shape or colour never appears in training');
  for (let i = 0; i < w.size('heldout'); i++) {
    for (const o of w.scene('heldout', i).objects) assert.ok(held.has(`${o.shape}/${o.color}`), `heldout#${i}: ${o.color} ${o.shape}`);
  }
});

function checkPixels(w: World, split: Split, i: number, scene: Scene): void {
  const S = w.imageSize;
  const img = w.render(scene);
  const bg = BACKGROUND_RGB[scene.background];
  const comps = connectedComponents(foregroundMask(img, S, bg), S);
  const where = `${split}#${i} at ${S}px (${scene.objects.map((o) => `${o.size} ${o.color} ${o.shape}`).join(', ')})`;
  assert.is(comps.length, scene.objects.length, `${where}: ${comps.length} components`);
  for (const o of scene.objects) {
    // the component nearest the object centre is its own (centroid within a third of its radius + 1 px)
    const near = comps.filter((c) => Math.hypot(c.cx - o.cx, c.cy - o.cy) < o.radius * 0.35 + 1.5 / S);
    assert.is(near.length, 1, `${where}: no component centred on the ${o.shape}`);
    assert.is(regionOf(o.cx, o.cy), o.region, `${where}: region`);
    const [pu, pv] = SHAPE_PROBE[o.shape];
    const x = Math.floor((o.cx + pu * o.radius) * S), y = Math.floor((o.cy + pv * o.radius) * S);
    assert.is(nearestColorName(pixelAt(img, S, x, y), bg), o.color, `${where}: colour at the ${o.shape}'s probe`);
  }
}

test('pixels agree with the scene: one component per object, at its centre, with its colour', () => {
  const w64 = createWorld({ seed: 5, imageSize: 64, sizes: small });
  for (const split of ['train', 'heldout'] as const) for (let i = 0; i < 150; i++) checkPixels(w64, split, i, w64.scene(split, i));
  // at the default 32 px the objects are separate components too
  const w32 = createWorld({ seed: 5, sizes: small });
  for (let i = 0; i < 300; i++) {
    const scene = w32.scene('train', i);
    const comps = connectedComponents(foregroundMask(w32.render(scene), 32, BACKGROUND_RGB[scene.background]), 32);
    assert.is(comps.length, scene.objects.length, `train#${i} at 32px: ${comps.length} components`);
  }
});

test('objects keep their gap and the grid relations are clear-cut', () => {
  const w = createWorld({ seed: 9, sizes: small });
  for (let i = 0; i < 500; i++) {
    const objs = w.scene('train', i).objects;
    for (let a = 0; a < objs.length; a++) {
      for (let b = a + 1; b < objs.length; b++) {
        assert.ok(objs[a].region !== objs[b].region, `train#${i}: two objects in ${objs[a].region}`);
        assert.ok(Math.hypot(objs[a].cx - objs[b].cx, objs[a].cy - objs[b].cy) > objs[a].radius + objs[b].radius, `train#${i}: overlap`);
        assert.ok(objs[a].shape !== objs[b].shape || objs[a].color !== objs[b].color, `train#${i}: repeated ${objs[a].color} ${objs[a].shape}`);
      }
    }
  }
});

test('rendering 1000 images of 32 x 32 takes well under a second', () => {
  const w = createWorld({ seed: 2 });
  w.imageBatch('train', 0, 50); // warm up the JIT
  const t0 = process.hrtime.bigint();
  const b = w.imageBatch('train', 1000, 1000);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`  1000 world images (scene generation + rasterising): ${ms.toFixed(0)} ms`);
  assert.is(b.n, 1000);
  assert.ok(ms < 2000, `took ${ms} ms`); // generous for a loaded shared CI machine; typically ~300 ms
});

test.run();
