// Attention forward + backward, float32, on the CPU: the fused flash attention kernel
// (flashAttention, native/cpu/flash_attention.cpp) vs our composition (attentionReference:
// q k^T -> masked softmax -> @ v as separate ops) vs PyTorch (bench/peers/torch_attention.py;
// Debian's torch 1.13 has only the private F._scaled_dot_product_attention, whose CPU path is the
// same math composition, which the peer reports). Same threads, same run.
//
// Time: median of fwd+bwd (the forward, then backward of a random upstream gradient into q, k,
// v); the forward alone in a second table. Rounds alternate between our side and torch (which goes
// first alternates too), each side keeps its best round, so a burst of load from a neighbour does
// not land on one side only. Memory: each (implementation, case) runs once in a fresh process;
// "peak" is the peak growth over the inputs during one fwd+bwd: for ours the tracked native host
// peak (memoryStats().hostPeakBytes above the live bytes before the call; every op output,
// gradient and kernel scratch buffer is counted), and for both sides the growth of the process's
// peak RSS (VmHWM), the one metric torch also has.
//
// BENCH_THREADS (both sides), BENCH_TIME_MS (tinybench time per case), BENCH_ROUNDS (default 2),
// BENCH_FA_CASES (e.g. "4x8x1024x64,4x8x1024x64c": B x H x L x hd, c = causal).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../lib';
import { attentionReference } from '../lib/nn/attention';
import { flashAttention } from '../lib/ops/flash_attention';
import { benchThreads, timeOurs } from './harness';

interface Case {
  id: string;
  B: number;
  H: number;
  L: number;
  hd: number;
  causal: boolean;
}

const PYTHON = process.env.TESSERA_PEER_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const PEER = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'torch_attention.py');

function parseCases(): Case[] {
  const spec = process.env.BENCH_FA_CASES ?? '4x8x256x64,4x8x1024x64,4x8x256x128,4x8x1024x128,4x8x1024x64c';
  return spec.split(',').map((s) => {
    const causal = s.endsWith('c');
    const [B, H, L, hd] = s.replace(/c$/, '').split('x').map(Number);
    return { id: `B=${B} H=${H} L=${L} hd=${hd}${causal ? ' causal' : ''}`, B, H, L, hd, causal };
  });
}

type Impl = 'fused' | 'composition';
const impls: Record<Impl, (q: ts.Tensor, k: ts.Tensor, v: ts.Tensor, causal: boolean) => ts.Tensor> = {
  fused: (q, k, v, causal) => flashAttention(q, k, v, { causal }),
  composition: (q, k, v, causal) => attentionReference(q, k, v, { causal }),
};

function inputs(c: Case) {
  ts.manualSeed(0);
  const shape = [c.B, c.H, c.L, c.hd];
  const [q, k, v] = [0, 1, 2].map(() => ts.keep(ts.randn(shape, { requiresGrad: true })));
  const g = ts.keep(ts.randn(shape));
  return { q, k, v, g };
}

function fwdBwd(impl: Impl, c: Case, x: ReturnType<typeof inputs>): void {
  ts.scope(() => {
    impls[impl](x.q, x.k, x.v, c.causal).backward(x.g);
    for (const t of [x.q, x.k, x.v]) {
      t.grad?.dispose();
      t.grad = null;
    }
  });
}

/**
 * Peak RSS of this process in bytes: VmHWM (reset by exec). Not ru_maxrss / resourceUsage(): Linux
 * carries it across exec, so a child of a big process starts at its parent's RSS.
 */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Child process: one fwd+bwd of one implementation; prints tracked peak and RSS growth. */
function memoryChild(impl: Impl, c: Case): void {
  const x = inputs(c);
  fwdBwd(impl, { ...c, L: 64 }, inputs({ ...c, L: 64 })); // load code paths, thread pool
  const before = ts.memoryStats();
  const rss0 = peakRss();
  fwdBwd(impl, c, x);
  const after = ts.memoryStats();
  const rss1 = peakRss();
  console.log(JSON.stringify({ tracked: after.hostPeakBytes - before.hostBytes, rss: rss1 - rss0 }));
}

function ourMemory(impl: Impl, c: Case): { tracked: number; rss: number } | null {
  const r = spawnSync(process.execPath, [__filename, '--mem', impl, JSON.stringify(c)], { env: process.env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function torchRun(cfg: object): { ok: true; out: any } | { ok: false; why: string } {
  const r = spawnSync(PYTHON, [PEER], { input: JSON.stringify(cfg), encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, OMP_NUM_THREADS: String((cfg as { threads: number }).threads) } });
  if (r.status !== 0) return { ok: false, why: (r.stderr || r.error?.message || 'unknown error').trim().split('\n').slice(-1)[0] };
  return { ok: true, out: JSON.parse(r.stdout) };
}

const mib = (b: number | null | undefined) => (b === null || b === undefined ? 'n/a' : (b / 2 ** 20).toFixed(0));
const ms = (s: number | undefined) => (s === undefined ? 'n/a' : (s * 1e3).toFixed(1));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? 'n/a' : (a / b).toFixed(2));

export async function runFlashAttention(): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const cases = parseCases();
  const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
  const best = (m: Map<string, number>, id: string, t: number) => m.set(id, Math.min(m.get(id) ?? Infinity, t));
  const ours = new Map<string, number>(); // `${impl} ${id}` -> fwd+bwd seconds
  const oursFwd = new Map<string, number>();
  const torch = new Map<string, number>();
  const torchFwd = new Map<string, number>();
  let torchLabel = 'torch';
  let torchError = '';
  const runOurs = async () => {
    for (const c of cases) {
      const x = inputs(c);
      const tasks = (['fused', 'composition'] as Impl[]).flatMap((impl) => [
        { id: `${impl} ${c.id}`, fn: () => fwdBwd(impl, c, x) },
        { id: `fwd ${impl} ${c.id}`, fn: () => ts.scope(() => ts.noGrad(() => impls[impl](x.q, x.k, x.v, c.causal))) },
      ]);
      const t = await timeOurs(tasks);
      for (const [id, s] of t) best(id.startsWith('fwd ') ? oursFwd : ours, id.replace(/^fwd /, ''), s);
      for (const u of [x.q, x.k, x.v, x.g]) u.dispose();
    }
  };
  const runTorch = () => {
    const r = torchRun({ threads, cases: cases.map((c) => ({ ...c, reps: 5 })) });
    if (!r.ok) {
      torchError = `torch peer unavailable (${r.why}); install python3-torch`;
      return;
    }
    torchLabel = `torch ${r.out.torch} ${r.out.impl}`;
    for (const c of cases) {
      best(torch, c.id, r.out.times[c.id]);
      best(torchFwd, c.id, r.out.fwd[c.id]);
    }
  };
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      await runOurs();
      runTorch();
    } else {
      runTorch();
      await runOurs();
    }
  }
  if (torchError) console.log(torchError);

  const mem = cases.map((c) => {
    const t = torchRun({ threads, mem: true, cases: [c] });
    return { fused: ourMemory('fused', c), composition: ourMemory('composition', c), torch: t.ok ? (t.out.peak_rss_bytes as number) : null };
  });

  const lines = [
    `### Attention fwd+bwd, float32, ${threads} threads (peer: ${torchLabel})`,
    '',
    '| case | fused ms | composition ms | torch ms | torch / fused | composition / fused | fused peak MiB (RSS) | composition peak MiB (RSS) | torch peak RSS MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...cases.map((c, i) => {
      const f = ours.get(`fused ${c.id}`);
      const co = ours.get(`composition ${c.id}`);
      const m = mem[i];
      const pk = (x: { tracked: number; rss: number } | null) => (x ? `${mib(x.tracked)} (${mib(x.rss)})` : 'n/a');
      return `| ${c.id} | ${ms(f)} | ${ms(co)} | ${ms(torch.get(c.id))} | ${ratio(torch.get(c.id), f)} | ${ratio(co, f)} | ${pk(m.fused)} | ${pk(m.composition)} | ${mib(m.torch)} |`;
    }),
    '',
    `### Attention forward only, float32, ${threads} threads`,
    '',
    '| case | fused ms | composition ms | torch ms | torch / fused |',
    '|---|---:|---:|---:|---:|',
    ...cases.map((c) => {
      const f = oursFwd.get(`fused ${c.id}`);
      return `| ${c.id} | ${ms(f)} | ${ms(oursFwd.get(`composition ${c.id}`))} | ${ms(torchFwd.get(c.id))} | ${ratio(torchFwd.get(c.id), f)} |`;
    }),
  ];
  const text = lines.join('\n');
  console.log(text + '\n');
  return text;
}

if (require.main === module) {
  if (process.argv[2] === '--mem') memoryChild(process.argv[3] as Impl, JSON.parse(process.argv[4]) as Case);
  else runFlashAttention().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
