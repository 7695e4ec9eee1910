// crossEntropy of [N, C] logits with int32 class targets, PyTorch semantics: reduction 'mean'
// (over the rows whose target is not ignoreIndex), 'sum' or 'none'; ignoreIndex (default -100)
// rows give 0 loss and 0 gradient; labelSmoothing eps mixes the one-hot target with the
// uniform distribution: loss = (1 - eps) * nll + eps * mean_c(-log p_c).
// One fused native kernel (native/cpu/cross_entropy.cpp) computes each row's log-sum-exp and
// loss (and the sum for 'mean'/'sum'); the backward kernel computes
// (softmax - smoothed one-hot) * g / count in one pass from the saved log-sum-exp. Targets are
// validated natively, before any work: an out-of-range target is an Error naming the value and
// its row. The saved log-sum-exp rides in the tail of the output's storage (see layernorm.ts),
// so it lives exactly as long as the output.

import { runKernel } from '../backend';
import { isGradEnabled, record } from '../autograd';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { Tensor } from '../tensor';
import { checkFloat, checkSameDevice, checkTensor, describeValue } from './operand';
import { contiguousData } from './view';

const OP = 'crossEntropy';

export type CrossEntropyReduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** 'mean' (default): over non-ignored rows; 'sum'; 'none': one loss per row. */
  reduction?: CrossEntropyReduction;
  /** Rows whose target equals this contribute nothing (default -100, as PyTorch). */
  ignoreIndex?: number;
  /** In [0, 1] (default 0). */
  labelSmoothing?: number;
}

const REDUCTION_CODE: Record<CrossEntropyReduction, number> = { none: 0, mean: 1, sum: 2 };

/**
 * Cross-entropy between `logits` [N, C] (float32/float64, unnormalised) and `targets` [N]
 * (int32 class indices in [0, C), or ignoreIndex), like torch.nn.functional.cross_entropy.
 * Returns a 0-d tensor for 'mean'/'sum' and an [N] tensor for 'none'.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkTensor(logits, OP, 'logits');
  checkTensor(targets, OP, 'targets');
  checkFloat(logits, OP, 'logits');
  if (logits.ndim !== 2)
    throw new ShapeError(`${OP}: logits must have shape [N, C], got ${logits.describe()}` +
      (logits.ndim > 2 ? ' (extra class dims [N, C, d1, ...] are not supported: move C last and reshape to [N * d, C])' : ''));
  const [N, C] = logits.shape;
  if (targets.dtype !== 'int32')
    throw new DTypeError(`${OP}: targets must be int32 class indices, got ${targets.describe()} (convert with .to('int32'))`);
  if (targets.ndim !== 1 || targets.shape[0] !== N)
    throw new ShapeError(`${OP}: targets must have shape [${N}] (one class index per row of logits ${logits.describe()}), got ${targets.describe()}`);
  checkSameDevice(logits, targets, OP, 'logits', 'targets');

  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`${OP}: opts must be an object, got ${describeValue(opts)}`);
  const reduction = opts.reduction ?? 'mean';
  if (typeof reduction !== 'string' || !Object.prototype.hasOwnProperty.call(REDUCTION_CODE, reduction))
    throw new ArgumentError(`${OP}: reduction must be 'mean', 'sum' or 'none', got ${describeValue(reduction)}`);
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (typeof ignoreIndex !== 'number' || !Number.isInteger(ignoreIndex) || ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31)
    throw new ArgumentError(`${OP}: ignoreIndex must be an int32 integer, got ${describeValue(ignoreIndex)}`);
  const smoothing = opts.labelSmoothing ?? 0;
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing <= 1))
    throw new ArgumentError(`${OP}: labelSmoothing must be a number in [0, 1], got ${describeValue(smoothing)}`);
  const scalars = [ignoreIndex, smoothing, REDUCTION_CODE[reduction]];

  const outShape = reduction === 'none' ? [N] : [];
  const outNumel = reduction === 'none' ? N : 1;
  let out: Tensor;
  let lse: Tensor;
  if (isGradEnabled() && logits.requiresGrad) {
    const buf = Tensor.empty([outNumel + N], logits.dtype, logits.device);
    out = buf.viewOf(outShape, reduction === 'none' ? [1] : [], 0);
    lse = buf.viewOf([N], [1], outNumel);
    buf.dispose();
  } else {
    out = Tensor.empty(outShape, logits.dtype, logits.device);
    lse = Tensor.empty([N], logits.dtype, logits.device);
  }
  const lc = contiguousData(logits);
  try {
    runKernel('cross_entropy', [lc, targets, out, lse], scalars);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    lse.dispose();
    if (lc !== logits) lc.dispose();
  }

  return record(out, OP, [logits], (g) => {
    const lc2 = contiguousData(logits);
    const saved = out.viewOf([N], [1], out.offset + outNumel);
    const gl = Tensor.empty([N, C], logits.dtype, logits.device);
    runKernel('cross_entropy_backward', [lc2, targets, saved, g, gl], scalars);
    return [gl];
  });
}
