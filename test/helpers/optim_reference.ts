// Plain-JS float64 references of the optimizer updates, written from the published algorithms
// (PyTorch's AdamW and SGD docs, lucidrains/lion-pytorch) as loops over flat arrays. Nothing
// here calls the engine; the optimizer tests run the native kernels against these.

export interface AdamWRefOpts { lr: number; beta1: number; beta2: number; eps: number; wd: number; gradScale?: number }
export interface SGDRefOpts { lr: number; momentum: number; dampening: number; wd: number; nesterov: boolean; gradScale?: number }
export interface LionRefOpts { lr: number; beta1: number; beta2: number; wd: number; gradScale?: number }

/** One AdamW step in place; `step` counts this update (1 on the first). */
export function adamwRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, step: number, o: AdamWRefOpts): void {
  const s = o.gradScale ?? 1;
  const bc1 = 1 - Math.pow(o.beta1, step);
  const bc2 = 1 - Math.pow(o.beta2, step);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * s;
    p[i] *= 1 - o.lr * o.wd;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    const mhat = m[i] / bc1;
    const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps;
    p[i] -= (o.lr * mhat) / denom;
  }
}

/** One SGD step in place; `buf` is null when momentum is 0, `first` on the buffer's first use. */
export function sgdRef(p: Float64Array, g: ArrayLike<number>, buf: Float64Array | null, first: boolean, o: SGDRefOpts): void {
  const s = o.gradScale ?? 1;
  for (let i = 0; i < p.length; i++) {
    let d = g[i] * s;
    if (o.wd !== 0) d += o.wd * p[i];
    if (o.momentum !== 0 && buf) {
      buf[i] = first ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
    }
    p[i] -= o.lr * d;
  }
}

/** One Lion step in place. */
export function lionRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, o: LionRefOpts): void {
  const s = o.gradScale ?? 1;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * s;
    p[i] *= 1 - o.lr * o.wd;
    p[i] -= o.lr * Math.sign(o.beta1 * m[i] + (1 - o.beta1) * gi);
    m[i] = o.beta2 * m[i] + (1 - o.beta2) * gi;
  }
}

/** Sum of x*x in float64. */
export function sumSquaresRef(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}
