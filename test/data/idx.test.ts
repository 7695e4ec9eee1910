// IDX reader: round trips through encodeIdx (raw and gzipped), and every malformed file (wrong
// magic, wrong dtype, truncated body or header, trailing bytes, corrupt gzip) raises a
// DataFileError whose message names the file and says what was expected and what was found.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { assertThrows } from '../helpers/check';
import { DataFileError } from '../../lib/data/image_batch';
import { encodeIdx, parseIdx, readIdx, readIdxImages, readIdxLabels, IDX_IMAGES_MAGIC } from '../../lib/data/idx';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-idx-'));
const write = (name: string, bytes: Uint8Array): string => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
};
const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => (i * 37) % 256);

test('images and labels round trip through encodeIdx, raw and gzipped', () => {
  for (const gzip of [false, true]) {
    const imgFile = write(`img${gzip ? '.gz' : ''}`, encodeIdx([3, 4, 5], pixels, { gzip }));
    const img = readIdxImages(imgFile);
    assert.equal([img.n, img.height, img.width], [3, 4, 5]);
    assert.equal(Array.from(img.data), Array.from(pixels));
    const labFile = write(`lab${gzip ? '.gz' : ''}`, encodeIdx([3], Uint8Array.from([7, 0, 9]), { gzip }));
    assert.equal(Array.from(readIdxLabels(labFile)), [7, 0, 9]);
  }
  const generic = readIdx(write('any', encodeIdx([2, 2], Uint8Array.from([1, 2, 3, 4]))));
  assert.equal(generic.dims, [2, 2]);
});

test('wrong magic: a label file read as images names the file and both magics', () => {
  const f = write('labels-as-images', encodeIdx([4], Uint8Array.from([1, 2, 3, 4])));
  assertThrows(() => readIdxImages(f), [f, /expected 0x00000803/, /found 0x00000801/], 'labels as images');
  assertThrows(() => readIdxLabels(write('images-as-labels', encodeIdx([3, 4, 5], pixels))), [/images-as-labels/, /expected 0x00000801.*found 0x00000803/], 'images as labels');
});

test('unsupported dtype and non-IDX bytes are rejected', () => {
  const bytes = encodeIdx([3, 4, 5], pixels);
  bytes[2] = 0x0d; // float
  const f = write('float-idx', bytes);
  assertThrows(() => readIdx(f), [f, /dtype byte 0x0d/, /expected 0x08/], 'float dtype');
  assertThrows(() => readIdxImages(f), [/wrong IDX magic/, /found 0x00000d03/], 'float dtype via images');
  const junk = write('junk.txt', Buffer.from('hello world, not idx'));
  assertThrows(() => readIdx(junk), [junk, /two zero bytes/], 'text file');
});

test('truncated body, truncated header and trailing bytes report expected vs found byte counts', () => {
  const full = encodeIdx([3, 4, 5], pixels);
  const f = write('truncated', full.subarray(0, full.length - 7));
  let err: unknown = null;
  try { readIdxImages(f); } catch (e) { err = e; }
  assert.ok(err instanceof DataFileError, 'a DataFileError');
  assert.is((err as DataFileError).file, f);
  assert.match((err as Error).message, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: truncated IDX file: dims \\[3, 4, 5\\] need ${full.length} bytes, got ${full.length - 7} bytes`));
  assertThrows(() => readIdx(write('short-header', full.subarray(0, 9))), [/short-header/, /truncated IDX header: expected 16 bytes for 3 dims, got 9/], 'short header');
  assertThrows(() => readIdx(write('tiny', full.subarray(0, 2))), [/tiny/, /at least a 4-byte header, got 2 bytes/], 'tiny');
  assertThrows(() => readIdx(write('long', Buffer.concat([full, Buffer.from([1, 2])]))), [/long/, /trailing bytes/, new RegExp(`need ${full.length} bytes, got ${full.length + 2}`)], 'trailing');
});

test('a truncated gzip stream is reported as corrupt gzip, naming the file', () => {
  const gz = encodeIdx([3, 4, 5], pixels, { gzip: true });
  const f = write('cut.gz', gz.subarray(0, Math.floor(gz.length / 2)));
  assertThrows(() => readIdx(f, IDX_IMAGES_MAGIC), [f, /corrupt or truncated gzip/], 'cut gzip');
  assertThrows(() => parseIdx(Uint8Array.from([0x1f, 0x8b, 1, 2, 3]), 'mem.gz'), [/^mem\.gz: corrupt/], 'bad gzip bytes');
  assertThrows(() => readIdx(path.join(dir, 'missing')), [/missing: cannot read IDX file/], 'missing file');
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
