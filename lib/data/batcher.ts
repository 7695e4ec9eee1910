// Mini-batches of indices over [0, size): a fresh seeded shuffle each epoch, a resumable position
// (epoch, batch index), and a prefetching iterator that builds batch k+1 while batch k is used.
//
// The shuffle comes from a small counter-based generator of our own keyed by (seed, epoch), not
// Math.random, so epoch e's order is a pure function of the seed: resuming at (epoch, index) needs
// no generator state, and batchAt(step) can be computed out of order (which prefetch relies on).
//
// What prefetch overlaps, honestly: JS is single-threaded and tessera's native ops are synchronous
// N-API calls on the main thread, so building the next batch in JS can only run while the training
// loop is waiting (an `await` on I/O, a timer, or a promise that resolves later). CPU work in a
// synchronous training step does NOT overlap with producing the next batch. What does overlap: CUDA
// kernels are launched asynchronously, so after a step has queued its GPU work and the loop awaits
// (e.g. `await new Promise(setImmediate)` before the step's first host sync such as .item()), the
// next batch is built while the GPU runs. Async producers (file reads, decoding in a worker) overlap
// as well. Either way the API is the same, so a harness can use it now and gain when work moves off
// the main thread.

import { ArgumentError } from '../errors';

/** A 32-bit finaliser (from the murmur3/splitmix family): scrambles x into a well-mixed word. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A counter-based generator: the k-th draw is mix32(key + k * golden), a pure function of (key, k). */
export class SplitMix32 {
  private counter: number;
  constructor(key: number) {
    this.counter = key >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.counter = (this.counter + 0x9e3779b9) >>> 0;
    return mix32(this.counter);
  }
  /** A uniform integer in [0, n), n <= 2^32, without modulo bias (rejection sampling). */
  below(n: number): number {
    const limit = Math.floor(0x100000000 / n) * n;
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}

/** A 32-bit key from any integer seed (negative and above 2^32 included) and an epoch. */
function epochKey(seed: number, epoch: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  return mix32(mix32(lo ^ mix32(hi + 0x6a09e667)) ^ mix32((epoch + 0x3c6ef372) >>> 0));
}

/** A permutation of 0..n-1 (Fisher-Yates), a pure function of (n, seed, epoch). */
export function shuffledIndices(n: number, seed: number, epoch: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const rng = new SplitMix32(epochKey(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

export interface BatcherOptions {
  /** Number of items: batches are drawn from indices [0, size). */
  size: number;
  batchSize: number;
  seed: number;
  /** Reshuffle every epoch (default true); false keeps 0..size-1 in order. */
  shuffle?: boolean;
  /** Drop the last, smaller batch of an epoch (default true, so every batch has batchSize items). */
  dropLast?: boolean;
}

/** Where a Batcher is: the next batch next() returns, plus the configuration it belongs to. */
export interface BatcherState {
  epoch: number;
  index: number;
  size: number;
  batchSize: number;
  seed: number;
  shuffle: boolean;
  dropLast: boolean;
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new ArgumentError(`Batcher: ${name} must be an integer >= ${min}, got ${v}`);
}

/** Seeded, epoch-reshuffling batches of indices with an exact resume position. */
export class Batcher {
  readonly size: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** Batches per epoch: floor(size / batchSize) with dropLast, else ceil. */
  readonly batchesPerEpoch: number;
  private pos = 0; // global step of the next batch
  private cachedEpoch = -1;
  private cachedOrder: Int32Array = new Int32Array(0);

  constructor(opts: BatcherOptions) {
    checkCount('size', opts.size, 1);
    checkCount('batchSize', opts.batchSize, 1);
    if (!Number.isSafeInteger(opts.seed)) throw new ArgumentError(`Batcher: seed must be an integer, got ${opts.seed}`);
    this.size = opts.size;
    this.batchSize = opts.batchSize;
    this.seed = opts.seed;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? true;
    this.batchesPerEpoch = this.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new ArgumentError(`Batcher: batchSize ${this.batchSize} exceeds size ${this.size} with dropLast, so an epoch has no batches`);
    }
  }

  /** Epoch of the next batch. */
  get epoch(): number {
    return Math.floor(this.pos / this.batchesPerEpoch);
  }

  /** Index within its epoch of the next batch. */
  get index(): number {
    return this.pos % this.batchesPerEpoch;
  }

  /** Global step of the next batch: epoch * batchesPerEpoch + index. */
  get step(): number {
    return this.pos;
  }

  /** The item order of an epoch (a permutation of 0..size-1, or the identity without shuffle). */
  order(epoch: number): Int32Array {
    checkCount('epoch', epoch, 0);
    if (epoch !== this.cachedEpoch) {
      this.cachedOrder = this.shuffle ? shuffledIndices(this.size, this.seed, epoch) : Int32Array.from({ length: this.size }, (_, i) => i);
      this.cachedEpoch = epoch;
    }
    return this.cachedOrder;
  }

  /** The indices of global step `step` (pure: does not move the position). */
  batchAt(step: number): Int32Array {
    checkCount('step', step, 0);
    const epoch = Math.floor(step / this.batchesPerEpoch);
    const start = (step % this.batchesPerEpoch) * this.batchSize;
    return this.order(epoch).slice(start, Math.min(start + this.batchSize, this.size));
  }

  /** The next batch's indices; moves to the following batch (into the next epoch at the end of one). */
  next(): Int32Array {
    const b = this.batchAt(this.pos);
    this.pos++;
    return b;
  }

  /** The batches left in the current epoch, each taken with next(). */
  *restOfEpoch(): IterableIterator<Int32Array> {
    const epoch = this.epoch;
    while (this.epoch === epoch) yield this.next();
  }

  /** Move to global step `step` (the batch next() returns next). */
  seek(step: number): void {
    checkCount('step', step, 0);
    this.pos = step;
  }

  /** The position (the next batch to be returned) and the configuration, as plain JSON-able data. */
  state(): BatcherState {
    return { epoch: this.epoch, index: this.index, size: this.size, batchSize: this.batchSize, seed: this.seed, shuffle: this.shuffle, dropLast: this.dropLast };
  }

  /** Resume at a saved position; the configuration must match this batcher's. */
  restore(state: BatcherState): void {
    const mine = this.state();
    for (const key of ['size', 'batchSize', 'seed', 'shuffle', 'dropLast'] as const) {
      if (state[key] !== mine[key]) {
        throw new ArgumentError(`Batcher.restore: the state was saved with ${key} = ${String(state[key])}, this batcher has ${String(mine[key])}`);
      }
    }
    checkCount('state.epoch', state.epoch, 0);
    checkCount('state.index', state.index, 0);
    if (state.index >= this.batchesPerEpoch) {
      throw new ArgumentError(`Batcher.restore: state.index ${state.index} is past the ${this.batchesPerEpoch} batches of an epoch`);
    }
    this.pos = state.epoch * this.batchesPerEpoch + state.index;
  }
}

export interface PrefetchOptions {
  /** First step produced (default 0). */
  start?: number;
  /** Stop before this step (default: never; end the loop with break). */
  end?: number;
  /** How many steps ahead of the consumer to produce (default 1: batch k+1 while k is used). */
  depth?: number;
}

/**
 * An async iterator over produce(start), produce(start + 1), ... that starts producing up to
 * `depth` steps ahead. Production runs on setImmediate, i.e. whenever the consumer yields to the
 * event loop (see the top of this file for what that does and does not overlap). An error thrown
 * by produce(k) is raised when step k is consumed. `break` (or return()) stops further production.
 */
export function prefetched<T>(produce: (step: number) => T | Promise<T>, opts: PrefetchOptions = {}): AsyncIterableIterator<{ step: number; value: T }> {
  const start = opts.start ?? 0;
  const end = opts.end ?? Infinity;
  const depth = opts.depth ?? 1;
  checkCount('prefetch start', start, 0);
  if (!(end >= start)) throw new ArgumentError(`prefetched: end ${end} is before start ${start}`);
  checkCount('prefetch depth', depth, 0);
  const queue: { step: number; value: Promise<T> }[] = [];
  let nextToSchedule = start;
  let stopped = false;
  const schedule = (target: number): void => {
    while (!stopped && queue.length < target && nextToSchedule < end) {
      const step = nextToSchedule++;
      const value = new Promise<T>((resolve, reject) => {
        setImmediate(() => {
          if (stopped) return reject(new Error('prefetched: stopped'));
          try {
            resolve(produce(step));
          } catch (e) {
            reject(e);
          }
        });
      });
      value.catch(() => undefined); // raised when consumed; never an unhandled rejection
      queue.push({ step, value });
    }
  };
  const iterator: AsyncIterableIterator<{ step: number; value: T }> = {
    async next(): Promise<IteratorResult<{ step: number; value: T }>> {
      schedule(1);
      const head = queue.shift();
      if (head === undefined) return { done: true, value: undefined };
      schedule(depth); // keep `depth` steps in flight while this one is consumed
      return { done: false, value: { step: head.step, value: await head.value } };
    },
    async return(): Promise<IteratorResult<{ step: number; value: T }>> {
      stopped = true;
      queue.length = 0;
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
