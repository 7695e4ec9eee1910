// The global random stream: a seed and a running offset into the Philox counter space. Every
// random op consumes `numel` counters, so a sequence of random ops is reproducible from the
// seed alone and independent of thread count and device (CUDA uses the same generator).

import { ArgumentError } from './errors';

let seed = 0x7e55e4a;
let offset = 0;

/** Reset the global generator (like torch.manual_seed). */
export function manualSeed(s: number): void {
  if (!Number.isInteger(s) || s < 0 || s > Number.MAX_SAFE_INTEGER)
    throw new ArgumentError(`manualSeed: seed must be a non-negative safe integer, got ${s}`);
  seed = s;
  offset = 0;
}

/** Reserve `count` counters from the stream: returns [seed, first offset]. */
export function takeCounters(count: number): [number, number] {
  const start = offset;
  offset += count;
  if (offset > Number.MAX_SAFE_INTEGER) offset = 0;
  return [seed, start];
}

/** Snapshot and restore the stream (for checkpoints that resume exactly). */
export function getRngState(): { seed: number; offset: number } {
  return { seed, offset };
}

export function setRngState(state: { seed: number; offset: number }): void {
  manualSeed(state.seed);
  offset = state.offset;
}
