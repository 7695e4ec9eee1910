// GPU memory-bound ops: tessera's CUDA kernels vs PyTorch eager (bench/peers/torch_gpu_ops.py) on
// one float32 [8192, 8192] tensor (64M elements, 256 MiB), reported as time per call, achieved
// bandwidth and its fraction of the GPU's peak memory bandwidth. Runs ON the GPU machine.
//
//   bash bench/gpu/pack.sh                     (here: builds .carry, dist/bench and the peers included)
//   device tool, carry [".carry"]: bash bench/gpu/run.sh   (runs this after the parity tests), or alone:
//     xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && cd .carry && \
//     TESSERA_ADDON=$PWD/tessera.node /tmp/node dist/bench/gpu/ops_bench.js [rows cols]
//
// Cases (x, y: [rows, cols] randn; w, b: [cols]), through the public ops (what a user runs):
//   copy       runKernel('copy', [x, out]) into a preallocated out (the achievable-bandwidth
//              baseline; torch: out.copy_(x))                         bytes = 2 N * 4
//   add        ts.add(x, y)                                            bytes = 3 N * 4
//   exp        ts.exp(x)                                               bytes = 2 N * 4
//   gelu       ts.gelu(x) (exact erf form; torch F.gelu)               bytes = 2 N * 4
//   sum        ts.sum(x, -1)                                           bytes = N * 4 + rows * 4
//   softmax    ts.softmax(x, -1)                                       bytes = 2 N * 4
//   layernorm  ts.layerNorm(x, [cols], w, b, 1e-5)                     bytes = 2 N * 4 + 2 cols * 4
// bytes is the minimum traffic (each input read once, each output written once; the per-row mean
// and rstd both sides also write are left out), the same formula for both sides, so GB/s and the
// fraction of peak compare directly. The ratio column is torch_ms / our_ms (> 1: we are faster).
//
// Timing (both sides the same): 3 warm-up calls, then BENCH_ROUNDS (default 5) rounds of
// OPS_ITERS (default 50) back-to-back calls between two device synchronisations
// (addon.cudaSynchronize / torch.cuda.synchronize); best round, per call. A call slower than 5 ms
// gets fewer iterations (about 250 ms a round), so a slow kernel cannot stall the script. Each of
// our calls runs in ts.scope(), so its output goes back to the caching allocator and the next call
// reuses the block, as torch's allocator does.
//
// Before timing, each op is checked against the CPU kernels on a small [37, 1031] input (max
// |cuda - cpu| against a float32 tolerance): a fast wrong kernel is flagged, not celebrated.
//
// Peak bandwidth: GPU_PEAK_GBS (GB/s) if set, else looked up from the GPU's name (GPU_NAME, as
// nvidia-smi prints it, else cudaInfo().deviceNames[0]): H100 SXM 3350, H100 PCIe 2000, H100 NVL
// 3900, H200 4800, A100 ... (see PEAKS). With BENCH_JSON=path the rows are also written there as
// JSON (bench/gpu/run.sh builds its final table from it).
// Without a usable CUDA device: prints "no CUDA device: <reason>" and exits 3.
// BENCH_DEVICE=cpu runs the same script on the CPU kernels (a smoke test of the script itself on
// a machine without a GPU, e.g. `BENCH_DEVICE=cpu node dist/bench/gpu/ops_bench.js 256 1024`).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../../lib';
import { addon, CudaInfo, runKernel } from '../../lib/backend';

/** Peak memory bandwidth (GB/s) by GPU name; the first pattern that matches wins. */
const PEAKS: [RegExp, number, string][] = [
  [/GH200/i, 4000, 'GH200 (HBM3)'],
  [/H200/i, 4800, 'H200 (HBM3e)'],
  [/H100.*PCIe/i, 2000, 'H100 PCIe (HBM2e)'],
  [/H100.*NVL/i, 3900, 'H100 NVL (HBM3)'],
  [/H100/i, 3350, 'H100 SXM (HBM3)'],
  [/H800.*PCIe/i, 2000, 'H800 PCIe'],
  [/H800/i, 3350, 'H800 SXM'],
  [/A100.*80GB.*PCIe|A100.*PCIe.*80GB/i, 1935, 'A100 80GB PCIe'],
  [/A100.*80GB/i, 2039, 'A100 80GB SXM'],
  [/A100/i, 1555, 'A100 40GB'],
  [/L40S/i, 864, 'L40S'],
  [/L4\b/i, 300, 'L4'],
  [/RTX 4090/i, 1008, 'RTX 4090'],
  [/A10\b/i, 600, 'A10'],
];

export interface Peak {
  gbs: number | null;
  label: string;
}

/** Peak memory bandwidth of the GPU called `name` (GPU_PEAK_GBS overrides). */
export function peakBandwidth(name: string): Peak {
  const env = Number(process.env.GPU_PEAK_GBS);
  if (env > 0) return { gbs: env, label: `GPU_PEAK_GBS=${env}` };
  for (const [re, gbs, label] of PEAKS) if (re.test(name)) return { gbs, label };
  return { gbs: null, label: `unknown GPU '${name}' (set GPU_PEAK_GBS)` };
}

/** The GPU's name as nvidia-smi prints it (GPU_NAME, set by run.sh), else the addon's. */
export function gpuName(info: CudaInfo): string {
  return (process.env.GPU_NAME || '').trim() || info.deviceNames[0] || 'unknown GPU';
}

/** A peer script in bench/peers: TESSERA_PEERS_DIR, else <dist root>/../bench/peers (.carry/bench/peers or the repo's). */
export function findPeer(file: string): string {
  const dirs = [
    process.env.TESSERA_PEERS_DIR,
    path.resolve(__dirname, '..', '..', '..', 'bench', 'peers'),
    path.resolve(process.cwd(), 'bench', 'peers'),
  ].filter((d): d is string => !!d);
  for (const d of dirs) if (fs.existsSync(path.join(d, file))) return path.join(d, file);
  return path.join(dirs[0], file);
}

/** The device the GPU benches run on: 'cuda', or 'cpu' with BENCH_DEVICE=cpu (smoke test only). */
export const BENCH_DEVICE: 'cpu' | 'cuda' = process.env.BENCH_DEVICE === 'cpu' ? 'cpu' : 'cuda';

/** Wait for the device's queued work (nothing to wait for on the CPU). */
export function syncDevice(): void {
  if (BENCH_DEVICE === 'cuda') addon.cudaSynchronize();
}

/** Exit 3 with the reason when there is no usable CUDA device (unless BENCH_DEVICE=cpu). */
export function requireCuda(bench: string): CudaInfo {
  const info = ts.cudaInfo();
  if (BENCH_DEVICE === 'cpu') {
    console.log(`${bench}: BENCH_DEVICE=cpu: running on the CPU kernels (a smoke test of the script, not a GPU benchmark)`);
    return { ...info, deviceNames: ['cpu'] };
  }
  if (!info.compiled || info.deviceCount === 0) {
    const why = !info.compiled ? 'the addon was built without CUDA' : info.error || 'deviceCount is 0';
    console.log(`${bench}: no CUDA device: ${why}`);
    process.exit(3);
  }
  return info;
}

interface Inputs {
  x: ts.Tensor;
  y: ts.Tensor;
  w: ts.Tensor;
  b: ts.Tensor;
  out: ts.Tensor;
}

interface Case {
  name: string;
  what: string;
  bytes: (rows: number, cols: number) => number;
  run: (t: Inputs) => ts.Tensor;
}

const CASES: Case[] = [
  { name: 'copy', what: 'copy into preallocated', bytes: (r, c) => 2 * r * c * 4, run: (t) => (runKernel('copy', [t.x, t.out]), t.out) },
  { name: 'add', what: 'x + y', bytes: (r, c) => 3 * r * c * 4, run: (t) => ts.add(t.x, t.y) },
  { name: 'exp', what: 'exp(x)', bytes: (r, c) => 2 * r * c * 4, run: (t) => ts.exp(t.x) },
  { name: 'gelu', what: 'gelu(x) (erf)', bytes: (r, c) => 2 * r * c * 4, run: (t) => ts.gelu(t.x) },
  { name: 'sum', what: 'sum(x, -1)', bytes: (r, c) => r * c * 4 + r * 4, run: (t) => ts.sum(t.x, -1) },
  { name: 'softmax', what: 'softmax(x, -1)', bytes: (r, c) => 2 * r * c * 4, run: (t) => ts.softmax(t.x, -1) },
  { name: 'layernorm', what: 'layerNorm(x, [C], w, b)', bytes: (r, c) => 2 * r * c * 4 + 2 * c * 4, run: (t) => ts.layerNorm(t.x, [t.x.shape[1]], t.w, t.b, 1e-5) },
];

function makeInputs(rows: number, cols: number, device: 'cpu' | 'cuda'): Inputs {
  return {
    x: ts.keep(ts.randn([rows, cols], { device })),
    y: ts.keep(ts.randn([rows, cols], { device })),
    w: ts.keep(ts.randn([cols], { device })),
    b: ts.keep(ts.randn([cols], { device })),
    out: ts.keep(ts.zeros([rows, cols], { device })),
  };
}

function toCpu(t: Inputs): Inputs {
  return { x: t.x.to('cpu'), y: t.y.to('cpu'), w: t.w.to('cpu'), b: t.b.to('cpu'), out: t.out.to('cpu') };
}

function disposeInputs(t: Inputs): void {
  for (const v of Object.values(t)) v.dispose();
}

/** Run the case on CUDA and on the CPU kernels on small inputs; '' when they agree, else why not. */
function check(c: Case, small: Inputs, smallCpu: Inputs): string {
  return ts.scope(() => {
    const gpu = c.run(small).to('cpu').toTypedArray();
    const cpu = c.run(smallCpu).toTypedArray();
    if (gpu.length !== cpu.length) return `length ${gpu.length} vs ${cpu.length}`;
    let worst = 0;
    let at = -1;
    for (let i = 0; i < cpu.length; i++) {
      // float32 tolerance: reassociated sums of ~1000 terms (sum, softmax, layernorm) and
      // different exp/erf implementations stay far inside 1e-4 relative + 1e-5 absolute.
      const err = Math.abs(gpu[i] - cpu[i]) / (1e-5 + 1e-4 * Math.abs(cpu[i]));
      if (!(err <= worst)) {
        worst = err;
        at = i;
        if (Number.isNaN(err)) break;
      }
    }
    return worst <= 1 ? '' : `element ${at}: cuda ${gpu[at]} vs cpu ${cpu[at]}`;
  });
}

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/** Best seconds per call: 3 warm-ups, then `rounds` rounds of `iters` calls between synchronisations. */
function timeOurs(fn: () => void, iters0: number, rounds: number): number {
  const call = (): void => ts.scope(() => void fn());
  for (let i = 0; i < 3; i++) call();
  syncDevice();
  let t0 = now();
  for (let i = 0; i < 3; i++) call();
  syncDevice();
  const per = (now() - t0) / 3;
  const iters = per <= 5e-3 ? iters0 : Math.max(3, Math.round(0.25 / per));
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    t0 = now();
    for (let i = 0; i < iters; i++) call();
    syncDevice();
    best = Math.min(best, (now() - t0) / iters);
  }
  return best;
}

interface TorchOps {
  label: string;
  times: Record<string, number>;
  errors: Record<string, string>;
}

function timeTorch(rows: number, cols: number, ops: string[], iters: number, rounds: number): TorchOps | string {
  const py = process.env.PYTHON ?? 'python3';
  const script = findPeer('torch_gpu_ops.py');
  const cfg = JSON.stringify({ rows, cols, ops, iters, rounds });
  const r = spawnSync(py, [script, cfg], { encoding: 'utf8', timeout: 240_000, maxBuffer: 1 << 24 });
  const last = (r.stdout || '').trim().split('\n').pop() || '';
  if (r.status !== 0) {
    let why = r.error?.message ?? '';
    try {
      if (!why && last.startsWith('{')) why = String(JSON.parse(last).error ?? '');
    } catch {
      // not JSON: fall back to stderr below
    }
    return `torch not timed (${py} ${script}: ${why || (r.stderr || '').trim().split('\n').pop() || `exit ${r.status}`})`;
  }
  const j = JSON.parse(last) as { torch: string; device: string; times: Record<string, number>; errors: Record<string, string> };
  return { label: `torch ${j.torch}`, times: j.times, errors: j.errors };
}

export interface SummaryRow {
  case: string;
  unit: string;
  ours: number | null;
  peer: number | null;
  /** ours / peer for throughputs (= peer time / our time). */
  ratio: number | null;
  /** ours / the GPU's peak (null when unknown). */
  fraction: number | null;
  peerFraction: number | null;
  note?: string;
}

function main(): void {
  const info = requireCuda('ops_bench');
  const args = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  const rows = args[0] ?? 8192;
  const cols = args[1] ?? 8192;
  const iters = Number(process.env.OPS_ITERS ?? 50);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const only = (process.env.OPS_ONLY ?? '').split(',').filter(Boolean);
  const cases = CASES.filter((c) => !only.length || only.includes(c.name));
  const name = gpuName(info);
  const peak = peakBandwidth(name);
  const n = rows * cols;
  console.log(`ops_bench ${new Date().toISOString()} on ${name}: float32 [${rows}, ${cols}] (${(n / 2 ** 20).toFixed(0)}M elements), ` +
    `peak ${peak.gbs ?? '?'} GB/s (${peak.label}); best of ${rounds} rounds of ${iters} calls`);

  const torch = timeTorch(rows, cols, cases.map((c) => c.name), iters, rounds);
  if (typeof torch === 'string') console.log(torch);

  ts.manualSeed(0);
  const big = makeInputs(rows, cols, BENCH_DEVICE);
  const small = makeInputs(37, 1031, BENCH_DEVICE);
  const smallCpu = toCpu(small);
  const out: SummaryRow[] = [];
  const gbs = (bytes: number, t: number | undefined | null): number | null => (t ? bytes / t / 1e9 : null);
  const fmt = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const pct = (v: number | null): string => (v === null ? '-' : `${(100 * v).toFixed(0)}%`);
  console.log(`${'case'.padEnd(34)}${'ours ms'.padStart(9)}${'GB/s'.padStart(8)}${'peak'.padStart(6)}` +
    `${'torch ms'.padStart(10)}${'GB/s'.padStart(8)}${'peak'.padStart(6)}${'torch/ours'.padStart(12)}  check`);
  let failed = 0;
  for (const c of cases) {
    const bytes = c.bytes(rows, cols);
    let ours: number | null = null;
    let note = '';
    try {
      const bad = check(c, small, smallCpu);
      if (bad) {
        note = `WRONG vs CPU: ${bad}`;
        failed++;
      }
      ours = timeOurs(() => c.run(big), iters, rounds);
    } catch (e) {
      note = `error: ${(e as Error).message.split('\n')[0]}`;
      failed++;
    }
    const theirs = typeof torch === 'string' ? null : torch.times[c.name] ?? null;
    if (typeof torch !== 'string' && torch.errors[c.name]) note += `${note ? '; ' : ''}torch error: ${torch.errors[c.name]}`;
    const og = gbs(bytes, ours);
    const tg = gbs(bytes, theirs);
    const row: SummaryRow = {
      case: `${c.name} ${c.what} [${rows}x${cols}] f32`,
      unit: 'GB/s',
      ours: og,
      peer: tg,
      ratio: ours && theirs ? theirs / ours : null,
      fraction: og !== null && peak.gbs ? og / peak.gbs : null,
      peerFraction: tg !== null && peak.gbs ? tg / peak.gbs : null,
      ...(note ? { note } : {}),
    };
    out.push(row);
    console.log(`${`${c.name} ${c.what}`.padEnd(34)}${fmt(ours && ours * 1e3, 3).padStart(9)}${fmt(og, 0).padStart(8)}${pct(row.fraction).padStart(6)}` +
      `${fmt(theirs && theirs * 1e3, 3).padStart(10)}${fmt(tg, 0).padStart(8)}${pct(row.peerFraction).padStart(6)}` +
      `${fmt(row.ratio, 2).padStart(12)}  ${note || 'ok'}`);
  }
  disposeInputs(big);
  disposeInputs(small);
  disposeInputs(smallCpu);
  console.log(`(bytes = minimum traffic per call; GB/s = bytes / time; peak = GB/s / ${peak.gbs ?? '?'}; ` +
    `torch/ours = torch ms / our ms${typeof torch === 'string' ? '' : `; ${torch.label}`})`);
  if (process.env.BENCH_JSON) {
    fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({
      bench: 'ops', date: new Date().toISOString(), gpu: name, peak, torch: typeof torch === 'string' ? torch : torch.label, rows: out,
    }, null, 1));
  }
  process.exit(failed ? 1 : 0);
}

if (require.main === module) main();
