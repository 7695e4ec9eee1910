// Multi-head self-attention as plain composition of differentiable ops, with all the math in one
// function, scaledDotProductAttention(q, k, v, opts), so that a fused (flash) kernel can later
// replace it with the same signature and the same masking semantics, and MultiHeadAttention does
// not change.
//
// scaledDotProductAttention runs the fused flash attention kernel (lib/ops/flash_attention.ts)
// when it applies: CPU, no dropout on the probabilities, q/k/v of the same float dtype and the
// same leading dims (2-4 dims), and no mask, causal and/or a key-padding mask (one that
// broadcasts as [B, 1, 1, Lk]). Anything else (per-query masks, attention dropout, broadcast
// leading dims) runs attentionReference, the composition below; both follow the conventions here.
//
// Conventions (read these before writing a replacement kernel):
// - q [..., Lq, hd], k [..., Lk, hd], v [..., Lk, hdv] -> [..., Lq, hdv]; the leading dims
//   broadcast (the batched matmul does it). Scores are (q * scale) k^T with scale = 1/sqrt(hd).
// - `mask` is "nonzero = blocked" (the key is ignored by that query), any dtype, broadcastable to
//   [..., Lq, Lk]. NB: this is the opposite of torch's boolean attn_mask (True = attend) and the
//   same as torch's key_padding_mask. Blocked scores are set to -Infinity before the softmax.
// - `causal` blocks key j for query i when j > i (top-left aligned, as torch's is_causal; for
//   Lq != Lk this is tril(ones(Lq, Lk)), not the bottom-right alignment of a KV cache). The
//   0/1 upper-triangular mask is built once per (Lq, Lk, dtype, device) and cached.
// - A query whose keys are ALL blocked gets a zero attention output (and zero gradients), not
//   NaN. (torch's math path returns NaN there, its nested-tensor fast path zeros.) The rows are
//   found as min over keys of the mask; those rows are left unmasked for the softmax, so no NaN
//   is ever formed, not even in the backward, and their probabilities are then zeroed. In
//   MultiHeadAttention such a row's output is therefore out_proj.bias. Causal masking alone
//   never blocks a whole row; it takes a key padding mask (e.g. left padding) to do so.
// - `dropout` is applied to the attention probabilities when > 0; the caller passes 0 in eval
//   mode (as with torch's dropout_p).
//
// MultiHeadAttention: a fused input projection `in_proj` (Linear dim -> 3 dim, rows [q; k; v])
// and `out_proj` (Linear dim -> dim). State-dict names are in_proj.weight / in_proj.bias /
// out_proj.weight / out_proj.bias. torch.nn.MultiheadAttention (and so OpenCLIP's `attn`) stores
// the same tensors as in_proj_weight / in_proj_bias / out_proj.weight / out_proj.bias, same
// shapes and q;k;v row order, so loading one is a rename of the first two keys (timm's Attention
// calls them qkv.* and proj.*). Init follows torch's MultiheadAttention: in_proj.weight xavier
// uniform, both biases zero, out_proj.weight the Linear default.

import { DType, Device } from '../dtype';
import { ArgumentError, ShapeError } from '../errors';
import { keep } from '../scope';
import { fmtShape } from '../shape';
import { Tensor } from '../tensor';
import '../tensor_methods';
import { tensor } from '../ops/creation';
import { maximum } from '../ops/binary';
import { dropout as dropoutOp } from '../ops/dropout';
import { flashAttention } from '../ops/flash_attention';
import { Module } from './module';
import { Linear } from './linear';
import { xavierUniform_, zeros_ } from './init';

export interface AttentionOptions {
  /** Blocked (query, key) pairs: nonzero = ignore that key; broadcastable to [..., Lq, Lk]. */
  mask?: Tensor | null;
  /** Block keys after the query's position (j > i). */
  causal?: boolean;
  /** Dropout probability on the attention probabilities (pass 0 outside training). */
  dropout?: number;
  /** Score scale (default 1 / sqrt(head dim)). */
  scale?: number;
}

const causalCache = new Map<string, Tensor>();

/**
 * The cached [Lq, Lk] 0/1 tensor with 1 where key j comes after query i (j > i). Cached tensors
 * live for the whole process (one per distinct (Lq, Lk, dtype, device)), outside every scope.
 */
export function causalMask(lq: number, lk: number, dtype: DType, device: Device): Tensor {
  const key = `${lq}x${lk}:${dtype}:${device}`;
  const hit = causalCache.get(key);
  if (hit && !hit.isDisposed) return hit;
  const data = new Float64Array(lq * lk);
  for (let i = 0; i < lq; i++) for (let j = i + 1; j < lk; j++) data[i * lk + j] = 1;
  const t = keep(tensor(data, { shape: [lq, lk], dtype, device }));
  causalCache.set(key, t);
  return t;
}

/** Free the cached causal masks (only when no graph that used them still awaits backward). */
export function clearCausalMaskCache(): void {
  for (const t of causalCache.values()) t.dispose();
  causalCache.clear();
}

/**
 * softmax((q * scale) k^T, masked) v over the last two dims; see the conventions at the top of
 * this file. Uses the fused flash attention kernel where it applies (see the top of this file),
 * else attentionReference; the two agree up to rounding.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  return flashPath(q, k, v, opts) ?? attentionReference(q, k, v, opts);
}

/**
 * The fused kernel's result when it supports this call, else null (the caller runs the
 * composition, which also reports every argument error).
 */
function flashPath(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor | null {
  if (!(q instanceof Tensor) || !(k instanceof Tensor) || !(v instanceof Tensor) || opts === null || typeof opts !== 'object') return null;
  if ((opts.dropout ?? 0) !== 0 || q.isDisposed || k.isDisposed || v.isDisposed) return null;
  if (k.device !== q.device || v.device !== q.device) return null;
  if ((q.dtype !== 'float32' && q.dtype !== 'float64') || k.dtype !== q.dtype || v.dtype !== q.dtype) return null;
  const nd = q.ndim;
  if (nd < 2 || nd > 4 || k.ndim !== nd || v.ndim !== nd) return null;
  for (let i = 0; i < nd - 2; i++) if (k.shape[i] !== q.shape[i] || v.shape[i] !== q.shape[i]) return null;
  const hd = q.shape[nd - 1];
  const lk = k.shape[nd - 2];
  if (k.shape[nd - 1] !== hd || v.shape[nd - 2] !== lk) return null;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) return null;
  // As 4-D [B, H, L, d]: [N, L, d] -> [N, 1, L, d], [L, d] -> [1, 1, L, d].
  const batch = nd === 2 ? 1 : q.shape[0];
  let kpm: Tensor | null = null;
  const m = opts.mask;
  if (m) {
    if (!(m instanceof Tensor) || m.isDisposed || m.device !== q.device || m.ndim === 0 || m.ndim > nd) return null;
    // Key padding: size 1 everywhere but the keys (Lk) and, for 3-4 dims, the batch dim 0.
    const ms = [...Array(nd - m.ndim).fill(1), ...m.shape];
    if (ms[nd - 1] !== lk || ms.slice(1, nd - 1).some((s) => s !== 1) || (nd > 2 ? ms[0] !== 1 && ms[0] !== batch : ms[0] !== 1)) return null;
    const bStride = m.ndim === nd && nd > 2 && ms[0] !== 1 ? m.strides[0] : 0;
    kpm = m.viewOf([batch, lk], [bStride, m.strides[m.ndim - 1]], m.offset);
  }
  const to4 = (t: Tensor) => (nd === 4 ? t : nd === 3 ? t.unsqueeze(1) : t.unsqueeze(0).unsqueeze(0));
  const o = flashAttention(to4(q), to4(k), to4(v), { keyPaddingMask: kpm, causal: !!opts.causal, scale });
  kpm?.dispose();
  return nd === 4 ? o : nd === 3 ? o.squeeze(1) : o.squeeze(0).squeeze(0);
}

/**
 * The composition: softmax((q * scale) k^T, masked) v with every step a differentiable op (the
 * [..., Lq, Lk] scores and probabilities are materialised). Supports everything in the
 * conventions above (any broadcastable mask, attention dropout, broadcast leading dims); the
 * reference the fused kernel is tested against.
 */
export function attentionReference(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = 'scaledDotProductAttention';
  for (const [role, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!(t instanceof Tensor)) throw new ArgumentError(`${op}: ${role} must be a Tensor`);
    if (t.ndim < 2) throw new ShapeError(`${op}: ${role} ${t.describe()} needs at least 2 dims [..., L, d]`);
  }
  const hd = q.shape[q.ndim - 1];
  const lq = q.shape[q.ndim - 2];
  const lk = k.shape[k.ndim - 2];
  if (k.shape[k.ndim - 1] !== hd)
    throw new ShapeError(`${op}: q ${q.describe()} and k ${k.describe()} must have the same last dim (head size)`);
  if (v.shape[v.ndim - 2] !== lk)
    throw new ShapeError(`${op}: k ${k.describe()} and v ${v.describe()} must have the same number of keys (dim -2)`);
  const p = opts.dropout ?? 0;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ArgumentError(`${op}: dropout must be a probability in [0, 1], got ${String(p)}`);
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ArgumentError(`${op}: scale must be a finite number, got ${String(scale)}`);

  // Scaling q first also gives the matmul a contiguous left operand.
  const scores = q.mul(scale).matmul(k.transpose(-2, -1)); // [..., Lq, Lk]

  let blocked: Tensor | null = null;
  if (opts.mask) {
    const m = opts.mask;
    if (!(m instanceof Tensor)) throw new ArgumentError(`${op}: mask must be a Tensor`);
    if (m.ndim > scores.ndim || m.shape.some((s, i) => s !== 1 && s !== scores.shape[scores.ndim - m.ndim + i]))
      throw new ShapeError(`${op}: mask ${m.describe()} does not broadcast to the scores ${fmtShape(scores.shape)} ([..., Lq, Lk])`);
    blocked = (m.dtype === scores.dtype ? m : m.to(scores.dtype)).ne(0);
  }
  const causal = opts.causal ?? false;
  if (causal) {
    const c = causalMask(lq, lk, scores.dtype, scores.device);
    blocked = blocked ? maximum(blocked, c) : c;
  }

  let probs: Tensor;
  if (!blocked) {
    probs = scores.softmax(-1);
  } else if (!opts.mask) {
    // causal only: key 0 is always visible, so no row is fully blocked
    probs = scores.maskedFill(blocked, -Infinity).softmax(-1);
  } else {
    const empty = blocked.min(-1, true); // 1 where every key of the row is blocked
    const open = blocked.sub(empty); // those rows left unmasked (no -inf-only softmax, no NaN)
    probs = scores.maskedFill(open, -Infinity).softmax(-1).maskedFill(empty, 0);
  }
  if (p > 0) probs = dropoutOp(probs, p, true);
  return probs.matmul(v);
}

export interface MultiHeadAttentionOptions {
  /** Biases on in_proj and out_proj (default true). */
  bias?: boolean;
  /** Dropout on the attention probabilities, in training (default 0). */
  dropout?: number;
  dtype?: DType;
  device?: Device;
}

export interface AttentionForwardOptions {
  /** [B, L]: nonzero = padding; that key is ignored by every query. */
  keyPaddingMask?: Tensor | null;
  /** Each position attends only to itself and earlier positions. */
  causal?: boolean;
}

export class MultiHeadAttention extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly headDim: number;
  readonly p: number;
  readonly in_proj: Linear;
  readonly out_proj: Linear;

  constructor(dim: number, heads: number, opts: MultiHeadAttentionOptions = {}) {
    super();
    if (!Number.isInteger(dim) || dim < 1 || !Number.isInteger(heads) || heads < 1 || dim % heads !== 0)
      throw new ArgumentError(`MultiHeadAttention: dim (${String(dim)}) must be a positive multiple of heads (${String(heads)})`);
    this.dim = dim;
    this.heads = heads;
    this.headDim = dim / heads;
    this.p = opts.dropout ?? 0;
    if (!(this.p >= 0 && this.p <= 1)) throw new ArgumentError(`MultiHeadAttention: dropout must be a probability in [0, 1], got ${String(this.p)}`);
    const lin = { bias: opts.bias ?? true, dtype: opts.dtype, device: opts.device };
    this.in_proj = this.child('in_proj', new Linear(dim, 3 * dim, lin));
    this.out_proj = this.child('out_proj', new Linear(dim, dim, lin));
    xavierUniform_(this.in_proj.weight);
    if (this.in_proj.bias) zeros_(this.in_proj.bias);
    if (this.out_proj.bias) zeros_(this.out_proj.bias);
  }

  /** Self-attention: x [B, L, dim] -> [B, L, dim]. */
  forward(x: Tensor, opts: AttentionForwardOptions = {}): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dim)
      throw new ShapeError(`MultiHeadAttention(dim ${this.dim}): x must be [B, L, ${this.dim}], got ${x.describe()}`);
    const [b, l, d] = x.shape;
    const h = this.heads;
    const hd = this.headDim;
    // [B, L, 3D] -> [B, L, 3, H, hd] -> [3, B, H, L, hd] (views)
    const qkv = this.in_proj.forward(x).reshape([b, l, 3, h, hd]).permute([2, 0, 3, 1, 4]);
    const [q, k, v] = [0, 1, 2].map((i) => qkv.select(0, i));
    let mask: Tensor | null = null;
    const kpm = opts.keyPaddingMask;
    if (kpm) {
      if (kpm.ndim !== 2 || kpm.shape[0] !== b || kpm.shape[1] !== l)
        throw new ShapeError(`MultiHeadAttention: keyPaddingMask must be [B, L] = [${b}, ${l}], got ${kpm.describe()}`);
      mask = kpm.reshape([b, 1, 1, l]);
    }
    const o = scaledDotProductAttention(q, k, v, { mask, causal: opts.causal ?? false, dropout: this.training ? this.p : 0 });
    // [B, H, L, hd] -> [B, L, H, hd] -> [B, L, D]
    return this.out_proj.forward(o.permute([0, 2, 1, 3]).reshape([b, l, d]));
  }
}
