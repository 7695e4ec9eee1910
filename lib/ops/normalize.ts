// normalize(x, p, dim, eps) = x / max(||x||_p, eps) along dim (torch.nn.functional.normalize).
//
// Composed from differentiable ops, so autograd derives the backward. The clamp by eps is
// applied *before* the last root where that is exact, e.g. for p = 2
//   max(sqrt(s), eps) = sqrt(max(s, eps^2)),   s = sum(x^2),
// so an all-zero slice gets a zero gradient (clamp stops it) instead of 0 * sqrt'(0) = NaN.
// p = 1 and p = Infinity use sum(|x|) and max(|x|); other p > 0 use (sum |x|^p)^(1/p) clamped
// at eps^p before the root when eps^p is a normal number, and at eps after it as well.

import { ArgumentError } from '../errors';
import { normDim } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkTensor } from './operand';
import { div, powScalar } from './binary';
import { max, sum } from './reduce';
import { abs, clamp, sqrt } from './unary';

/** x divided by its p-norm along dim, the norm clamped below at eps (F.normalize). */
export function normalize(x: Tensor, p = 2, dim = -1, eps = 1e-12): Tensor {
  const op = 'normalize';
  checkTensor(x, op, 'x');
  checkFloat(x, op, 'x');
  if (typeof p !== 'number' || !(p > 0)) throw new ArgumentError(`${op}: p must be a positive number (or Infinity), got ${String(p)} (for x ${x.describe()})`);
  if (typeof eps !== 'number' || !(eps >= 0) || !Number.isFinite(eps)) throw new ArgumentError(`${op}: eps must be a finite number >= 0, got ${String(eps)}`);
  if (x.ndim === 0) throw new ArgumentError(`${op}: x must have at least one dimension, got ${x.describe()}`);
  const d = normDim(dim, x.ndim, op);
  // Intermediates stay alive (the caller's scope owns them): the graph's backward rules need them.
  let denom: Tensor;
  if (p === 2) {
    denom = sqrt(clamp(sum(powScalar(x, 2), d, true), eps * eps));
  } else if (p === 1) {
    denom = clamp(sum(abs(x), d, true), eps);
  } else if (p === Infinity) {
    denom = clamp(max(abs(x), d, true), eps);
  } else {
    const s = sum(powScalar(abs(x), p), d, true);
    const floor = eps ** p;
    const smallestNormal = x.dtype === 'float64' ? 2.2250738585072014e-308 : 1.1754943508222875e-38;
    denom = clamp(powScalar(floor >= smallestNormal ? clamp(s, floor) : s, 1 / p), eps);
  }
  return div(x, denom);
}
