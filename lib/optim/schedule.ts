// Learning-rate schedules as plain functions step -> lr, applied with applyLr() before each
// optimizer step. cosineWithWarmup is OpenCLIP's cosine_lr (open_clip_train/scheduler.py) with
// the same 0-based step (the index of the update about to be made):
//
//   step <  warmup:  lr = baseLr * (step + 1) / warmup
//   step >= warmup:  e = step - warmup, es = total - warmup
//                    lr = minLr + 0.5 * (1 + cos(pi * e / es)) * (baseLr - minLr)
//
// With minLr = 0 (the default) this is OpenCLIP's formula exactly. Past totalSteps, where
// OpenCLIP would start to climb back up the cosine, it stays at minLr.

import { ArgumentError } from '../errors';
import { Optimizer } from './optimizer';

export interface CosineWithWarmupOptions {
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  minLr?: number;
}

export type LrSchedule = (step: number) => number;

export function cosineWithWarmup(opts: CosineWithWarmupOptions): LrSchedule {
  const { baseLr, warmupSteps, totalSteps } = opts;
  const minLr = opts.minLr ?? 0;
  const fin = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (!fin(baseLr) || baseLr < 0) throw new ArgumentError(`cosineWithWarmup: baseLr must be a finite number >= 0, got ${String(baseLr)}`);
  if (!fin(minLr) || minLr < 0 || minLr > baseLr)
    throw new ArgumentError(`cosineWithWarmup: minLr must be a finite number in [0, baseLr], got ${String(minLr)}`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0)
    throw new ArgumentError(`cosineWithWarmup: warmupSteps must be an integer >= 0, got ${String(warmupSteps)}`);
  if (!Number.isInteger(totalSteps) || totalSteps <= warmupSteps)
    throw new ArgumentError(`cosineWithWarmup: totalSteps must be an integer > warmupSteps (${warmupSteps}), got ${String(totalSteps)}`);
  return (step: number): number => {
    if (!Number.isInteger(step) || step < 0) throw new ArgumentError(`cosineWithWarmup: step must be an integer >= 0, got ${String(step)}`);
    if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
    if (step >= totalSteps) return minLr;
    const e = step - warmupSteps;
    const es = totalSteps - warmupSteps;
    return minLr + 0.5 * (1 + Math.cos((Math.PI * e) / es)) * (baseLr - minLr);
  };
}

/** Set every param group's learning rate (OpenCLIP's assign_learning_rate). Returns lr. */
export function applyLr(optimizer: Optimizer, lr: number): number {
  optimizer.lr = lr;
  return lr;
}
