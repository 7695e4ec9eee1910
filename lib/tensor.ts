// Tensor: a typed, strided view of native memory. Shape, strides and offset live here; the
// elements live in a native Storage shared by a tensor and all its views. A tensor is
// disposed explicitly with dispose() (or by an enclosing scope()); using it afterwards throws.
//
// Operations are attached to the prototype by lib/tensor_methods.ts (so `a.add(b)` and
// `add(a, b)` are the same op, PyTorch-style); this file only holds what a tensor *is*.

import { runKernel } from './backend';
import { AnyTypedArray, Device, DType, dtypeSize, typedArrayFor } from './dtype';
import { DisposedError, ArgumentError } from './errors';
import { track } from './scope';
import { contiguousStrides, fmtShape, numelOf, Shape } from './shape';
import { StorageRef } from './storage';

/** A node of the autograd graph: the op that produced a tensor and how to send gradients back. */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Gradients w.r.t. each input (null where an input needs none), given the output's gradient. */
  backward(grad: Tensor): (Tensor | null)[];
  /**
   * Optional, for single-input ops whose gradient is mostly zeros (slice): add the gradient
   * w.r.t. the input into `into` (shaped like the input, any dense strides) instead of
   * materialising it. The engine then gathers, e.g., the q, k and v slices of a fused qkv
   * projection into one buffer rather than three zero-padded ones and their sums.
   */
  addInto?(grad: Tensor, into: Tensor): void;
}

export type NestedArray = number | NestedArray[];

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly storage: StorageRef;
  readonly dtype: DType;
  readonly device: Device;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  /** Optional name used in error messages and debugging (e.g. a parameter's path). */
  name: string | undefined;
  private disposed = false;

  /** Internal: wrap (part of) a storage. The storage reference passes to the tensor. */
  constructor(storage: StorageRef, dtype: DType, device: Device, shape: Shape, strides: Shape, offset: number) {
    this.storage = storage;
    this.dtype = dtype;
    this.device = device;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.offset = offset;
    track(this);
  }

  /**
   * A new contiguous tensor, zero-filled. `uninitialized` skips the fill: only for an op's
   * output that its kernel overwrites entirely (saves a full pass over memory).
   */
  static empty(shape: Shape, dtype: DType, device: Device, uninitialized = false): Tensor {
    const n = numelOf(shape);
    const storage = new StorageRef(n * dtypeSize[dtype], device, !uninitialized);
    return new Tensor(storage, dtype, device, shape, contiguousStrides(shape), 0);
  }

  /** A view sharing this tensor's storage (no autograd; see lib/ops/view.ts for the op). */
  viewOf(shape: Shape, strides: Shape, offset: number): Tensor {
    this.assertAlive('view');
    return new Tensor(this.storage.retain(), this.dtype, this.device, shape, strides, offset);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get numel(): number {
    return numelOf(this.shape);
  }

  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    const d = dim < 0 ? dim + this.ndim : dim;
    if (d < 0 || d >= this.ndim) throw new ArgumentError(`size: dim ${dim} out of range for shape ${fmtShape(this.shape)}`);
    return this.shape[d];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** True for a tensor no op produced (a parameter or input), as in PyTorch. */
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  isContiguous(): boolean {
    let expected = 1;
    for (let i = this.ndim - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expected) return false;
      expected *= this.shape[i];
    }
    return true;
  }

  /** Free this tensor's reference to its storage (and its gradient). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    // gradFn stays: a backward pass that reaches this tensor must fail on its freed memory
    // rather than silently treat it as a leaf.
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}${this.dtype}${fmtShape(this.shape)}${this.device === 'cpu' ? '' : '@' + this.device}`;
  }

  /** Throw a clear error if this tensor has been disposed. `op` names the caller. */
  assertAlive(op: string, role = 'tensor'): void {
    if (this.disposed || this.storage.native.freed)
      throw new DisposedError(`${op}: ${role} ${this.describe()} has been disposed`);
  }

  /** Elements in row-major order as a new typed array (a copy; works for any strides and device). */
  toTypedArray(): AnyTypedArray {
    this.assertAlive('toTypedArray');
    const bytes = dtypeSize[this.dtype];
    // A contiguous tensor is read straight from its storage (one memcpy, from either device);
    // anything else is first gathered into a contiguous copy on its own device.
    const src = this.isContiguous() ? this : copyToContiguous(this);
    const data = src.storage.native.read(src.offset * bytes, this.numel * bytes);
    if (src !== this) src.dispose();
    return typedArrayFor(this.dtype, data);
  }

  /** Elements as nested JS arrays (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const flat = this.toTypedArray();
    if (this.ndim === 0) return flat[0];
    const build = (dim: number, start: number): NestedArray[] => {
      const out: NestedArray[] = [];
      const step = numelOf(this.shape.slice(dim + 1));
      for (let i = 0; i < this.shape[dim]; i++) {
        out.push(dim === this.ndim - 1 ? flat[start + i] : build(dim + 1, start + i * step));
      }
      return out;
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new ArgumentError(`item: expected a tensor with one element, got ${this.describe()}`);
    return this.toTypedArray()[0];
  }

  toString(): string {
    const body = this.numel <= 64 ? JSON.stringify(this.toArray()) : `${this.numel} elements`;
    return `Tensor(${this.describe()}${this.requiresGrad ? ', requiresGrad' : ''}: ${body})`;
  }
}

function copyToContiguous(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype, t.device, true);
  runKernel('copy', [t, out]);
  return out;
}
