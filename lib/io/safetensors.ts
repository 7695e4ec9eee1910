// safetensors: read and write the Hugging Face tensor file format, so tessera weights move to and
// from PyTorch/NumPy/candle without pickle. A file is
//
//   [8 bytes: N, u64 little-endian] [N bytes: JSON header, space-padded to a multiple of 8] [data]
//
// where the header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (byte offsets into the data part) plus an optional "__metadata__" string->string map, and the
// data is little-endian, row-major, packed with no gaps.
//
// Why it is shaped this way:
// - Writing follows the reference implementation (huggingface/safetensors, tensor.rs) byte for
//   byte: tensors ordered by descending dtype alignment, then by name (byte-wise UTF-8), compact
//   JSON with "__metadata__" first, padding with spaces to 8 bytes. With the 8-aligned header
//   and F64 > F32/I32 > BF16 order every tensor's data is naturally aligned in the file, which
//   zero-copy (mmap) readers rely on, and our output equals the reference's for the same input.
//   The header is assembled by hand, not with JSON.stringify of one object, because JS objects
//   put integer-like keys ("0", "1") first whatever the insertion order.
// - Reading is stricter than JSON.parse allows: a small JSON parser below keeps objects as Maps
//   (so a tensor named "__proto__" is just a name), rejects duplicate keys (JSON.parse silently
//   keeps the last one, i.e. two tensors claiming one name), and keeps non-integer number
//   literals distinguishable so a shape of [2.0] or [1e3] is refused as the reference does. All
//   of the header is validated (dtypes, shapes, offsets contiguous from 0 with no overlap or gap,
//   sizes equal to numel * element size, data length equal to the last offset) before a single
//   tensor is allocated: a truncated or corrupted file is a CheckpointError naming the file and
//   the problem, never a tensor made of garbage.
// - Files are read with positioned reads (header first, then each tensor straight into its
//   typed array), not readFileSync, so checking a huge file's header costs nothing and loading
//   it does not need the whole file in one Buffer.
// - Saving is atomic: the bytes go to <path>.tmp-<pid>-<random> in the same directory, which is
//   fsynced, renamed over the target, and the directory fsynced. A crash (even kill -9) at any
//   moment leaves either the old complete file or the new complete file at <path>; a failing
//   save removes its temp file and leaves the target untouched. Temp names never equal the
//   target, and cleanupTempFiles() removes those a dead process left behind.
// - BF16 is written from float32 with round-to-nearest-even on the bit pattern (as PyTorch's
//   c10::BFloat16 does; NaN becomes the canonical quiet NaN 0x7FC0, infinities stay infinite)
//   and read back widened into float32 tensors (exact: bf16 is the top half of a float32).

import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { defaultDevice } from '../backend';
import { Device, DType, isDevice } from '../dtype';
import { ArgumentError, DTypeError, TesseraError } from '../errors';
import { fmtShape, MAX_DIMS, MAX_NUMEL } from '../shape';
import { Tensor } from '../tensor';
import { CheckpointError } from './errors';

export { CheckpointError } from './errors';

/** The safetensors dtypes tessera reads and writes. */
export type SafetensorsDType = 'F32' | 'F64' | 'I32' | 'BF16';

interface DTypeInfo {
  /** Bytes per element. */
  readonly size: number;
  /** Position in the reference's Dtype enum (increasing alignment): sets the write order. */
  readonly rank: number;
  /** The tessera dtype a tensor of this kind loads as. */
  readonly tensor: DType;
}

const ST_DTYPES: Record<SafetensorsDType, DTypeInfo> = {
  F64: { size: 8, rank: 12, tensor: 'float64' },
  F32: { size: 4, rank: 11, tensor: 'float32' },
  I32: { size: 4, rank: 9, tensor: 'int32' },
  BF16: { size: 2, rank: 8, tensor: 'float32' },
};
const ST_OF: Record<DType, SafetensorsDType> = { float32: 'F32', float64: 'F64', int32: 'I32' };
/** Other dtypes of the format, named in the error so "F16" reads as unsupported, not as garbage. */
const OTHER_DTYPES = new Set(['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'I16', 'U16', 'F16', 'U32', 'I64', 'U64', 'C64']);

/** The reference reader refuses headers above 100 MB; so do we (and so never allocate more). */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// BF16 conversion

/** float32 bit patterns -> bf16 bit patterns, round-to-nearest-even; NaN -> 0x7FC0. */
export function float32ToBF16Bits(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    // NaN: exponent all ones and a non-zero mantissa. Rounding its bits could carry into an
    // infinity (or keep a signalling payload), so it becomes the canonical quiet NaN instead.
    if ((u & 0x7fffffff) > 0x7f800000) out[i] = 0x7fc0;
    // Add 0x7FFF plus the lowest kept bit, then truncate: ties go to the even neighbour, and
    // a carry out of the mantissa bumps the exponent (the largest values round to infinity).
    // u <= 0xFF800000 here, so the sum stays below 2^32 and >>> is exact.
    else out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bf16 bit patterns -> float32 values (exact). */
export function bf16BitsToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

// ---------------------------------------------------------------------------------------------
// A strict JSON parser for the header

/** A number literal with a fraction or exponent ("2.0", "1e3"): never a valid size or offset. */
class JsonNonInteger {
  constructor(readonly raw: string) {}
}

class JsonDuplicateKey extends Error {
  constructor(
    readonly key: string,
    readonly depth: number,
  ) {
    super(`duplicate key ${JSON.stringify(key)}`);
  }
}

type JsonValue = null | boolean | number | string | JsonNonInteger | JsonValue[] | Map<string, JsonValue>;

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const MAX_JSON_DEPTH = 16;

class JsonParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parse(): JsonValue {
    const v = this.value(0);
    this.ws();
    if (this.pos !== this.s.length) this.fail(`unexpected ${JSON.stringify(this.s[this.pos])} after the end of the JSON value`);
    return v;
  }

  private fail(msg: string): never {
    throw new SyntaxError(`${msg} (at character ${this.pos})`);
  }

  private ws(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else break;
    }
  }

  private value(depth: number): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.fail(`nested more than ${MAX_JSON_DEPTH} levels deep`);
    this.ws();
    const c = this.s[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.pos)) {
        this.pos += word.length;
        return v;
      }
    }
    return this.fail(c === undefined ? 'unexpected end of JSON' : `unexpected ${JSON.stringify(c)}`);
  }

  private object(depth: number): Map<string, JsonValue> {
    const out = new Map<string, JsonValue>();
    this.pos++; // {
    this.ws();
    if (this.s[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.pos] !== '"') this.fail('expected a string key');
      const key = this.string();
      if (out.has(key)) throw new JsonDuplicateKey(key, depth + 1);
      this.ws();
      if (this.s[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      out.set(key, this.value(depth + 1));
      this.ws();
      const c = this.s[this.pos++];
      if (c === '}') return out;
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or '}'");
      }
    }
  }

  private array(depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    this.pos++; // [
    this.ws();
    if (this.s[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.pos++];
      if (c === ']') return out;
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  private string(): string {
    const start = this.pos;
    let i = start + 1;
    const s = this.s;
    while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
    if (i >= s.length) this.fail('unterminated string');
    this.pos = i + 1;
    // The slice is a complete JSON string token: JSON.parse decodes its escapes and rejects
    // raw control characters and malformed escapes.
    try {
      return JSON.parse(s.slice(start, i + 1)) as string;
    } catch {
      this.pos = start;
      return this.fail('malformed string');
    }
  }

  private number(): number | JsonNonInteger {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.s);
    if (!m) return this.fail('malformed number');
    this.pos += m[0].length;
    return m[1] !== undefined || m[2] !== undefined ? new JsonNonInteger(m[0]) : Number(m[0]);
  }
}

/** A short rendering of a header value for error messages (non-integer literals as written). */
function show(v: JsonValue | undefined): string {
  let out: string;
  if (v === undefined) out = 'nothing';
  else if (v instanceof JsonNonInteger) out = v.raw;
  else if (Array.isArray(v)) out = `[${v.map(show).join(', ')}]`;
  else if (v instanceof Map) out = `{${[...v].map(([k, x]) => `${JSON.stringify(k)}: ${show(x)}`).join(', ')}}`;
  else out = JSON.stringify(v);
  return out.length > 80 ? out.slice(0, 77) + '...' : out;
}

// ---------------------------------------------------------------------------------------------
// Header validation

/** One tensor's entry in a validated header. Offsets are relative to the data part. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A validated header: entries in data order, the metadata, and where the data part starts. */
export interface SafetensorsHeader {
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Record<string, string>;
  /** Byte offset of the data part in the file (8 + header length). */
  readonly dataStart: number;
  /** Byte length of the data part. */
  readonly dataLength: number;
}

function isNonNegInt(v: JsonValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parse and check the header bytes of a file whose data part is `dataLength` bytes long. Throws
 * a CheckpointError naming `file` on any problem; checks everything a tensor depends on.
 */
function parseHeader(headerBytes: Uint8Array, headerLength: number, dataLength: number, file: string): SafetensorsHeader {
  const bad = (problem: string, cause?: unknown): never => {
    throw new CheckpointError(file, problem, cause);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (e) {
    return bad(`the ${headerLength}-byte header is not valid UTF-8 (not a safetensors file, or corrupted)`, e);
  }
  let root: JsonValue;
  try {
    root = new JsonParser(text).parse();
  } catch (e) {
    if (e instanceof JsonDuplicateKey) {
      if (e.depth === 1) return bad(`the header names tensor '${e.key}' more than once (duplicate names)`);
      return bad(`the header has a duplicate key ${JSON.stringify(e.key)} inside an entry`);
    }
    return bad(`the ${headerLength}-byte header is not valid JSON: ${(e as Error).message}`, e);
  }
  if (!(root instanceof Map)) return bad(`the header is JSON but not an object (got ${show(root)})`);

  let metadata: Record<string, string> = {};
  const raw: SafetensorsEntry[] = [];
  for (const [name, info] of root) {
    if (name === METADATA_KEY) {
      if (info === null) continue;
      if (!(info instanceof Map)) return bad(`"${METADATA_KEY}" must be an object of strings, got ${show(info)}`);
      const md: Record<string, string> = Object.create(null);
      for (const [k, v] of info) {
        if (typeof v !== 'string') return bad(`"${METADATA_KEY}" value for ${JSON.stringify(k)} must be a string, got ${show(v)}`);
        md[k] = v;
      }
      metadata = { ...md };
      continue;
    }
    const what = `tensor '${name}'`;
    if (!(info instanceof Map)) return bad(`${what}: entry must be an object with dtype, shape and data_offsets, got ${show(info)}`);
    const dtype = info.get('dtype');
    if (typeof dtype !== 'string') return bad(`${what}: dtype must be a string, got ${show(dtype)}`);
    if (!Object.prototype.hasOwnProperty.call(ST_DTYPES, dtype)) {
      const problem = OTHER_DTYPES.has(dtype) ? `dtype ${JSON.stringify(dtype)} is not supported by tessera` : `unknown dtype ${JSON.stringify(dtype)}`;
      return bad(`${what}: ${problem} (supported: F32, F64, I32, BF16)`);
    }
    const st = dtype as SafetensorsDType;
    const shape = info.get('shape');
    if (!Array.isArray(shape) || !shape.every(isNonNegInt))
      return bad(`${what}: shape must be a list of non-negative integers, got ${show(shape)}`);
    if (shape.length > MAX_DIMS) return bad(`${what}: shape ${fmtShape(shape as number[])} has ${shape.length} dimensions; tessera supports at most ${MAX_DIMS}`);
    let numel = 1;
    for (const s of shape as number[]) numel *= s;
    if (numel > MAX_NUMEL) return bad(`${what}: shape ${fmtShape(shape as number[])} has ${numel} elements, more than tessera's limit of ${MAX_NUMEL}`);
    const offsets = info.get('data_offsets');
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt))
      return bad(`${what}: data_offsets must be [begin, end] with non-negative integers, got ${show(offsets)}`);
    const [begin, end] = offsets as number[];
    if (end < begin) return bad(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
    const nbytes = numel * ST_DTYPES[st].size;
    if (end - begin !== nbytes)
      return bad(`${what}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape ${fmtShape(shape as number[])} of ${st} needs ${nbytes}`);
    if (end > dataLength)
      return bad(`${what}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes after the header): the file is truncated or the offsets are out of range`);
    raw.push({ name, dtype: st, shape: [...(shape as number[])], begin, end });
  }

  // The tensors must tile the data part exactly: sorted by offset, each begins where the
  // previous ended (no overlap, no gap), and the last ends at the end of the file.
  const entries = [...raw].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: SafetensorsEntry | null = null;
  for (const e of entries) {
    if (e.begin < expected)
      return bad(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`);
    if (e.begin > expected)
      return bad(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] leave a gap (bytes ${expected}..${e.begin} belong to no tensor)`);
    expected = e.end;
    prev = e;
  }
  if (expected !== dataLength)
    return bad(`the data part is ${dataLength} bytes but the tensors cover ${expected}: ${dataLength - expected} trailing bytes (a corrupted file, or data appended after the end)`);
  return { entries, metadata, dataStart: 8 + headerLength, dataLength };
}

/** Check the first 8 bytes (the header length) against the total size. Returns N. */
function headerLengthOf(first8: Uint8Array, totalSize: number, file: string): number {
  if (totalSize < 8) throw new CheckpointError(file, `only ${totalSize} bytes: too short to be a safetensors file (the header length alone is 8 bytes)`);
  const n = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(totalSize - 8))
    throw new CheckpointError(file, `header length ${n} is larger than the file (${totalSize} bytes): truncated, or not a safetensors file`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new CheckpointError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(n);
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface LoadOptions {
  /** Where the tensors go (default: defaultDevice(), i.e. TESSERA_DEVICE or cpu). */
  device?: Device;
}

export interface LoadedSafetensors {
  /** Tensors in file (data) order. BF16 entries are float32 tensors. */
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function resolveDevice(opts: LoadOptions | undefined, op: string): Device {
  const device = opts?.device ?? defaultDevice();
  if (!isDevice(device)) throw new DTypeError(`${op}: unknown device ${String(device)} (expected cpu or cuda)`);
  return device;
}

function checkEndianness(op: string): void {
  if (!LITTLE_ENDIAN) throw new TesseraError(`${op}: safetensors I/O needs a little-endian host`);
}

/**
 * Allocate and fill every tensor; `fill` writes an entry's bytes into the given view. The header
 * is already validated, so this only fails on I/O (or device memory); then nothing leaks.
 */
function materialize(header: SafetensorsHeader, device: Device, fill: (e: SafetensorsEntry, into: Uint8Array) => void): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  try {
    for (const e of header.entries) {
      const info = ST_DTYPES[e.dtype];
      const numel = (e.end - e.begin) / info.size;
      const t = Tensor.empty(e.shape, info.tensor, device);
      out.set(e.name, t);
      if (numel === 0) continue;
      let data: Float32Array | Float64Array | Int32Array;
      if (e.dtype === 'BF16') {
        const half = new Uint16Array(numel);
        fill(e, new Uint8Array(half.buffer));
        data = bf16BitsToFloat32(half);
      } else {
        data = info.tensor === 'float64' ? new Float64Array(numel) : info.tensor === 'int32' ? new Int32Array(numel) : new Float32Array(numel);
        fill(e, new Uint8Array(data.buffer));
      }
      t.storage.native.write(0, data);
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  }
  return out;
}

/** Parse a whole safetensors file held in memory. `name` labels errors (default '<buffer>'). */
export function parseSafetensors(buf: Uint8Array, opts?: LoadOptions & { name?: string }): LoadedSafetensors {
  checkEndianness('parseSafetensors');
  const device = resolveDevice(opts, 'parseSafetensors');
  const file = opts?.name ?? '<buffer>';
  if (!(buf instanceof Uint8Array)) throw new ArgumentError(`parseSafetensors: expected a Buffer or Uint8Array, got ${typeof buf}`);
  const n = headerLengthOf(buf.subarray(0, 8), buf.length, file);
  const header = parseHeader(buf.subarray(8, 8 + n), n, buf.length - 8 - n, file);
  const tensors = materialize(header, device, (e, into) => {
    into.set(buf.subarray(header.dataStart + e.begin, header.dataStart + e.end));
  });
  return { tensors, metadata: header.metadata };
}

function readExactly(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.length) {
    const want = Math.min(into.length - done, 1 << 30);
    const got = fs.readSync(fd, into, done, want, position + done);
    if (got === 0) throw new CheckpointError(file, `the file ended at byte ${position + done} while reading (it changed or shrank while being read)`);
    done += got;
  }
}

function openForRead(file: string, op: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    throw new CheckpointError(file, `${op} cannot open the file: ${(e as Error).message}`, e);
  }
}

/** Read and validate a file's header; `fd` stays open. */
function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw new CheckpointError(file, 'not a regular file');
  const size = st.size;
  const first8 = new Uint8Array(Math.min(8, size));
  readExactly(fd, first8, 0, file);
  const n = headerLengthOf(first8, size, file);
  const headerBytes = new Uint8Array(n);
  readExactly(fd, headerBytes, 8, file);
  return parseHeader(headerBytes, n, size - 8 - n, file);
}

/**
 * Internal: load a file, letting `check` inspect the validated header (e.g. a checkpoint's format
 * tag) before any tensor is read. Used by lib/io/checkpoint.ts.
 */
export function loadSafetensorsChecked(file: string, opts: LoadOptions | undefined, op: string, check?: (h: SafetensorsHeader) => void): LoadedSafetensors {
  checkEndianness(op);
  const device = resolveDevice(opts, op);
  const fd = openForRead(file, op);
  try {
    const header = readHeaderFd(fd, file);
    check?.(header);
    const tensors = materialize(header, device, (e, into) => readExactly(fd, into, header.dataStart + e.begin, file));
    return { tensors, metadata: header.metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** Load every tensor and the metadata of a safetensors file. */
export function loadSafetensors(file: string, opts?: LoadOptions): LoadedSafetensors {
  return loadSafetensorsChecked(file, opts, 'loadSafetensors');
}

/** The validated header of a file (names, dtypes, shapes, offsets, metadata) without its data. */
export function inspectSafetensors(file: string): SafetensorsHeader {
  const fd = openForRead(file, 'inspectSafetensors');
  try {
    return readHeaderFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface SaveOptions {
  /** Free-form string metadata, stored as "__metadata__". */
  metadata?: Record<string, string>;
  /** Per-tensor storage dtype override: store these float32 tensors as BF16. */
  dtype?: Partial<Record<string, 'BF16'>>;
}

interface PlannedTensor {
  readonly name: string;
  readonly tensor: Tensor;
  readonly dtype: SafetensorsDType;
  readonly nbytes: number;
}

interface SavePlan {
  /** The 8-byte length plus the padded header. */
  readonly prefix: Buffer;
  readonly items: readonly PlannedTensor[];
  readonly total: number;
}

const utf8Compare = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** Validate the inputs (before any byte is written) and build the header. */
function planSave(tensors: Map<string, Tensor> | Record<string, Tensor>, opts: SaveOptions | undefined, op: string): SavePlan {
  if (tensors === null || typeof tensors !== 'object')
    throw new ArgumentError(`${op}: tensors must be a Map or a plain object of tensors, got ${tensors === null ? 'null' : typeof tensors}`);
  const pairs: [string, Tensor][] = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const overrides = opts?.dtype ?? {};
  const names = new Set<string>();
  const items: PlannedTensor[] = [];
  for (const [name, t] of pairs) {
    if (typeof name !== 'string') throw new ArgumentError(`${op}: tensor names must be strings, got ${typeof name}`);
    if (name === METADATA_KEY) throw new ArgumentError(`${op}: '${METADATA_KEY}' is reserved for metadata and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new ArgumentError(`${op}: '${name}' is not a Tensor (got ${t === null ? 'null' : typeof t})`);
    t.assertAlive(op, `tensor '${name}'`);
    names.add(name);
    let dtype = ST_OF[t.dtype];
    const override = Object.prototype.hasOwnProperty.call(overrides, name) ? overrides[name] : undefined;
    if (override !== undefined) {
      if (override !== 'BF16') throw new ArgumentError(`${op}: dtype override for '${name}' must be 'BF16', got ${JSON.stringify(override)}`);
      if (t.dtype !== 'float32') throw new DTypeError(`${op}: only float32 tensors can be stored as BF16, but '${name}' is ${t.describe()}`);
      dtype = 'BF16';
    }
    items.push({ name, tensor: t, dtype, nbytes: t.numel * ST_DTYPES[dtype].size });
  }
  for (const k of Object.keys(overrides))
    if (!names.has(k)) throw new ArgumentError(`${op}: dtype override names '${k}', which is not among the tensors being saved`);
  const md = opts?.metadata;
  if (md !== undefined && (md === null || typeof md !== 'object' || Array.isArray(md) || md instanceof Map))
    throw new ArgumentError(`${op}: metadata must be a plain object of strings`);
  for (const [k, v] of Object.entries(md ?? {}))
    if (typeof v !== 'string') throw new ArgumentError(`${op}: metadata value for '${k}' must be a string, got ${typeof v}`);

  // The reference's order: descending dtype alignment, then name (byte-wise).
  items.sort((a, b) => ST_DTYPES[b.dtype].rank - ST_DTYPES[a.dtype].rank || utf8Compare(a.name, b.name));
  const parts: string[] = [];
  if (md !== undefined) {
    const body = Object.entries(md).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${body.join(',')}}`);
  }
  let offset = 0;
  for (const it of items) {
    const info = { dtype: it.dtype, shape: it.tensor.shape, data_offsets: [offset, offset + it.nbytes] };
    parts.push(`${JSON.stringify(it.name)}:${JSON.stringify(info)}`);
    offset += it.nbytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw new ArgumentError(`${op}: the header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers accept`);
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(prefix, 8);
  return { prefix, items, total: prefix.length + offset };
}

/** One tensor's bytes as stored (little-endian, row-major; any layout or device). */
function encode(it: PlannedTensor): Uint8Array {
  const data = it.tensor.toTypedArray();
  const bytes = it.dtype === 'BF16' ? new Uint8Array(float32ToBF16Bits(data as Float32Array).buffer) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length !== it.nbytes) throw new TesseraError(`safetensors: tensor '${it.name}' produced ${bytes.length} bytes, expected ${it.nbytes}`);
  return bytes;
}

/** The whole file as bytes, in memory (what saveSafetensors writes). */
export function serializeSafetensors(tensors: Map<string, Tensor> | Record<string, Tensor>, opts?: SaveOptions): Buffer {
  checkEndianness('serializeSafetensors');
  const plan = planSave(tensors, opts, 'serializeSafetensors');
  const out = Buffer.alloc(plan.total);
  plan.prefix.copy(out, 0);
  let pos = plan.prefix.length;
  for (const it of plan.items) {
    out.set(encode(it), pos);
    pos += it.nbytes;
  }
  return out;
}

/**
 * Test-only fault injection: called during every save. A hook that throws makes the save fail
 * at that point, exactly like an I/O error would. Not part of the public API.
 */
export const saveHooks: {
  /** After tensor `name` (the index-th in file order) has been written to the temp file. */
  afterTensor?: (name: string, index: number, tmpPath: string) => void;
  /** After the temp file is complete and synced, before it is renamed over the target. */
  beforeRename?: (tmpPath: string) => void;
} = {};

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

/** fsync a directory so a rename in it survives a power loss (a no-op where unsupported). */
function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Platforms (and some filesystems) that cannot open or sync a directory: nothing to do.
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

const TMP_MARK = '.tmp-';

/**
 * Write a file atomically: `write` fills a fresh temp file next to `target`; it is synced and
 * renamed over the target only if everything succeeded. On failure the temp file is removed and
 * the target is untouched; tessera errors (e.g. a disposed tensor) pass through, I/O errors
 * become a CheckpointError naming the target.
 */
export function writeFileAtomic(target: string, write: (fd: number, tmpPath: string) => void, op = 'writeFileAtomic'): void {
  if (typeof target !== 'string' || target === '') throw new ArgumentError(`${op}: path must be a non-empty string`);
  const tmp = `${target}${TMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd = -1;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    write(fd, tmp);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    saveHooks.beforeRename?.(tmp);
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd >= 0) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created, or already gone */
    }
    if (err instanceof TesseraError) throw err;
    throw new CheckpointError(target, `${op} failed, the previous file (if any) is unchanged: ${(err as Error)?.message ?? String(err)}`, err);
  }
  try {
    fsyncDir(path.dirname(path.resolve(target)));
  } catch (err) {
    throw new CheckpointError(target, `${op}: the file was written and renamed into place, but syncing its directory failed (${(err as Error).message}); it may not survive a power loss`, err);
  }
}

/**
 * Save tensors (and string metadata) to a safetensors file, atomically. Non-contiguous and CUDA
 * tensors are written as their row-major values. Tensors are ordered as the reference writer
 * orders them (F64, F32, I32, BF16; then by name), so loading returns them in that order.
 */
export function saveSafetensors(file: string, tensors: Map<string, Tensor> | Record<string, Tensor>, opts?: SaveOptions): void {
  checkEndianness('saveSafetensors');
  const plan = planSave(tensors, opts, 'saveSafetensors');
  writeFileAtomic(
    file,
    (fd, tmp) => {
      writeAll(fd, plan.prefix);
      plan.items.forEach((it, i) => {
        writeAll(fd, encode(it));
        saveHooks.afterTensor?.(it.name, i, tmp);
      });
      const written = fs.fstatSync(fd).size;
      if (written !== plan.total) throw new CheckpointError(file, `saveSafetensors wrote ${written} bytes, expected ${plan.total}`);
    },
    'saveSafetensors',
  );
}

/**
 * Remove temp files that an interrupted save of `target` left behind (those whose writing
 * process is no longer alive). Returns the removed paths. Saves in progress are left alone.
 */
export function cleanupTempFiles(target: string): string[] {
  const dir = path.dirname(path.resolve(target));
  const base = path.basename(target);
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (!n.startsWith(base + TMP_MARK)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(n.slice(base.length + TMP_MARK.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    try {
      fs.unlinkSync(path.join(dir, n));
      removed.push(path.join(dir, n));
    } catch {
      /* raced with another cleaner */
    }
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
