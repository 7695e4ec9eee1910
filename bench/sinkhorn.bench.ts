// Log-domain Sinkhorn, 100 iterations at fixed eps (no early stop), n = m point clouds of
// dimension d, float32, time and peak memory side by side:
//   online     tessera sinkhorn(x, y): cost computed tile by tile, never stored
//   given C    tessera sinkhorn(C) on a precomputed dense cost matrix
//   unfused    tessera ops composed: f = -eps logsumexp((g - C) / eps + log b, 1), ... (dense)
//   PyTorch    bench/peers/torch_sinkhorn.py: the same dense loop with torch.logsumexp
// All four run on the same x, y (written to a temp dir by this process) and report <f, a> + <g, b>,
// which agree. Every case runs in a fresh process, so each peak is that case's own:
//   tessera: memoryStats().hostPeakBytes - hostBytes before the solve, i.e. the most native memory
//            live at once beyond the point clouds (for the dense variants, C and all temporaries
//            are counted: C is built in row chunks inside the measured window);
//   PyTorch: getrusage ru_maxrss at the end - ru_maxrss once x, y exist (C, temporaries, and
//            whatever the allocator keeps).
// Time is wall-clock of one call doing all the iterations (tessera's includes packing the points
// and one extra row pass that measures the final marginal error); best of 3 below 2048 points.
// BENCH_SINKHORN_CASES overrides the cases ("n:d,n:d,..."), BENCH_SINKHORN_ITERS the iteration
// count, BENCH_THREADS the threads on both sides. For n >= 16384 the dense baselines run 10
// iterations and their time is scaled to 100 (marked *). On a shared machine every measured run
// first waits (up to BENCH_QUIET_WAIT seconds, default 120; 0 = never) until other processes use
// less than 25% of the CPUs, as bench/matmul_native.js does; the runs that started busy anyway
// are counted in the notes.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../lib';
import { sinkhorn } from '../lib/losses/ot';
import { benchThreads } from './harness';

type Variant = 'online' | 'matrix' | 'unfused';

interface ChildArgs {
  variant: Variant;
  n: number;
  d: number;
  iters: number;
  eps: number;
  xfile: string;
  yfile: string;
  threads: number;
  repeats: number;
}

interface Measured {
  seconds: number;
  peakExtra: number;
  value: number;
}

// Fraction of all CPUs busy over the next `ms` milliseconds, from /proc/stat (this process is idle
// meanwhile, so it is other processes' load).
function busyFraction(ms: number): number {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + (f[4] || 0), total: f.reduce((x, y) => x + y, 0) };
  };
  const a = read();
  const end = Date.now() + ms;
  while (Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, end - Date.now());
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}

let busyRuns = 0;
let totalRuns = 0;
function waitQuiet(): void {
  totalRuns++;
  const wait = Number(process.env.BENCH_QUIET_WAIT ?? 120);
  if (!(wait > 0) || !fs.existsSync('/proc/stat')) return;
  const deadline = Date.now() + wait * 1000;
  for (;;) {
    const busy = busyFraction(500);
    if (busy < 0.25) return;
    if (Date.now() > deadline) {
      busyRuns++;
      process.stderr.write(`machine still busy (${(busy * 100).toFixed(0)}% of CPUs), measuring anyway\n`);
      return;
    }
  }
}

const PYTHON = process.env.TESSERA_PEER_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

function load(file: string, n: number, d: number): ts.Tensor {
  const buf = fs.readFileSync(file);
  const data = new Float32Array(buf.buffer, buf.byteOffset, n * d);
  return ts.tensor(data, { shape: [n, d] });
}

/** C = ||x_i - y_j||^2 built in row chunks into one [n, n] tensor (temporaries O(chunk * n)). */
function denseCost(x: ts.Tensor, y: ts.Tensor): ts.Tensor {
  const n = x.shape[0];
  const C = ts.empty([n, y.shape[0]]);
  const yy = ts.keep(y.pow(2).sum(-1).unsqueeze(0));
  const yt = ts.keep(y.T.contiguous());
  const chunk = 256;
  for (let i = 0; i < n; i += chunk)
    ts.scope(() => {
      const xc = x.slice(0, i, Math.min(n, i + chunk));
      const block = xc.pow(2).sum(-1, true).add(yy).sub(xc.matmul(yt).mul(2));
      C.slice(0, i, Math.min(n, i + chunk)).copy_(block);
    });
  yy.dispose();
  yt.dispose();
  return C;
}

function unfusedSinkhorn(C: ts.Tensor, iters: number, eps: number): number {
  const [n, m] = C.shape;
  const loga = ts.keep(ts.full([n, 1], Math.log(1 / n)));
  const logb = ts.keep(ts.full([1, m], Math.log(1 / m)));
  let f = ts.keep(ts.zeros([n]));
  let g = ts.keep(ts.zeros([m]));
  for (let it = 0; it < iters; it++) {
    const [fn, gn] = ts.scope(() => {
      const f2 = ts.logsumexp(g.unsqueeze(0).sub(C).div(eps).add(logb), 1).mul(-eps);
      const g2 = ts.logsumexp(f2.unsqueeze(1).sub(C).div(eps).add(loga), 0).mul(-eps);
      return [ts.keep(f2), ts.keep(g2)];
    });
    f.dispose();
    g.dispose();
    f = fn;
    g = gn;
  }
  const value = (f.sum().item() / n) + (g.sum().item() / m);
  for (const t of [f, g, loga, logb]) t.dispose();
  return value;
}

/** One case in this (fresh) process. */
function child(a: ChildArgs): Measured {
  ts.setNumThreads(a.threads);
  const x = load(a.xfile, a.n, a.d);
  const y = load(a.yfile, a.n, a.d);
  // Warm-up on a small problem (threads, code paths) that allocates little.
  ts.scope(() => {
    const xs = x.slice(0, 0, 64);
    const ys = y.slice(0, 0, 64);
    sinkhorn(xs, ys, { eps: a.eps, maxIter: 2, tol: 0 });
    const Cs = denseCost(xs, ys);
    sinkhorn(Cs, { eps: a.eps, maxIter: 2, tol: 0 });
    unfusedSinkhorn(Cs, 2, a.eps);
  });
  let best = Infinity;
  let value = NaN;
  const before = ts.memoryStats();
  for (let r = 0; r < a.repeats; r++) {
    ts.scope(() => {
      if (a.variant === 'online') {
        const t0 = process.hrtime.bigint();
        const res = sinkhorn(x, y, { eps: a.eps, maxIter: a.iters, tol: 0 });
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
        value = res.value.item();
      } else {
        const C = denseCost(x, y);
        const t0 = process.hrtime.bigint();
        if (a.variant === 'matrix') value = sinkhorn(C, { eps: a.eps, maxIter: a.iters, tol: 0 }).value.item();
        else value = unfusedSinkhorn(C, a.iters, a.eps);
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
      }
    });
  }
  const after = ts.memoryStats();
  return { seconds: best, peakExtra: after.hostPeakBytes - before.hostBytes, value };
}

function runChild(a: ChildArgs): Measured | { error: string } {
  waitQuiet();
  const r = spawnSync(process.execPath, [__filename, '--child', JSON.stringify(a)], { encoding: 'utf8', env: process.env, maxBuffer: 1 << 24 });
  if (r.status !== 0) return { error: (r.stderr || 'failed').trim().split('\n').slice(-1)[0] };
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measured;
}

interface TorchOut {
  seconds: number;
  value: number;
  base_rss: number;
  peak_rss: number;
  torch: string;
}

function runTorch(n: number, d: number, iters: number, eps: number, threads: number, xfile: string, yfile: string): TorchOut | { error: string } {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'torch_sinkhorn.py');
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const input = JSON.stringify({ threads, n, m: n, d, iters, eps, xfile, yfile });
  waitQuiet();
  const r = spawnSync(PYTHON, [script], { input, env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return { error: `PyTorch peer unavailable (${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}); install python3-torch` };
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchOut;
}

const MiB = 2 ** 20;
const fmtS = (s: number, scaled: boolean) => `${s < 10 ? s.toFixed(3) : s.toFixed(1)}${scaled ? '*' : ''}`;
const fmtM = (b: number) => (b < 10 * MiB ? (b / MiB).toFixed(2) : (b / MiB).toFixed(0));

export async function runSinkhorn(): Promise<string> {
  const threads = benchThreads();
  const iters = Number(process.env.BENCH_SINKHORN_ITERS ?? 100);
  const eps = 1.0;
  const cases = (process.env.BENCH_SINKHORN_CASES ?? '1024:64,4096:64,8192:64,4096:512')
    .split(',')
    .map((c) => c.split(':').map(Number) as [number, number]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-sinkhorn-'));
  const rows: string[] = [];
  let torchLabel = 'PyTorch';
  const notes: string[] = [];
  try {
    for (const [n, d] of cases) {
      ts.manualSeed(1234 + n + d);
      const xfile = path.join(dir, `x_${n}_${d}.f32`);
      const yfile = path.join(dir, `y_${n}_${d}.f32`);
      ts.scope(() => {
        fs.writeFileSync(xfile, Buffer.from((ts.randn([n, d]).toTypedArray() as Float32Array).buffer));
        fs.writeFileSync(yfile, Buffer.from((ts.randn([n, d]).mul(0.8).add(0.2).toTypedArray() as Float32Array).buffer));
      });
      const repeats = n < 2048 ? 3 : 1;
      const denseIters = n >= 16384 ? Math.max(1, Math.round(iters / 10)) : iters;
      const scale = iters / denseIters;
      const base = { n, d, eps, xfile, yfile, threads };
      const online = runChild({ ...base, variant: 'online', iters, repeats });
      const matrix = runChild({ ...base, variant: 'matrix', iters, repeats });
      const unfused = runChild({ ...base, variant: 'unfused', iters: denseIters, repeats });
      const torch = runTorch(n, d, denseIters, eps, threads, xfile, yfile);
      const t = (m: Measured | { error: string } | TorchOut, s = 1) => ('error' in m ? 'n/a' : fmtS(m.seconds * s, s !== 1));
      if ('error' in torch) notes.push(torch.error);
      else torchLabel = `PyTorch ${torch.torch}`;
      for (const m of [online, matrix, unfused]) if ('error' in m) notes.push(`${n}:${d}: ${m.error}`);
      const ratio = (m: Measured | { error: string }) =>
        'error' in m || 'error' in torch ? 'n/a' : ((torch.seconds * scale) / m.seconds).toFixed(2);
      const mem = (m: Measured | { error: string }) => ('error' in m ? 'n/a' : fmtM(m.peakExtra));
      const tmem = 'error' in torch ? 'n/a' : fmtM(torch.peak_rss - torch.base_rss);
      const values = [online, matrix, unfused, torch].map((m) => ('error' in m ? NaN : m.value));
      rows.push(`| ${n} | ${d} | ${t(online)} | ${t(matrix)} | ${t(unfused, scale)} | ${t(torch, scale)} | ${ratio(online)} | ${ratio(matrix)} | ` +
        `${mem(online)} | ${mem(matrix)} | ${mem(unfused)} | ${tmem} | ${fmtM(4 * n * n)} |`);
      notes.push(`${n}:${d} values <f,a>+<g,b>: online ${values[0].toFixed(4)}, given C ${values[1].toFixed(4)}, unfused ${values[2].toFixed(4)}, PyTorch ${values[3].toFixed(4)}` +
        (scale !== 1 ? ` (unfused and PyTorch after ${denseIters} iterations)` : ''));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const text = [
    `### Log-domain Sinkhorn, float32, ${iters} iterations, ${threads} threads`,
    '',
    `| n = m | d | online s | given C s | unfused s | ${torchLabel} s | PyTorch / online | PyTorch / given C | online MiB | given C MiB | unfused MiB | PyTorch MiB | n^2 * 4 B MiB |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    ...notes.map((s) => `- ${s}`),
    `- ${busyRuns} of ${totalRuns} runs started with other processes using >= 25% of the CPUs (load average ${os.loadavg()[0].toFixed(2)} at the end).`,
  ].join('\n');
  console.log(text + '\n');
  return text;
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    const out = child(JSON.parse(process.argv[3]) as ChildArgs);
    console.log(JSON.stringify(out));
  } else {
    runSinkhorn().catch((e) => {
      console.error(e);
      process.exit(1);
    });
  }
}
