// flashAttention: softmax(scale * q k^T, masked) v as one fused native kernel (FlashAttention-2,
// native/cpu/flash_attention.cpp), forward and backward, without ever materialising the
// [Lq, Lk] scores or probabilities.
//
// Algorithm (details in the native file's header): queries and keys are cut into blocks (96
// rows by default). For each query block the kernel walks the key blocks keeping, per query row,
// the running max m and running sum l of exp(s - m) (the "online softmax"), rescales its
// unnormalised output accumulator by exp(m_old - m_new) whenever the max grows, and divides by
// l once at the end. Besides the output it saves, per query row, the log-sum-exp L = m + log(l)
// (as the pair m, 1/l). The backward recomputes each probability tile from q, k and L
// (P = exp(scale q k^T - m) / l) instead of storing it, and with D = rowsum(dO * O) forms
// dS = P * (dO v^T - D) tile by tile: dV += P^T dO, dK += scale dS^T q, dQ += scale dS k.
// Peak extra memory is O(L * head dim), not O(L^2).
//
// Semantics are those of scaledDotProductAttention (lib/nn/attention.ts), of which this is the
// fused path: `keyPaddingMask` [B, Lk] is "nonzero = padded" (the key is ignored by every query
// of that batch entry); `causal` blocks key j for query i when j > i (top-left aligned for
// Lq != Lk); scale defaults to 1 / sqrt(hd); a query whose keys are all blocked gets a zero
// output and zero gradients, never NaN (its saved L is -inf, which the backward treats as
// "nothing visible").
//
// Saved state: where a gradient will be needed, L (and a copy of the mask, converted to q's
// dtype) are stored in the tail of the output's own storage (the output is a view of its first
// elements), as layerNorm does with its statistics: they live exactly as long as the output the
// backward rule holds, so a scope that returns only the output cannot free them early. L is kept
// as the row max m and inverse row sum 1/l (L = m - log(1/l)): the backward then recomputes
// P = exp(S - m) / l with the roundings of the forward (exp(S - L) in float32 would carry the
// rounding of the larger |S - L| and of L itself into every P of a row).

import { runKernel } from '../backend';
import { isGradEnabled, record } from '../autograd';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { contiguousStrides, numelOf } from '../shape';
import { Tensor } from '../tensor';
import { checkFloat, checkSameDevice, checkSameDType, checkTensor, describeValue } from './operand';

const OP = 'flashAttention';

export interface FlashAttentionOptions {
  /** [B, Lk] (or [1, Lk], broadcast over the batch): nonzero = padding; that key is ignored. */
  keyPaddingMask?: Tensor | null;
  /** Block key j for query i when j > i (top-left aligned). */
  causal?: boolean;
  /** Score scale (default 1 / sqrt(head dim)). */
  scale?: number;
}

/** t, or a contiguous copy when its last dim does not have unit stride (the kernel's one layout rule). */
function unitLast(t: Tensor): Tensor {
  if (t.shape[t.ndim - 1] <= 1 || t.strides[t.ndim - 1] === 1) return t;
  const c = Tensor.empty(t.shape, t.dtype, t.device, true);
  runKernel('copy', [t, c]);
  return c;
}

/**
 * Fused scaled dot-product attention: softmax(scale * q k^T, masked) v.
 * q [B, H, Lq, hd], k [B, H, Lk, hd], v [B, H, Lk, hdv] -> [B, H, Lq, hdv]; float32 or float64,
 * on the CPU. Any strides (a last dim without unit stride is copied first). Differentiable in
 * q, k and v.
 */
export function flashAttention(q: Tensor, k: Tensor, v: Tensor, opts: FlashAttentionOptions = {}): Tensor {
  checkTensor(q, OP, 'q');
  checkTensor(k, OP, 'k');
  checkTensor(v, OP, 'v');
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`${OP}: options must be an object, got ${describeValue(opts)}`);
  checkFloat(q, OP, 'q');
  checkSameDType(q, k, OP, 'q', 'k');
  checkSameDType(q, v, OP, 'q', 'v');
  checkSameDevice(q, k, OP, 'q', 'k');
  checkSameDevice(q, v, OP, 'q', 'v');
  for (const [role, t, want] of [['q', q, '[B, H, Lq, hd]'], ['k', k, '[B, H, Lk, hd]'], ['v', v, '[B, H, Lk, hdv]']] as const)
    if (t.ndim !== 4) throw new ShapeError(`${OP}: ${role} must be 4-D ${want}, got ${t.describe()}`);
  const [B, H, Lq, hd] = q.shape;
  const Lk = k.shape[2];
  const hdv = v.shape[3];
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== hd)
    throw new ShapeError(`${OP}: k ${k.describe()} must be [B, H, Lk, hd] = [${B}, ${H}, Lk, ${hd}] to match q ${q.describe()}`);
  if (v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== Lk)
    throw new ShapeError(`${OP}: v ${v.describe()} must be [B, H, Lk, hdv] = [${B}, ${H}, ${Lk}, hdv] to match k ${k.describe()}`);
  const causal = opts.causal ?? false;
  if (typeof causal !== 'boolean') throw new ArgumentError(`${OP}: causal must be a boolean, got ${describeValue(causal)}`);
  const scale = opts.scale ?? (hd > 0 ? 1 / Math.sqrt(hd) : 1);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ArgumentError(`${OP}: scale must be a finite number, got ${describeValue(scale)}`);

  let mask: Tensor | null = null;
  const m = opts.keyPaddingMask;
  if (m !== undefined && m !== null) {
    checkTensor(m, OP, 'keyPaddingMask');
    checkSameDevice(q, m, OP, 'q', 'keyPaddingMask');
    if (m.ndim !== 2 || (m.shape[0] !== B && m.shape[0] !== 1) || m.shape[1] !== Lk)
      throw new ShapeError(`${OP}: keyPaddingMask must be [B, Lk] = [${B}, ${Lk}] (or [1, ${Lk}]), got ${m.describe()}`);
    if (m.dtype !== 'float32' && m.dtype !== 'float64' && m.dtype !== 'int32')
      throw new DTypeError(`${OP}: keyPaddingMask must be float32, float64 or int32, got ${m.describe()}`);
    mask = m;
  }

  const inputs = [q, k, v];
  const keepState = isGradEnabled() && inputs.some((t) => t.requiresGrad);
  const outShape = [B, H, Lq, hdv];
  const outN = numelOf(outShape);
  const lseShape = [B, H, Lq, 2]; // the log-sum-exp as (m, 1/l) (see the kernel)
  const lseN = 2 * B * H * Lq;
  let out: Tensor;
  let lse: Tensor;
  let savedMask: Tensor | null = null;
  if (keepState) {
    const buf = Tensor.empty([outN + lseN + (mask ? B * Lk : 0)], q.dtype, q.device, true);
    out = buf.viewOf(outShape, contiguousStrides(outShape), 0);
    lse = buf.viewOf(lseShape, contiguousStrides(lseShape), outN);
    if (mask) {
      savedMask = buf.viewOf([B, Lk], [Lk, 1], outN + lseN);
      const src = mask.shape[0] === B ? mask : mask.viewOf([B, Lk], [0, mask.strides[1]], mask.offset);
      runKernel('copy', [src, savedMask]);
      if (src !== mask) src.dispose();
    }
    buf.dispose();
  } else {
    out = Tensor.empty(outShape, q.dtype, q.device, true);
    lse = Tensor.empty(lseShape, q.dtype, q.device, true);
  }
  const kernelMask = savedMask ?? (mask && mask.shape[0] !== B ? mask.viewOf([B, Lk], [0, mask.strides[1]], mask.offset) : mask);
  const [qc, kc, vc] = inputs.map(unitLast);
  try {
    runKernel('flash_attention', [qc, kc, vc, out, lse, ...(kernelMask ? [kernelMask] : [])], [scale, causal ? 1 : 0, kernelMask ? 1 : 0]);
  } catch (e) {
    out.dispose();
    lse.dispose();
    savedMask?.dispose();
    throw e;
  } finally {
    [qc, kc, vc].forEach((t, i) => {
      if (t !== inputs[i]) t.dispose();
    });
    if (kernelMask && kernelMask !== savedMask && kernelMask !== mask) kernelMask.dispose();
  }
  if (!keepState) {
    lse.dispose();
    return out;
  }
  // The views into the output's storage are not needed as tensors: the rule re-creates them.
  lse.dispose();
  savedMask?.dispose();

  return record(out, OP, inputs, (g) => {
    const lseView = out.viewOf(lseShape, contiguousStrides(lseShape), out.offset + outN);
    const maskView = mask ? out.viewOf([B, Lk], [Lk, 1], out.offset + outN + lseN) : null;
    const [q2, k2, v2] = inputs.map(unitLast);
    const gc = unitLast(g);
    const dq = Tensor.empty(q.shape, q.dtype, q.device, true);
    const dk = Tensor.empty(k.shape, k.dtype, k.device, true);
    const dv = Tensor.empty(v.shape, v.dtype, v.device, true);
    runKernel('flash_attention_backward', [q2, k2, v2, out, lseView, gc, dq, dk, dv, ...(maskView ? [maskView] : [])],
      [scale, causal ? 1 : 0, maskView ? 1 : 0]);
    return [dq, dk, dv];
  });
}

