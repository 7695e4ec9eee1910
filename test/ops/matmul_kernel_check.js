#!/usr/bin/env node
// Correctness check of the native `matmul` op (native/cpu/matmul.cpp) against a float64 naive
// triple loop: many shapes (odd sizes, empty dims, block-crossing sizes), operand layouts
// (row-major, transposed, batch-broadcast stride 0, general strides, offsets), beta 0/1/other,
// float32 and float64, 1 and 2 threads, and every micro-kernel this CPU can run (child processes
// with TESSERA_MATMUL_KERNEL=generic|avx2|avx512), plus bad-argument calls that must throw.
//
//   node test/ops/matmul_kernel_check.js   (addon: $TESSERA_ADDON or build/Release/tessera.node)
// Exit status 0 when everything passes. Plain Node, no build step; the lead ports it to uvu.
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');

const addonPath = path.resolve(process.env.TESSERA_ADDON || path.join(__dirname, '..', '..', 'build', 'Release', 'tessera.node'));

if (!process.argv.includes('--child')) {
  // Parent: run the whole check once per kernel level the CPU supports.
  const addon = require(addonPath);
  const simd = addon.cpuInfo().simd;
  const levels = ['generic', 'avx2', 'avx512'].slice(0, { generic: 1, avx2: 2, avx512: 3 }[simd] || 1);
  // Each level as shipped, and the best level once more with the small-M (unpacked) path off so
  // that small shapes also go through the packed path.
  const runs = levels.map((level) => ({ TESSERA_MATMUL_KERNEL: level }));
  runs.push({ TESSERA_MATMUL_KERNEL: levels[levels.length - 1], TESSERA_MATMUL_SMALL_M: '0' });
  let failed = false;
  for (const env of runs) {
    const r = spawnSync(process.execPath, [__filename, '--child'], {
      env: { ...process.env, ...env, TESSERA_ADDON: addonPath },
      stdio: 'inherit',
    });
    if (r.status !== 0) failed = true;
  }
  console.log(failed ? 'matmul check: FAILED' : `matmul check: all passed (${levels.join(', ')})`);
  process.exit(failed ? 1 : 0);
}

const addon = require(addonPath);
const level = process.env.TESSERA_MATMUL_KERNEL + (process.env.TESSERA_MATMUL_SMALL_M === '0' ? ', small-M path off' : '');

// Deterministic PRNG (mulberry32).
let seed = 12345;
function rnd() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const DT = { f32: 0, f64: 1, i32: 2 };
const Arr = { 0: Float32Array, 1: Float64Array, 2: Int32Array };

// A tensor: storage + layout [dtype, device, offset, ndim, ...shape, ...strides], plus a JS
// accessor get(b, i, j) reading the value the kernel sees (for the reference).
function makeTensor(dtype, shape, kind, fill = 'rand') {
  const [B, R, C] = shape;
  let strides;
  let offset = kind.includes('off') ? 3 : 0;
  if (kind.startsWith('row')) strides = [R * C, C, 1];
  else if (kind.startsWith('col')) strides = [R * C, 1, R];  // transposed inner matrix
  else if (kind.startsWith('bcast')) strides = [0, C, 1];  // batch broadcast, row-major
  else if (kind.startsWith('bcol')) strides = [0, 1, R];  // batch broadcast, transposed
  else if (kind.startsWith('stridedT')) strides = [4 * R * C + 5, 3, 3 * R + 2];  // no unit stride, column-ish
  else if (kind.startsWith('strided')) strides = [4 * R * C + 5, 2 * C + 1, 2];  // no unit stride
  else throw new Error('kind ' + kind);
  let maxIdx = offset;
  for (let d = 0; d < 3; d++) if (shape[d] > 0) maxIdx += (shape[d] - 1) * strides[d];
  const n = shape.some((s) => s === 0) ? offset + 1 : maxIdx + 1;
  const A = Arr[dtype];
  const buf = new A(n);
  for (let i = 0; i < n; i++) buf[i] = fill === 'nan' ? NaN : rnd() * 2 - 1;
  const storage = new addon.Storage(n * A.BYTES_PER_ELEMENT, 0);
  storage.write(0, buf);
  return {
    storage,
    shape,
    strides,
    offset,
    dtype,
    buf,
    layout: [dtype, 0, offset, 3, ...shape, ...strides],
    get: (b, i, j) => buf[offset + b * strides[0] + i * strides[1] + j * strides[2]],
  };
}

function call(a, b, out, beta) {
  addon.ops.matmul([a.storage, b.storage, out.storage], new Float64Array([...a.layout, ...b.layout, ...out.layout]),
    new Float64Array([beta]));
}

let checks = 0;
let failures = 0;
function fail(msg) {
  failures++;
  if (failures <= 20) console.error(`  FAIL [${level}] ${msg}`);
}

function checkCase(dtype, batch, M, N, K, kindA, kindB, beta) {
  const a = makeTensor(dtype, [batch, M, K], kindA);
  const b = makeTensor(dtype, [batch, K, N], kindB);
  const out = makeTensor(dtype, [batch, M, N], 'row', beta === 0 ? 'nan' : 'rand');
  const out0 = out.buf.slice();
  call(a, b, out, beta);
  const got = new Arr[dtype](out.storage.read(0, out.buf.length * Arr[dtype].BYTES_PER_ELEMENT));
  const tol = dtype === DT.f32 ? 2e-6 : 1e-13;
  let worst = 0;
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        let mag = 0;
        for (let k = 0; k < K; k++) {
          const p = a.get(bi, i, k) * b.get(bi, k, j);
          s += p;
          mag += Math.abs(p);
        }
        const idx = bi * M * N + i * N + j;
        if (beta !== 0) {
          s += beta * out0[idx];
          mag += Math.abs(beta * out0[idx]);
        }
        const err = Math.abs(got[idx] - s);
        const bound = tol * (mag + 1e-30) * Math.max(1, Math.sqrt(K));
        if (!(err <= bound)) {
          worst = Math.max(worst, Number.isNaN(err) ? Infinity : err / (mag || 1));
        }
      }
    }
  }
  checks++;
  const name = `${dtype === DT.f32 ? 'f32' : 'f64'} batch=${batch} M=${M} N=${N} K=${K} a=${kindA} b=${kindB} beta=${beta}`;
  if (worst > 0) fail(`${name}: relative error ${worst}`);
}

const started = Date.now();
for (const threads of [2, 1]) {
  addon.setThreads(threads);
  for (const dtype of [DT.f32, DT.f64]) {
    // Small and odd shapes, every layout combination.
    const small = [
      [1, 1, 1], [1, 7, 1], [7, 1, 1], [1, 1, 7], [2, 3, 4], [7, 33, 5], [13, 17, 31], [33, 7, 127],
      [12, 32, 16], [24, 64, 8], [25, 65, 9], [6, 16, 3], [5, 15, 2], [1, 100, 50], [100, 1, 50],
      // small M (the unpacked path): vector-width multiples and tails in N, K
      [1, 200, 300], [3, 130, 257], [8, 257, 65], [9, 70, 100], [4, 64, 16], [5, 129, 33], [2, 17, 15],
    ];
    const kinds = ['row', 'col', 'strided', 'row-off', 'col-off', 'stridedT'];
    for (const [M, N, K] of small) {
      for (const ka of kinds) {
        for (const kb of kinds) {
          checkCase(dtype, 2, M, N, K, ka, kb, [0, 1, 0.5][checks % 3]);
        }
      }
    }
    // Batch broadcast (stride 0), batch-size-1 operand against a larger out batch is covered by
    // shape [1, ...] below.
    for (const [M, N, K] of [[7, 9, 11], [40, 70, 33], [3, 129, 64]]) {
      for (const [ka, kb] of [['bcast', 'row'], ['row', 'bcast'], ['bcol', 'col'], ['col', 'bcol'], ['bcast', 'bcol']]) {
        for (const beta of [0, 1]) checkCase(dtype, 3, M, N, K, ka, kb, beta);
      }
    }
    // Empty dims and K == 0 (out = beta * out).
    for (const [B, M, N, K] of [[2, 0, 5, 3], [2, 5, 0, 3], [0, 5, 5, 3], [2, 4, 6, 0], [1, 0, 0, 0]]) {
      for (const beta of [0, 1, 2]) checkCase(dtype, B, M, N, K, 'row', 'row', beta);
    }
    // Block-crossing sizes: K over one KC block, M over one MC block per thread, N over NC.
    const big = [
      [127, 129, 513, 'row', 'row'], [200, 97, 300, 'col', 'row'], [513, 33, 257, 'row', 'col'],
      [390, 250, 260, 'col', 'col'], [64, 64, 1000, 'row', 'col'], [33, 513, 7, 'strided', 'row'],
    ];
    for (const [M, N, K, ka, kb] of big) for (const beta of [0, 1]) checkCase(dtype, 1, M, N, K, ka, kb, beta);
    checkCase(dtype, 1, 3, dtype === DT.f32 ? 4200 : 2100, 5, 'row', 'row', 1);
    checkCase(dtype, 1, 3, dtype === DT.f32 ? 4200 : 2100, 5, 'col', 'col', 0);
    // Many small matrices (per-thread batch path) and a few medium ones (team path).
    checkCase(dtype, 9, 20, 30, 40, 'row', 'col', 1);
    checkCase(dtype, 8, 16, 16, 16, 'col', 'row', 0);
    checkCase(dtype, 3, 100, 60, 80, 'row', 'bcast', 0);
  }
}

// Team path with a batch-broadcast b packed once for all batch entries, and a product wide enough
// (K x N > 16M elements) that B is packed in two column stripes.
addon.setThreads(2);
for (const dtype of [DT.f32, DT.f64]) {
  checkCase(dtype, 3, 130, 130, 130, 'row', 'bcast', 1);
  checkCase(dtype, 3, 130, 131, 129, 'col', 'bcol', 0);
  checkCase(dtype, 3, 130, 130, 130, 'row', 'col', 0.5);  // team path, B repacked per batch entry
}
checkCase(DT.f32, 1, 20, 4200, 4000, 'row', 'row', 1);

// Size-1 batch broadcasting against a larger out batch.
{
  addon.setThreads(2);
  const a = makeTensor(DT.f32, [1, 5, 6], 'row');
  const b = makeTensor(DT.f32, [3, 6, 4], 'col');
  const out = makeTensor(DT.f32, [3, 5, 4], 'row', 'nan');
  call(a, b, out, 0);
  const got = new Float32Array(out.storage.read(0, out.buf.length * 4));
  let bad = 0;
  for (let bi = 0; bi < 3; bi++) for (let i = 0; i < 5; i++) for (let j = 0; j < 4; j++) {
    let s = 0;
    for (let k = 0; k < 6; k++) s += a.get(0, i, k) * b.get(bi, k, j);
    if (!(Math.abs(got[bi * 20 + i * 4 + j] - s) < 1e-5)) bad++;
  }
  checks++;
  if (bad) fail(`batch-1 broadcast: ${bad} wrong elements`);
}

// Bad arguments: each must throw a JS Error whose message names the op (and shapes).
function expectThrow(name, fn, pattern) {
  checks++;
  try {
    fn();
  } catch (e) {
    if (!(e instanceof Error)) return fail(`${name}: threw a non-Error ${e}`);
    if (pattern && !pattern.test(e.message)) return fail(`${name}: message "${e.message}" does not match ${pattern}`);
    return;
  }
  fail(`${name}: did not throw`);
}
{
  const t = (dtype, shape, kind = 'row') => makeTensor(dtype, shape, kind);
  const raw = (tensors, layouts, scalars) => () =>
    addon.ops.matmul(tensors.map((x) => x.storage), new Float64Array(layouts.flat()), new Float64Array(scalars));
  const a = t(DT.f32, [2, 3, 4]);
  const b = t(DT.f32, [2, 4, 5]);
  const out = t(DT.f32, [2, 3, 5]);
  expectThrow('good call sanity', () => { call(a, b, out, 0); throw new Error('ok'); }, /^ok$/);
  expectThrow('int32 a', () => call(t(DT.i32, [2, 3, 4]), t(DT.i32, [2, 4, 5]), t(DT.i32, [2, 3, 5]), 0),
    /^matmul: a must be float32 or float64, got int32\[2, 3, 4\]/);
  expectThrow('mixed dtypes', () => call(a, t(DT.f64, [2, 4, 5]), out, 0), /^matmul: a and b must have the same dtype/);
  expectThrow('f64 out', () => call(a, b, t(DT.f64, [2, 3, 5]), 0), /^matmul: a and out must have the same dtype/);
  expectThrow('mismatched K', () => call(t(DT.f32, [2, 3, 4]), t(DT.f32, [2, 5, 6]), t(DT.f32, [2, 3, 6]), 0),
    /^matmul: a float32\[2, 3, 4\] and b float32\[2, 5, 6\]: inner dimensions 4 and 5 differ$/);
  const a2 = new addon.Storage(48, 0);
  expectThrow('2-D a', raw([{ storage: a2 }, b, out], [[0, 0, 0, 2, 3, 4, 4, 1], b.layout, out.layout], [0]),
    /^matmul: a must have 3 dimensions, got float32\[3, 4\]/);
  const outT = makeTensor(DT.f32, [2, 5, 3], 'row');
  outT.layout = [0, 0, 0, 3, 2, 3, 5, 15, 1, 3];  // [2, 3, 5] viewed through transposed strides
  expectThrow('non-contiguous out', () => call(a, b, outT, 0), /^matmul: out must be contiguous, got float32\[2, 3, 5\]/);
  expectThrow('wrong out shape', () => call(a, b, t(DT.f32, [2, 3, 6]), 0), /^matmul: .*needs out of shape \[2, 3, 5\]/);
  expectThrow('batch mismatch', () => call(t(DT.f32, [3, 3, 4]), b, out, 0), /^matmul: .*batch sizes/);
  expectThrow('no beta', raw([a, b, out], [a.layout, b.layout, out.layout], []), /^matmul: expected 3 tensors and 1 scalars/);
  expectThrow('two tensors', raw([a, b], [a.layout, b.layout], [0]), /^matmul: expected 3 tensors and 1 scalars/);
  const shared = new addon.Storage(100 * 4, 0);
  expectThrow('out aliases a', () => call({ ...a, storage: shared }, b, { ...out, storage: shared, layout: [0, 0, 10, 3, 2, 3, 5, 15, 5, 1] }, 0),
    /^matmul: out .* overlaps input a/);
  expectThrow('NaN beta', () => call(a, b, out, NaN), /^matmul: beta/);
}

console.log(`  [${level}] ${checks} checks, ${failures} failures (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(failures ? 1 : 0);
