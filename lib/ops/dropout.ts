// dropout(x, p, training): zero each element with probability p and scale the survivors by
// 1 / (1 - p), so the expectation is unchanged (torch.nn.functional.dropout).
//
// The mask comes from the global Philox stream (lib/random.ts): the op reserves numel counters
// and builds mask = (u >= p) / (1 - p) from the native 'rand' kernel, in place ('ge' then
// 'affine' over the same buffer). The mask is not kept for backward: the rule regenerates it
// from the saved (seed, offset), which gives the identical mask (the generator is counter-based)
// and keeps no tensor alive between forward and backward, so nothing can be disposed under it.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { Device, DType } from '../dtype';
import { ArgumentError } from '../errors';
import { takeCounters } from '../random';
import { Shape } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkTensor, describeValue } from './operand';

/** (u >= p) / (1 - p) for u uniform in [0, 1) from counters [offset, offset + numel) of `seed`. */
function dropoutMask(shape: Shape, dtype: DType, device: Device, seed: number, offset: number, p: number): Tensor {
  const mask = Tensor.empty(shape, dtype, device);
  runKernel('rand', [mask], [seed, offset, 0, 1]);
  const threshold = Tensor.empty([], dtype, device);
  runKernel('fill', [threshold], [p]);
  const tv = threshold.viewOf(shape, shape.map(() => 0), threshold.offset);
  runKernel('ge', [mask, tv, mask]);
  tv.dispose();
  threshold.dispose();
  runKernel('affine', [mask, mask], [1 / (1 - p), 0]);
  return mask;
}

/**
 * Randomly zero elements of x with probability p during training, scaling the rest by
 * 1 / (1 - p). p = 0 or training = false returns x itself; p = 1 gives zeros. Reproducible
 * under manualSeed.
 */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  const op = 'dropout';
  checkTensor(x, op, 'x');
  checkFloat(x, op, 'x');
  if (typeof p !== 'number' || !(p >= 0 && p <= 1))
    throw new ArgumentError(`${op}: p must be a probability in [0, 1], got ${typeof p === 'number' ? p : describeValue(p)} (for x ${x.describe()})`);
  if (typeof training !== 'boolean') throw new ArgumentError(`${op}: training must be a boolean, got ${describeValue(training)}`);
  if (!training || p === 0) return x;
  if (p === 1) {
    const zeros = Tensor.empty(x.shape, x.dtype, x.device);
    return record(zeros, op, [x], (g) => [Tensor.empty(x.shape, g.dtype, g.device)]);
  }
  const [seed, offset] = takeCounters(x.numel);
  const mask = dropoutMask(x.shape, x.dtype, x.device, seed, offset, p);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  runKernel('mul', [x, mask, out]);
  mask.dispose();
  return record(out, op, [x], (g) => {
    const m = dropoutMask(x.shape, x.dtype, x.device, seed, offset, p);
    const gx = Tensor.empty(x.shape, g.dtype, g.device);
    runKernel('mul', [g, m, gx]);
    m.dispose();
    return [gx];
  });
}
