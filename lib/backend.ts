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
  /** The native handle ops receive instead of the object (HandleStorage); absent on addon.Storage. */
  readonly handle?: number;
}

export type NativeOp = (storages: (NativeStorage | number)[], layout: Float64Array, scalars: Float64Array) => void;

export interface MemoryStats {
  hostBytes: number;
  hostBlocks: number;
  hostPeakBytes: number;
  deviceBytes: number;
  deviceBlocks: number;
  /** Freed host blocks the allocator keeps for reuse (not counted in hostBytes); emptyCache() frees them. */
  hostCachedBytes?: number;
  /** Freed device blocks the caching allocator keeps for reuse; emptyCache() frees them. */
  deviceCachedBytes?: number;
  /** Most device bytes held by tensors at once since start (0 without CUDA). */
  devicePeakBytes?: number;
}

export interface CudaInfo {
  compiled: boolean;
  deviceCount: number;
  deviceNames: string[];
  error: string;
}

interface Addon {
  Storage: new (nbytes: number, device: number, zero?: boolean) => NativeStorage;
  storageNew?(nbytes: number, device: number, zero: boolean): number;
  storageFree(handle: number): void;
  storageRead(handle: number, byteOffset: number, byteLength: number): ArrayBuffer;
  storageWrite(handle: number, byteOffset: number, data: ArrayBufferView): void;
  emptyCache?(): void;
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

// Safety net for storages whose tensors were dropped without dispose(): freed when collected.
const unreleased = new FinalizationRegistry<number>((handle) => addon.storageFree(handle));

/**
 * A storage held as a native handle (a number; see "Storage handles" in native/napi/addon.cpp).
 * free() releases the native memory and its bookkeeping at once, so a synchronous training loop
 * leaves nothing behind per tensor (an addon.Storage object's C++ half waits for its finalizer,
 * which Node runs only from the event loop).
 */
class HandleStorage implements NativeStorage {
  readonly handle: number;
  readonly nbytes: number;
  readonly device: number;
  private released = false;

  constructor(nbytes: number, device: number, zero: boolean) {
    this.handle = addon.storageNew!(nbytes, device, zero);
    this.nbytes = nbytes;
    this.device = device;
    unreleased.register(this, this.handle, this);
  }

  free(): void {
    if (this.released) return;
    this.released = true;
    unreleased.unregister(this);
    addon.storageFree(this.handle);
  }

  get freed(): boolean {
    return this.released;
  }

  read(byteOffset: number, byteLength: number): ArrayBuffer {
    return addon.storageRead(this.handle, byteOffset, byteLength);
  }

  write(byteOffset: number, data: ArrayBufferView): void {
    addon.storageWrite(this.handle, byteOffset, data);
  }
}

/** New native memory on device code `device`, zero-filled unless `zero` is false. */
export function allocStorage(nbytes: number, device: number, zero = true): NativeStorage {
  // (An addon built before storage handles existed still works, through addon.Storage objects.)
  return addon.storageNew ? new HandleStorage(nbytes, device, zero) : new addon.Storage(nbytes, device, zero);
}

/** Return the host blocks the allocator keeps for reuse to the system (see memoryStats().hostCachedBytes). */
export function emptyCache(): void {
  addon.emptyCache?.();
}

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
  const storages: (NativeStorage | number)[] = new Array(tensors.length);
  let p = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    if (t.isDisposed) throw new Error(`${name}: tensor argument ${i} (${t.describe ? t.describe() : '?'}) has been disposed`);
    const native = t.storage.native;
    storages[i] = native.handle ?? native;
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
