// One CLIP training step (forward, backward, AdamW step) of a small ViT image tower plus a small
// causal text tower, tessera vs PyTorch eager on the CPU (bench/peers/torch_train_step.py, the
// same models and sizes), same thread count, same run. Rounds interleave the sides (the order
// rotates each round) so load from a neighbour does not bias one of them; each side reports its
// best round. steps/s = steps / wall time of `steps` back-to-back steps after warm-up, each step
// inside scope() (tessera) or after zero_grad(set_to_none=True) (PyTorch).
//
// PyTorch runs twice per round. Debian's python3-torch runs its own ops on OpenMP (libgomp) and
// its matmuls on OpenBLAS's separate pthread pool; with libgomp's default spin-wait its idle
// OpenMP threads keep spinning on the cores OpenBLAS's threads need, which slows PyTorch's step
// about 2.5x on this 2-core machine. So the table has a row for PyTorch as installed and one
// with OMP_WAIT_POLICY=PASSIVE (its threads sleep when idle), the better PyTorch setting here.
//
// BENCH_THREADS sets the threads of both sides; BENCH_ROUNDS (default 3), BENCH_STEPS
// (default 10 timed steps per sample), BENCH_SAMPLES (default 3 samples per round),
// BENCH_QUIET_WAIT (seconds a round may wait for other processes to go idle, default 60).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../lib';
import { Module } from '../lib/nn/module';
import { benchThreads } from './harness';
import { printTable, Row } from './table';

export interface TrainStepConfig {
  batch: number;
  image: number;
  patch: number;
  channels: number;
  width: number;
  layers: number;
  heads: number;
  out_dim: number;
  context: number;
  vocab: number;
}

export const DEFAULT_CONFIG: TrainStepConfig = {
  batch: 128, image: 28, patch: 7, channels: 1, width: 128, layers: 4, heads: 4, out_dim: 128, context: 32, vocab: 1000,
};

/** ViT + text transformer + learnable log temperature, as OpenCLIP's CLIP. */
export class TinyClip extends Module {
  readonly visual: ts.nn.VisionTransformer;
  readonly text: ts.nn.TextTransformer;
  readonly logit_scale: ts.Tensor;

  constructor(c: TrainStepConfig) {
    super();
    this.visual = this.child('visual', new ts.nn.VisionTransformer({
      imageSize: c.image, patchSize: c.patch, channels: c.channels, width: c.width, layers: c.layers, heads: c.heads, outputDim: c.out_dim,
    }));
    this.text = this.child('text', new ts.nn.TextTransformer({
      vocabSize: c.vocab, contextLength: c.context, width: c.width, layers: c.layers, heads: c.heads, outputDim: c.out_dim,
    }));
    this.logit_scale = this.param('logit_scale', ts.tensor(Math.log(1 / 0.07)));
  }

  loss(images: ts.Tensor, tokens: ts.Tensor): ts.Tensor {
    const img = this.visual.forward(images).pooled;
    const txt = this.text.forward(tokens).pooled;
    // The fused kernel on L2-normalised features: the same value as ts.losses.clipLoss (the
    // composition PyTorch runs) without the N x N logits.
    return ts.losses.clipLossFused(ts.normalize(img, 2, -1), ts.normalize(txt, 2, -1), this.logit_scale);
  }
}

/** Random tokens in [1, vocab - 1) with the EOT id (vocab - 1, the largest) at a random position. */
export function randomTokens(batch: number, context: number, vocab: number, seed = 1): ts.Tensor {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const ids = new Int32Array(batch * context);
  for (let r = 0; r < batch; r++) {
    for (let j = 0; j < context; j++) ids[r * context + j] = 1 + Math.floor(next() * (vocab - 2));
    ids[r * context + 1 + Math.floor(next() * (context - 1))] = vocab - 1;
  }
  return ts.tensor(ids, { shape: [batch, context], dtype: 'int32' });
}

export interface Trainer {
  step(): number;
  dispose(): void;
}

export function makeTrainer(c: TrainStepConfig = DEFAULT_CONFIG): Trainer {
  ts.manualSeed(0);
  const model = new TinyClip(c);
  const opt = new ts.optim.AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.1 });
  const images = ts.keep(ts.randn([c.batch, c.channels, c.image, c.image]));
  const tokens = ts.keep(randomTokens(c.batch, c.context, c.vocab));
  return {
    step(): number {
      return ts.scope(() => {
        opt.zeroGrad();
        const loss = model.loss(images, tokens);
        loss.backward();
        opt.step();
        return 0;
      });
    },
    dispose() {
      opt.zeroGrad();
      opt.dispose();
      model.dispose();
      images.dispose();
      tokens.dispose();
    },
  };
}

function timeTessera(tr: Trainer, warmup: number, steps: number, samples: number): number[] {
  for (let i = 0; i < warmup; i++) tr.step();
  const out: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) tr.step();
    out.push(steps / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  return out;
}

const PYTHON = process.env.TESSERA_PEER_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

interface TorchResult { samples: number[]; label: string; error?: string }

function timeTorch(c: TrainStepConfig, threads: number, warmup: number, steps: number, samples: number, extraEnv: Record<string, string>): TorchResult {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'torch_train_step.py');
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads), ...extraEnv };
  // As bench/peer.ts: let OpenBLAS (torch's BLAS here) detect the CPU instead of a pinned core type.
  delete env.OPENBLAS_CORETYPE;
  if (process.env.BENCH_OPENBLAS_CORETYPE) env.OPENBLAS_CORETYPE = process.env.BENCH_OPENBLAS_CORETYPE;
  const input = JSON.stringify({ ...c, threads, warmup, steps, samples, foreach: process.env.BENCH_TORCH_FOREACH === '1' });
  const r = spawnSync(PYTHON, [script], { input, env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || 'unknown error').trim().split('\n').slice(-1)[0];
    return { samples: [], label: 'PyTorch', error: `PyTorch peer unavailable (${why}); install python3-torch` };
  }
  const parsed = JSON.parse(r.stdout) as { samples: number[]; torch: string };
  return { samples: parsed.samples, label: `PyTorch ${parsed.torch}` };
}

/** Fraction of all CPUs busy over the next `ms` milliseconds (from /proc/stat; we are idle meanwhile). */
function busyFraction(ms: number): number {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + (f[4] || 0), total: f.reduce((x, y) => x + y, 0) };
  };
  const a = read();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}

/** Wait (up to BENCH_QUIET_WAIT seconds) until other processes use < 25% of the CPUs; true if they do. */
function waitQuiet(): boolean {
  const limit = Number(process.env.BENCH_QUIET_WAIT ?? 60);
  if (!(limit > 0) || !fs.existsSync('/proc/stat')) return true;
  const deadline = Date.now() + limit * 1000;
  for (;;) {
    if (busyFraction(500) < 0.25) return true;
    if (Date.now() > deadline) return false;
  }
}

const PEERS: { name: string; env: Record<string, string> }[] = [
  { name: 'as installed', env: {} },
  { name: 'OMP_WAIT_POLICY=PASSIVE', env: { OMP_WAIT_POLICY: 'PASSIVE' } },
];

export async function runTrainStep(c: TrainStepConfig = DEFAULT_CONFIG): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const steps = Number(process.env.BENCH_STEPS ?? 10);
  const samples = Number(process.env.BENCH_SAMPLES ?? 3);
  const tr = makeTrainer(c);
  for (let i = 0; i < 5; i++) tr.step(); // first steps fill the allocator cache and JIT-compile
  const ours: number[] = [];
  const peer: number[][] = PEERS.map(() => []);
  let label = 'PyTorch';
  let error: string | undefined;
  let busyRounds = 0;
  const sides: (() => string)[] = [
    () => {
      const s = timeTessera(tr, 2, steps, samples);
      ours.push(Math.max(...s));
      return `tessera ${ours[ours.length - 1].toFixed(2)}`;
    },
    ...PEERS.map((p, i) => () => {
      if (error) return '';
      const r = timeTorch(c, threads, 3, steps, samples, p.env);
      if (r.error) {
        error = r.error;
        return '';
      }
      label = r.label;
      peer[i].push(Math.max(...r.samples));
      return `PyTorch (${p.name}) ${peer[i][peer[i].length - 1].toFixed(2)}`;
    }),
  ];
  for (let r = 0; r < rounds; r++) {
    const parts: string[] = [];
    for (let k = 0; k < sides.length; k++) {
      if (!waitQuiet()) busyRounds++;
      parts.push(sides[(r + k) % sides.length]());
    }
    console.log(`round ${r + 1}: ${parts.filter(Boolean).join(', ')} steps/s`);
  }
  tr.dispose();
  if (error) console.log(error);
  if (busyRounds) console.log(`${busyRounds} of ${rounds * sides.length} runs started while other processes used >= 25% of the CPUs`);
  const model = `ViT ${c.layers}x${c.width} (${c.image}x${c.image}x${c.channels}, patch ${c.patch}) + text ${c.layers}x${c.width} (L ${c.context}, causal), CLIP loss, AdamW, batch ${c.batch}`;
  const best = Math.max(...ours);
  const rows: Row[] = PEERS.map((p, i) => ({
    case: `${model}; PyTorch ${p.name}`,
    ours: best,
    peer: peer[i].length ? Math.max(...peer[i]) : null,
  }));
  return printTable(`Training step, float32, ${threads} threads (best of ${rounds} interleaved rounds)`, 'steps/s', label, rows);
}

if (require.main === module) runTrainStep().catch((e) => { console.error(e); process.exit(1); });
