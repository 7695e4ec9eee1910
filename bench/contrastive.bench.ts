// The CLIP loss, forward + backward, float32, at N = 1024 / 4096 / 16384 rows and D = 256 / 512:
// tessera's fused kernel (lib/losses/contrastive.ts clipLossFused) against tessera's own unfused
// composition (lib/losses/clip.ts clipLoss with normalize: false: matmul, two crossEntropy calls,
// autograd) and PyTorch on the CPU (bench/peers/torch_contrastive.py: logits = exp(s) * a @ b.T,
// F.cross_entropy both ways, backward), all with the same thread count, in one run. The peer is
// TESSERA_PEER_PYTHON or /usr/bin/python3 (Debian's python3-torch, whose matmuls go to the system
// OpenBLAS; OPENBLAS_CORETYPE is removed from its environment, as for the numpy peer).
//
// Time: wall-clock milliseconds of one forward + backward (inputs a, b [N, D] ~ N(0, 1/D), logit
// scale log(1/0.07)), best and median over all samples: BENCH_CONTRASTIVE_ROUNDS (default 3; 2 at
// N = 16384) interleaved rounds of fused, unfused and PyTorch, each side sampling single steps
// after one untimed warm-up step (at least 2 and up to BENCH_CONTRASTIVE_TIME_MS, default 1500,
// per round; PyTorch: 20 / 5 / 2 single steps per round at N = 1024 / 4096 / 16384). Speed-ups
// are best over best, the statistic least disturbed by other processes on a shared machine.
// Peak memory: each side runs one step in a fresh child process per case, the inputs already
// allocated, and reports the peak growth of the resident set over the step: a helper thread
// (a worker thread / a python thread; torch releases the GIL in its ops) samples the process's
// RSS every millisecond while the step runs, peak minus the RSS just before the step. This counts
// everything the step touches (logits, copies, gradients, scratch, allocator slack) on both sides
// alike (tracemalloc does not see torch's allocations; ru_maxrss deltas can hide under an earlier
// transient peak of node's start-up). For tessera the native allocator's own high-water mark is
// shown too (memoryStats().hostPeakBytes after the step minus hostBytes before it: exact bytes of
// tensors and kernel scratch allocated at once).
// Sizes: BENCH_CONTRASTIVE_N (default 1024,4096,16384), BENCH_CONTRASTIVE_D (default 256,512);
// threads: BENCH_THREADS (default all cores). The N = 16384 unfused cases need several GiB.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../lib';
import { clipLossFused } from '../lib/losses/contrastive';
import { benchThreads } from './harness';

const PYTHON = process.env.TESSERA_PEER_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const LIB = path.resolve(__dirname, '..', 'lib');
const MiB = 1 << 20;

type Variant = 'fused' | 'unfused';

function step(variant: Variant, a: ts.Tensor, b: ts.Tensor, s: ts.Tensor): number {
  return ts.scope(() => {
    const loss = variant === 'fused' ? clipLossFused(a, b, s) : ts.losses.clipLoss(a, b, s, { normalize: false });
    loss.backward();
    const v = loss.item();
    for (const t of [a, b, s]) {
      t.grad?.dispose();
      t.grad = null;
    }
    return v;
  });
}

function inputs(n: number, d: number): [ts.Tensor, ts.Tensor, ts.Tensor] {
  ts.manualSeed(n + d);
  const a = ts.keep(ts.randn([n, d], { std: 1 / Math.sqrt(d) }));
  const b = ts.keep(ts.randn([n, d], { std: 1 / Math.sqrt(d) }));
  const s = ts.keep(ts.tensor(Math.log(1 / 0.07)));
  for (const t of [a, b, s]) t.requiresGrad = true;
  return [a, b, s];
}

/** Wall-clock seconds of single steps after one warm-up step: at least 2, until budgetMs. */
function timeStep(variant: Variant, n: number, d: number, budgetMs: number): { samples: number[]; loss: number } {
  const [a, b, s] = inputs(n, d);
  let loss = step(variant, a, b, s); // warm-up
  const samples: number[] = [];
  const start = Date.now();
  while (samples.length < 2 || (Date.now() - start < budgetMs && samples.length < 50)) {
    const t0 = process.hrtime.bigint();
    loss = step(variant, a, b, s);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  for (const t of [a, b, s]) t.dispose();
  return { samples, loss };
}

/**
 * One step in a fresh node process: the allocator's high-water mark growth and the peak resident
 * set growth (a worker thread samples the process's RSS every millisecond during the step), bytes.
 */
function ourMemory(variant: Variant, n: number, d: number, threads: number): { peak: number; rss: number } | string {
  const child = `
    const { Worker } = require('worker_threads');
    const ts = require(${JSON.stringify(LIB)});
    const { clipLossFused } = require(${JSON.stringify(path.join(LIB, 'losses', 'contrastive'))});
    ts.setNumThreads(${threads});
    ts.manualSeed(1);
    const a = ts.randn([${n}, ${d}], { std: ${1 / Math.sqrt(d)} }), b = ts.randn([${n}, ${d}], { std: ${1 / Math.sqrt(d)} });
    const s = ts.tensor(Math.log(1 / 0.07));
    for (const t of [a, b, s]) t.requiresGrad = true;
    const flag = new Int32Array(new SharedArrayBuffer(8)), peak = new Float64Array(new SharedArrayBuffer(8));
    const w = new Worker(\`
      const { workerData: { flag, peak } } = require('worker_threads');
      Atomics.store(flag, 0, 1); Atomics.notify(flag, 0);
      while (Atomics.load(flag, 1) === 0) { peak[0] = Math.max(peak[0], process.memoryUsage.rss()); Atomics.wait(flag, 1, 0, 1); }
      peak[0] = Math.max(peak[0], process.memoryUsage.rss()); Atomics.store(flag, 0, 2); Atomics.notify(flag, 0);\`,
      { eval: true, workerData: { flag, peak } });
    Atomics.wait(flag, 0, 0);
    const before = ts.memoryStats(), rss0 = process.memoryUsage.rss();
    const loss = ${variant === 'fused' ? 'clipLossFused(a, b, s)' : 'ts.losses.clipLoss(a, b, s, { normalize: false })'};
    loss.backward();
    const after = ts.memoryStats();
    Atomics.store(flag, 1, 1); Atomics.notify(flag, 1);
    Atomics.wait(flag, 0, 1);
    console.log(JSON.stringify({ peak: after.hostPeakBytes - before.hostBytes, rss: Math.max(peak[0], process.memoryUsage.rss()) - rss0 }));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['-e', child], { env: process.env, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return `failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

interface TorchResult {
  samples?: number[];
  peak_extra_bytes?: number;
  torch?: string;
  error?: string;
}

function torch(mode: 'time' | 'memory', n: number, d: number, threads: number): TorchResult {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'torch_contrastive.py');
  // single-step samples, as on our side
  const cfg = { n, d, threads, mode, warmup: 1, reps: n >= 16384 ? 2 : n >= 4096 ? 5 : 20, min_time: 0 };
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  // Debian's torch does its matmuls in the system BLAS (OpenBLAS): let OpenBLAS pick its kernels
  // for this CPU unless asked (this machine's environment pins OPENBLAS_CORETYPE=Haswell, AVX2
  // only; see ./peer.ts).
  delete env.OPENBLAS_CORETYPE;
  if (process.env.BENCH_OPENBLAS_CORETYPE) env.OPENBLAS_CORETYPE = process.env.BENCH_OPENBLAS_CORETYPE;
  const r = spawnSync(PYTHON, [script], { input: JSON.stringify(cfg), env, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'unknown error').trim().split('\n').slice(-1)[0] };
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const list = (env: string | undefined, dflt: number[]) => (env ? env.split(',').map(Number) : dflt);
const ms = (s: number | undefined) => (s === undefined ? 'n/a' : (s * 1000).toFixed(s < 0.1 ? 1 : 0));
const mib = (b: number | undefined) => (b === undefined ? 'n/a' : (b / MiB).toFixed(b < 100 * MiB ? 1 : 0));

const best = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

export async function runContrastive(): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const sizes = list(process.env.BENCH_CONTRASTIVE_N, [1024, 4096, 16384]);
  const dims = list(process.env.BENCH_CONTRASTIVE_D, [256, 512]);
  const budget = Number(process.env.BENCH_CONTRASTIVE_TIME_MS ?? 1500);
  const rounds = Number(process.env.BENCH_CONTRASTIVE_ROUNDS ?? 3);
  let torchLabel = 'PyTorch';
  const rows: string[] = [];
  for (const d of dims) {
    for (const n of sizes) {
      // Interleaved rounds (fused, unfused, PyTorch, repeat), so that load from other processes
      // on a shared machine hits every side alike; each side's best step over all rounds.
      const fused: number[] = [];
      const unfused: number[] = [];
      const peer: number[] = [];
      let lossF = 0;
      let lossU = 0;
      let peerError: string | undefined;
      for (let r = 0; r < (n >= 16384 ? Math.min(rounds, 2) : rounds); r++) {
        const f = timeStep('fused', n, d, budget);
        const u = timeStep('unfused', n, d, budget);
        fused.push(...f.samples);
        unfused.push(...u.samples);
        [lossF, lossU] = [f.loss, u.loss];
        const tt = torch('time', n, d, threads);
        if (tt.torch) torchLabel = `PyTorch ${tt.torch}`;
        if (tt.samples) peer.push(...tt.samples);
        peerError ??= tt.error;
      }
      const fm = ourMemory('fused', n, d, threads);
      const um = ourMemory('unfused', n, d, threads);
      const tm = torch('memory', n, d, threads);
      const rel = Math.abs(lossF - lossU) / Math.abs(lossU);
      if (!(rel < 1e-5)) console.log(`warning: fused loss ${lossF} vs unfused ${lossU} at N = ${n}, D = ${d}`);
      for (const [what, r] of [['tessera fused', fm], ['tessera unfused', um]] as const)
        if (typeof r === 'string') console.log(`${what} memory run at N = ${n}, D = ${d} ${r}`);
      if (peerError || tm.error) console.log(`PyTorch peer at N = ${n}, D = ${d}: ${peerError ?? tm.error} (install python3-torch)`);
      const fb = best(fused);
      const speed = (xs: number[]) => (xs.length ? (best(xs) / fb).toFixed(2) : 'n/a');
      const t2 = (xs: number[]) => (xs.length ? `${ms(best(xs))} / ${ms(median(xs))}` : 'n/a');
      const peak = (r: { peak: number; rss: number } | string, k: 'peak' | 'rss') => (typeof r === 'string' ? 'n/a' : mib(r[k]));
      rows.push(`| ${n} x ${d} | ${t2(fused)} | ${t2(unfused)} | ${t2(peer)} | **${speed(peer)}** | ${speed(unfused)} | ` +
        `${peak(fm, 'rss')} (${peak(fm, 'peak')}) | ${peak(um, 'rss')} (${peak(um, 'peak')}) | ${mib(tm.peak_extra_bytes)} |`);
      console.log(rows[rows.length - 1]);
    }
  }
  const text = [
    `### CLIP loss forward + backward, float32, ${threads} threads`,
    '',
    `| N x D | fused ms (best / median) | unfused ms | ${torchLabel} ms | fused speed-up vs PyTorch | vs unfused | fused peak MiB (allocator) | unfused peak MiB (allocator) | ${torchLabel} peak MiB |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
  console.log('\n' + text + '\n');
  return text;
}

if (require.main === module) runContrastive().catch((e) => { console.error(e); process.exit(1); });
