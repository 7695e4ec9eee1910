// Image files: PNG round trips within 1/255 (gray, RGB, CHW and HWC input), PNG variants (16-bit,
// RGBA, grayscale) decoded to RGB, a loose JPEG round trip, bilinear resizing against hand-computed
// values (identity, upsampling, linear ramps, centre crop), and the captioned PNG grid writer with
// its 5x7 bitmap font.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { assertClose, assertThrows, jsRandom } from '../helpers/check';
import {
  centerCropResize, decodeImage, decodeImageFile, encodeJpeg, encodePng, resizeBilinear, saveImageGrid,
} from '../../lib/data/image_io';
import { GLYPH_HEIGHT, LINE_HEIGHT, glyphMask, hasGlyph, textWidth, wrapText } from '../../lib/data/bitmap_font';
import { ImageBatch } from '../../lib/data/image_batch';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-imageio-'));
const randomChw = (n: number, seed: number): Float32Array => {
  const r = jsRandom(seed);
  return Float32Array.from({ length: n }, () => r());
};

test('PNG round trip: RGB and gray CHW floats come back within 1/255 (gray replicated to 3 channels)', () => {
  const w = 7;
  const h = 5;
  const rgb = randomChw(3 * h * w, 1);
  const back = decodeImage(encodePng(rgb, w, h, 3), 'rgb.png');
  assert.equal([back.channels, back.height, back.width], [3, h, w]);
  assertClose(back.data, rgb, 0, 0.5 / 255 + 1e-6, 'RGB PNG');
  const gray = randomChw(h * w, 2);
  const file = path.join(dir, 'gray.png');
  fs.writeFileSync(file, encodePng(gray, w, h, 1));
  assert.is(PNG.sync.read(fs.readFileSync(file)).height, h);
  const g = decodeImageFile(file);
  for (let c = 0; c < 3; c++) assertClose(g.data.subarray(c * h * w, (c + 1) * h * w), gray, 0, 0.5 / 255 + 1e-6, `gray plane ${c}`);
});

test('PNG from interleaved HWC bytes and out-of-range floats (clamped)', () => {
  const bytes = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]); // 2x2 HWC
  const d = decodeImage(encodePng(bytes, 2, 2, 3, { layout: 'hwc' }));
  assert.equal(Array.from(d.data).map((v) => Math.round(v * 255)), [255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30]);
  const clamped = decodeImage(encodePng(Float32Array.from([-1, 2, 0.5, NaN]), 2, 2, 1));
  assert.equal(Array.from(clamped.data.subarray(0, 4)).map((v) => Math.round(v * 255)), [0, 255, 128, 0]);
  assertThrows(() => encodePng(new Float32Array(5), 2, 2, 1), [/encodePng: got 5 values, expected 1 x 2 x 2 = 4/], 'wrong length');
});

test('16-bit, RGBA and grayscale PNG files decode to RGB in [0, 1]', () => {
  const png = new PNG({ width: 2, height: 1 });
  png.data = Buffer.from([255, 128, 0, 7, 0, 64, 255, 255]);
  const rgba = decodeImage(PNG.sync.write(png, { colorType: 6 }));
  assert.equal(Array.from(rgba.data).map((v) => Math.round(v * 255)), [255, 0, 128, 64, 0, 255]); // alpha dropped
  const g16 = PNG.sync.write(png, { colorType: 0, bitDepth: 16 });
  const d16 = decodeImage(g16, '16bit.png');
  assert.equal([d16.channels, d16.height, d16.width], [3, 1, 2]);
  assert.ok(d16.data.every((v) => v >= 0 && v <= 1));
  assert.equal(Array.from(d16.data.subarray(0, 2)), Array.from(d16.data.subarray(2, 4)), 'gray 16-bit replicated to R and G');
});

test('JPEG round trip: a smooth image comes back within 0.05 (mean error < 0.01)', () => {
  const w = 16;
  const h = 16;
  const img = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) img[c * h * w + y * w + x] = (x + y * (c + 1)) / (w + h * 3);
  const file = path.join(dir, 'smooth.jpg');
  fs.writeFileSync(file, encodeJpeg(img, w, h, 3, { quality: 95 }));
  const back = decodeImageFile(file);
  assert.equal([back.height, back.width], [h, w]);
  let sum = 0;
  for (let i = 0; i < img.length; i++) sum += Math.abs(back.data[i] - img[i]);
  assertClose(back.data, img, 0, 0.05, 'JPEG');
  assert.ok(sum / img.length < 0.01, `mean abs error ${sum / img.length}`);
});

test('undecodable files: errors name the file', () => {
  const bad = path.join(dir, 'bad.png');
  fs.writeFileSync(bad, Buffer.from('definitely not an image'));
  assertThrows(() => decodeImageFile(bad), [bad, /not a PNG or JPEG file/, /first bytes 64 65 66 69/], 'text');
  const cut = path.join(dir, 'cut.png');
  fs.writeFileSync(cut, encodePng(randomChw(3 * 8 * 8, 3), 8, 8, 3).subarray(0, 40));
  assertThrows(() => decodeImageFile(cut), [cut, /cannot decode PNG/], 'truncated png');
  assertThrows(() => decodeImageFile(path.join(dir, 'nope.jpg')), [/nope\.jpg: cannot read image file/], 'missing');
});

test('resizeBilinear: identity, 2x upsampling matches half-pixel bilinear, constants and ramps survive shrinking', () => {
  const x = randomChw(2 * 5 * 6, 4);
  assertClose(resizeBilinear(x, 2, 5, 6, 5, 6), x, 0, 1e-7, 'identity');
  assertClose(resizeBilinear(Float32Array.from([0, 1]), 1, 1, 2, 1, 4), [0, 0.25, 0.75, 1], 0, 1e-7, 'upsample');
  const constant = new Float32Array(3 * 40 * 30).fill(0.3);
  assertClose(resizeBilinear(constant, 3, 40, 30, 7, 9), new Array(3 * 63).fill(0.3), 0, 1e-6, 'constant');
  // A horizontal ramp v = x + 0.5 (pixel centres) shrunk by 4: interior outputs are the ramp at their centres.
  const ramp = Float32Array.from({ length: 64 }, (_, i) => i + 0.5);
  const small = resizeBilinear(ramp, 1, 1, 64, 1, 16);
  assertClose(small.subarray(1, 15), Array.from({ length: 14 }, (_, o) => (o + 1.5) * 4), 0, 1e-4, 'ramp');
  assertThrows(() => resizeBilinear(x, 2, 5, 5, 2, 2), [/got 60 values, expected 2 x 5 x 5 = 50/], 'bad dims');
});

test('centerCropResize keeps the centre of a wide image and drops the sides', () => {
  const h = 4;
  const w = 8;
  const img = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 2; x < 6; x++) img[y * w + x] = 1; // a bright centre square
  assertClose(centerCropResize(img, 1, h, w, 2, 2), [1, 1, 1, 1], 0, 1e-6, 'square from wide');
  const tall = centerCropResize(img, 1, h, w, 4, 2); // aspect 2:1 tall: a 4x2 window at x = 3..5
  assertClose(tall, new Array(8).fill(1), 0, 1e-6, 'tall from wide');
});

test('bitmap font: every letter and digit has a distinct glyph; wrapping respects width and line limits', () => {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const seen = new Map<string, string>();
  for (const ch of chars) {
    assert.ok(hasGlyph(ch), `glyph for ${ch}`);
    const m = glyphMask(ch);
    assert.is(m.length, 'gjpqy'.includes(ch) ? GLYPH_HEIGHT + 2 : GLYPH_HEIGHT);
    assert.ok(m.every((r) => r >= 0 && r < 32));
    const key = m.join(',');
    assert.ok(!seen.has(key), `${ch} and ${seen.get(key)} share a glyph`);
    seen.set(key, ch);
  }
  assert.is(hasGlyph('\u00e9'), false);
  assert.is(textWidth('abc', 2), (3 * 6 - 1) * 2);
  assert.equal(wrapText('a photo of an ankle boot', 10, 3), ['a photo of', 'an ankle', 'boot']);
  assert.equal(wrapText('a photo of an ankle boot', 10, 2), ['a photo of', 'an ankle..']);
  assert.equal(wrapText('supercalifragilistic', 8, 2), ['supercal', 'ifragi..']);
});

test('saveImageGrid: cell pixels, grid size, caption ink under cells and the sidecar captions file', () => {
  const n = 5;
  const images: ImageBatch = { data: randomChw(n * 3 * 4 * 6, 5), n, channels: 3, height: 4, width: 6 };
  const file = path.join(dir, 'grid', 'g.png');
  const out = saveImageGrid(file, images, { cols: 3, scale: 2, labels: ['one', 'two', 'three', 'four', 'a very long caption indeed'], labelLines: 2, pad: 1 });
  const cellH = 4 * 2 + 2 * LINE_HEIGHT + 1;
  assert.equal([out.width, out.height], [3 * 12 + 4, 2 * cellH + 3]);
  assert.equal(out.files, [file, `${file}.txt`]);
  const g = decodeImageFile(file);
  assert.equal([g.height, g.width], [out.height, out.width]);
  const plane = g.height * g.width;
  // Image 4 sits in row 1, column 1; its pixel (y=3, x=5) is upscaled into a 2x2 block.
  const x0 = 1 + 1 * 13;
  const y0 = 1 + 1 * (cellH + 1);
  for (let c = 0; c < 3; c++) {
    const want = images.data[4 * 72 + c * 24 + 3 * 6 + 5];
    for (const [dy, dx] of [[6, 10], [7, 11]]) assert.ok(Math.abs(g.data[c * plane + (y0 + dy) * g.width + x0 + dx] - want) <= 0.5 / 255 + 1e-6);
  }
  // Caption rows of cell 0 contain white ink; the gap to the right of the last cell's caption does not.
  let ink = 0;
  for (let y = 1 + 8 + 1; y < 1 + cellH; y++) for (let x = 1; x < 13; x++) if (g.data[y * g.width + x] > 0.99) ink++;
  assert.ok(ink > 10, `ink pixels under cell 0: ${ink}`);
  assert.is(fs.readFileSync(`${file}.txt`, 'utf8'), '0\tone\n1\ttwo\n2\tthree\n3\tfour\n4\ta very long caption indeed\n');
  assertThrows(() => saveImageGrid(file, images, { labels: ['x'] }), [/got 1 labels for 5 images/], 'label count');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
