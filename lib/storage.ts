// A reference-counted handle on one native Storage. Every Tensor (a base tensor and each of its
// views) holds one reference; the native memory is freed when the last of them is disposed.
// If tensors are dropped without dispose(), a FinalizationRegistry frees the memory when V8
// collects the storage (lib/backend.ts): a safety net, not the way to manage memory in a loop.

import { allocStorage, NativeStorage } from './backend';
import { Device, deviceCode } from './dtype';

export class StorageRef {
  readonly native: NativeStorage;
  private refs = 1;

  /** `zero = false` skips the zero fill, for outputs a kernel is about to overwrite entirely. */
  constructor(nbytes: number, device: Device, zero = true) {
    this.native = allocStorage(nbytes, deviceCode[device], zero);
  }

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (this.refs <= 0) return;
    this.refs--;
    if (this.refs === 0) this.native.free();
  }

  get refCount(): number {
    return this.refs;
  }
}
