// safetensors I/O: round trips of every dtype and layout, BF16 rounding against an independent
// JS reference, the exact bytes of small files (the reference implementation's own test vectors
// and a hand-built layout, so the format is checked without trusting our reader), every kind of
// corruption refused with a message naming the file and the problem, and atomic saves: a save
// that fails part-way, or a process killed with SIGKILL mid-save, never damages the file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn } from 'child_process';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import {
  CheckpointError,
  cleanupTempFiles,
  inspectSafetensors,
  loadSafetensors,
  parseSafetensors,
  saveHooks,
  saveSafetensors,
  serializeSafetensors,
} from '../../lib/io/safetensors';
import { jsRandom, SEED, seedFor } from '../helpers/check';

seedFor('io/safetensors'); // prints TEST_SEED, which also drives the JS generators below
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-st-'));
const tmpFile = (name: string) => path.join(dir, name);
const blocks = () => ts.memoryStats().hostBlocks;
const tempFilesOf = (target: string) => fs.readdirSync(path.dirname(target)).filter((n) => n.startsWith(path.basename(target) + '.tmp-'));

/** Bytes of a tensor's row-major values (bitwise comparison, NaN payloads and -0 included). */
const bytesOf = (t: Tensor) => {
  const a = t.toTypedArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
};

function assertSameTensor(actual: Tensor | undefined, expected: Tensor, what: string): void {
  assert.ok(actual, `${what}: missing`);
  assert.is(actual!.dtype, expected.dtype, `${what}: dtype`);
  assert.equal([...actual!.shape], [...expected.shape], `${what}: shape`);
  assert.ok(actual!.isContiguous(), `${what}: loaded tensors are contiguous`);
  assert.ok(bytesOf(actual!).equals(bytesOf(expected)), `${what}: values differ bitwise`);
}

function assertCheckpointError(fn: () => unknown, file: string, patterns: (string | RegExp)[], what: string): CheckpointError {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof CheckpointError)) assert.unreachable(`${what}: expected a CheckpointError, got ${err === null ? 'no error' : String(err)}`);
  const e = err as CheckpointError;
  assert.ok(e.message.includes(file), `${what}: message "${e.message}" does not name ${file}`);
  for (const p of patterns) {
    const ok = typeof p === 'string' ? e.message.includes(p) : p.test(e.message);
    if (!ok) assert.unreachable(`${what}: message "${e.message}" does not match ${String(p)}`);
  }
  return e;
}

test('round trip: F32, F64, I32 with special values, 0-d, empty and non-contiguous tensors, odd names, metadata', () => {
  const base = ts.arange(24, undefined, 1, { dtype: 'float64' }).reshape([4, 6]);
  const inputs = new Map<string, Tensor>([
    ['f32', ts.tensor([0, -0, 1.5, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, -1 / 3], { shape: [3, 3] })],
    ['f64', ts.tensor([Math.PI, -0, NaN, -Infinity, 5e-324, Number.MAX_VALUE], { dtype: 'float64', shape: [2, 3] })],
    ['i32', ts.tensor([-(2 ** 31), 2 ** 31 - 1, 0, -1, 7], { dtype: 'int32' })],
    ['scalar.f32', ts.tensor(3.5)],
    ['scalar.f64', ts.tensor(-2.25, { dtype: 'float64' })],
    ['scalar.i32', ts.tensor(-9, { dtype: 'int32' })],
    ['empty.f32', ts.zeros([0])],
    ['empty.i32', ts.zeros([2, 0, 3], { dtype: 'int32' })],
    ['empty.f64', ts.zeros([0, 5], { dtype: 'float64' })],
    ['view.transpose', base.T],
    ['view.stepped', base.slice(1, 1, 6, 2)],
    ['view.row', base.select(0, 2)],
    ['view.expand', ts.tensor([1, 2, 3], { dtype: 'int32' }).reshape([3, 1]).expand([3, 4])],
    ['view.f32.permute', ts.arange(24, undefined, 1, { dtype: 'float32' }).reshape([2, 3, 4]).permute([2, 0, 1])],
    ['0', ts.ones([2])],
    ['10', ts.ones([1])],
    ['__proto__', ts.full([2], 4)],
    ['ünï.cödé 名前', ts.full([1], 5)],
    ['with "quotes" and \\ and \n', ts.full([1], 6)],
  ]);
  assert.ok(!inputs.get('view.transpose')!.isContiguous() && !inputs.get('view.expand')!.isContiguous(), 'the views are non-contiguous');
  const metadata = { framework: 'tessera', 'κλειδί': 'τιμή', multi: 'a\nb"c\\d', '0': 'zero', empty: '' };
  const file = tmpFile('roundtrip.safetensors');
  saveSafetensors(file, inputs, { metadata });
  const viaFile = loadSafetensors(file);
  const viaBytes = parseSafetensors(fs.readFileSync(file));
  assert.ok(serializeSafetensors(inputs, { metadata }).equals(fs.readFileSync(file)), 'serializeSafetensors writes the same bytes as saveSafetensors');
  for (const loaded of [viaFile, viaBytes]) {
    assert.equal(loaded.metadata, metadata);
    assert.equal(new Set(loaded.tensors.keys()), new Set(inputs.keys()));
    for (const [k, t] of inputs) assertSameTensor(loaded.tensors.get(k), t, k);
    for (const t of loaded.tensors.values()) assert.not.ok(t.requiresGrad);
    for (const t of loaded.tensors.values()) t.dispose();
  }
  // No metadata: an empty record back. A Record works as well as a Map.
  saveSafetensors(file, { x: inputs.get('i32')! });
  const plain = loadSafetensors(file);
  assert.equal(plain.metadata, {});
  assertSameTensor(plain.tensors.get('x'), inputs.get('i32')!, 'record input');
  plain.tensors.get('x')!.dispose();
  // An empty set of tensors is a valid file too.
  saveSafetensors(file, {});
  assert.is(loadSafetensors(file).tensors.size, 0);
  for (const t of inputs.values()) t.dispose();
  base.dispose();
});

test('save refuses bad input before touching the disk', () => {
  const file = tmpFile('refuse.safetensors');
  const x = ts.ones([2]);
  const i = ts.ones([2], { dtype: 'int32' });
  const cases: [() => void, RegExp][] = [
    [() => saveSafetensors(file, { __metadata__: x }), /reserved/],
    [() => saveSafetensors(file, { a: [1, 2] as unknown as Tensor }), /'a' is not a Tensor/],
    [() => saveSafetensors(file, { a: x }, { dtype: { b: 'BF16' } }), /override names 'b'/],
    [() => saveSafetensors(file, { a: i }, { dtype: { a: 'BF16' } }), /only float32 tensors can be stored as BF16/],
    [() => saveSafetensors(file, { a: x }, { dtype: { a: 'F16' as 'BF16' } }), /must be 'BF16'/],
    [() => saveSafetensors(file, { a: x }, { metadata: { k: 3 as unknown as string } }), /metadata value for 'k' must be a string/],
  ];
  for (const [fn, re] of cases) assert.throws(fn, re);
  const d = ts.ones([3]);
  d.dispose();
  assert.throws(() => saveSafetensors(file, { a: x, gone: d }), (e: Error) => e instanceof ts.DisposedError && /tensor 'gone'/.test(e.message));
  assert.not.ok(fs.existsSync(file), 'nothing was written');
  assert.equal(tempFilesOf(file), []);
  x.dispose();
  i.dispose();
});

// ---------------------------------------------------------------------------------------------
// BF16

/** Independent reference: the nearest bf16 by value (distances exact in float64), ties to even. */
function refBF16(bits32: number): number {
  const f = new Float32Array(new Uint32Array([bits32]).buffer)[0];
  if (Number.isNaN(f)) return 0x7fc0;
  const sign = bits32 & 0x80000000 ? 0x8000 : 0;
  const lo = (bits32 >>> 16) & 0x7fff; // magnitude truncated toward zero
  if ((bits32 & 0xffff) === 0) return sign | lo;
  const hi = lo + 1;
  const mag = (b: number) => (b === 0x7f80 ? 2 ** 128 : Math.abs(new Float32Array(new Uint32Array([b << 16]).buffer)[0]));
  const a = Math.abs(f);
  const dLo = a - mag(lo);
  const dHi = mag(hi) - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

test('BF16: round-to-nearest-even on write (NaN and infinities kept), exact widening on read', () => {
  const rnd = jsRandom(SEED ^ 0xbf16);
  const patterns: number[] = [
    0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, // zeros, ±1, ±inf
    0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7fa00000, // NaNs (signalling too)
    0x3f808000, 0x3f818000, 0xbf808000, 0xbf818000, // exact ties: stay even / round up to even
    0x3f807fff, 0x3f808001, // just below / above a tie
    0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0xff7f8000, // near the top: max stays, tie and above overflow to inf
    0x00000001, 0x00008000, 0x00018000, 0x007fffff, 0x80008001, // subnormals
  ];
  for (let k = 0; k < 20000; k++) patterns.push(Math.floor(rnd() * 2 ** 32));
  for (let k = 0; k < 2000; k++) patterns.push(((Math.floor(rnd() * 2 ** 16) << 16) | 0x8000) >>> 0); // ties
  const values = new Float32Array(new Uint32Array(patterns).buffer);
  const x = ts.tensor(values);
  const file = tmpFile('bf16.safetensors');
  saveSafetensors(file, { x }, { dtype: { x: 'BF16' } });
  // The stored halves, read from the file's bytes directly.
  const raw = fs.readFileSync(file);
  const start = 8 + Number(raw.readBigUInt64LE(0));
  assert.is(raw.length - start, 2 * patterns.length);
  const header = JSON.parse(raw.subarray(8, start).toString('utf8'));
  assert.equal(header.x, { dtype: 'BF16', shape: [patterns.length], data_offsets: [0, 2 * patterns.length] });
  for (let k = 0; k < patterns.length; k++) {
    const got = raw.readUInt16LE(start + 2 * k);
    const want = refBF16(patterns[k]);
    if (got !== want) assert.unreachable(`bf16 of 0x${patterns[k].toString(16)}: got 0x${got.toString(16)}, expected 0x${want.toString(16)}`);
  }
  // Reading widens to float32 exactly: the value's bits are the bf16 bits << 16.
  const loaded = loadSafetensors(file).tensors.get('x')!;
  assert.is(loaded.dtype, 'float32');
  const back = new Uint32Array((loaded.toTypedArray() as Float32Array).buffer);
  for (let k = 0; k < patterns.length; k++) {
    const want = (refBF16(patterns[k]) << 16) >>> 0;
    if (back[k] !== want) assert.unreachable(`bf16 read of 0x${patterns[k].toString(16)}: got 0x${back[k].toString(16)}, expected 0x${want.toString(16)}`);
  }
  // Values already representable in bf16 round trip exactly, in any layout.
  const exact = ts.tensor([1, -2.5, 0.15625, 384, -0, 2 ** -126], { shape: [2, 3] }).T;
  saveSafetensors(file, { exact }, { dtype: { exact: 'BF16' } });
  const exactBack = loadSafetensors(file).tensors.get('exact')!;
  assertSameTensor(exactBack, exact, 'bf16-exact values');
  for (const t of [x, loaded, exact, exactBack]) t.dispose();
});

// ---------------------------------------------------------------------------------------------
// Exact bytes

const bytes = (...xs: number[]) => Buffer.from(xs);

test('byte-exact: the reference implementation\'s own serialization test vectors', () => {
  // From huggingface/safetensors safetensors/src/tensor.rs (test_serialization, test_empty,
  // test_serialization_forced_alignement).
  const f6 = (shape: number[]) => ts.tensor([0, 1, 2, 3, 4, 5], { shape });
  const a = f6([1, 2, 3]);
  const b = f6([1, 1, 2, 3]);
  const expectA = bytes(
    64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34,
    115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91,
    48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
  );
  const expectB = bytes(
    72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115,
    104, 97, 112, 101, 34, 58, 91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58,
    91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
  );
  const expectEmpty = bytes(8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32);
  const expectMeta = bytes(
    40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111,
    114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
  );
  const cases: [string, Record<string, Tensor>, Record<string, string> | undefined, Buffer][] = [
    ['attn.0', { 'attn.0': a }, undefined, expectA],
    ['attn0 (padded)', { attn0: b }, undefined, expectB],
    ['empty', {}, undefined, expectEmpty],
    ['metadata only', {}, { framework: 'pt' }, expectMeta],
  ];
  const file = tmpFile('vectors.safetensors');
  for (const [what, tensors, metadata, expected] of cases) {
    saveSafetensors(file, tensors, { metadata });
    const got = fs.readFileSync(file);
    if (!got.equals(expected)) assert.unreachable(`${what}: bytes differ\n  got      ${JSON.stringify([...got])}\n  expected ${JSON.stringify([...expected])}`);
  }
  a.dispose();
  b.dispose();
});

test('byte-exact: a hand-built layout (ordering by dtype alignment then name, padding, little-endian data)', () => {
  const z = ts.tensor(0.5, { dtype: 'float64' });
  const aT = ts.tensor([1, 2, 3, 4], { shape: [2, 2] }).T; // row-major values 1, 3, 2, 4
  const e = ts.zeros([0]);
  const b = ts.tensor([1, -2], { dtype: 'int32' });
  const w = ts.tensor([1, -2.5, 1.00390625]); // 1 + 2^-8 is a tie between bf16 1 and 1 + 2^-7: even is 1
  const file = tmpFile('handbuilt.safetensors');
  saveSafetensors(file, new Map([['w', w], ['b', b], ['e', e], ['a', aT], ['z', z]]), { metadata: { k: 'v' }, dtype: { w: 'BF16' } });

  const json =
    '{"__metadata__":{"k":"v"},' +
    '"z":{"dtype":"F64","shape":[],"data_offsets":[0,8]},' +
    '"a":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},' +
    '"e":{"dtype":"F32","shape":[0],"data_offsets":[24,24]},' +
    '"b":{"dtype":"I32","shape":[2],"data_offsets":[24,32]},' +
    '"w":{"dtype":"BF16","shape":[3],"data_offsets":[32,38]}}';
  const headerLen = Math.ceil(json.length / 8) * 8;
  const expected = Buffer.alloc(8 + headerLen + 38);
  const dv = new DataView(expected.buffer, expected.byteOffset, expected.length);
  dv.setUint32(0, headerLen, true); // u64 little-endian: high word stays 0
  expected.write(json.padEnd(headerLen, ' '), 8, 'latin1');
  let p = 8 + headerLen;
  dv.setFloat64(p, 0.5, true);
  p += 8;
  for (const v of [1, 3, 2, 4]) {
    dv.setFloat32(p, v, true);
    p += 4;
  }
  for (const v of [1, -2]) {
    dv.setInt32(p, v, true);
    p += 4;
  }
  for (const h of [0x3f80, 0xc020, 0x3f80]) {
    dv.setUint16(p, h, true);
    p += 2;
  }
  assert.is(p, expected.length);
  const got = fs.readFileSync(file);
  assert.is(got.toString('latin1', 8, 8 + headerLen), json.padEnd(headerLen, ' '), 'header text');
  assert.ok(got.equals(expected), `bytes differ\n  got      ${JSON.stringify([...got])}\n  expected ${JSON.stringify([...expected])}`);
  // Every tensor's data starts at a multiple of its element size within the file.
  const info = inspectSafetensors(file);
  for (const en of info.entries) assert.is((info.dataStart + en.begin) % { F64: 8, F32: 4, I32: 4, BF16: 2 }[en.dtype], 0, `${en.name} aligned`);
  for (const t of [z, aT, e, b, w]) t.dispose();
});

// ---------------------------------------------------------------------------------------------
// Corruption

/** A file from a header (a string, padded with spaces to 8 bytes) and data bytes. */
function build(header: string, data: Uint8Array | number = 0, lengthOverride?: bigint): Buffer {
  const h = Buffer.from(header, 'utf8');
  const padded = Math.ceil(h.length / 8) * 8;
  const d = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const out = Buffer.alloc(8 + padded + d.length, 0x20);
  out.writeBigUInt64LE(lengthOverride ?? BigInt(padded), 0);
  h.copy(out, 8);
  d.copy(out, 8 + padded);
  return out;
}

const entry = (dtype: string, shape: unknown, offsets: unknown) => `{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`;

let corruptCount = 0;
/** The bytes are refused both from a file (the message names the path) and from memory. */
function expectCorrupt(content: Uint8Array, patterns: (string | RegExp)[], what: string): void {
  const file = tmpFile(`corrupt-${corruptCount++}.safetensors`);
  fs.writeFileSync(file, content);
  const before = blocks();
  assertCheckpointError(() => loadSafetensors(file), file, patterns, `${what} (file)`);
  assertCheckpointError(() => parseSafetensors(content, { name: `buffer:${what}` }), `buffer:${what}`, patterns, `${what} (buffer)`);
  assert.is(blocks(), before, `${what}: no tensor was created`);
  fs.unlinkSync(file);
}

test('corrupt: too short, header length beyond the file, header not JSON or not an object', () => {
  for (let n = 0; n < 8; n++) expectCorrupt(Buffer.alloc(n, 1), [`only ${n} bytes`, 'too short'], `${n}-byte file`);
  const good = build(`{"a":${entry('F32', [2], [0, 8])}}`, 8);
  const longer = Buffer.from(good);
  longer.writeBigUInt64LE(BigInt(good.length), 0);
  expectCorrupt(longer, [/header length \d+ is larger than the file/], 'header length = file size');
  const huge = Buffer.from(good);
  huge.writeBigUInt64LE(2n ** 64n - 1n, 0);
  expectCorrupt(huge, ['header length 18446744073709551615 is larger than the file'], 'header length 2^64-1');
  const shorter = Buffer.from(good);
  shorter.writeBigUInt64LE(8n, 0); // the header now ends mid-JSON
  expectCorrupt(shorter, ['not valid JSON'], 'header length too small');
  for (const h of ['not json', '{"a":', '{"a" 1}', "{'a':1}", '{"a":{"dtype":"F32",}}', '{} x', '', '{"a":"\u0001"}', '{"a":[1,2}'])
    expectCorrupt(build(h), ['not valid JSON'], `header ${JSON.stringify(h)}`);
  expectCorrupt(build('[' + '['.repeat(40) + ']'.repeat(40) + ']'), ['not valid JSON', 'nested'], 'deeply nested header');
  const badUtf8 = build('{"a":"xx"}');
  badUtf8[14] = 0xff;
  expectCorrupt(badUtf8, ['not valid UTF-8'], 'invalid UTF-8');
  for (const h of ['[1,2]', '"str"', 'null', '42'])
    expectCorrupt(build(h), ['not an object'], `header ${h}`);
});

test('corrupt: entries with unknown dtypes, bad shapes, bad or inconsistent offsets, duplicate names', () => {
  const one = (e: string, data = 8) => build(`{"t":${e}}`, data);
  expectCorrupt(one(entry('F16', [4], [0, 8])), [`tensor 't'`, 'dtype "F16" is not supported'], 'F16');
  expectCorrupt(one(entry('Q7', [2], [0, 8])), [`tensor 't'`, 'unknown dtype "Q7"'], 'unknown dtype');
  expectCorrupt(one('{"shape":[2],"data_offsets":[0,8]}'), ['dtype must be a string'], 'missing dtype');
  expectCorrupt(one('[1,2]'), ['entry must be an object'], 'entry not an object');
  for (const shape of [[-1], [1.5], ['2'], null, [[2]], 'x', undefined]) {
    const e = shape === undefined ? '{"dtype":"F32","data_offsets":[0,8]}' : entry('F32', shape, [0, 8]);
    expectCorrupt(one(e), [`tensor 't'`, 'shape must be a list of non-negative integers'], `shape ${JSON.stringify(shape)}`);
  }
  expectCorrupt(one('{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}'), ['shape must be a list of non-negative integers', '[2.0]'], 'shape 2.0');
  expectCorrupt(one('{"dtype":"F32","shape":[1e0, 2],"data_offsets":[0,8]}'), ['shape must be a list of non-negative integers'], 'shape 1e0');
  expectCorrupt(one(entry('F32', [99999999999999999999], [0, 8])), ['shape must be a list of non-negative integers'], 'unsafe integer');
  expectCorrupt(one(entry('F32', [1, 1, 1, 1, 1, 1, 1, 1, 2], [0, 8])), ['9 dimensions'], '9-d');
  expectCorrupt(one(entry('F32', [2 ** 20, 2 ** 20], [0, 8])), ['more than tessera\'s limit'], 'too many elements');
  for (const off of [[0], [0, 8, 16], ['0', 8], [-8, 0], null, [0, 8.5]])
    expectCorrupt(one(entry('F32', [2], off)), [`tensor 't'`, 'data_offsets must be [begin, end]'], `offsets ${JSON.stringify(off)}`);
  expectCorrupt(one(entry('F32', [2], [8, 0])), ['end before they begin'], 'end < begin');
  expectCorrupt(one(entry('F32', [4], [0, 12]), 12), ['span 12 bytes', 'needs 16'], 'size mismatch');
  expectCorrupt(one(entry('F32', [100], [0, 400])), ['run past the end of the data (8 bytes', 'truncated'], 'out of range');
  const two = (a: string, b: string, data: number) => build(`{"a":${a},"b":${b}}`, data);
  expectCorrupt(two(entry('F32', [4], [0, 16]), entry('F32', [4], [8, 24]), 24), [`tensor 'b'`, 'overlap tensor \'a\''], 'overlap');
  expectCorrupt(two(entry('F32', [2], [0, 8]), entry('F32', [2], [0, 8]), 16), ['overlap'], 'same bytes twice');
  expectCorrupt(two(entry('F32', [2], [0, 8]), entry('F32', [2], [16, 24]), 24), [`tensor 'b'`, 'gap (bytes 8..16'], 'gap');
  expectCorrupt(one(entry('F32', [2], [8, 16]), 16), ['gap (bytes 0..8'], 'gap at the start');
  expectCorrupt(one(entry('F32', [2], [0, 8]), 12), ['12 bytes but the tensors cover 8', 'trailing'], 'trailing bytes');
  expectCorrupt(build(`{"a":${entry('F32', [2], [0, 8])},"a":${entry('F32', [2], [8, 16])}}`, 16), [`names tensor 'a' more than once`], 'duplicate names');
  expectCorrupt(one('{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}'), ['duplicate key "dtype"'], 'duplicate field');
  expectCorrupt(build('{"__metadata__":{"k":1}}'), ['"__metadata__" value for "k" must be a string'], 'metadata value');
  expectCorrupt(build('{"__metadata__":[1]}'), ['"__metadata__" must be an object'], 'metadata array');
  // Still valid: null metadata, unknown extra fields, zero-size tensors sharing an offset.
  const ok = parseSafetensors(build(`{"__metadata__":null,"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1},"b":${entry('I32', [0], [0, 0])}}`));
  assert.is(ok.tensors.size, 2);
  ok.tensors.forEach((t) => t.dispose());
});

test('corrupt: a valid file edited byte by byte (wrong dtype, truncation at every length, random damage)', () => {
  const x = ts.arange(6, undefined, 1, { dtype: 'float32' });
  const y = ts.tensor([1, 2, 3], { dtype: 'int32' });
  const z = ts.tensor([0.5, 0.25], { dtype: 'float64' });
  const good = serializeSafetensors({ x, y, z }, { metadata: { note: 'hi' } });
  const headerEnd = 8 + Number(good.readBigUInt64LE(0));
  // Wrong dtype: F32 -> F64 (same length, so only the meaning changes).
  const text = good.toString('latin1');
  const at = text.indexOf('"F32"');
  const wrong = Buffer.from(good);
  wrong.write('"F64"', at, 'latin1');
  expectCorrupt(wrong, [`tensor 'x'`, 'span 24 bytes', 'needs 48'], 'F32 edited to F64');
  // Truncated at every length: always refused (by file and by buffer).
  for (let n = 0; n < good.length; n++) {
    const cut = good.subarray(0, n);
    const file = tmpFile('truncated.safetensors');
    fs.writeFileSync(file, cut);
    assertCheckpointError(() => loadSafetensors(file), file, [], `truncated to ${n} bytes`);
    assertCheckpointError(() => parseSafetensors(cut, { name: 'cut' }), 'cut', [], `truncated to ${n} bytes (buffer)`);
  }
  // One appended byte.
  expectCorrupt(Buffer.concat([good, Buffer.from([0])]), ['trailing'], 'appended byte');
  // Random damage to the header: refused with a CheckpointError, or read as a consistent file.
  const rnd = jsRandom(SEED ^ 0xdead);
  const before = blocks();
  let refused = 0;
  for (let k = 0; k < 400; k++) {
    const bad = Buffer.from(good);
    for (let j = 0, m = 1 + Math.floor(rnd() * 3); j < m; j++) bad[Math.floor(rnd() * headerEnd)] = Math.floor(rnd() * 256);
    try {
      const r = parseSafetensors(bad);
      let total = 0;
      for (const t of r.tensors.values()) {
        total += t.numel * (t.dtype === 'float64' ? 8 : 4);
        t.dispose();
      }
      assert.ok(total <= good.length - headerEnd, 'an accepted file has no more data than bytes');
    } catch (e) {
      if (!(e instanceof CheckpointError)) assert.unreachable(`random damage #${k} raised ${String(e)}`);
      refused++;
    }
  }
  assert.ok(refused > 200, `most damaged files are refused (${refused}/400)`);
  assert.is(blocks(), before, 'no tensors leaked');
  for (const t of [x, y, z]) t.dispose();
});

test('load: a missing file is a CheckpointError naming it', () => {
  const file = tmpFile('does-not-exist.safetensors');
  assertCheckpointError(() => loadSafetensors(file), file, ['cannot open'], 'missing file');
  assertCheckpointError(() => loadSafetensors(dir), dir, [], 'a directory');
});

// ---------------------------------------------------------------------------------------------
// Atomicity

test('atomic: a save that fails part-way leaves the previous file byte-identical and no temp file', () => {
  const file = tmpFile('atomic.safetensors');
  const a = ts.full([1000], 1);
  const b = ts.full([1000], 2);
  const c = ts.full([1000], 3);
  saveSafetensors(file, { a, b, c }, { metadata: { v: '1' } });
  const v1 = fs.readFileSync(file);
  const v2 = { a: ts.full([1000], 10), b: ts.full([1000], 20), c: ts.full([1000], 30) };
  const unchanged = (what: string) => {
    assert.ok(fs.readFileSync(file).equals(v1), `${what}: the previous file is byte-identical`);
    assert.equal(tempFilesOf(file), [], `${what}: no temp file is left`);
  };
  let sawTemp = '';
  try {
    saveHooks.afterTensor = (name, i, tmp) => {
      sawTemp = tmp;
      assert.ok(fs.existsSync(tmp), 'the temp file exists while writing');
      if (i === 1) throw new Error('injected failure after the second tensor');
    };
    assert.throws(() => saveSafetensors(file, v2, { metadata: { v: '2' } }), /injected failure/);
    unchanged('injected throw');
    assert.match(path.basename(sawTemp), new RegExp(`^atomic\\.safetensors\\.tmp-${process.pid}-[0-9a-f]+$`));

    saveHooks.afterTensor = (name) => {
      if (name === 'a') v2.c.dispose(); // a tensor disposed while the save is under way
    };
    assert.throws(() => saveSafetensors(file, v2), (e: Error) => e instanceof ts.DisposedError);
    unchanged('tensor disposed mid-save');
    v2.c = ts.full([1000], 30);

    saveHooks.afterTensor = undefined;
    saveHooks.beforeRename = (tmp) => {
      assert.ok(fs.existsSync(tmp));
      throw new Error('injected failure before rename');
    };
    assert.throws(() => saveSafetensors(file, v2), /before rename/);
    unchanged('failure before rename');
  } finally {
    saveHooks.afterTensor = undefined;
    saveHooks.beforeRename = undefined;
  }
  // I/O failures: a missing directory, a directory in the way. Both name the target.
  const missing = path.join(dir, 'no-such-dir', 'x.safetensors');
  assertCheckpointError(() => saveSafetensors(missing, v2), missing, ['unchanged'], 'missing directory');
  const blocker = tmpFile('a-directory');
  fs.mkdirSync(blocker);
  assertCheckpointError(() => saveSafetensors(blocker, v2), blocker, ['unchanged'], 'directory in the way');
  assert.equal(tempFilesOf(blocker), []);
  // And a save that succeeds replaces the file.
  saveSafetensors(file, v2, { metadata: { v: '2' } });
  const now = loadSafetensors(file);
  assert.is(now.metadata.v, '2');
  assert.is(now.tensors.get('c')!.toTypedArray()[999], 30);
  assert.equal(tempFilesOf(file), []);
  for (const t of [a, b, c, v2.a, v2.b, v2.c, ...now.tensors.values()]) t.dispose();
});

test('cleanupTempFiles removes what dead writers left, not live ones or other files', () => {
  const file = tmpFile('cleanup.safetensors');
  fs.writeFileSync(file, 'target');
  const dead = `${file}.tmp-999999999-0123abcd`; // above any pid_max: no such process
  const mine = `${file}.tmp-${process.pid}-beef`;
  const other = `${file}.tmp-notapid`;
  for (const f of [dead, mine, other]) fs.writeFileSync(f, 'x');
  assert.equal(cleanupTempFiles(file), [dead]);
  assert.ok(fs.existsSync(mine) && fs.existsSync(other) && fs.existsSync(file));
  for (const f of [mine, other, file]) fs.unlinkSync(f);
});

const CHILD = `
const ts = require(process.env.TS_LIB);
const io = require(process.env.TS_IO);
const n = Number(process.env.TS_N);
for (let v = 1; ; v++) {
  const big = ts.full([n], v);
  const small = ts.full([3], v, { dtype: 'int32' });
  io.saveSafetensors(process.env.TS_TARGET, { big, small }, { metadata: { version: String(v) } });
  big.dispose();
  small.dispose();
  process.stdout.write(v + '\\n');
}`;

test('atomic: SIGKILL in the middle of saves always leaves a complete, parseable version', async () => {
  const target = tmpFile('killed.safetensors');
  const n = 1 << 21; // 8 MiB of float32 per save
  const env = {
    ...process.env,
    TS_LIB: path.resolve(__dirname, '..', '..', 'lib'),
    TS_IO: path.resolve(__dirname, '..', '..', 'lib', 'io', 'safetensors'),
    TS_N: String(n),
    TS_TARGET: target,
  };
  const rnd = jsRandom(SEED ^ 0x5167);
  let strays = 0;
  let lastVersion = 0;
  for (let round = 0; round < 6; round++) {
    const child = spawn(process.execPath, ['-e', CHILD], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let saved = 0;
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        const lines = d.toString().trim().split('\n');
        saved = Number(lines[lines.length - 1]);
        if (saved >= 1) resolve();
      });
      child.on('exit', () => resolve());
    });
    // A random moment while it keeps saving (each save takes some milliseconds).
    await new Promise((r) => setTimeout(r, rnd() * 60));
    child.kill('SIGKILL');
    await exited;
    assert.ok(saved >= 1, `round ${round}: the child saved at least once before being killed`);
    // The target is one complete version: its header, its size and all of its values agree.
    const got = loadSafetensors(target);
    const v = Number(got.metadata.version);
    assert.ok(Number.isInteger(v) && v >= saved, `round ${round}: version ${got.metadata.version} (child had reported ${saved})`);
    const big = got.tensors.get('big')!.toTypedArray();
    const small = got.tensors.get('small')!.toTypedArray();
    assert.is(big.length, n);
    assert.ok(big.every((x) => x === v) && small.every((x) => x === v), `round ${round}: every value is ${v}`);
    got.tensors.forEach((t) => t.dispose());
    lastVersion = v;
    // Temp files a kill left behind never take the target's name, and cleanup removes them.
    const temps = tempFilesOf(target);
    strays += temps.length;
    for (const t of temps) assert.match(t, /^killed\.safetensors\.tmp-\d+-[0-9a-f]+$/);
    assert.equal(cleanupTempFiles(target).length, temps.length);
    assert.equal(tempFilesOf(target), []);
  }
  assert.ok(lastVersion >= 1);
  console.log(`  (SIGKILL test: ${strays} of 6 kills landed mid-save and left a temp file)`);
});

test('cuda: tensors on the GPU save and load (skipped without a GPU)', () => {
  if (!ts.cudaAvailable()) return;
  const x = ts.arange(12, undefined, 1, { dtype: 'float32', device: 'cuda' }).reshape([3, 4]).T;
  const file = tmpFile('cuda.safetensors');
  saveSafetensors(file, { x, h: x }, { dtype: { h: 'BF16' } });
  const back = loadSafetensors(file, { device: 'cuda' });
  assert.is(back.tensors.get('x')!.device, 'cuda');
  assertSameTensor(back.tensors.get('x'), x, 'cuda round trip');
  assertSameTensor(back.tensors.get('h'), x, 'cuda bf16 (small integers are exact)');
  back.tensors.forEach((t) => t.dispose());
  x.dispose();
});

test.after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
