// Pixel operations on square CHW float32 images, the targets of the geometric and photometric
// transformations: rotations by quarter turns, flips, crop-and-resize, grayscale, brightness and
// contrast. Each returns a new array and clamps to [0, 1]. Crop-and-resize is "cut the window
// out, then resize it": a triangle (bilinear) filter with pixel centres at half-integers whose
// taps never leave the window, widened when shrinking (antialiasing) -- the same convention as
// the data layer's resizeBilinear, kept local so the world depends on nothing but itself.

/** Rotate clockwise by `quarterTurns` x 90 degrees: out[y][x] = in[S-1-x][y] per quarter turn. */
export function rotateClockwise(img: Float32Array, channels: number, size: number, quarterTurns: number): Float32Array {
  const S = size;
  const turns = ((quarterTurns % 4) + 4) % 4;
  const out = new Float32Array(img.length);
  const plane = S * S;
  for (let c = 0; c < channels; c++) {
    const base = c * plane;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let sy: number, sx: number;
        if (turns === 0) { sy = y; sx = x; }
        else if (turns === 1) { sy = S - 1 - x; sx = y; }
        else if (turns === 2) { sy = S - 1 - y; sx = S - 1 - x; }
        else { sy = x; sx = S - 1 - y; }
        out[base + y * S + x] = img[base + sy * S + sx];
      }
    }
  }
  return out;
}

/** Mirror left-right (horizontal) or top-bottom (vertical). */
export function flip(img: Float32Array, channels: number, size: number, axis: 'horizontal' | 'vertical'): Float32Array {
  const S = size;
  const out = new Float32Array(img.length);
  for (let c = 0; c < channels; c++) {
    const base = c * S * S;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const sy = axis === 'vertical' ? S - 1 - y : y;
        const sx = axis === 'horizontal' ? S - 1 - x : x;
        out[base + y * S + x] = img[base + sy * S + sx];
      }
    }
  }
  return out;
}

export interface PixelBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** For each output index: first input index and normalised weights, taps inside [start, start+span). */
function taps(inSize: number, outSize: number, start: number, span: number): { first: Int32Array; weights: Float64Array[] } {
  const scale = span / outSize;
  const support = Math.max(1, scale);
  const first = new Int32Array(outSize);
  const weights: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = start + (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(start), Math.floor(centre - support));
    const hi = Math.min(inSize - 1, Math.ceil(start + span) - 1, Math.ceil(centre + support));
    const w = new Float64Array(Math.max(0, hi - lo + 1));
    let total = 0;
    for (let i = lo; i <= hi; i++) {
      w[i - lo] = Math.max(0, 1 - Math.abs(i + 0.5 - centre) / support);
      total += w[i - lo];
    }
    for (let k = 0; k < w.length; k++) w[k] /= total;
    first[o] = lo;
    weights.push(w);
  }
  return { first, weights };
}

/** The window `box` of the image resampled (bilinear) to outSize x outSize. */
export function cropResize(img: Float32Array, channels: number, size: number, box: PixelBox, outSize: number): Float32Array {
  const rows = taps(size, outSize, box.top, box.height);
  const cols = taps(size, outSize, box.left, box.width);
  const out = new Float32Array(channels * outSize * outSize);
  for (let c = 0; c < channels; c++) {
    const base = c * size * size;
    for (let y = 0; y < outSize; y++) {
      const ry = rows.first[y], wy = rows.weights[y];
      for (let x = 0; x < outSize; x++) {
        const rx = cols.first[x], wx = cols.weights[x];
        let s = 0;
        for (let i = 0; i < wy.length; i++) {
          let row = 0;
          for (let j = 0; j < wx.length; j++) row += wx[j] * img[base + (ry + i) * size + rx + j];
          s += wy[i] * row;
        }
        out[c * outSize * outSize + y * outSize + x] = Math.min(1, Math.max(0, s));
      }
    }
  }
  return out;
}

/** ITU-R 601 luma copied into every channel. */
export function grayscale(img: Float32Array, size: number): Float32Array {
  const plane = size * size;
  const out = new Float32Array(img.length);
  for (let p = 0; p < plane; p++) {
    const l = 0.299 * img[p] + 0.587 * img[p + plane] + 0.114 * img[p + 2 * plane];
    out[p] = out[p + plane] = out[p + 2 * plane] = l;
  }
  return out;
}

/** x -> clamp(x * factor). */
export function scaleBrightness(img: Float32Array, factor: number): Float32Array {
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = Math.min(1, Math.max(0, img[i] * factor));
  return out;
}

/** x -> clamp((x - mean) * factor + mean), the mean over all pixels and channels. */
export function scaleContrast(img: Float32Array, factor: number): Float32Array {
  let mean = 0;
  for (let i = 0; i < img.length; i++) mean += img[i];
  mean /= img.length;
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = Math.min(1, Math.max(0, (img[i] - mean) * factor + mean));
  return out;
}
