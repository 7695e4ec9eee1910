// One CLIP training step (forward, backward, AdamW step) of a small ViT image tower plus a small
// causal text tower, tessera vs PyTorch eager on the CPU (bench/peers/torch_train_step.py, the
// same models and sizes), same thread count, same run. Rounds alternate between the two sides
// (which goes first alternates too) so load from a neighbour does not bias one of them; each
// side reports its best round. steps/s = steps / wall time of `steps` back-to-back steps after
// warm-up, each step inside scope().
//
// BENCH_THREADS sets the threads of both sides; BENCH_ROUNDS (default 3), BENCH_STEPS
// (default 10 timed steps per sample), BENCH_SAMPLES (default 3 samples per round).

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
    return ts.losses.clipLoss(img, txt, this.logit_scale);
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

function timeTorch(c: TrainStepConfig, threads: number, warmup: number, steps: number, samples: number): TorchResult {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'torch_train_step.py');
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
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

export async function runTrainStep(c: TrainStepConfig = DEFAULT_CONFIG): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const steps = Number(process.env.BENCH_STEPS ?? 10);
  const samples = Number(process.env.BENCH_SAMPLES ?? 3);
  const tr = makeTrainer(c);
  const ours: number[] = [];
  const peer: number[] = [];
  let label = 'PyTorch';
  let error: string | undefined;
  for (let r = 0; r < rounds; r++) {
    const runOurs = () => {
      const s = timeTessera(tr, 3, steps, samples);
      ours.push(Math.max(...s));
    };
    const runPeer = () => {
      if (error) return;
      const p = timeTorch(c, threads, 3, steps, samples);
      if (p.error) error = p.error;
      else {
        label = p.label;
        peer.push(Math.max(...p.samples));
      }
    };
    if (r % 2 === 0) { runOurs(); runPeer(); } else { runPeer(); runOurs(); }
    console.log(`round ${r + 1}: tessera ${ours[ours.length - 1].toFixed(2)} steps/s` +
      (peer.length === r + 1 ? `, ${label} ${peer[r].toFixed(2)} steps/s` : ''));
  }
  tr.dispose();
  if (error) console.log(error);
  const rows: Row[] = [{
    case: `ViT ${c.layers}x${c.width} (${c.image}x${c.image}x${c.channels}, patch ${c.patch}) + text ${c.layers}x${c.width} (L ${c.context}, causal), CLIP loss, AdamW, batch ${c.batch}`,
    ours: Math.max(...ours),
    peer: peer.length ? Math.max(...peer) : null,
  }];
  return printTable(`Training step, float32, ${threads} threads (best of ${rounds} interleaved rounds)`, 'steps/s', label, rows);
}

if (require.main === module) runTrainStep().catch((e) => { console.error(e); process.exit(1); });
