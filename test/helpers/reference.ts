// Independent float64 references written as plain loops over flat arrays, for checking the
// native kernels' forward results. Nothing here calls the engine.

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function broadcast(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    return x === 1 ? y : x;
  });
}

/** Flat index into `shape` (row-major) of the element that broadcast index `idx` of `out` reads. */
export function sourceIndex(idx: number[], shape: Shape): number {
  const lead = idx.length - shape.length;
  let flat = 0;
  for (let i = 0; i < shape.length; i++) flat = flat * shape[i] + (shape[i] === 1 ? 0 : idx[lead + i]);
  return flat;
}

export function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

export function binaryRef(a: ArrayLike<number>, as: Shape, b: ArrayLike<number>, bs: Shape, f: (x: number, y: number) => number): { out: number[]; shape: number[] } {
  const shape = broadcast(as, bs);
  const out = new Array<number>(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = f(a[sourceIndex(idx, as)], b[sourceIndex(idx, bs)]);
  }
  return { out, shape };
}

/** Reduce `x` of `shape` over `dims` with f(values) -> number; returns keepdim=false order. */
export function reduceRef(x: ArrayLike<number>, shape: Shape, dims: number[], f: (vals: number[]) => number): number[] {
  const outShape = shape.map((s, i) => (dims.includes(i) ? 1 : s));
  const groups = new Map<number, number[]>();
  for (let i = 0; i < x.length; i++) {
    const idx = unravel(i, shape);
    const key = sourceIndex(idx, outShape);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(x[i]);
  }
  const n = numel(outShape);
  return Array.from({ length: n }, (_, k) => f(groups.get(k) ?? []));
}

/** Transpose a row-major [r, c] flat array to [c, r]. */
export function transpose2d(x: ArrayLike<number>, r: number, c: number): number[] {
  const out = new Array<number>(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = x[i * c + j];
  return out;
}

export function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for 1e-10; use a series / continued fraction.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 200; n++) {
      term *= (-t * t) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
}
