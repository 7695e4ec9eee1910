// Reading facts back from PIXELS, independently of the scene description: the named colour of a
// pixel (nearest palette colour, background counting as its own class), the foreground mask
// (pixels far from the scene's background colour) and its 8-connected components. The tests use
// these to check that what the captions, answers and transformations say is visible in the image;
// they are exported so data-set audits outside the tests can do the same.

import { COLORS, COLOR_RGB, ColorName } from './vocab';

/** The RGB triple of pixel (x, y) of a CHW image of side `size`. */
export function pixelAt(image: Float32Array, size: number, x: number, y: number): [number, number, number] {
  const p = y * size + x;
  const plane = size * size;
  return [image[p], image[p + plane], image[p + 2 * plane]];
}

/** The palette colour nearest to `rgb`, or 'background' if `rgb` is nearer to `background`. */
export function nearestColorName(rgb: readonly number[], background: readonly number[]): ColorName | 'background' {
  let best: ColorName | 'background' = 'background';
  let bestD = (rgb[0] - background[0]) ** 2 + (rgb[1] - background[1]) ** 2 + (rgb[2] - background[2]) ** 2;
  for (const c of COLORS) {
    const v = COLOR_RGB[c];
    const d = (rgb[0] - v[0]) ** 2 + (rgb[1] - v[1]) ** 2 + (rgb[2] - v[2]) ** 2;
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

/** Pixels whose largest channel difference from `background` exceeds `threshold`. */
export function foregroundMask(image: Float32Array, size: number, background: readonly number[], threshold = 0.2): Uint8Array {
  const plane = size * size;
  const mask = new Uint8Array(plane);
  for (let p = 0; p < plane; p++) {
    const d = Math.max(
      Math.abs(image[p] - background[0]), Math.abs(image[p + plane] - background[1]), Math.abs(image[p + 2 * plane] - background[2]),
    );
    if (d > threshold) mask[p] = 1;
  }
  return mask;
}

export interface Component {
  pixels: number;
  /** Centroid in image units (0..1). */
  cx: number;
  cy: number;
  /** Bounding box [x0, y0, x1, y1) in pixels. */
  box: [number, number, number, number];
}

/** 8-connected components of a mask (flood fill), largest first. */
export function connectedComponents(mask: Uint8Array, size: number): Component[] {
  const label = new Int32Array(mask.length).fill(-1);
  const out: Component[] = [];
  const stack: number[] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || label[start] >= 0) continue;
    const id = out.length;
    let n = 0, sx = 0, sy = 0, x0 = size, y0 = size, x1 = 0, y1 = 0;
    label[start] = id;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop() as number;
      const x = p % size, y = Math.floor(p / size);
      n++;
      sx += x + 0.5;
      sy += y + 0.5;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + 1); y1 = Math.max(y1, y + 1);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= size || ny >= size) continue;
          const q = ny * size + nx;
          if (mask[q] && label[q] < 0) {
            label[q] = id;
            stack.push(q);
          }
        }
      }
    }
    out.push({ pixels: n, cx: sx / n / size, cy: sy / n / size, box: [x0, y0, x1, y1] });
  }
  return out.sort((a, b) => b.pixels - a.pixels);
}
