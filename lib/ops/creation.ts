// Creating tensors: from JS data, constant fills, ranges and the seeded random generator.

import { runKernel, defaultDevice } from '../backend';
import { AnyTypedArray, Device, DType, isDevice, isDType, isFloat } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { takeCounters } from '../random';
import { checkShape, fmtShape, numelOf, Shape } from '../shape';
import { NestedArray, Tensor } from '../tensor';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function resolve(opts: CreateOptions | undefined, op: string, fallback: DType = 'float32'): { dtype: DType; device: Device } {
  const dtype = opts?.dtype ?? fallback;
  const device = opts?.device ?? defaultDevice();
  if (!isDType(dtype)) throw new DTypeError(`${op}: unknown dtype ${String(dtype)} (expected float32, float64 or int32)`);
  if (!isDevice(device)) throw new DTypeError(`${op}: unknown device ${String(device)} (expected cpu or cuda)`);
  return { dtype, device };
}

function finish(t: Tensor, opts: CreateOptions | undefined, op: string): Tensor {
  if (opts?.requiresGrad) {
    if (!isFloat(t.dtype)) throw new DTypeError(`${op}: only float tensors can require grad, got ${t.describe()}`);
    t.requiresGrad = true;
  }
  return t;
}

function dtypeOfTyped(data: AnyTypedArray): DType {
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  return 'float32';
}

/** Infer the shape of nested arrays, checking they are rectangular and numeric. */
function inferShape(data: NestedArray, op: string): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  const flatLen = numelOf(shape);
  const check = (x: NestedArray, dim: number): void => {
    if (dim === shape.length) {
      if (typeof x !== 'number') throw new ArgumentError(`${op}: expected a number at depth ${dim}, got ${typeof x}`);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim])
      throw new ShapeError(`${op}: nested arrays are not rectangular (expected length ${shape[dim]} at depth ${dim}, shape ${fmtShape(shape)})`);
    for (const y of x) check(y, dim + 1);
  };
  check(data, 0);
  void flatLen;
  return shape;
}

/**
 * A tensor from JS numbers, nested arrays or a typed array (copied). A typed array's type sets
 * the default dtype; `shape` reshapes flat data.
 */
export function tensor(data: NestedArray | AnyTypedArray, opts?: CreateOptions & { shape?: Shape }): Tensor {
  const op = 'tensor';
  let flat: ArrayLike<number>;
  let shape: number[];
  let fallback: DType = 'float32';
  if (ArrayBuffer.isView(data)) {
    if (!(data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array))
      throw new DTypeError(`${op}: typed arrays must be Float32Array, Float64Array or Int32Array, got ${(data as object).constructor.name}`);
    flat = data;
    fallback = dtypeOfTyped(data);
    shape = [data.length];
  } else if (typeof data === 'number' || Array.isArray(data)) {
    shape = inferShape(data, op);
    flat = typeof data === 'number' ? [data] : (data as unknown[]).flat(Infinity as 1) as number[];
  } else {
    throw new ArgumentError(`${op}: data must be a number, nested arrays of numbers or a typed array, got ${typeof data}`);
  }
  if (opts?.shape) {
    const target = checkShape(opts.shape, op);
    if (numelOf(target) !== flat.length) throw new ShapeError(`${op}: ${flat.length} values do not fill shape ${fmtShape(target)}`);
    shape = target;
  }
  const { dtype, device } = resolve(opts, op, fallback);
  checkShape(shape, op);
  let typed: AnyTypedArray;
  if (dtype === 'float32') typed = flat instanceof Float32Array ? flat : Float32Array.from(flat);
  else if (dtype === 'float64') typed = flat instanceof Float64Array ? flat : Float64Array.from(flat);
  else {
    typed = flat instanceof Int32Array ? flat : Int32Array.from(flat);
    for (let i = 0; i < flat.length; i++)
      if (!Number.isInteger(flat[i]) || flat[i] < -(2 ** 31) || flat[i] >= 2 ** 31)
        throw new ArgumentError(`${op}: int32 tensor got ${flat[i]} at flat index ${i}`);
  }
  const t = Tensor.empty(shape, dtype, device);
  if (typed.length) t.storage.native.write(0, typed);
  return finish(t, opts, op);
}

export function empty(shape: Shape, opts?: CreateOptions): Tensor {
  const { dtype, device } = resolve(opts, 'empty');
  return finish(Tensor.empty(checkShape(shape, 'empty'), dtype, device), opts, 'empty');
}

function filled(shape: Shape, value: number, opts: CreateOptions | undefined, op: string): Tensor {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new ArgumentError(`${op}: value must be a number (not NaN), got ${String(value)}`);
  const { dtype, device } = resolve(opts, op);
  const t = Tensor.empty(checkShape(shape, op), dtype, device);
  if (value !== 0) runKernel('fill', [t], [value]);
  return finish(t, opts, op);
}

export function full(shape: Shape, value: number, opts?: CreateOptions): Tensor {
  return filled(shape, value, opts, 'full');
}

export function zeros(shape: Shape, opts?: CreateOptions): Tensor {
  return filled(shape, 0, opts, 'zeros');
}

export function ones(shape: Shape, opts?: CreateOptions): Tensor {
  return filled(shape, 1, opts, 'ones');
}

export function zerosLike(t: Tensor, opts?: CreateOptions): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device, ...opts });
}

export function onesLike(t: Tensor, opts?: CreateOptions): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device, ...opts });
}

export function fullLike(t: Tensor, value: number, opts?: CreateOptions): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...opts });
}

/** Values start, start+step, ... below end (like torch.arange); one argument means [0, end). */
export function arange(start: number, end?: number, step = 1, opts?: CreateOptions): Tensor {
  if (end === undefined) [start, end] = [0, start];
  for (const [k, v] of [['start', start], ['end', end], ['step', step]] as const)
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`arange: ${k} must be a finite number, got ${String(v)}`);
  if (step === 0) throw new ArgumentError('arange: step must not be zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const allInts = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const { dtype, device } = resolve(opts, 'arange', allInts ? 'int32' : 'float32');
  const t = Tensor.empty(checkShape([n], 'arange'), dtype, device);
  runKernel('arange', [t], [start, step]); // CPU and CUDA kernels (native/{cpu,cuda})
  return finish(t, opts, 'arange');
}

/** Uniform samples in [low, high) from the seeded generator (see manualSeed). */
export function rand(shape: Shape, opts?: CreateOptions & { low?: number; high?: number }): Tensor {
  const low = opts?.low ?? 0;
  const high = opts?.high ?? 1;
  if (!Number.isFinite(low) || !Number.isFinite(high) || low > high)
    throw new ArgumentError(`rand: need finite low <= high, got low=${low}, high=${high}`);
  const { dtype, device } = resolve(opts, 'rand');
  if (!isFloat(dtype)) throw new DTypeError(`rand: dtype must be float32 or float64, got ${dtype}`);
  const t = Tensor.empty(checkShape(shape, 'rand'), dtype, device);
  const [seed, offset] = takeCounters(t.numel);
  runKernel('rand', [t], [seed, offset, low, high]);
  return finish(t, opts, 'rand');
}

/** Normal samples (mean 0, std 1 unless given) from the seeded generator. */
export function randn(shape: Shape, opts?: CreateOptions & { mean?: number; std?: number }): Tensor {
  const mean = opts?.mean ?? 0;
  const std = opts?.std ?? 1;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0)
    throw new ArgumentError(`randn: need finite mean and std >= 0, got mean=${mean}, std=${std}`);
  const { dtype, device } = resolve(opts, 'randn');
  if (!isFloat(dtype)) throw new DTypeError(`randn: dtype must be float32 or float64, got ${dtype}`);
  const t = Tensor.empty(checkShape(shape, 'randn'), dtype, device);
  const [seed, offset] = takeCounters(t.numel);
  runKernel('randn', [t], [seed, offset, mean, std]);
  return finish(t, opts, 'randn');
}
