// Float64 loop references for the nn layers (Linear, LayerNorm, activations, attention, MLP,
// pre-LN transformer block), over flat row-major arrays. They take plain number arrays (read
// from a module's parameters by the caller) and call nothing in the engine.

/** y[r, o] = sum_i x[r, i] w[o, i] + b[o]  (w in torch's [out, in] layout). */
export function linearRef(x: number[], rows: number, w: number[], out: number, inp: number, b: number[] | null): number[] {
  const y = new Array<number>(rows * out).fill(0);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * w[o * inp + i];
      y[r * out + o] = s;
    }
  return y;
}

/** LayerNorm over the last dim n of [rows, n], biased variance. */
export function layerNormRef(x: number[], rows: number, n: number, w: number[] | null, b: number[] | null, eps = 1e-5): number[] {
  const out = new Array<number>(rows * n);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x[r * n + i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - m) ** 2;
    v /= n;
    const rs = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = (x[r * n + i] - m) * rs * (w ? w[i] : 1) + (b ? b[i] : 0);
  }
  return out;
}

/** erf to ~1e-15 (Maclaurin series for |x| < 2.5, continued fraction for erfc beyond). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
}

export const activations = {
  gelu: (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  gelu_tanh: (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  relu: (v: number) => Math.max(v, 0),
};

/**
 * Attention over `batch` independent [Lq, hd] x [Lk, hd] x [Lk, hdv] problems; blocked(n, i, j)
 * says whether query i of problem n ignores key j. A query with every key blocked gets zeros
 * (the documented behaviour of scaledDotProductAttention).
 */
export function sdpaRef(q: number[], k: number[], v: number[], batch: number, lq: number, lk: number, hd: number, hdv: number,
  blocked: (n: number, i: number, j: number) => boolean, scale = 1 / Math.sqrt(hd)): number[] {
  const out = new Array<number>(batch * lq * hdv).fill(0);
  for (let n = 0; n < batch; n++)
    for (let i = 0; i < lq; i++) {
      const s: number[] = [];
      const keys: number[] = [];
      for (let j = 0; j < lk; j++) {
        if (blocked(n, i, j)) continue;
        let dot = 0;
        for (let c = 0; c < hd; c++) dot += q[(n * lq + i) * hd + c] * k[(n * lk + j) * hd + c];
        s.push(dot * scale);
        keys.push(j);
      }
      if (!keys.length) continue;
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      keys.forEach((j, t) => {
        for (let c = 0; c < hdv; c++) out[(n * lq + i) * hdv + c] += (e[t] / z) * v[(n * lk + j) * hdv + c];
      });
    }
  return out;
}

export interface MHAWeights {
  dim: number;
  heads: number;
  inW: number[]; // [3 dim, dim], rows [q; k; v]
  inB: number[] | null;
  outW: number[]; // [dim, dim]
  outB: number[] | null;
}

/** Self-attention of x [b, l, dim]; head h uses columns h*hd..(h+1)*hd of q, k and v. */
export function mhaRef(p: MHAWeights, x: number[], b: number, l: number, kpm: number[] | null, causal: boolean): number[] {
  const d = p.dim;
  const hd = d / p.heads;
  const qkv = linearRef(x, b * l, p.inW, 3 * d, d, p.inB);
  const att = new Array<number>(b * l * d).fill(0);
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < p.heads; hi++) {
      const pick = (part: number) => {
        const out: number[] = [];
        for (let t = 0; t < l; t++) for (let c = 0; c < hd; c++) out.push(qkv[(bi * l + t) * 3 * d + part * d + hi * hd + c]);
        return out;
      };
      const o = sdpaRef(pick(0), pick(1), pick(2), 1, l, l, hd, hd, (_, i, j) => (kpm !== null && kpm[bi * l + j] !== 0) || (causal && j > i));
      for (let t = 0; t < l; t++) for (let c = 0; c < hd; c++) att[(bi * l + t) * d + hi * hd + c] = o[t * hd + c];
    }
  return linearRef(att, b * l, p.outW, d, d, p.outB);
}

export interface MLPWeights {
  dim: number;
  hidden: number;
  out: number;
  w1: number[];
  b1: number[] | null;
  w2: number[];
  b2: number[] | null;
  activation: keyof typeof activations;
}

export function mlpRef(p: MLPWeights, x: number[], rows: number): number[] {
  const h = linearRef(x, rows, p.w1, p.hidden, p.dim, p.b1).map(activations[p.activation]);
  return linearRef(h, rows, p.w2, p.out, p.hidden, p.b2);
}

export interface BlockWeights {
  ln1: [number[], number[]];
  attn: MHAWeights;
  ln2: [number[], number[]];
  mlp: MLPWeights;
  eps: number;
}

/** Pre-LN block: y = x + attn(ln_1(x)); out = y + mlp(ln_2(y)). */
export function blockRef(p: BlockWeights, x: number[], b: number, l: number, kpm: number[] | null, causal: boolean): number[] {
  const d = p.attn.dim;
  const a = mhaRef(p.attn, layerNormRef(x, b * l, d, p.ln1[0], p.ln1[1], p.eps), b, l, kpm, causal);
  const y = x.map((v, i) => v + a[i]);
  const m = mlpRef(p.mlp, layerNormRef(y, b * l, d, p.ln2[0], p.ln2[1], p.eps), b * l);
  return y.map((v, i) => v + m[i]);
}
