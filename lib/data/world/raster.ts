// The rasteriser: a scene to CHW float32 pixels in [0, 1] at any square size. The background is
// its flat colour plus a small hashed per-pixel texture; each object is drawn with 4 x 4
// supersampling over its bounding box only (anti-aliased edges, exact coverage of the point tests
// in shapes.ts) and alpha-blended over what is below. Pure JS on typed arrays: well under a
// millisecond per 32 x 32 image, so batches are rendered on demand rather than stored.

import { Scene } from './scene';
import { SHAPE_EXTENT, insideShape } from './shapes';
import { BACKGROUND_RGB, BACKGROUND_TEXTURE, COLOR_RGB } from './vocab';

const SUB = 4; // supersamples per pixel side

/** Hashed texture value in [-1, 1] for pixel (x, y) of a texture seed. */
export function textureNoise(seed: number, x: number, y: number): number {
  let h = (seed ^ Math.imul(x + 1, 0x27d4eb2d) ^ Math.imul(y + 1, 0x165667b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) / 4294967295) * 2 - 1;
}

/** The background colour of pixel (x, y) (what a pixel with no object on it holds). */
export function backgroundPixel(scene: Scene, x: number, y: number): [number, number, number] {
  const base = BACKGROUND_RGB[scene.background];
  const n = BACKGROUND_TEXTURE * textureNoise(scene.textureSeed, x, y);
  return [base[0] + n, base[1] + n, base[2] + n];
}

/**
 * Draw `scene` as a [3, size, size] image into `out` starting at `offset` (or into a new array).
 * Returns the array written.
 */
export function renderScene(scene: Scene, size: number, out?: Float32Array, offset = 0): Float32Array {
  const S = size;
  const plane = S * S;
  const img = out ?? new Float32Array(3 * plane);
  const base = BACKGROUND_RGB[scene.background];
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const n = BACKGROUND_TEXTURE * textureNoise(scene.textureSeed, x, y);
      const p = offset + y * S + x;
      img[p] = base[0] + n;
      img[p + plane] = base[1] + n;
      img[p + 2 * plane] = base[2] + n;
    }
  }
  const inv = 1 / (SUB * SUB);
  for (const o of scene.objects) {
    const [r, g, b] = COLOR_RGB[o.color];
    const reach = SHAPE_EXTENT[o.shape] * o.radius;
    const x0 = Math.max(0, Math.floor((o.cx - reach) * S));
    const x1 = Math.min(S - 1, Math.ceil((o.cx + reach) * S));
    const y0 = Math.max(0, Math.floor((o.cy - reach) * S));
    const y1 = Math.min(S - 1, Math.ceil((o.cy + reach) * S));
    const scale = 1 / (o.radius * S); // pixel units -> object radii
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let hits = 0;
        for (let sy = 0; sy < SUB; sy++) {
          const v = (y + (sy + 0.5) / SUB - o.cy * S) * scale;
          for (let sx = 0; sx < SUB; sx++) {
            const u = (x + (sx + 0.5) / SUB - o.cx * S) * scale;
            if (insideShape(o.shape, u, v)) hits++;
          }
        }
        if (hits === 0) continue;
        const a = hits * inv;
        const p = offset + y * S + x;
        img[p] += a * (r - img[p]);
        img[p + plane] += a * (g - img[p + plane]);
        img[p + 2 * plane] += a * (b - img[p + 2 * plane]);
      }
    }
  }
  return img;
}
