// Parameter initialisers (torch.nn.init / timm equivalents) drawing from the engine's seeded
// Philox generator (ts.rand / ts.randn), so a model built after manualSeed(s) is reproducible
// and independent of thread count and device.
//
// Two forms: `normal(shape, ...)` creates a new tensor (how the layers build their parameters),
// and `normal_(t, ...)` overwrites an existing tensor in place, outside autograd (how a model
// re-initialises a sub-module afterwards, e.g. OpenCLIP's per-layer std for the text tower).
//
// Fans follow torch.nn.init._calculate_fan_in_and_fan_out: for a weight [out, in, ...k],
// fan_in = in * prod(k) and fan_out = out * prod(k). So a Linear weight kept in torch's
// [out, in] layout gets exactly torch's bounds.

import { Device, DType } from '../dtype';
import { ArgumentError } from '../errors';
import { noGrad } from '../autograd';
import { Shape, numelOf } from '../shape';
import { Tensor } from '../tensor';
import { full, ones as onesOp, rand, randn, tensor, zeros as zerosOp } from '../ops/creation';
import { copy_ } from '../ops/view';

export interface InitOptions {
  dtype?: DType;
  device?: Device;
}

function opts(o?: InitOptions): { dtype: DType; device?: Device } {
  return { dtype: o?.dtype ?? 'float32', ...(o?.device ? { device: o.device } : {}) };
}

/** (fan_in, fan_out) of a weight of this shape, as torch computes them (needs >= 2 dims). */
export function fans(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2)
    throw new ArgumentError(`init: fan in and fan out need a weight with at least 2 dims, got shape [${shape.join(', ')}]`);
  const receptive = numelOf(shape.slice(2));
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/** U(low, high). */
export function uniform(shape: Shape, low = 0, high = 1, o?: InitOptions): Tensor {
  return rand(shape, { ...opts(o), low, high });
}

/** N(mean, std^2). */
export function normal(shape: Shape, mean = 0, std = 1, o?: InitOptions): Tensor {
  return randn(shape, { ...opts(o), mean, std });
}

export interface TruncNormalOptions {
  mean?: number;
  std?: number;
  /** Lower cut-off, an absolute value (default mean - 2 std). */
  a?: number;
  /** Upper cut-off, an absolute value (default mean + 2 std). */
  b?: number;
}

/**
 * N(mean, std^2) conditioned on [a, b] (default [mean - 2 std, mean + 2 std]). Note that timm's
 * trunc_normal_(t, std=.02) takes a = -2, b = 2 in absolute units (so it barely truncates);
 * pass { std: 0.02, a: -2, b: 2 } to reproduce that, or leave a/b out for the +-2 std cut.
 *
 * Exact rejection sampling: batches of standard normals from the engine's generator, keeping
 * those inside the interval, until every element is filled (deterministic under manualSeed).
 */
export function truncNormal(shape: Shape, t: TruncNormalOptions = {}, o?: InitOptions): Tensor {
  const mean = t.mean ?? 0;
  const std = t.std ?? 1;
  const a = t.a ?? mean - 2 * std;
  const b = t.b ?? mean + 2 * std;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0 || !(a < b))
    throw new ArgumentError(`truncNormal: need finite mean, std >= 0 and a < b, got mean=${mean}, std=${std}, a=${a}, b=${b}`);
  const n = numelOf(shape);
  const out = new Float64Array(n);
  if (std === 0) {
    out.fill(Math.min(Math.max(mean, a), b));
  } else {
    // Standardised bounds; the acceptance rate is Phi(bs) - Phi(as), which we estimate as we go.
    const as = (a - mean) / std;
    const bs = (b - mean) / std;
    let filled = 0;
    let drawn = 0;
    let accepted = 0;
    for (let round = 0; filled < n; round++) {
      if (round > 1000)
        throw new ArgumentError(`truncNormal: the interval [${a}, ${b}] holds too little of N(${mean}, ${std}^2) to sample from`);
      const rate = drawn > 0 ? Math.max(accepted / drawn, 1e-3) : 0.9;
      const need = n - filled;
      const batch = Math.min(Math.max(64, Math.ceil((need / rate) * 1.1)), 1 << 22);
      const z = randn([batch], { dtype: 'float64', device: 'cpu' });
      const zs = z.toTypedArray();
      z.dispose();
      drawn += batch;
      for (let i = 0; i < batch && filled < n; i++) {
        const v = zs[i];
        if (v >= as && v <= bs) {
          out[filled++] = mean + std * v;
          accepted++;
        }
      }
    }
  }
  const r = opts(o);
  return tensor(out, { shape, dtype: r.dtype, device: r.device });
}

export type Nonlinearity = 'linear' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

/** torch.nn.init.calculate_gain. */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    default:
      throw new ArgumentError(`calculateGain: unknown nonlinearity ${String(nonlinearity)}`);
  }
}

export interface KaimingOptions {
  /** Negative slope of the leaky ReLU that follows (torch default 0). */
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

/** torch.nn.init.kaiming_uniform_: U(-bound, bound), bound = gain * sqrt(3 / fan). */
export function kaimingUniform(shape: Shape, k: KaimingOptions = {}, o?: InitOptions): Tensor {
  const { fanIn, fanOut } = fans(shape);
  const fan = (k.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const gain = calculateGain(k.nonlinearity ?? 'leaky_relu', k.a ?? 0);
  const bound = fan > 0 ? gain * Math.sqrt(3 / fan) : 0;
  return uniform(shape, -bound, bound, o);
}

/**
 * torch.nn.Linear's default: kaiming_uniform_(weight, a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in))
 * for a weight [out, in]; the bias is U(-1/sqrt(in), 1/sqrt(in)) as well (linearBiasInit).
 */
export function linearWeightInit(outFeatures: number, inFeatures: number, o?: InitOptions): Tensor {
  return kaimingUniform([outFeatures, inFeatures], { a: Math.sqrt(5) }, o);
}

export function linearBiasInit(outFeatures: number, inFeatures: number, o?: InitOptions): Tensor {
  const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
  return uniform([outFeatures], -bound, bound, o);
}

/** torch.nn.init.xavier_uniform_: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(shape: Shape, gain = 1, o?: InitOptions): Tensor {
  const { fanIn, fanOut } = fans(shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -bound, bound, o);
}

export function zeros(shape: Shape, o?: InitOptions): Tensor {
  return zerosOp(shape, opts(o));
}

export function ones(shape: Shape, o?: InitOptions): Tensor {
  return onesOp(shape, opts(o));
}

export function constant(shape: Shape, value: number, o?: InitOptions): Tensor {
  return full(shape, value, opts(o));
}

// ---- in-place forms: overwrite t (a parameter, say) with fresh values, outside autograd.

function fill_(t: Tensor, make: (o: InitOptions) => Tensor): Tensor {
  noGrad(() => {
    const v = make({ dtype: t.dtype, device: t.device });
    copy_(t, v);
    v.dispose();
  });
  return t;
}

export const uniform_ = (t: Tensor, low = 0, high = 1): Tensor => fill_(t, (o) => uniform(t.shape, low, high, o));
export const normal_ = (t: Tensor, mean = 0, std = 1): Tensor => fill_(t, (o) => normal(t.shape, mean, std, o));
export const truncNormal_ = (t: Tensor, k: TruncNormalOptions = {}): Tensor => fill_(t, (o) => truncNormal(t.shape, k, o));
export const kaimingUniform_ = (t: Tensor, k: KaimingOptions = {}): Tensor => fill_(t, (o) => kaimingUniform(t.shape, k, o));
export const xavierUniform_ = (t: Tensor, gain = 1): Tensor => fill_(t, (o) => xavierUniform(t.shape, gain, o));
export const zeros_ = (t: Tensor): Tensor => fill_(t, (o) => zeros(t.shape, o));
export const ones_ = (t: Tensor): Tensor => fill_(t, (o) => ones(t.shape, o));
export const constant_ = (t: Tensor, value: number): Tensor => fill_(t, (o) => constant(t.shape, value, o));
