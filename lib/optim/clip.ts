// Gradient-norm clipping, torch.nn.utils.clip_grad_norm_ semantics:
//   total = ||(||g_1||, ||g_2||, ...)||   (the norm of all gradients as one vector)
//   coef  = min(1, maxNorm / (total + 1e-6)); every gradient *= coef when coef < 1.
// The 2-norm, by far the common case, is one native `sum_squares` pass per gradient, each
// accumulated in double into one slot of a small float64 scratch vector (read back once),
// so a float32 model's norm is as accurate as a float64 one. Inf- and p-norms widen each
// gradient to a float64 temporary and use the generic native kernels (abs, pow_scalar, amax,
// sum) on it.
//
// Two ways to clip: clipGradNorm() rescales the gradients in place (the native 'affine'
// kernel, one more pass), or gradNorm() + clipCoefficient() give the coefficient to pass as
// `optimizer.step({ gradScale })`, where the fused update applies it at no extra cost.

import { LayoutLike, runKernel } from '../backend';
import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';

export interface ClipOptions {
  /** Throw if the total norm is NaN or infinite (default false, like PyTorch). */
  errorIfNonfinite?: boolean;
}

/** A 0-d view of element `i` of a contiguous scratch tensor, without making a Tensor object. */
function slot(scratch: Tensor, i: number): LayoutLike {
  return { storage: scratch.storage, dtype: scratch.dtype, device: scratch.device, offset: i, shape: [], strides: [] };
}

/** `t` as [1, n, 1] for the native reductions (contiguous only). */
function asColumn(t: Tensor): LayoutLike {
  return { storage: t.storage, dtype: t.dtype, device: t.device, offset: t.offset, shape: [1, t.numel, 1], strides: [t.numel, 1, 1] };
}

function gradsOf(params: Iterable<Tensor>, op: string): Tensor[] {
  const out: Tensor[] = [];
  let i = 0;
  for (const p of params) {
    if (!(p instanceof Tensor)) throw new ArgumentError(`${op}: parameter ${i} is not a Tensor`);
    if (p.grad) {
      p.grad.assertAlive(op, `gradient of parameter ${i}`);
      out.push(p.grad);
    }
    i++;
  }
  return out;
}

/** The total `normType`-norm of the gradients of `params` (those with a gradient), as a JS number. */
export function gradNorm(params: Iterable<Tensor>, normType = 2): number {
  return totalNorm(gradsOf(params, 'gradNorm'), normType, 'gradNorm');
}

function totalNorm(grads: Tensor[], normType: number, op: string): number {
  if (typeof normType !== 'number' || Number.isNaN(normType) || normType <= 0)
    throw new ArgumentError(`${op}: normType must be a positive number or Infinity, got ${String(normType)}`);
  if (grads.length === 0) return 0;
  const scratch = Tensor.empty([grads.length], 'float64', 'cpu');
  try {
    grads.forEach((g, i) => {
      // Each temporary is freed before the next gradient's is made: at most one at a time.
      let temp: Tensor | null = null;
      try {
        if (normType === 2) {
          if (!g.isContiguous()) {
            temp = Tensor.empty(g.shape, g.dtype, g.device);
            runKernel('copy', [g, temp]);
          }
          runKernel('sum_squares', [temp ?? g, slot(scratch, i)]);
          return;
        }
        // Other norms: |g| (then |g|^p) in a float64 temporary, reduced straight into the slot.
        const a = (temp = Tensor.empty(g.shape, 'float64', g.device));
        runKernel('copy', [g, a]);
        runKernel('abs', [a, a]);
        if (normType !== Infinity && normType !== 1) runKernel('pow_scalar', [a, a], [normType]);
        if (g.numel === 0) runKernel('fill', [slot(scratch, i)], [0]);
        else runKernel(normType === Infinity ? 'amax' : 'sum', [asColumn(a), slot(scratch, i)]);
      } finally {
        temp?.dispose();
      }
    });
    const parts = scratch.toTypedArray();
    if (normType === Infinity) {
      let m = 0;
      for (const v of parts) m = Number.isNaN(v) || Number.isNaN(m) ? NaN : Math.max(m, v);
      return m;
    }
    let s = 0;
    for (const v of parts) s += v;
    return normType === 2 ? Math.sqrt(s) : Math.pow(s, 1 / normType);
  } finally {
    scratch.dispose();
  }
}

/** torch's clip coefficient: min(1, maxNorm / (totalNorm + 1e-6)) (NaN if totalNorm is NaN). */
export function clipCoefficient(totalNorm: number, maxNorm: number): number {
  const coef = maxNorm / (totalNorm + 1e-6);
  return Number.isNaN(coef) ? NaN : Math.min(1, coef);
}

/**
 * Scale the gradients of `params` in place so their total norm is at most maxNorm, as
 * torch.nn.utils.clip_grad_norm_. Returns the total norm before clipping.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, normType = 2, opts: ClipOptions = {}): number {
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm) || maxNorm < 0)
    throw new ArgumentError(`clipGradNorm: maxNorm must be a number >= 0, got ${String(maxNorm)}`);
  const grads = gradsOf(params, 'clipGradNorm');
  const total = totalNorm(grads, normType, 'clipGradNorm');
  if (!Number.isFinite(total) && opts.errorIfNonfinite)
    throw new ArgumentError(`clipGradNorm: the total norm of order ${normType} of the gradients is ${total}; set errorIfNonfinite false to scale them anyway`);
  const coef = clipCoefficient(total, maxNorm);
  // coef >= 1 leaves the gradients as they are (PyTorch multiplies by 1.0; same values).
  if (!(coef >= 1)) for (const g of grads) runKernel('affine', [g, g], [coef, 0]);
  return total;
}
