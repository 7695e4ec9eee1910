// The training loop every method shares. Each step: learning rate from the cosine schedule with
// linear warm-up, the method's loss on the step's batch, backward, gradient-norm clipping, AdamW
// (no weight decay on norms, biases, embeddings, temperatures), all inside scope() so native
// memory stays flat. Around it: metrics.jsonl, periodic evaluation with the best checkpoint kept,
// periodic atomic checkpoints (last k kept), Ctrl-C = checkpoint and clean exit, and --resume.
//
// Exact resume: the batch of step s is a pure function of (seed, s) (an epoch permutation from
// shuffledIndices, data draws keyed by s), and the checkpoint holds the model, the optimizer, the
// step and the engine's RNG stream (dropout, augmentations). So on the CPU, a run resumed from a
// checkpoint at step s computes exactly the losses the uninterrupted run computed after s; the
// metrics log is truncated back to s on resume so the two logs end up identical.

import { Tensor } from '../tensor';
import { scope } from '../scope';
import { shuffledIndices } from '../data/batcher';
import { saveCheckpoint, restoreCheckpoint } from '../io/checkpoint';
import { AdamW } from '../optim/adamw';
import { clipGradNorm } from '../optim/clip';
import { decayGroups } from '../optim/param_groups';
import { cosineWithWarmup } from '../optim/schedule';
import { EvalSplit } from '../data/pair_dataset';
import { Method } from '../methods/method';
import { RunFolder } from './run_folder';
import { Progress } from './progress';
import { evaluateMethod, EvalResult, rowsToRecord } from './evaluate';

export interface LoopConfig {
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  gradClip: number;
  seed: number;
  evalEvery: number;
  checkpointEvery: number;
  keep: number;
  logEvery: number;
}

export interface LoopResult {
  finalStep: number;
  interrupted: boolean;
  lastEval: EvalResult | null;
  bestScore: number;
  losses: number[];
}

/** Training indices of `step`: consecutive slices of per-epoch permutations. */
export function stepIndices(size: number, batch: number, seed: number, step: number, cache: Map<number, Int32Array>): number[] {
  const out: number[] = [];
  let pos = step * batch;
  while (out.length < batch) {
    const epoch = Math.floor(pos / size);
    let perm = cache.get(epoch);
    if (!perm) {
      cache.clear();
      perm = shuffledIndices(size, seed, epoch);
      cache.set(epoch, perm);
    }
    out.push(perm[pos % size]);
    pos++;
  }
  return out;
}

export async function trainLoop(
  method: Method,
  run: RunFolder,
  cfg: LoopConfig,
  data: { trainSize: number; val: EvalSplit | null },
  opts: { resume: boolean; log?: (line: string) => void; stopAfter?: number },
): Promise<LoopResult> {
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const model = method.model;
  const optimizer = new AdamW(decayGroups(model, cfg.weightDecay), { lr: cfg.lr, betas: [0.9, 0.98], eps: 1e-6 });
  const schedule = cosineWithWarmup({ baseLr: cfg.lr, warmupSteps: Math.min(cfg.warmup, cfg.steps - 1), totalSteps: cfg.steps });
  let step = 0;
  let bestScore = -Infinity;
  if (opts.resume) {
    const last = run.latestCheckpoint();
    if (last) {
      step = restoreCheckpoint(last.file, model, optimizer);
      run.metrics.truncateAfter(step);
      bestScore = run.metrics.read().filter((r) => r.kind === 'val').reduce((b, r) => Math.max(b, Number(r.score)), -Infinity);
      log(`resumed from ${last.file} at step ${step}`);
    } else log(`--resume: no checkpoint in ${run.checkpointDir} yet, starting from step 0`);
  }
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  const progress = new Progress(cfg.steps, step, cfg.batchSize, cfg.logEvery);
  const say = (l: string) => progress.log(l);
  const cache = new Map<number, Int32Array>();
  const losses: number[] = [];
  let lastEval: EvalResult | null = null;
  const checkpoint = (s: number) => {
    saveCheckpoint(run.checkpointPath(s), { model, optimizer, step: s, extra: { bestScore: Number.isFinite(bestScore) ? bestScore : null } });
    run.prune(cfg.keep);
  };
  const evaluate = (s: number) => {
    if (!data.val) return;
    const t0 = Date.now();
    lastEval = evaluateMethod(method, data.val);
    const rec = rowsToRecord(lastEval.rows);
    run.metrics.append({ step: s, kind: 'val', score: lastEval.score, ...rec });
    const improved = lastEval.score > bestScore;
    if (improved) {
      bestScore = lastEval.score;
      saveCheckpoint(run.bestPath, { model, optimizer: null, step: s, extra: { score: bestScore } });
    }
    say(`eval @ ${s}: mean R@1 ${(lastEval.score * 100).toFixed(1)}%` + (improved ? ' (best)' : '') + `  [${((Date.now() - t0) / 1000).toFixed(1)}s]`);
  };
  try {
    const stopAt = Math.min(cfg.steps, opts.stopAfter ?? Infinity);
    while (step < stopAt && !interrupted) {
      const indices = stepIndices(data.trainSize, cfg.batchSize, cfg.seed, step, cache);
      const lr = schedule(step);
      optimizer.lr = lr;
      const loss = scope(() => {
        const l: Tensor = method.trainingLoss(indices, step);
        l.backward();
        if (cfg.gradClip > 0) clipGradNorm(model.parameters(), cfg.gradClip);
        optimizer.step();
        optimizer.zeroGrad();
        return l.item();
      });
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at step ${step} (try a lower --lr or a larger --warmup)`);
      losses.push(loss);
      step++;
      if (step % cfg.logEvery === 0 || step === cfg.steps) run.metrics.append({ step, kind: 'train', loss, lr, ...(method.logs?.() ?? {}) });
      progress.update(step, { loss, lr });
      if (cfg.evalEvery > 0 && step % cfg.evalEvery === 0 && step < cfg.steps) evaluate(step);
      if (cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0) checkpoint(step);
      // Let a pending SIGINT run its handler between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
    if (interrupted) {
      progress.stop();
      checkpoint(step);
      log(`interrupted: checkpoint written at step ${step} (${run.checkpointPath(step)}); continue with --resume`);
    } else if (step >= cfg.steps) {
      evaluate(step);
      if (run.latestCheckpoint()?.step !== step) checkpoint(step);
    }
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
  }
  return { finalStep: step, interrupted, lastEval, bestScore, losses };
}
