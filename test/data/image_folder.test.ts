// A user's image folder: TSV, CSV (quoted fields, header) and JSONL captions files, several
// captions per file, centre crop + resize to the size asked, grayscale output, and bad rows
// (missing column, unknown file, empty caption, invalid JSON) raising errors that name the
// captions file and the 1-based line. Fixtures are written to a temp dir by the test itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { assertClose, assertThrows } from '../helpers/check';
import { encodeJpeg, encodePng } from '../../lib/data/image_io';
import { loadImageFolder, parseCaptionsCsv } from '../../lib/data/image_folder';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-folder-'));

/** A w x h image whose left/right margins (outside the centred h x h square) are black, the square one colour. */
function squareOnWide(h: number, w: number, rgb: [number, number, number]): Float32Array {
  const img = new Float32Array(3 * h * w);
  const left = (w - h) / 2;
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = left; x < left + h; x++) img[c * h * w + y * w + x] = rgb[c];
  return img;
}

function makeFolder(name: string, captions: Record<string, string>): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'red.png'), encodePng(squareOnWide(8, 16, [1, 0, 0]), 16, 8, 3));
  fs.writeFileSync(path.join(dir, 'sub', 'blue.png'), encodePng(squareOnWide(6, 10, [0, 0, 1]), 10, 6, 3));
  fs.writeFileSync(path.join(dir, 'gray.jpg'), encodeJpeg(new Float32Array(3 * 12 * 12).fill(0.5), 12, 12, 3, { quality: 95 }));
  fs.writeFileSync(path.join(dir, 'broken.png'), Buffer.from('not a png'));
  for (const [file, text] of Object.entries(captions)) fs.writeFileSync(path.join(dir, file), text);
  return dir;
}

test('TSV: several captions per file, order of first appearance, centre crop keeps only the square', () => {
  const dir = makeFolder('tsv', {
    'captions.tsv': 'filename\tcaption\nred.png\ta red square\n# a comment\n\nsub/blue.png\ta blue square\nred.png\tsomething red\ngray.jpg\tgrey\n',
  });
  const f = loadImageFolder(dir, { imageSize: 4 });
  assert.equal(f.files, ['red.png', 'sub/blue.png', 'gray.jpg']);
  assert.equal(f.captions, [['a red square', 'something red'], ['a blue square'], ['grey']]);
  assert.equal([f.images.n, f.images.channels, f.images.height, f.images.width], [3, 3, 4, 4]);
  const red = f.images.data.subarray(0, 48);
  assertClose(red, [...new Array(16).fill(1), ...new Array(32).fill(0)], 0, 1e-6, 'red square fills the crop');
  const blue = f.images.data.subarray(48, 96);
  assertClose(blue, [...new Array(32).fill(0), ...new Array(16).fill(1)], 0, 1e-6, 'blue square fills the crop');
  assertClose(f.images.data.subarray(96), new Array(48).fill(0.5), 0, 0.03, 'gray JPEG');
});

test('CSV with quoted fields (commas, doubled quotes, newlines) and a [h, w] size in grayscale', () => {
  const dir = makeFolder('csv', {
    'captions.csv': 'filename,caption\nred.png,"a red square, bright"\n"sub/blue.png","the ""blue"" one"\nred.png,"two\nlines"\n',
  });
  const f = loadImageFolder(dir, { imageSize: [2, 4], channels: 1 });
  assert.equal(f.captions, [['a red square, bright', 'two\nlines'], ['the "blue" one']]);
  assert.equal([f.images.channels, f.images.height, f.images.width], [1, 2, 4]);
  // A 2:4 crop of the 8x16 red image is all of it (red in columns 4..11). Shrinking 16 -> 4 widens the
  // triangle filter to 4 pixels: an edge output weighs columns 0..5 as .625 .875 .875 .625 .375 .125
  // (red share 0.5 / 3.5), a middle one columns 2..9 as .125 .375 .625 .875 .875 .625 .375 .125 (3.5 / 4).
  const side = 0.299 * (0.5 / 3.5);
  const mid = 0.299 * (3.5 / 4);
  assertClose(f.images.data.subarray(0, 8), [side, mid, mid, side, side, mid, mid, side], 0, 1e-5, 'luma of red');
});

test('JSONL with "caption" and "captions"; an explicit captionsFile overrides the default', () => {
  const dir = makeFolder('jsonl', {
    'captions.jsonl': '{"file": "red.png", "caption": "red"}\n\n{"file": "sub/blue.png", "captions": ["blue", "a blue thing"]}\n',
    'other.tsv': 'gray.jpg\tonly gray\n',
  });
  const f = loadImageFolder(dir, { imageSize: 3 });
  assert.equal(f.captions, [['red'], ['blue', 'a blue thing']]);
  const g = loadImageFolder(dir, { imageSize: 3, captionsFile: 'other.tsv' });
  assert.equal(g.files, ['gray.jpg']);
});

test('bad rows name the captions file and the 1-based line', () => {
  const cases: [string, string, RegExp][] = [
    ['captions.tsv', 'red.png\tok\nred.png has no tab\n', /captions\.tsv:2: expected "filename<TAB>caption", found no tab/],
    ['captions.tsv', 'red.png\tok\n\nmissing.png\tx\n', /captions\.tsv:3: unknown file "missing\.png"/],
    ['captions.tsv', 'red.png\t   \n', /captions\.tsv:1: empty caption/],
    ['captions.csv', 'filename,caption\nred.png,ok\nred.png\n', /captions\.csv:3: expected 2 columns \(filename, caption\), found 1/],
    ['captions.csv', 'filename,caption\nred.png,"multi\nline"\nsub/blue.png,\n', /captions\.csv:4: empty caption/],
    ['captions.csv', 'name,text\nred.png,x\n', /captions\.csv:1: expected a header "filename,caption"/],
    ['captions.jsonl', '{"file": "red.png", "caption": "ok"}\n{"file": "red.png", "caption": "x"\n', /captions\.jsonl:2: invalid JSON/],
    ['captions.jsonl', '{"file": "red.png"}\n', /captions\.jsonl:1: expected a string "caption" or an array "captions"/],
    ['captions.jsonl', '\n\n{"file": "red.png", "captions": ["a", ""]}\n', /captions\.jsonl:3: empty caption/],
    ['captions.jsonl', '{"caption": "no file"}\n', /captions\.jsonl:1: expected a string "file" field/],
  ];
  cases.forEach(([name, text, pattern], i) => {
    const dir = makeFolder(`bad${i}`, { [name]: text });
    assertThrows(() => loadImageFolder(dir, { imageSize: 4 }), [path.join(dir, name), pattern], `case ${i}`);
  });
});

test('an undecodable image, a missing captions file and bad options are errors naming what is wrong', () => {
  const dir = makeFolder('broken', { 'captions.tsv': 'red.png\tred\nbroken.png\tbroken\n' });
  assertThrows(() => loadImageFolder(dir, { imageSize: 4 }), [path.join(dir, 'broken.png'), /not a PNG or JPEG file/], 'broken');
  const empty = makeFolder('nocaptions', {});
  assertThrows(() => loadImageFolder(empty, { imageSize: 4 }), [empty, /no captions file: expected one of captions\.tsv, captions\.jsonl, captions\.csv/], 'no captions');
  assertThrows(() => loadImageFolder(empty, { imageSize: 0 }), [/imageSize must be a positive integer/], 'size 0');
  assertThrows(() => loadImageFolder(path.join(root, 'nope'), { imageSize: 4 }), [/nope: image folder not found/], 'no dir');
  assertThrows(() => parseCaptionsCsv('filename,caption\nred.png,"open\n', 'c.csv'), [/^c\.csv:2: unterminated quoted field/], 'unterminated');
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));
test.run();
