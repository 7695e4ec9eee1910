// The IDX file format (MNIST, Fashion-MNIST): a 4-byte magic (0, 0, dtype, ndims), ndims
// big-endian uint32 dims, then the values. Only unsigned bytes (dtype 0x08) are supported, which
// is all these data sets use. Files may be gzipped (detected from the 1f 8b signature, not the
// name). Every check names the file and says what was expected and what was found, because a
// half-downloaded or mislabelled file is the usual failure.

import * as fs from 'fs';
import * as zlib from 'zlib';
import { ArgumentError } from '../errors';
import { DataFileError } from './image_batch';

/** Magic numbers of the two IDX files a labelled image set consists of. */
export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;
const UBYTE = 0x08;

/** An IDX array of unsigned bytes: its dims and row-major values. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const hex = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/** Parse IDX bytes (gzipped or raw). `expectedMagic` pins the dtype and rank; `file` names errors. */
export function parseIdx(bytes: Uint8Array, file: string, expectedMagic?: number): IdxArray {
  let raw = bytes;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      raw = zlib.gunzipSync(bytes);
    } catch (e) {
      throw new DataFileError(file, `corrupt or truncated gzip data (${(e as Error).message}); re-download the file`);
    }
  }
  if (raw.length < 4) throw new DataFileError(file, `truncated IDX file: expected at least a 4-byte header, got ${raw.length} bytes`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = view.getUint32(0, false);
  if (expectedMagic !== undefined && magic !== expectedMagic) {
    const what = expectedMagic === IDX_IMAGES_MAGIC ? ' (unsigned-byte images, 3 dims)' : expectedMagic === IDX_LABELS_MAGIC ? ' (unsigned-byte labels, 1 dim)' : '';
    throw new DataFileError(file, `wrong IDX magic number: expected ${hex(expectedMagic)}${what}, found ${hex(magic)}`);
  }
  if (raw[0] !== 0 || raw[1] !== 0) throw new DataFileError(file, `not an IDX file: magic ${hex(magic)} should start with two zero bytes`);
  if (raw[2] !== UBYTE) {
    throw new DataFileError(file, `unsupported IDX dtype byte 0x${raw[2].toString(16).padStart(2, '0')}: expected 0x08 (unsigned byte)`);
  }
  const ndims = raw[3];
  if (ndims < 1) throw new DataFileError(file, 'IDX file declares 0 dims');
  const headerBytes = 4 + 4 * ndims;
  if (raw.length < headerBytes) {
    throw new DataFileError(file, `truncated IDX header: expected ${headerBytes} bytes for ${ndims} dims, got ${raw.length} bytes`);
  }
  const dims: number[] = [];
  let count = 1;
  for (let d = 0; d < ndims; d++) {
    const v = view.getUint32(4 + 4 * d, false);
    dims.push(v);
    count *= v;
  }
  const expected = headerBytes + count;
  if (raw.length !== expected) {
    const kind = raw.length < expected ? 'truncated IDX file' : 'IDX file has trailing bytes';
    throw new DataFileError(file, `${kind}: dims [${dims.join(', ')}] need ${expected} bytes, got ${raw.length} bytes`);
  }
  return { dims, data: raw.subarray(headerBytes) };
}

/** Read an IDX file (gzipped or raw) from disk. */
export function readIdx(file: string, expectedMagic?: number): IdxArray {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new DataFileError(file, `cannot read IDX file: ${(e as Error).message}`);
  }
  return parseIdx(bytes, file, expectedMagic);
}

/** An IDX image file (magic 0x00000803): n images of height x width bytes. */
export function readIdxImages(file: string): { n: number; height: number; width: number; data: Uint8Array } {
  const { dims, data } = readIdx(file, IDX_IMAGES_MAGIC);
  return { n: dims[0], height: dims[1], width: dims[2], data };
}

/** An IDX label file (magic 0x00000801): one byte per item. */
export function readIdxLabels(file: string): Uint8Array {
  return readIdx(file, IDX_LABELS_MAGIC).data;
}

/** IDX bytes (raw, or gzipped with opts.gzip) for unsigned-byte values of the given dims. */
export function encodeIdx(dims: readonly number[], data: Uint8Array, opts: { gzip?: boolean } = {}): Buffer {
  if (dims.length < 1 || dims.length > 255) throw new ArgumentError(`encodeIdx: expected 1 to 255 dims, got ${dims.length}`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new ArgumentError(`encodeIdx: dims [${dims.join(', ')}] need ${count} values, got ${data.length}`);
  const out = Buffer.alloc(4 + 4 * dims.length + count);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => out.writeUInt32BE(d, 4 + 4 * i));
  out.set(data, 4 + 4 * dims.length);
  return opts.gzip ? zlib.gzipSync(out) : out;
}
