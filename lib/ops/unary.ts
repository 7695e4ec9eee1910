// Unary math and activations. Each forward is one native kernel; each backward is one fused
// native kernel (see native/cpu/unary.cpp) reading the saved input and/or output.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import { checkFloat, checkTensor } from './operand';

function unary(name: string, x: Tensor, scalars: number[] = [], differentiable = true): Tensor {
  checkTensor(x, name, 'x');
  checkFloat(x, name, 'x');
  const out = Tensor.empty(x.shape, x.dtype, x.device, true);
  runKernel(name, [x, out], scalars);
  if (!differentiable) return out;
  return record(out, name, [x], (g) => {
    const gx = Tensor.empty(x.shape, x.dtype, x.device, true);
    runKernel(`${name}_backward`, [x, out, g, gx], scalars);
    return [gx];
  });
}

export function neg(x: Tensor): Tensor {
  checkTensor(x, 'neg', 'x');
  checkFloat(x, 'neg', 'x');
  const out = Tensor.empty(x.shape, x.dtype, x.device, true);
  runKernel('neg', [x, out]);
  return record(out, 'neg', [x], (g) => [neg(g)]);
}

/** scale * x + shift in one pass (how tensor-by-number mul/add are best done). */
export function affine(x: Tensor, scale: number, shift = 0): Tensor {
  checkTensor(x, 'affine', 'x');
  checkFloat(x, 'affine', 'x');
  if (!Number.isFinite(scale) || !Number.isFinite(shift)) throw new ArgumentError(`affine: scale and shift must be finite, got ${scale}, ${shift}`);
  const out = Tensor.empty(x.shape, x.dtype, x.device, true);
  runKernel('affine', [x, out], [scale, shift]);
  return record(out, 'affine', [x], (g) => [affine(g, scale, 0)]);
}

export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const logsigmoid = (x: Tensor): Tensor => unary('logsigmoid', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);

/** GELU; approximate 'none' is the exact erf form, 'tanh' the tanh approximation (as PyTorch). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh') throw new ArgumentError(`gelu: approximate must be 'none' or 'tanh', got ${String(approximate)}`);
  return unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

/** log(1 + exp(beta x)) / beta, linear where beta x > threshold (as torch.nn.functional.softplus). */
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  if (!(beta > 0) || !Number.isFinite(beta)) throw new ArgumentError(`softplus: beta must be a positive number, got ${beta}`);
  if (Number.isNaN(threshold)) throw new ArgumentError('softplus: threshold must be a number');
  return unary('softplus', x, [beta, threshold]);
}

/** Clamp to [min, max]; either bound may be omitted. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  if (min === undefined && max === undefined) throw new ArgumentError('clamp: at least one of min and max must be given');
  if ((min !== undefined && Number.isNaN(min)) || (max !== undefined && Number.isNaN(max)))
    throw new ArgumentError(`clamp: bounds must not be NaN, got min=${min}, max=${max}`);
  if (min !== undefined && max !== undefined && min > max) throw new ArgumentError(`clamp: min ${min} is greater than max ${max}`);
  return unary('clamp', x, [min ?? NaN, max ?? NaN]);
}
