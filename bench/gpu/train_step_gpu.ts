// One CLIP training step (forward, backward, AdamW step) of bench/train_step.bench.ts's TinyClip
// (ViT image tower + causal text tower, the same model and sizes, imported from there) on CUDA,
// batch 256 (TRAIN_BATCH), float32, vs PyTorch eager on CUDA (bench/peers/torch_gpu_train_step.py,
// the same modules as the CPU peer). Runs ON the GPU machine.
//
//   bash bench/gpu/pack.sh     (here), then with the device tool, carry [".carry"]:
//   bash bench/gpu/run.sh      (runs this after the parity tests), or alone:
//     xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && cd .carry && \
//     TESSERA_ADDON=$PWD/tessera.node /tmp/node dist/bench/gpu/train_step_gpu.js
//
// Precision: tessera has no bfloat16 dtype yet, so its step is float32 with TF32 matmuls
// (TESSERA_CUDA_MATMUL=tf32, the CUDA matmul's default). PyTorch runs the same (float32,
// allow_tf32 = True) and, for reference only, with bf16 autocast.
//
// Everything lives on the GPU: TESSERA_DEVICE=cuda is set before the model is built, so the
// parameters, the optimizer state, the images and the tokens are all made on 'cuda'. steps/s =
// steps / wall time of TRAIN_STEPS (default 20) back-to-back steps after warm-up, closed by a
// device synchronisation; best of TRAIN_SAMPLES (default 3) samples. Both sides likewise.
// With BENCH_JSON=path the rows are also written there (bench/gpu/run.sh's final table).
// Without a usable CUDA device: prints "no CUDA device: <reason>" and exits 3. A step that fails
// (e.g. an op with no CUDA kernel yet: "<op>: not implemented on cuda") is reported and the
// script exits 1 after timing PyTorch. BENCH_DEVICE=cpu runs the same script on the CPU (a smoke
// test of the script without a GPU; e.g. BENCH_DEVICE=cpu TRAIN_BATCH=8 TRAIN_STEPS=2).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as ts from '../../lib';
import { DEFAULT_CONFIG, randomTokens, TinyClip, TrainStepConfig } from '../train_step.bench';
import { BENCH_DEVICE, findPeer, gpuName, requireCuda, SummaryRow, syncDevice } from './ops_bench';

interface GpuTrainer {
  step(): void;
  loss(): number;
  dispose(): void;
}

function makeGpuTrainer(c: TrainStepConfig): GpuTrainer {
  ts.manualSeed(0);
  const model = new TinyClip(c);
  const off = model.namedParameters().filter(([, p]) => p.device !== BENCH_DEVICE).map(([n]) => n);
  if (off.length) throw new Error(`parameters not on ${BENCH_DEVICE}: ${off.slice(0, 5).join(', ')}${off.length > 5 ? ', ...' : ''}`);
  const opt = new ts.optim.AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.1 });
  const images = ts.keep(ts.randn([c.batch, c.channels, c.image, c.image], { device: BENCH_DEVICE }));
  const tok = randomTokens(c.batch, c.context, c.vocab);
  const tokens = ts.keep(tok.device === BENCH_DEVICE ? tok : tok.to(BENCH_DEVICE));
  if (tokens !== tok) tok.dispose();
  return {
    step(): void {
      ts.scope(() => {
        opt.zeroGrad();
        const loss = model.loss(images, tokens);
        loss.backward();
        opt.step();
      });
    },
    loss(): number {
      return ts.scope(() => ts.noGrad(() => model.loss(images, tokens).item()));
    },
    dispose(): void {
      opt.zeroGrad();
      opt.dispose();
      model.dispose();
      images.dispose();
      tokens.dispose();
    },
  };
}

function timeOurs(tr: GpuTrainer, warmup: number, steps: number, samples: number): number[] {
  for (let i = 0; i < warmup; i++) tr.step();
  syncDevice();
  const out: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) tr.step();
    syncDevice();
    out.push(steps / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  return out;
}

interface TorchRow {
  steps_per_s?: number;
  samples?: number[];
  first_loss?: number;
  peak_mib?: number;
  error?: string;
}

function timeTorch(c: TrainStepConfig, warmup: number, steps: number, samples: number): { label: string; rows: Record<string, TorchRow> } | string {
  const py = process.env.PYTHON ?? 'python3';
  const script = findPeer('torch_gpu_train_step.py');
  const input = JSON.stringify({ ...c, warmup, steps, samples, modes: ['tf32', 'bf16'] });
  const r = spawnSync(py, [script], { input, encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 24 });
  const last = (r.stdout || '').trim().split('\n').pop() || '';
  if (r.status !== 0 || !last.startsWith('{')) {
    let why = r.error?.message ?? '';
    try {
      if (!why && last.startsWith('{')) why = String(JSON.parse(last).error ?? '');
    } catch {
      // not JSON: fall back to stderr below
    }
    why ||= (r.stderr || '').trim().split('\n').pop() || last || `exit ${r.status}`;
    return `PyTorch not timed (${py} ${script}: ${why})`;
  }
  const j = JSON.parse(last) as { torch: string; device: string; rows: Record<string, TorchRow> };
  return { label: `torch ${j.torch}`, rows: j.rows };
}

function main(): void {
  const info = requireCuda('train_step_gpu');
  process.env.TESSERA_DEVICE = BENCH_DEVICE;
  process.env.TESSERA_CUDA_MATMUL ??= 'tf32';
  const c: TrainStepConfig = { ...DEFAULT_CONFIG, batch: Number(process.env.TRAIN_BATCH ?? 256) };
  const steps = Number(process.env.TRAIN_STEPS ?? 20);
  const samples = Number(process.env.TRAIN_SAMPLES ?? 3);
  const warmup = 5;
  const name = gpuName(info);
  const model = `TinyClip ViT ${c.layers}x${c.width} (${c.image}x${c.image}x${c.channels}, patch ${c.patch}) + text ${c.layers}x${c.width} (L ${c.context}), CLIP loss, AdamW, batch ${c.batch}`;
  console.log(`train_step_gpu ${new Date().toISOString()} on ${name}: ${model}`);
  if (BENCH_DEVICE === 'cuda')
    console.log(`tessera: float32 with TF32 matmuls (TESSERA_CUDA_MATMUL=${process.env.TESSERA_CUDA_MATMUL}); no bfloat16 dtype yet, so there is no tessera bf16 row`);

  let ours: number | null = null;
  let oursErr = '';
  try {
    const tr = makeGpuTrainer(c);
    try {
      const first = tr.loss();
      console.log(`tessera: initial loss ${first.toFixed(4)} (ln(batch) = ${Math.log(c.batch).toFixed(4)})`);
      const s = timeOurs(tr, warmup, steps, samples);
      ours = Math.max(...s);
      const mem = ts.memoryStats();
      console.log(`tessera: ${s.map((v) => v.toFixed(2)).join(', ')} steps/s; device peak ${((mem.devicePeakBytes ?? 0) / 2 ** 20).toFixed(0)} MiB`);
    } finally {
      tr.dispose();
    }
  } catch (e) {
    oursErr = (e as Error).message.split('\n')[0];
    console.log(`tessera train step failed: ${oursErr}`);
  }

  const torch = timeTorch(c, warmup, steps, samples);
  if (typeof torch === 'string') console.log(torch);
  else {
    for (const [mode, r] of Object.entries(torch.rows)) {
      if (r.error) console.log(`${torch.label} ${mode}: error: ${r.error}`);
      else console.log(`${torch.label} ${mode}: ${(r.samples ?? []).map((v) => v.toFixed(2)).join(', ')} steps/s; initial loss ${r.first_loss?.toFixed(4)}; peak ${r.peak_mib?.toFixed(0)} MiB`);
    }
  }

  const peerOf = (mode: string): number | null => (typeof torch === 'string' ? null : torch.rows[mode]?.steps_per_s ?? null);
  const rows: SummaryRow[] = [
    { case: `train step b${c.batch} f32/TF32 vs torch f32/TF32`, peer: peerOf('tf32') },
    { case: `train step b${c.batch} f32/TF32 vs torch bf16 autocast (ref)`, peer: peerOf('bf16') },
  ].map((r) => ({
    case: r.case,
    unit: 'steps/s',
    ours,
    peer: r.peer,
    ratio: ours !== null && r.peer ? ours / r.peer : null,
    fraction: null,
    peerFraction: null,
    ...(oursErr ? { note: `error: ${oursErr}` } : {}),
  }));
  const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(2));
  console.log(`${'case'.padEnd(58)}${'tessera'.padStart(9)}${'torch'.padStart(9)}${'ours/torch'.padStart(12)}`);
  for (const r of rows) console.log(`${r.case.padEnd(58)}${fmt(r.ours).padStart(9)}${fmt(r.peer).padStart(9)}${fmt(r.ratio).padStart(12)}`);
  console.log(`(steps/s, best of ${samples} samples of ${steps} steps${typeof torch === 'string' ? '' : `; ${torch.label} eager`})`);
  if (process.env.BENCH_JSON) {
    fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({
      bench: 'train_step', date: new Date().toISOString(), gpu: name, model, torch: typeof torch === 'string' ? torch : torch.label, rows,
    }, null, 1));
  }
  process.exit(oursErr ? 1 : 0);
}

if (require.main === module) main();
