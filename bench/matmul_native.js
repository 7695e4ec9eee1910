#!/usr/bin/env node
// CPU matmul benchmark: tessera's native `matmul` op against OpenBLAS (numpy), square float32
// C = A @ B, GFLOP/s. One command:
//
//   node bench/matmul_native.js [--sizes 128,256,512,1024,2048] [--threads 2] [--rounds 5]
//                               [--coretypes auto,SkylakeX] [--dtype float32] [--json]
//                               [--quiet-wait 120]
//
// Loads the addon from $TESSERA_ADDON (default ./build-matmul/Release/tessera.node) and runs
// bench/matmul_openblas.py with /usr/bin/python3 (Debian numpy on libopenblas0). Both sides use
// the same thread count (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / addon.setThreads), write into a
// preallocated output, warm up, and time samples of back-to-back calls (each >= ~60 ms) taking the
// median. Measurements are interleaved: every round runs tessera and each OpenBLAS configuration
// once, alternating which goes first, and the table reports each side's best round median, so
// load from other processes on a shared machine hurts neither side more than the other.
// On a shared machine, each round first waits (up to --quiet-wait seconds, 0 = never) until other
// processes use less than a quarter of the CPUs, and the header reports how many rounds had to
// start busy anyway.
// OpenBLAS is run as auto-detected ("auto": OPENBLAS_CORETYPE removed from the environment) and, because OpenBLAS 0.3.21 does not recognise
// every recent CPU (it falls back to its AVX2 Haswell kernels on Zen 5), also forced to other
// DYNAMIC_ARCH cores via OPENBLAS_CORETYPE (SkylakeX = its AVX-512 kernels).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const sizes = arg('sizes', '128,256,512,1024,2048').split(',').map(Number);
const threads = Number(arg('threads', '2'));
const rounds = Number(arg('rounds', '5'));
const samples = Number(arg('samples', '7'));
const dtype = arg('dtype', 'float32');
const coretypes = arg('coretypes', 'auto,SkylakeX').split(',').filter(Boolean);
const wantJson = process.argv.includes('--json');
const quietWait = Number(arg('quiet-wait', '120'));

process.env.OMP_NUM_THREADS = String(threads);
const addonPath = path.resolve(process.env.TESSERA_ADDON || './build-matmul/Release/tessera.node');
const addon = require(addonPath);
addon.setThreads(threads);

const dt = dtype === 'float64' ? 1 : 0;
const Arr = dt ? Float64Array : Float32Array;
const es = Arr.BYTES_PER_ELEMENT;

function timeTessera(n) {
  const mk = (fill) => {
    const s = new addon.Storage(n * n * es, 0);
    const f = new Arr(n * n);
    for (let i = 0; i < f.length; i++) f[i] = fill ? Math.random() * 2 - 1 : 0;
    s.write(0, f);
    return s;
  };
  const a = mk(true), b = mk(true), c = mk(false);
  const l = [dt, 0, 0, 3, 1, n, n, n * n, n, 1];
  const layout = new Float64Array([...l, ...l, ...l]);
  const scalars = new Float64Array([0]);
  const run = () => addon.ops.matmul([a, b, c], layout, scalars);
  run();
  run();
  let t0 = process.hrtime.bigint();
  run();
  const one = Math.max(Number(process.hrtime.bigint() - t0) / 1e9, 1e-7);
  const reps = Math.max(1, Math.floor(0.06 / one));
  const times = [];
  for (let s = 0; s < samples; s++) {
    t0 = process.hrtime.bigint();
    for (let r = 0; r < reps; r++) run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9 / reps);
  }
  a.free();
  b.free();
  c.free();
  times.sort((x, y) => x - y);
  const flops = 2 * n * n * n;
  return flops / times[Math.floor(times.length / 2)] / 1e9;
}

function timeOpenblas(coretype) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  if (coretype !== 'auto') env.OPENBLAS_CORETYPE = coretype;
  else delete env.OPENBLAS_CORETYPE;
  const r = spawnSync('/usr/bin/python3', [path.join(__dirname, 'matmul_openblas.py'), '--sizes', sizes.join(','),
    '--samples', String(samples), '--dtype', dtype], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`matmul_openblas.py failed (${coretype}): ${r.stderr || r.error}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  return { info: out.info, gflops: Object.fromEntries(out.results.map((x) => [x.n, x.gflops_median])) };
}

function cpuModel() {
  const r = spawnSync('lscpu', [], { encoding: 'utf8' });
  const m = /Model name:\s*(.+)/.exec(r.stdout || '');
  return m ? m[1].trim() : os.cpus()[0].model;
}

// Fraction of all CPUs busy over the next `ms` milliseconds, from /proc/stat (this process is idle
// meanwhile, so it is other processes' load).
function busyFraction(ms) {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    return { idle, total: f.reduce((x, y) => x + y, 0) };
  };
  const a = read();
  const end = Date.now() + ms;
  while (Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, end - Date.now());
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}
let busyRounds = 0;
function waitQuiet() {
  if (!(quietWait > 0) || !fs.existsSync('/proc/stat')) return;
  const deadline = Date.now() + quietWait * 1000;
  for (;;) {
    const busy = busyFraction(500);
    if (busy < 0.25) return;
    if (Date.now() > deadline) {
      busyRounds++;
      process.stderr.write(`machine still busy (${(busy * 100).toFixed(0)}% of CPUs), measuring anyway\n`);
      return;
    }
  }
}

const loadStart = os.loadavg()[0];
const ours = Object.fromEntries(sizes.map((n) => [n, []]));
const theirs = Object.fromEntries(coretypes.map((c) => [c, Object.fromEntries(sizes.map((n) => [n, []]))]));
const blasInfo = {};
for (let round = 0; round < rounds; round++) {
  const runOurs = () => { for (const n of sizes) ours[n].push(timeTessera(n)); };
  const runTheirs = () => {
    for (const c of coretypes) {
      const r = timeOpenblas(c);
      blasInfo[c] = r.info;
      for (const n of sizes) theirs[c][n].push(r.gflops[n]);
    }
  };
  waitQuiet();
  if (round % 2 === 0) { runOurs(); runTheirs(); } else { runTheirs(); runOurs(); }
  process.stderr.write(`round ${round + 1}/${rounds} done\n`);
}
const loadEnd = os.loadavg()[0];

const best = (xs) => Math.max(...xs);
const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const label = (c) => `OpenBLAS ${blasInfo[c] ? blasInfo[c].core : c}${c === 'auto' ? ' (auto)' : ' (forced)'}`;
const date = new Date().toISOString().slice(0, 10);
console.log(`CPU matmul, ${dtype}, square n x n @ n x n, ${threads} threads, ${date}`);
console.log(`CPU: ${cpuModel()} (${os.cpus().length} logical CPUs); tessera kernel: ${addon.cpuInfo().simd}; ` +
  `OpenBLAS: ${(blasInfo[coretypes[0]] || {}).config || '?'}`);
console.log(`GFLOP/s = 2n^3 / median sample time, best of ${rounds} interleaved rounds; ` +
  `load average ${loadStart.toFixed(2)} -> ${loadEnd.toFixed(2)}; ` +
  `${busyRounds} of ${rounds} rounds started with other processes using >= 25% of the CPUs`);
console.log('');
const head = ['case', 'tessera GFLOP/s'];
for (const c of coretypes) head.push(`${label(c)} GFLOP/s`, 'ratio');
console.log(`| ${head.join(' | ')} |`);
console.log(`|${head.map(() => '---').join('|')}|`);
const rows = [];
for (const n of sizes) {
  const t = best(ours[n]);
  const cells = [`${n}x${n}x${n}`, t.toFixed(1)];
  const row = { n, tessera: t, tessera_rounds: ours[n], openblas: {} };
  for (const c of coretypes) {
    const o = best(theirs[c][n]);
    cells.push(o.toFixed(1), (t / o).toFixed(2));
    row.openblas[c] = { core: blasInfo[c] && blasInfo[c].core, gflops: o, rounds: theirs[c][n], ratio: t / o };
  }
  rows.push(row);
  console.log(`| ${cells.join(' | ')} |`);
}
console.log('');
console.log('median over rounds (tessera / ' + coretypes.map(label).join(' / ') + '): ' +
  sizes.map((n) => `${n}: ${med(ours[n]).toFixed(0)}/${coretypes.map((c) => med(theirs[c][n]).toFixed(0)).join('/')}`).join(', '));
if (wantJson) {
  const out = { date, dtype, threads, rounds, cpu: cpuModel(), simd: addon.cpuInfo().simd, openblas: blasInfo, rows,
    load: [loadStart, loadEnd] };
  console.log(JSON.stringify(out));
}
if (process.env.MATMUL_BENCH_OUT) fs.writeFileSync(process.env.MATMUL_BENCH_OUT, JSON.stringify({ rows }, null, 1));
