// Loads the native addon (built by cmake-js at `npm install`) and dispatches ops to it.
// Set TESSERA_ADDON to a .node path to load a specific build (for example a portable build
// carried to another machine); otherwise `bindings` finds build/Release/tessera.node.

import * as path from 'path';
import bindings from 'bindings';
import { Device, DType, deviceCode, dtypeCode } from './dtype';

export interface NativeStorage {
  free(): void;
  read(byteOffset: number, byteLength: number): ArrayBuffer;
  write(byteOffset: number, data: ArrayBufferView): void;
  readonly nbytes: number;
  readonly device: number;
  readonly freed: boolean;
}

export type NativeOp = (storages: NativeStorage[], layout: Float64Array, scalars: Float64Array) => void;

export interface MemoryStats {
  hostBytes: number;
  hostBlocks: number;
  hostPeakBytes: number;
  deviceBytes: number;
  deviceBlocks: number;
}

export interface CudaInfo {
  compiled: boolean;
  deviceCount: number;
  deviceNames: string[];
  error: string;
}

interface Addon {
  Storage: new (nbytes: number, device: number, zero?: boolean) => NativeStorage;
  ops: Record<string, NativeOp>;
  memoryStats(): MemoryStats;
  cudaInfo(): CudaInfo;
  cudaSynchronize(): void;
  cpuInfo(): { threads: number; simd: string };
  setThreads(n: number): void;
}

function loadAddon(): Addon {
  const explicit = process.env.TESSERA_ADDON;
  if (explicit) return require(path.resolve(explicit)) as Addon;
  return bindings({ bindings: 'tessera', module_root: path.resolve(__dirname, '..', '..') }) as Addon;
}

export const addon: Addon = loadAddon();

/** A tensor's layout as the native side reads it; Tensor satisfies this. */
export interface LayoutLike {
  readonly storage: { readonly native: NativeStorage };
  readonly dtype: DType;
  readonly device: Device;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly isDisposed?: boolean;
  describe?(): string;
}

const noScalars = new Float64Array(0);

/** Run native op `name` on the given tensors (inputs, then pre-allocated outputs) and scalars. */
export function runKernel(name: string, tensors: readonly LayoutLike[], scalars: readonly number[] = []): void {
  const fn = addon.ops[name];
  if (!fn) throw new Error(`tessera: no native op named '${name}' (the addon may be out of date: run npm install)`);
  let len = 0;
  for (const t of tensors) len += 4 + 2 * t.shape.length;
  const layout = new Float64Array(len);
  const storages: NativeStorage[] = new Array(tensors.length);
  let p = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    if (t.isDisposed) throw new Error(`${name}: tensor argument ${i} (${t.describe ? t.describe() : '?'}) has been disposed`);
    storages[i] = t.storage.native;
    layout[p++] = dtypeCode[t.dtype];
    layout[p++] = deviceCode[t.device];
    layout[p++] = t.offset;
    layout[p++] = t.shape.length;
    for (const s of t.shape) layout[p++] = s;
    for (const s of t.strides) layout[p++] = s;
  }
  fn(storages, layout, scalars.length ? Float64Array.from(scalars) : noScalars);
}

/** Native memory in use (host and device bytes and blocks, host peak). */
export function memoryStats(): MemoryStats {
  return addon.memoryStats();
}

export function cudaInfo(): CudaInfo {
  return addon.cudaInfo();
}

export function cudaAvailable(): boolean {
  return addon.cudaInfo().deviceCount > 0;
}

export function cpuInfo(): { threads: number; simd: string } {
  return addon.cpuInfo();
}

/** Threads the CPU kernels use (default: OMP_NUM_THREADS or the number of cores). */
export function setNumThreads(n: number): void {
  addon.setThreads(n);
}

/** Where new tensors go when no device is given: TESSERA_DEVICE, else the CPU. */
export function defaultDevice(): Device {
  const env = process.env.TESSERA_DEVICE;
  if (env === 'cuda') return 'cuda';
  return 'cpu';
}
