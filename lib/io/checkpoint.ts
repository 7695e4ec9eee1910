// Training checkpoints: everything needed to resume a run, in ONE safetensors file.
//
// Why it is shaped this way:
// - One file, written by saveSafetensors, inherits its atomicity: a crash mid-save leaves the
//   previous checkpoint intact, and there is never a model file from step N beside an optimizer
//   file from step N-1.
// - Tensors are stored under "model.<state-dict name>" and "optim.<optimizer state name>", so the
//   model half is a plain PyTorch-style state dict behind a prefix (readable by any safetensors
//   tool); everything that is not a tensor (step, RNG stream, optimizer hyper-parameters, user
//   extras) is JSON in the string metadata, next to format "tessera-checkpoint/1" so a file that
//   is not a tessera checkpoint is refused before any tensor is read.
// - Non-tensor state is serialized strictly: NaN, Infinity, undefined, functions, class instances
//   and bigints are refused with the path to the offending value, because JSON.stringify would
//   silently turn them into null or drop them and the run would resume with different settings.
// - The optimizer side is an interface, not a class: any optimizer with stateDict()/loadStateDict()
//   (and optionally hyperState()/loadHyperState()) can be checkpointed.
// - restoreCheckpoint validates before it changes anything it can: the whole file and its
//   metadata, then the model's strict loadStateDict (which itself checks every key and shape
//   before copying), then the optimizer, and only then the RNG stream.

import { Device } from '../dtype';
import { ArgumentError } from '../errors';
import { StateDictError, Module } from '../nn/module';
import { getRngState, setRngState } from '../random';
import { Tensor } from '../tensor';
import { CheckpointError } from './errors';
import { loadSafetensorsChecked, saveSafetensors } from './safetensors';

export const CHECKPOINT_FORMAT = 'tessera-checkpoint/1';
const MODEL_PREFIX = 'model.';
const OPTIM_PREFIX = 'optim.';

/**
 * What restoreCheckpoint needs from an optimizer. loadStateDict receives tensors that are
 * disposed when it returns: it must copy them (as Module.loadStateDict does), not keep them.
 */
export interface CheckpointOptimizer {
  stateDict(): Map<string, Tensor>;
  loadStateDict(m: Map<string, Tensor>): void;
  /** Non-tensor state (learning rate, betas, step counts...), JSON-serializable. */
  hyperState?(): Record<string, unknown>;
  loadHyperState?(h: Record<string, unknown>): void;
}

/** What saveCheckpoint needs: the state tensors and, optionally, the non-tensor state. */
export interface SaveableOptimizer {
  stateDict(): Map<string, Tensor>;
  hyperState?(): Record<string, unknown>;
  /** Used when there is no hyperState(). */
  hyper?: Record<string, unknown>;
}

export interface CheckpointState {
  model: Module;
  optimizer?: SaveableOptimizer | null;
  /** The training step, a non-negative integer. */
  step: number;
  /** Anything else to keep (epoch, config...), JSON-serializable. */
  extra?: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  /** The model's state dict (names without the "model." prefix). */
  model: Map<string, Tensor>;
  /** The optimizer's state tensors (names without the "optim." prefix). */
  optim: Map<string, Tensor>;
  step: number;
  rng: { seed: number; offset: number };
  /** The optimizer's non-tensor state; null if the checkpoint was saved without an optimizer. */
  optimizerHyper: Record<string, unknown> | null;
  extra: Record<string, unknown>;
}

/** JSON.stringify, refusing anything that would not come back as it went in. */
function strictJson(value: unknown, what: string): string {
  const check = (v: unknown, at: string, seen: Set<object>): void => {
    const where = `${what}${at}`;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ArgumentError(`saveCheckpoint: ${where} is ${v}; only finite numbers survive JSON`);
      return;
    }
    if (typeof v !== 'object') throw new ArgumentError(`saveCheckpoint: ${where} is ${v === undefined ? 'undefined' : `a ${typeof v}`}, which JSON cannot hold`);
    if (seen.has(v)) throw new ArgumentError(`saveCheckpoint: ${where} is a circular reference`);
    seen.add(v);
    if (Array.isArray(v)) v.forEach((x, i) => check(x, `${at}[${i}]`, seen));
    else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      for (const [k, x] of Object.entries(v)) check(x, `${at}.${k}`, seen);
    } else throw new ArgumentError(`saveCheckpoint: ${where} is a ${(v as object).constructor?.name ?? 'non-plain object'}; only plain objects, arrays, strings, finite numbers, booleans and null can be saved`);
    seen.delete(v);
  };
  check(value, '', new Set());
  return JSON.stringify(value);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Save a model (its parameters and buffers), optionally an optimizer, the step, the global RNG
 * state and `extra` to one safetensors file, atomically.
 */
export function saveCheckpoint(file: string, state: CheckpointState): void {
  const op = 'saveCheckpoint';
  if (!state || !(state.model instanceof Module)) throw new ArgumentError(`${op}: state.model must be a Module`);
  if (!Number.isSafeInteger(state.step) || state.step < 0) throw new ArgumentError(`${op}: step must be a non-negative integer, got ${String(state.step)}`);
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of state.model.stateDict()) tensors.set(MODEL_PREFIX + k, t);
  const opt = state.optimizer ?? null;
  let hyper: Record<string, unknown> | null = null;
  if (opt) {
    if (typeof opt.stateDict !== 'function') throw new ArgumentError(`${op}: optimizer must have a stateDict() method`);
    for (const [k, t] of opt.stateDict()) tensors.set(OPTIM_PREFIX + k, t);
    hyper = opt.hyperState ? opt.hyperState() : (opt.hyper ?? {});
    if (!isPlainObject(hyper)) throw new ArgumentError(`${op}: the optimizer's hyper-state must be a plain object`);
  }
  const extra = state.extra ?? {};
  if (!isPlainObject(extra)) throw new ArgumentError(`${op}: extra must be a plain object`);
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    step: JSON.stringify(state.step),
    rng: JSON.stringify(getRngState()),
    optimizer: strictJson(hyper, 'optimizer hyper-state'),
    extra: strictJson(extra, 'extra'),
  };
  saveSafetensors(file, tensors, { metadata });
}

function parseMeta(md: Record<string, string>, key: string, file: string): unknown {
  const raw = md[key];
  if (raw === undefined) throw new CheckpointError(file, `checkpoint metadata has no '${key}' entry`);
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new CheckpointError(file, `checkpoint metadata '${key}' is not valid JSON: ${JSON.stringify(raw.slice(0, 60))}`, e);
  }
}

/** Read and check the non-tensor part of a checkpoint's metadata. */
function readMeta(md: Record<string, string>, file: string): Omit<LoadedCheckpoint, 'model' | 'optim'> {
  if (md.format !== CHECKPOINT_FORMAT) {
    const got = md.format === undefined ? 'no format tag' : `format ${JSON.stringify(md.format)}`;
    throw new CheckpointError(file, `not a tessera checkpoint: expected format "${CHECKPOINT_FORMAT}" in the metadata, found ${got}`);
  }
  const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const step = parseMeta(md, 'step', file);
  if (!isCount(step)) throw new CheckpointError(file, `checkpoint step must be a non-negative integer, got ${md.step}`);
  const rng = parseMeta(md, 'rng', file);
  if (!isPlainObject(rng) || !isCount(rng.seed) || !isCount(rng.offset))
    throw new CheckpointError(file, `checkpoint rng must be {"seed": n, "offset": n} with non-negative integers, got ${md.rng}`);
  const optimizerHyper = parseMeta(md, 'optimizer', file);
  if (optimizerHyper !== null && !isPlainObject(optimizerHyper)) throw new CheckpointError(file, `checkpoint optimizer state must be an object or null, got ${md.optimizer}`);
  const extra = parseMeta(md, 'extra', file);
  if (!isPlainObject(extra)) throw new CheckpointError(file, `checkpoint extra must be an object, got ${md.extra}`);
  return { step, rng: { seed: rng.seed, offset: rng.offset }, optimizerHyper, extra };
}

/** Load a checkpoint's tensors and state (the caller owns, and should dispose, the tensors). */
export function loadCheckpoint(file: string, opts?: { device?: Device }): LoadedCheckpoint {
  let meta = null as Omit<LoadedCheckpoint, 'model' | 'optim'> | null;
  const loaded = loadSafetensorsChecked(file, opts, 'loadCheckpoint', (header) => {
    const m = readMeta(header.metadata, file);
    meta = m;
    for (const e of header.entries) {
      if (!e.name.startsWith(MODEL_PREFIX) && !e.name.startsWith(OPTIM_PREFIX))
        throw new CheckpointError(file, `unexpected tensor '${e.name}' in a checkpoint (names start with "${MODEL_PREFIX}" or "${OPTIM_PREFIX}")`);
      if (m.optimizerHyper === null && e.name.startsWith(OPTIM_PREFIX))
        throw new CheckpointError(file, `tensor '${e.name}' is optimizer state, but the checkpoint says it was saved without an optimizer`);
    }
  });
  const model = new Map<string, Tensor>();
  const optim = new Map<string, Tensor>();
  for (const [k, t] of loaded.tensors) {
    if (k.startsWith(MODEL_PREFIX)) model.set(k.slice(MODEL_PREFIX.length), t);
    else optim.set(k.slice(OPTIM_PREFIX.length), t);
  }
  return { model, optim, ...meta! };
}

/**
 * Load a checkpoint into `model` (strictly: every key present, none unexpected, shapes equal) and,
 * if given, `optimizer`; set the global RNG stream to the saved one. Returns the saved step.
 * Tensors load onto the device of the model's first parameter or buffer unless `device` is given.
 */
export function restoreCheckpoint(file: string, model: Module, optimizer?: CheckpointOptimizer | null, opts?: { device?: Device }): number {
  if (!(model instanceof Module)) throw new ArgumentError('restoreCheckpoint: model must be a Module');
  const device = opts?.device ?? model.stateDict().values().next().value?.device ?? 'cpu';
  const ck = loadCheckpoint(file, { device });
  try {
    if (optimizer && ck.optimizerHyper === null)
      throw new CheckpointError(file, 'an optimizer was given to restore, but the checkpoint was saved without optimizer state');
    try {
      model.loadStateDict(ck.model, { strict: true });
    } catch (e) {
      if (e instanceof StateDictError) throw new StateDictError(`restoreCheckpoint ${file}: ${e.message}`);
      throw e;
    }
    if (optimizer) {
      optimizer.loadStateDict(ck.optim);
      if (optimizer.loadHyperState) optimizer.loadHyperState(ck.optimizerHyper!);
    }
    setRngState(ck.rng);
    return ck.step;
  } finally {
    for (const t of ck.model.values()) t.dispose();
    for (const t of ck.optim.values()) t.dispose();
  }
}
