// Fused contrastive losses: CLIP (softmax InfoNCE in both directions), the same with several
// positives per row given as group ids, NT-Xent (SimCLR) and SigLIP (sigmoid), each one native
// forward kernel and one native backward kernel (native/cpu/contrastive.cpp) that never hold the
// N x M logit matrix.
//
// How (details at the top of native/cpu/contrastive.cpp): the logits t * a b^T (t = exp(scale))
// are produced in tiles of about 128 x 192 by the matmul micro-kernels and consumed while they
// are in cache. The softmax forward keeps an online log-sum-exp per row and per column (per-thread
// column partials, merged at the end) and saves the two lse vectors; the backward recomputes each
// tile from them, forms dlogits in place (row softmax + column softmax - positive terms, scaled),
// and accumulates grad_a = t dlogits b, grad_b = t dlogits^T a and grad_scale = sum(dlogits *
// logits) with two more small GEMMs per tile. Extra memory is O(N + M) plus O(threads x tile)
// scratch, where the composition in ./clip.ts needs several N x M buffers (1 GiB each at N = 16384
// in float32).
//
// Inputs are used as given: the losses do NOT L2-normalise a and b (CLIP/SigLIP models normalise
// their features before the loss: call ts.normalize(x, 2, -1) first if yours do not). The scale is
// a learnable log temperature, so the logits are exp(logitScale) * a_i . b_j (OpenCLIP: init
// log(1 / 0.07); SigLIP: log 10, with bias -10, see SIGLIP_INIT). Gradients flow to a, b,
// logitScale and bias. CPU and CUDA (native/cuda/contrastive.cu); float32 or float64, all operands
// the same dtype and device.

import { runKernel } from '../backend';
import { isGradEnabled, record } from '../autograd';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { Tensor } from '../tensor';
import { cat } from '../ops/concat';
import { checkFloat, checkTensor } from '../ops/operand';
import { contiguousData } from '../ops/view';

/** SigLIP's initial values (Zhai et al. 2023): logit scale log(10) (t = 10) and bias -10. */
export const SIGLIP_INIT = Object.freeze({ logitScale: Math.log(10), bias: -10 });

export interface ContrastiveIdsOptions {
  /**
   * Group id of each row of a (int32 [N]) and of each row of b (int32 [M]); every pair (i, j)
   * with rowIds[i] == colIds[j] is a positive. Give both or neither (neither: the diagonal,
   * which needs N == M).
   */
  rowIds?: Tensor;
  colIds?: Tensor;
}

interface SoftmaxConfig {
  offset: number;
  rowWeight: number;
  colWeight: number;
  selfMask: boolean;
  ids: [Tensor, Tensor] | null;
}

function checkEmbeddings(op: string, a: Tensor, b: Tensor, aName: string, bName: string, scale: Tensor, bias?: Tensor): void {
  checkTensor(a, op, aName);
  checkTensor(b, op, bName);
  checkTensor(scale, op, 'logitScale');
  checkFloat(a, op, aName);
  if (a.ndim !== 2) throw new ShapeError(`${op}: ${aName} must have shape [N, D], got ${a.describe()}`);
  if (b.ndim !== 2) throw new ShapeError(`${op}: ${bName} must have shape [M, D], got ${b.describe()}`);
  if (a.shape[1] !== b.shape[1])
    throw new ShapeError(`${op}: ${aName} ${a.describe()} and ${bName} ${b.describe()} must have the same embedding size D`);
  if (a.shape[0] < 1 || b.shape[0] < 1 || a.shape[1] < 1)
    throw new ShapeError(`${op}: ${aName} ${a.describe()} and ${bName} ${b.describe()} need at least one row each and D >= 1`);
  if (scale.numel !== 1 || scale.ndim > 1)
    throw new ShapeError(`${op}: logitScale must be a 0-d (or [1]) tensor holding the log temperature, got ${scale.describe()}`);
  const others: [Tensor, string][] = [[b, bName], [scale, 'logitScale']];
  if (bias !== undefined) {
    checkTensor(bias, op, 'bias');
    if (bias.numel !== 1 || bias.ndim > 1) throw new ShapeError(`${op}: bias must be a 0-d (or [1]) tensor, got ${bias.describe()}`);
    others.push([bias, 'bias']);
  }
  for (const [t, name] of others) {
    if (t.dtype !== a.dtype)
      throw new DTypeError(`${op}: ${name} ${t.describe()} must have the dtype of ${aName} ${a.describe()} (convert with .to('${a.dtype}'))`);
    if (t.device !== a.device) throw new DTypeError(`${op}: ${name} ${t.describe()} and ${aName} ${a.describe()} are on different devices`);
  }
  const sv = scale.item();
  if (!Number.isFinite(sv))
    throw new ArgumentError(`${op}: logitScale ${scale.describe()} must be finite (it is the log temperature: logits = exp(logitScale) * ${aName} ${bName}^T), got ${sv}`);
  if (Math.exp(sv) > (a.dtype === 'float32' ? FLOAT32_MAX : Number.MAX_VALUE))
    throw new ArgumentError(`${op}: exp(logitScale) = exp(${sv}) overflows ${a.dtype}`);
  if (bias !== undefined && !Number.isFinite(bias.item()))
    throw new ArgumentError(`${op}: bias ${bias.describe()} must be finite, got ${bias.item()}`);
}

const FLOAT32_MAX = 3.4028234663852886e38;

function checkIds(op: string, opts: ContrastiveIdsOptions | undefined, n: number, m: number, aName: string, bName: string, device: string): [Tensor, Tensor] | null {
  if (opts === undefined || opts === null) return null;
  if (typeof opts !== 'object') throw new ArgumentError(`${op}: options must be an object, got ${typeof opts}`);
  const { rowIds, colIds } = opts;
  if (rowIds === undefined && colIds === undefined) return null;
  if (rowIds === undefined || colIds === undefined)
    throw new ArgumentError(`${op}: give both rowIds and colIds (group ids of the rows of ${aName} and of ${bName}) or neither`);
  const check = (t: Tensor, name: string, len: number, of: string) => {
    checkTensor(t, op, name);
    if (t.dtype !== 'int32') throw new DTypeError(`${op}: ${name} must be int32 group ids, got ${t.describe()} (convert with .to('int32'))`);
    if (t.ndim !== 1 || t.shape[0] !== len)
      throw new ShapeError(`${op}: ${name} must have shape [${len}] (one id per row of ${of}), got ${t.describe()}`);
    if (t.device !== device) throw new DTypeError(`${op}: ${name} ${t.describe()} must be on the device of ${aName} (${device})`);
  };
  check(rowIds, 'rowIds', n, aName);
  check(colIds, 'colIds', m, bName);
  return [rowIds, colIds];
}

/** A native error (whose message names the kernel) prefixed with the public op's name. */
function withOp(op: string, e: unknown): unknown {
  if (e instanceof Error && !e.message.startsWith(op)) e.message = `${op}: ${e.message}`;
  return e;
}

/** The softmax family: one native forward, one native backward; inputs [a, b, scale]. */
function softmaxContrastive(op: string, a: Tensor, b: Tensor, scale: Tensor, cfg: SoftmaxConfig): Tensor {
  const [N, M] = [a.shape[0], b.shape[0]];
  const scalars = [cfg.offset, cfg.rowWeight, cfg.colWeight, cfg.selfMask ? 1 : 0];
  const ids = cfg.ids ?? [];
  const needGrad = isGradEnabled() && (a.requiresGrad || b.requiresGrad || scale.requiresGrad);
  // The saved lse vectors ride in the tail of the loss's own storage (see ../ops/layernorm.ts):
  // they live exactly as long as the output the backward rule holds (without a gradient they are
  // just N + M extra numbers next to the loss).
  const buf = Tensor.empty([1 + N + M], a.dtype, a.device, true);
  const out = buf.viewOf([], [], 0);
  const lseRow = buf.viewOf([N], [1], 1);
  const lseCol = buf.viewOf([M], [1], 1 + N);
  buf.dispose();
  const ac = contiguousData(a);
  const bc = contiguousData(b);
  try {
    runKernel('contrastive_softmax', [ac, bc, scale, out, lseRow, lseCol, ...ids], scalars);
  } catch (e) {
    out.dispose();
    throw withOp(op, e);
  } finally {
    lseRow.dispose();
    lseCol.dispose();
    if (ac !== a) ac.dispose();
    if (bc !== b) bc.dispose();
  }
  if (!needGrad) return out;
  return record(out, op, [a, b, scale], (g) => {
    const a2 = contiguousData(a);
    const b2 = contiguousData(b);
    const savedRow = out.viewOf([N], [1], out.offset + 1);
    const savedCol = out.viewOf([M], [1], out.offset + 1 + N);
    const ga = Tensor.empty(a.shape, a.dtype, a.device, true);
    const gb = Tensor.empty(b.shape, b.dtype, b.device, true);
    const gs = Tensor.empty(scale.shape, scale.dtype, scale.device, true);
    runKernel('contrastive_softmax_backward', [a2, b2, scale, savedRow, savedCol, g, ga, gb, gs, ...ids], scalars);
    return [ga, gb, gs];
  });
}

/**
 * CLIP's symmetric InfoNCE loss, fused: with logits = exp(logitScale) * a b^T ([N, N], a and b
 * paired row by row), the mean of the cross-entropy of each row against the diagonal
 * (a -> b) and of each column against the diagonal (b -> a):
 *   0.5 * mean_i (lse_j logits_ij - logits_ii) + 0.5 * mean_j (lse_i logits_ij - logits_jj).
 * Equals `clipLoss(a, b, logitScale, { normalize: false })` (./clip.ts) without materialising the
 * logits. a and b are used as given (normalise them first for CLIP). Returns a 0-d tensor.
 */
export function clipLossFused(a: Tensor, b: Tensor, logitScale: Tensor): Tensor {
  const op = 'clipLossFused';
  checkEmbeddings(op, a, b, 'a', 'b', logitScale);
  if (a.shape[0] !== b.shape[0])
    throw new ShapeError(`${op}: a ${a.describe()} and b ${b.describe()} must have the same number of rows (pairs); for N != M use multiPositiveClipLoss with group ids`);
  return softmaxContrastive(op, a, b, logitScale, { offset: 0, rowWeight: 0.5, colWeight: 0.5, selfMask: false, ids: null });
}

/**
 * CLIP-style InfoNCE with several positives per row, fused. Row i of a ([N, D]) and row j of b
 * ([M, D], M may differ from N) form a positive pair when rowIds[i] == colIds[j] (int32 group
 * ids). With logits = exp(logitScale) * a b^T, P_i = { j : colIds[j] == rowIds[i] } and
 * P'_j = { i : rowIds[i] == colIds[j] }, the loss is (SupCon's "L_out": the log outside the
 * average over positives)
 *   0.5 * mean over rows i with P_i non-empty of  -(1/|P_i|) sum_{j in P_i} log softmax_j(logits_i.)
 * + 0.5 * mean over cols j with P'_j non-empty of -(1/|P'_j|) sum_{i in P'_j} log softmax_i(logits_.j)
 * where every softmax runs over all M (resp. N) entries, positives included. Rows (columns) with
 * no positive are left out of their mean but still act as negatives; a direction in which no
 * row has a positive is an error. With distinct ids and N == M paired it equals clipLossFused.
 */
export function multiPositiveClipLoss(a: Tensor, b: Tensor, logitScale: Tensor, rowIds: Tensor, colIds: Tensor): Tensor {
  const op = 'multiPositiveClipLoss';
  checkEmbeddings(op, a, b, 'a', 'b', logitScale);
  if (rowIds === undefined || colIds === undefined) throw new ArgumentError(`${op}: rowIds and colIds are required (int32 group ids)`);
  const ids = checkIds(op, { rowIds, colIds }, a.shape[0], b.shape[0], 'a', 'b', a.device);
  return softmaxContrastive(op, a, b, logitScale, { offset: 0, rowWeight: 0.5, colWeight: 0.5, selfMask: false, ids });
}

/**
 * NT-Xent (SimCLR, Chen et al. 2020), fused. z1 and z2 are [N, D] embeddings of two views of the
 * same N samples; z = [z1; z2] ([2N, D]) and logits = exp(logitScale) * z z^T with the diagonal
 * (self-similarity) removed. Anchor k's only positive is the same sample in the other view
 * (k + N mod 2N); its negatives are the other 2N - 2 samples of both views:
 *   loss = mean over the 2N anchors k of -log softmax_{l != k}(logits_k.)[k + N mod 2N].
 * SimCLR's temperature tau is logitScale = -log(tau) (tau = 0.5: log 2). Inputs are used as given
 * (SimCLR normalises them: cosine similarity).
 */
export function ntXentLoss(z1: Tensor, z2: Tensor, logitScale: Tensor): Tensor {
  const op = 'ntXentLoss';
  checkEmbeddings(op, z1, z2, 'z1', 'z2', logitScale);
  if (z1.shape[0] !== z2.shape[0])
    throw new ShapeError(`${op}: z1 ${z1.describe()} and z2 ${z2.describe()} must have the same shape (two views of the same samples)`);
  const n = z1.shape[0];
  const z = cat([z1, z2], 0);
  return softmaxContrastive(op, z, z, logitScale, { offset: n, rowWeight: 1, colWeight: 0, selfMask: true, ids: null });
}

/**
 * SigLIP's pairwise sigmoid loss (Zhai et al. 2023), fused: with logits_ij = exp(logitScale) *
 * a_i . b_j + bias and z_ij = +1 for positive pairs (the diagonal, N == M; or equal group ids via
 * opts, any N and M) and -1 otherwise,
 *   loss = -(1/N) sum_i sum_j log sigmoid(z_ij logits_ij)
 * (summed over the columns, averaged over the rows, as the paper). Both logitScale and bias are
 * learnable 0-d tensors (init: SIGLIP_INIT, log 10 and -10). a and b are used as given.
 */
export function sigLipLoss(a: Tensor, b: Tensor, logitScale: Tensor, bias: Tensor, opts?: ContrastiveIdsOptions): Tensor {
  const op = 'sigLipLoss';
  checkEmbeddings(op, a, b, 'a', 'b', logitScale, bias);
  const ids = checkIds(op, opts, a.shape[0], b.shape[0], 'a', 'b', a.device);
  if (!ids && a.shape[0] !== b.shape[0])
    throw new ShapeError(`${op}: without ids the positives are the diagonal, which needs a ${a.describe()} and b ${b.describe()} to have the same number of rows; pass { rowIds, colIds } for N != M`);
  const idList = ids ?? [];
  const out = Tensor.empty([], a.dtype, a.device, true);
  const ac = contiguousData(a);
  const bc = contiguousData(b);
  try {
    runKernel('contrastive_sigmoid', [ac, bc, logitScale, bias, out, ...idList]);
  } catch (e) {
    out.dispose();
    throw withOp(op, e);
  } finally {
    if (ac !== a) ac.dispose();
    if (bc !== b) bc.dispose();
  }
  return record(out, op, [a, b, logitScale, bias], (g) => {
    const a2 = contiguousData(a);
    const b2 = contiguousData(b);
    const ga = Tensor.empty(a.shape, a.dtype, a.device, true);
    const gb = Tensor.empty(b.shape, b.dtype, b.device, true);
    const gs = Tensor.empty(logitScale.shape, a.dtype, a.device, true);
    const gbias = Tensor.empty(bias.shape, a.dtype, a.device, true);
    runKernel('contrastive_sigmoid_backward', [a2, b2, logitScale, bias, g, ga, gb, gs, gbias, ...idList]);
    return [ga, gb, gs, gbias];
  });
}
