// Argument handling shared by every op: liveness, dtype and device agreement, scalars as
// tensors. Each check's message names the op, the role of the tensor and what was expected.

import { Device, DType, isFloat } from '../dtype';
import { ArgumentError, DTypeError } from '../errors';
import { Tensor } from '../tensor';
import { runKernel } from '../backend';

export type TensorOrScalar = Tensor | number;

export function checkTensor(t: unknown, op: string, role: string): Tensor {
  if (!(t instanceof Tensor)) throw new ArgumentError(`${op}: ${role} must be a Tensor, got ${describeValue(t)}`);
  t.assertAlive(op, role);
  return t;
}

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return `${typeof v} ${String(v)}`;
}

export function checkFloat(t: Tensor, op: string, role: string): void {
  if (!isFloat(t.dtype)) throw new DTypeError(`${op}: ${role} must be float32 or float64, got ${t.describe()}`);
}

export function checkSameDType(a: Tensor, b: Tensor, op: string, roleA = 'a', roleB = 'b'): DType {
  if (a.dtype !== b.dtype)
    throw new DTypeError(`${op}: ${roleA} ${a.describe()} and ${roleB} ${b.describe()} must have the same dtype (convert one with .to())`);
  return a.dtype;
}

export function checkSameDevice(a: Tensor, b: Tensor, op: string, roleA = 'a', roleB = 'b'): Device {
  if (a.device !== b.device)
    throw new DTypeError(`${op}: ${roleA} ${a.describe()} and ${roleB} ${b.describe()} are on different devices`);
  return a.device;
}

export function checkNumber(x: unknown, op: string, role: string): number {
  if (typeof x !== 'number' || Number.isNaN(x)) throw new ArgumentError(`${op}: ${role} must be a number, got ${describeValue(x)}`);
  return x;
}

/** A 0-d tensor holding `value`, with `like`'s dtype and device (a binary op's scalar operand). */
export function scalarLike(value: number, like: Tensor): Tensor {
  const t = Tensor.empty([], like.dtype, like.device);
  runKernel('fill', [t], [value]);
  return t;
}

/** Resolve a pair where either side may be a JS number. */
export function operands(a: TensorOrScalar, b: TensorOrScalar, op: string): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') throw new ArgumentError(`${op}: at least one operand must be a Tensor`);
  if (typeof a === 'number') {
    const tb = checkTensor(b, op, 'b');
    return [scalarLike(checkNumber(a, op, 'a'), tb), tb];
  }
  const ta = checkTensor(a, op, 'a');
  if (typeof b === 'number') return [ta, scalarLike(checkNumber(b, op, 'b'), ta)];
  const tb = checkTensor(b, op, 'b');
  checkSameDevice(ta, tb, op);
  checkSameDType(ta, tb, op);
  return [ta, tb];
}
