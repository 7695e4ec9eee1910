// Batched augmentations (lib/data/augment.ts, native/cpu/augment.cpp): each op against a plain
// float64 TypeScript reference on random images, the identities each op must keep, values
// staying in [0, 1], independence from the thread count, and the two-view recipe's determinism.
// (torchvision is not installed on the test machine, so there is no torchvision parity check.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { colorJitter, CropBox, grayscale, hflip, JitterFactors, resizedCrop, sampleViewParams, twoViewAugment } from '../../lib/data/augment';
import { assertClose, assertThrows, jsRandom, SEED } from '../helpers/check';

const LUMA = [0.2989, 0.587, 0.114];

function randomImages(seed: number, n: number, c: number, h: number, w: number): { x: ts.Tensor; data: Float32Array } {
  const rand = jsRandom(seed);
  const data = new Float32Array(n * c * h * w);
  for (let i = 0; i < data.length; i++) data[i] = rand();
  return { x: ts.tensor(data, { shape: [n, c, h, w] }), data };
}

const f32 = (t: ts.Tensor) => t.toTypedArray() as Float32Array;

function cropRef(x: Float32Array, [n, c, h, w]: number[], boxes: CropBox[], oh: number, ow: number): Float64Array {
  const out = new Float64Array(n * c * oh * ow);
  for (let i = 0; i < n; i++) {
    const b = boxes[i];
    for (let ch = 0; ch < c; ch++) {
      const src = (i * c + ch) * h * w;
      for (let y = 0; y < oh; y++) {
        const ys = b.top + Math.min(Math.max((y + 0.5) * (b.height / oh) - 0.5, 0), b.height - 1);
        const y0 = Math.min(Math.floor(ys), h - 1), y1 = Math.min(y0 + 1, h - 1), wy = ys - y0;
        for (let xx = 0; xx < ow; xx++) {
          const xs = b.left + Math.min(Math.max((xx + 0.5) * (b.width / ow) - 0.5, 0), b.width - 1);
          const x0 = Math.min(Math.floor(xs), w - 1), x1 = Math.min(x0 + 1, w - 1), wx = xs - x0;
          const at = (yy: number, xv: number) => x[src + yy * w + xv];
          out[((i * c + ch) * oh + y) * ow + xx] =
            (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
        }
      }
    }
  }
  return out;
}

const clamp = (v: number) => Math.min(1, Math.max(0, v));

/** torchvision's _rgb2hsv -> shift -> _hsv2rgb, in float64. */
function hueRef(r: number, g: number, b: number, shift: number): [number, number, number] {
  const maxc = Math.max(r, g, b), minc = Math.min(r, g, b), eqc = maxc === minc, cr = maxc - minc;
  const s = cr / (eqc ? 1 : maxc), d = eqc ? 1 : cr;
  const rc = (maxc - r) / d, gc = (maxc - g) / d, bc = (maxc - b) / d;
  let h = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
  h = ((h / 6 + 1) % 1) + shift;
  h -= Math.floor(h);
  const i = Math.floor(h * 6) % 6, f = h * 6 - Math.floor(h * 6);
  const p = clamp(maxc * (1 - s)), q = clamp(maxc * (1 - s * f)), t = clamp(maxc * (1 - s * (1 - f))), v = maxc;
  return ([[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]] as [number, number, number][])[i];
}

function jitterRef(x: Float32Array, [n, c, h, w]: number[], fs: JitterFactors[]): Float64Array {
  const out = Float64Array.from(x);
  const P = h * w;
  for (let i = 0; i < n; i++) {
    const f = fs[i], base = i * c * P;
    const px = (p: number) => Array.from({ length: c }, (_, ch) => out[base + ch * P + p]);
    const set = (p: number, v: number[]) => v.forEach((val, ch) => (out[base + ch * P + p] = val));
    const gray = (v: number[]) => (c === 3 ? LUMA[0] * v[0] + LUMA[1] * v[1] + LUMA[2] * v[2] : v[0]);
    for (let p = 0; p < P; p++) set(p, px(p).map((v) => clamp(v * f.brightness)));
    let mean = 0;
    for (let p = 0; p < P; p++) mean += gray(px(p)) / P;
    for (let p = 0; p < P; p++) set(p, px(p).map((v) => clamp(f.contrast * v + (1 - f.contrast) * mean)));
    if (c === 1) continue;
    for (let p = 0; p < P; p++) {
      const v = px(p), g = gray(v);
      set(p, v.map((e) => clamp(f.saturation * e + (1 - f.saturation) * g)));
    }
    if (f.hue !== 0) for (let p = 0; p < P; p++) { const [r, g, b] = px(p); set(p, hueRef(r, g, b, f.hue)); }
  }
  return out;
}

test('resizedCrop matches a float64 bilinear reference (down- and up-sampling, 1 and 3 channels)', () => {
  for (const [c, oh, ow] of [[3, 7, 9], [1, 17, 15], [3, 5, 5]]) {
    const shape = [5, c, 13, 11];
    const { x, data } = randomImages(SEED + oh, shape[0], c, 13, 11);
    const rand = jsRandom(SEED + 7 * oh);
    const boxes: CropBox[] = Array.from({ length: 5 }, (_, i) => {
      const height = 1 + Math.floor(rand() * 13), width = 1 + Math.floor(rand() * 11);
      const top = Math.floor(rand() * (13 - height + 1)), left = Math.floor(rand() * (11 - width + 1));
      return i === 4 ? { top: 0.5, left: 1.25, height: 10.5, width: 8.75 } : { top, left, height, width };
    });
    const y = resizedCrop(x, boxes, oh, ow);
    assert.equal([...y.shape], [5, c, oh, ow]);
    assertClose(f32(y), cropRef(data, shape, boxes, oh, ow), 0, 1e-5, `resizedCrop C=${c} -> ${oh}x${ow}`);
    x.dispose();
    y.dispose();
  }
});

test('resizedCrop with the full box at the same size returns the input exactly', () => {
  const { x, data } = randomImages(SEED + 1, 3, 3, 8, 6);
  const y = resizedCrop(x, Array(3).fill({ top: 0, left: 0, height: 8, width: 6 }), 8, 6);
  assert.equal(Array.from(f32(y)), Array.from(data));
  x.dispose();
  y.dispose();
});

test('hflip mirrors masked images, copies the others, and twice is the identity', () => {
  const { x, data } = randomImages(SEED + 2, 3, 3, 4, 5);
  const y = hflip(x, [true, false, 1]);
  const out = f32(y);
  for (let i = 0; i < 3; i++)
    for (let r = 0; r < 12; r++)
      for (let j = 0; j < 5; j++) {
        const src = (i * 12 + r) * 5;
        assert.is(out[src + j], i === 1 ? data[src + j] : data[src + 4 - j], `image ${i} row ${r} col ${j}`);
      }
  const z = hflip(y);
  const back = hflip(z);
  assert.equal(Array.from(f32(hflip(back))), Array.from(f32(z)));
  assert.equal(Array.from(f32(hflip(hflip(x)))), Array.from(data));
  [x, y, z, back].forEach((t) => t.dispose());
});

test('grayscale gives equal channels with the ITU-R 601 luma, only where masked', () => {
  const { x, data } = randomImages(SEED + 3, 2, 3, 5, 4);
  const out = f32(grayscale(x, [true, false]));
  const P = 20;
  const ref = new Float64Array(P);
  for (let p = 0; p < P; p++) ref[p] = LUMA[0] * data[p] + LUMA[1] * data[P + p] + LUMA[2] * data[2 * P + p];
  for (let ch = 0; ch < 3; ch++) assertClose(out.subarray(ch * P, (ch + 1) * P), ref, 0, 1e-6, `gray channel ${ch}`);
  assert.equal(Array.from(out.subarray(3 * P)), Array.from(data.subarray(3 * P)), 'unmasked image unchanged');
  const one = randomImages(SEED + 4, 2, 1, 3, 3);
  assert.equal(Array.from(f32(grayscale(one.x))), Array.from(one.data), 'a 1-channel image is already gray');
});

test('colorJitter matches the float64 torchvision-semantics reference (order b, c, s, h)', () => {
  for (const c of [3, 1]) {
    const shape = [6, c, 7, 9];
    const { x, data } = randomImages(SEED + 5 + c, 6, c, 7, 9);
    const rand = jsRandom(SEED + 11 * c);
    const fs: JitterFactors[] = Array.from({ length: 6 }, () => ({
      brightness: 0.6 + 0.8 * rand(), contrast: 0.6 + 0.8 * rand(), saturation: 0.6 + 0.8 * rand(), hue: -0.1 + 0.2 * rand(),
    }));
    fs[5] = { brightness: 1.7, contrast: 1.9, saturation: 2.5, hue: 0.45 };
    assertClose(f32(colorJitter(x, fs)), jitterRef(data, shape, fs), 0, 2e-5, `colorJitter C=${c}`);
  }
});

test('colorJitter identities: brightness 1, contrast 1, saturation 1, hue 0 exactly; hue by a full turn', () => {
  const { x, data } = randomImages(SEED + 6, 4, 3, 6, 6);
  const id = { brightness: 1, contrast: 1, saturation: 1, hue: 0 };
  assert.equal(Array.from(f32(colorJitter(x, Array(4).fill(id)))), Array.from(data));
  assertClose(f32(colorJitter(x, Array(4).fill({ ...id, hue: 1 }))), data, 0, 1e-5, 'hue +1 turn');
  assertClose(f32(colorJitter(x, Array(4).fill({ ...id, hue: -1 }))), data, 0, 1e-5, 'hue -1 turn');
  const half = f32(colorJitter(x, Array(4).fill({ ...id, hue: 0.5 })));
  assert.ok(half.some((v, i) => Math.abs(v - data[i]) > 0.05), 'a half turn changes colours');
});

test('colorJitter keeps values in [0, 1] under strong factors', () => {
  const { x } = randomImages(SEED + 8, 8, 3, 8, 8);
  const fs = Array.from({ length: 8 }, (_, i) => ({ brightness: 0.2 + 0.5 * i, contrast: 3 - 0.35 * i, saturation: 0.3 * i, hue: -0.5 + i / 8 }));
  const out = f32(colorJitter(x, fs));
  assert.ok(out.every((v) => v >= 0 && v <= 1), `min ${Math.min(...out)} max ${Math.max(...out)}`);
});

test('results do not depend on the thread count', () => {
  const before = ts.cpuInfo().threads;
  const { x } = randomImages(SEED + 9, 48, 3, 16, 16);
  try {
    ts.setNumThreads(1);
    const [a1, b1] = twoViewAugment(x, { seed: 5, outSize: [12, 12] });
    ts.setNumThreads(Math.max(2, before));
    const [a2, b2] = twoViewAugment(x, { seed: 5, outSize: [12, 12] });
    assert.equal(Array.from(f32(a1)), Array.from(f32(a2)));
    assert.equal(Array.from(f32(b1)), Array.from(f32(b2)));
  } finally {
    ts.setNumThreads(before);
  }
});

test('twoViewAugment is deterministic by seed and batching, views differ, values stay in [0, 1]', () => {
  const { x, data } = randomImages(SEED + 10, 8, 3, 16, 16);
  const [a, b] = twoViewAugment(x, { seed: 42 });
  const [a2, b2] = twoViewAugment(x, { seed: 42 });
  assert.equal([...a.shape], [8, 3, 16, 16]);
  assert.equal(Array.from(f32(a)), Array.from(f32(a2)));
  assert.equal(Array.from(f32(b)), Array.from(f32(b2)));
  const diff = (p: Float32Array, q: Float32Array) => p.reduce((s, v, i) => s + Math.abs(v - q[i]), 0) / p.length;
  assert.ok(diff(f32(a), f32(b)) > 0.01, 'the two views differ');
  const [c] = twoViewAugment(x, { seed: 43 });
  assert.ok(diff(f32(a), f32(c)) > 0.01, 'another seed gives other views');
  assert.ok(f32(a).every((v) => v >= 0 && v <= 1) && f32(b).every((v) => v >= 0 && v <= 1));
  // The second half of the batch, augmented alone with start = 4, gets the same views.
  const tail = ts.tensor(data.slice(4 * 768), { shape: [4, 3, 16, 16] });
  const [ta] = twoViewAugment(tail, { seed: 42 }, 4);
  assert.equal(Array.from(f32(ta)), Array.from(f32(a).subarray(4 * 768)));
  // The recipe's probabilities show up in the sampled parameters.
  const p = sampleViewParams(2000, 32, 32, 0, { seed: 1 });
  const rate = (v: boolean[]) => v.filter(Boolean).length / v.length;
  assert.ok(Math.abs(rate(p.flip) - 0.5) < 0.05 && Math.abs(rate(p.gray) - 0.2) < 0.04, `flip ${rate(p.flip)} gray ${rate(p.gray)}`);
  assert.ok(Math.abs(rate(p.jitter.map((j) => j.brightness !== 1)) - 0.8) < 0.04);
  assert.ok(p.boxes.every((bx) => bx.height * bx.width >= 0.5 * 1024 * 0.9 && bx.top + bx.height <= 32 && bx.left + bx.width <= 32));
});

test('bad input: errors name the tensor, its shape and what was expected', () => {
  const { x } = randomImages(SEED + 12, 2, 3, 4, 4);
  assertThrows(() => hflip(ts.zeros([2, 3, 4])), ['hflip', 'float32[2, 3, 4]', '[N, C, H, W]'], '3-D input');
  assertThrows(() => grayscale(ts.zeros([2, 2, 4, 4])), ['grayscale', 'float32[2, 2, 4, 4]', '1 or 3 channels'], '2 channels');
  assertThrows(() => colorJitter(ts.zeros([1, 3, 2, 2], { dtype: 'float64' }), []), ['colorJitter', 'float64[1, 3, 2, 2]', 'float32'], 'float64');
  assertThrows(() => hflip(x, [true]), ['hflip', 'mask', '(2)'], 'short mask');
  assertThrows(() => resizedCrop(x, [{ top: 1, left: 0, height: 4, width: 4 }, { top: 0, left: 0, height: 4, width: 4 }], 4, 4), ['boxes[0]', 'inside the 4x4 image'], 'box outside');
  assertThrows(() => resizedCrop(x, ts.zeros([2, 4]), 4, 4), ['augment_resized_crop', 'box 0', 'height and width >= 1'], 'native check of a box tensor');
  assertThrows(() => resizedCrop(x, ts.zeros([2, 3]), 4, 4), ['boxes float32[2, 3]', '[2, 4]'], 'box tensor shape');
  assertThrows(() => resizedCrop(x, [], 0, 4), ['outH', 'integer >= 1'], 'zero output size');
  assertThrows(() => colorJitter(x, Array(2).fill({ brightness: -1, contrast: 1, saturation: 1, hue: 0 })), ['factors[0]', 'brightness'], 'negative brightness');
  assertThrows(() => twoViewAugment(x, { seed: 1.5 }), ['seed', 'integer'], 'fractional seed');
  assertThrows(() => twoViewAugment(x, { seed: 1, scale: [0.8, 0.2] }), ['scale'], 'bad scale');
  assertThrows(() => twoViewAugment(x, { seed: 1, flipP: 2 }), ['flipP', 'probability'], 'bad probability');
});

test.run();
