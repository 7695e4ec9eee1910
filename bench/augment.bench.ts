// Augmentation kernels (lib/data/augment.ts) on a batch of 256 x 3 x 32 x 32 float32 images,
// against a plain JS implementation of the same op on Float32Arrays (the data loader one would
// write without native kernels; numpy has no direct counterpart of these ops). Reported as
// thousands of images per second; the JS peer is single-threaded by nature.

import * as ts from '../lib';
import { colorJitter, CropBox, grayscale, hflip, JitterFactors, resizedCrop, sampleViewParams, twoViewAugment } from '../lib/data/augment';
import { benchThreads, timeOurs } from './harness';
import { printTable, Row } from './table';

const N = 256, C = 3, S = 32, P = S * S;
const clamp = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

function jsCrop(x: Float32Array, boxes: CropBox[], out: Float32Array): void {
  for (let i = 0; i < N; i++) {
    const b = boxes[i];
    for (let ch = 0; ch < C; ch++) {
      const src = (i * C + ch) * P;
      for (let y = 0; y < S; y++) {
        const ys = b.top + Math.min(Math.max((y + 0.5) * (b.height / S) - 0.5, 0), b.height - 1);
        const y0 = Math.floor(ys), y1 = Math.min(y0 + 1, S - 1), wy = ys - y0;
        for (let xx = 0; xx < S; xx++) {
          const xs = b.left + Math.min(Math.max((xx + 0.5) * (b.width / S) - 0.5, 0), b.width - 1);
          const x0 = Math.floor(xs), x1 = Math.min(x0 + 1, S - 1), wx = xs - x0;
          const t = x[src + y0 * S + x0] + wx * (x[src + y0 * S + x1] - x[src + y0 * S + x0]);
          const u = x[src + y1 * S + x0] + wx * (x[src + y1 * S + x1] - x[src + y1 * S + x0]);
          out[src + y * S + xx] = t + wy * (u - t);
        }
      }
    }
  }
}

function jsHue(r: number, g: number, b: number, shift: number, out: Float32Array, o: number): void {
  const maxc = Math.max(r, g, b), minc = Math.min(r, g, b), cr = maxc - minc;
  const s = maxc === minc ? 0 : cr / maxc, d = maxc === minc ? 1 : cr;
  const rc = (maxc - r) / d, gc = (maxc - g) / d, bc = (maxc - b) / d;
  let h = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
  h = ((h / 6 + 1) % 1) + shift;
  h -= Math.floor(h);
  const i = Math.floor(h * 6) % 6, f = h * 6 - Math.floor(h * 6), v = maxc;
  const p = clamp(v * (1 - s)), q = clamp(v * (1 - s * f)), t = clamp(v * (1 - s * (1 - f)));
  const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i];
  out[o] = rgb[0];
  out[o + P] = rgb[1];
  out[o + 2 * P] = rgb[2];
}

function jsJitter(x: Float32Array, fs: JitterFactors[], out: Float32Array): void {
  for (let i = 0; i < N; i++) {
    const f = fs[i], base = i * C * P;
    let mean = 0;
    for (let p = 0; p < P; p++) {
      for (let ch = 0; ch < 3; ch++) out[base + ch * P + p] = clamp(x[base + ch * P + p] * f.brightness);
      mean += 0.2989 * out[base + p] + 0.587 * out[base + P + p] + 0.114 * out[base + 2 * P + p];
    }
    mean /= P;
    for (let p = 0; p < P; p++) {
      const o = base + p;
      let r = clamp(f.contrast * out[o] + (1 - f.contrast) * mean);
      let g = clamp(f.contrast * out[o + P] + (1 - f.contrast) * mean);
      let b = clamp(f.contrast * out[o + 2 * P] + (1 - f.contrast) * mean);
      const gray = (1 - f.saturation) * (0.2989 * r + 0.587 * g + 0.114 * b);
      r = clamp(f.saturation * r + gray);
      g = clamp(f.saturation * g + gray);
      b = clamp(f.saturation * b + gray);
      jsHue(r, g, b, f.hue, out, o);
    }
  }
}

function jsGray(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < N; i++) {
    const base = i * C * P;
    for (let p = 0; p < P; p++) {
      const g = 0.2989 * x[base + p] + 0.587 * x[base + P + p] + 0.114 * x[base + 2 * P + p];
      out[base + p] = out[base + P + p] = out[base + 2 * P + p] = g;
    }
  }
}

function jsFlip(x: Float32Array, out: Float32Array): void {
  for (let row = 0; row < N * C * S; row++) for (let j = 0; j < S; j++) out[row * S + j] = x[row * S + S - 1 - j];
}

export async function runAugment(): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  ts.manualSeed(0);
  const x = ts.keep(ts.rand([N, C, S, S]));
  const xs = x.toTypedArray() as Float32Array;
  const out = new Float32Array(N * C * P);
  const params = sampleViewParams(N, S, S, 0, { seed: 1 });
  const jitter = params.jitter.map(() => ({ brightness: 1.2, contrast: 0.8, saturation: 1.3, hue: 0.05 }));
  const run = (f: () => ts.Tensor) => () => f().dispose();
  const cases = [
    { id: 'resizedCrop 256x3x32x32 -> 32x32', ours: run(() => resizedCrop(x, params.boxes, S, S)), peer: () => jsCrop(xs, params.boxes, out) },
    { id: 'colorJitter (b, c, s, h) 256x3x32x32', ours: run(() => colorJitter(x, jitter)), peer: () => jsJitter(xs, jitter, out) },
    { id: 'grayscale 256x3x32x32', ours: run(() => grayscale(x)), peer: () => jsGray(xs, out) },
    { id: 'hflip 256x3x32x32', ours: run(() => hflip(x)), peer: () => jsFlip(xs, out) },
    {
      id: 'twoViewAugment (ITO recipe, 2 views)', ours: () => twoViewAugment(x, { seed: 3 }).forEach((t) => t.dispose()),
      peer: () => {
        for (let v = 0; v < 2; v++) {
          const p = sampleViewParams(N, S, S, v, { seed: 3 });
          jsCrop(xs, p.boxes, out);
          jsJitter(out.slice(), p.jitter, out);
          jsGray(out.slice(), out);
        }
      },
    },
  ];
  const ours = await timeOurs(cases.map((c) => ({ id: c.id, fn: c.ours })));
  const peer = await timeOurs(cases.map((c) => ({ id: c.id, fn: c.peer })));
  const rows: Row[] = cases.map((c) => ({ case: c.id, ours: N / ours.get(c.id)! / 1e3, peer: N / peer.get(c.id)! / 1e3 }));
  x.dispose();
  return printTable(`Augmentations, float32, ${threads} threads (peer: plain JS, 1 thread)`, 'k img/s', 'JS', rows);
}

if (require.main === module) runAugment().catch((e) => { console.error(e); process.exit(1); });
