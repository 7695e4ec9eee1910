// Image files in and out of the data layer: PNG (pngjs) and JPEG (jpeg-js) decoding to CHW float
// RGB in [0, 1], PNG/JPEG encoding, PIL-style bilinear resizing with a centre crop, and a PNG grid
// writer with captions under each cell (for looking at batches, retrievals and generations).
// Everything works on plain Float32Arrays in CHW order, the data layer's layout, so no tensors or
// native memory are involved; pngjs and jpeg-js are pure JS, which keeps this usable anywhere.

import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import * as jpeg from 'jpeg-js';
import { ArgumentError, ShapeError } from '../errors';
import { DataFileError, ImageBatch, checkImageBatch } from './image_batch';
import { GLYPH_ADVANCE, LINE_HEIGHT, drawText, wrapText } from './bitmap_font';

/** A decoded image: CHW float pixels in [0, 1]. */
export interface DecodedImage {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

/** Pixel layout of an encoder's input: planar CHW (the data layer's) or interleaved HWC. */
export type PixelLayout = 'chw' | 'hwc';

function checkDims(op: string, width: number, height: number, channels: number, length: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new ArgumentError(`${op}: width and height must be positive integers, got ${width} x ${height}`);
  }
  if (channels !== 1 && channels !== 3) throw new ArgumentError(`${op}: channels must be 1 or 3, got ${channels}`);
  if (length !== width * height * channels) {
    throw new ShapeError(`${op}: got ${length} values, expected ${channels} x ${height} x ${width} = ${width * height * channels}`);
  }
}

/** Interleaved RGBA bytes from CHW/HWC floats in [0, 1] (clamped) or bytes; gray is replicated. */
function toRgba(pixels: Uint8Array | Float32Array, width: number, height: number, channels: number, layout: PixelLayout): Buffer {
  const n = width * height;
  const out = Buffer.alloc(n * 4);
  const isFloat = pixels instanceof Float32Array;
  for (let p = 0; p < n; p++) {
    for (let k = 0; k < 3; k++) {
      const c = channels === 1 ? 0 : k;
      const v = layout === 'chw' ? pixels[c * n + p] : pixels[p * channels + c];
      out[p * 4 + k] = isFloat ? Math.round(Math.min(1, Math.max(0, Number.isNaN(v) ? 0 : v)) * 255) : v;
    }
    out[p * 4 + 3] = 255;
  }
  return out;
}

/**
 * A PNG file's bytes. Float pixels are in [0, 1] (clamped, rounded to 8 bits); byte pixels are used
 * as is. The layout is CHW unless opts.layout is 'hwc'. channels 1 writes a grayscale PNG.
 */
export function encodePng(
  pixels: Uint8Array | Float32Array, width: number, height: number, channels: 1 | 3, opts: { layout?: PixelLayout } = {},
): Buffer {
  checkDims('encodePng', width, height, channels, pixels.length);
  const png = new PNG({ width, height });
  png.data = toRgba(pixels, width, height, channels, opts.layout ?? 'chw');
  return PNG.sync.write(png, { colorType: channels === 1 ? 0 : 2, inputColorType: 6, inputHasAlpha: true });
}

/** A JPEG file's bytes (quality 1..100, default 90); pixels as for encodePng. Gray is stored as RGB. */
export function encodeJpeg(
  pixels: Uint8Array | Float32Array, width: number, height: number, channels: 1 | 3, opts: { layout?: PixelLayout; quality?: number } = {},
): Buffer {
  checkDims('encodeJpeg', width, height, channels, pixels.length);
  const quality = opts.quality ?? 90;
  if (!(quality >= 1 && quality <= 100)) throw new ArgumentError(`encodeJpeg: quality must be in [1, 100], got ${quality}`);
  return jpeg.encode({ data: toRgba(pixels, width, height, channels, opts.layout ?? 'chw'), width, height }, quality).data;
}

/** CHW float RGB from interleaved RGBA bytes (alpha is dropped, as PIL's convert('RGB') does). */
function rgbaToChw(rgba: Uint8Array, width: number, height: number): Float32Array {
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) {
    out[p] = rgba[p * 4] / 255;
    out[n + p] = rgba[p * 4 + 1] / 255;
    out[2 * n + p] = rgba[p * 4 + 2] / 255;
  }
  return out;
}

/**
 * Decode PNG or JPEG bytes (detected from the signature, not the name) to CHW float RGB in [0, 1].
 * Grayscale, palette, RGBA and 16-bit PNGs are all converted to 8-bit-precision RGB; `name` is
 * used in errors.
 */
export function decodeImage(bytes: Uint8Array, name = '<buffer>'): DecodedImage & { channels: 3 } {
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DataFileError(name, `not a PNG or JPEG file (first bytes ${head || '<empty>'}; expected 89 50 4e 47 or ff d8 ff)`);
  }
  try {
    if (isPng) {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { data: rgbaToChw(png.data, png.width, png.height), channels: 3, height: png.height, width: png.width };
    }
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    return { data: rgbaToChw(img.data, img.width, img.height), channels: 3, height: img.height, width: img.width };
  } catch (e) {
    throw new DataFileError(name, `cannot decode ${isPng ? 'PNG' : 'JPEG'}: ${(e as Error).message}`);
  }
}

/** Read and decode a PNG or JPEG file to CHW float RGB in [0, 1]. */
export function decodeImageFile(file: string): DecodedImage & { channels: 3 } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new DataFileError(file, `cannot read image file: ${(e as Error).message}`);
  }
  return decodeImage(bytes, file);
}

/** For each output index, the first input index and the normalised triangle-filter weights. */
function filterTaps(inSize: number, outSize: number, start: number, span: number): { first: Int32Array; weights: Float32Array[] } {
  const scale = span / outSize;
  const support = Math.max(1, scale); // widen the filter when shrinking (antialiasing, like PIL)
  const first = new Int32Array(outSize);
  const weights: Float32Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = start + (o + 0.5) * scale;
    // Taps stay inside the window (the pixels it overlaps), so a crop never pulls in what it cut off.
    const lo = Math.max(0, Math.floor(start), Math.floor(centre - support));
    const hi = Math.min(inSize - 1, Math.ceil(start + span) - 1, Math.ceil(centre + support));
    const w = new Float32Array(hi - lo + 1);
    let total = 0;
    for (let i = lo; i <= hi; i++) {
      const t = Math.max(0, 1 - Math.abs(i + 0.5 - centre) / support);
      w[i - lo] = t;
      total += t;
    }
    if (total > 0) for (let k = 0; k < w.length; k++) w[k] /= total;
    first[o] = lo;
    weights.push(w);
  }
  return { first, weights };
}

/**
 * Resize CHW float pixels with a bilinear (triangle) filter, pixel centres at half-integers. When
 * shrinking, the filter widens with the scale factor (antialiasing, as PIL's BILINEAR does), so a
 * large photo does not alias when brought down to 32 x 32. `crop` (in input pixels) resamples
 * just that window.
 */
export function resizeBilinear(
  chw: Float32Array, c: number, h: number, w: number, outH: number, outW: number,
  crop: { top: number; left: number; height: number; width: number } = { top: 0, left: 0, height: h, width: w },
): Float32Array {
  if (chw.length !== c * h * w) throw new ShapeError(`resizeBilinear: got ${chw.length} values, expected ${c} x ${h} x ${w} = ${c * h * w}`);
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1) {
    throw new ArgumentError(`resizeBilinear: output size must be positive integers, got ${outH} x ${outW}`);
  }
  const rows = filterTaps(h, outH, crop.top, crop.height);
  const cols = filterTaps(w, outW, crop.left, crop.width);
  const tmp = new Float32Array(h * outW); // horizontal pass, one channel at a time
  const out = new Float32Array(c * outH * outW);
  for (let ch = 0; ch < c; ch++) {
    const src = ch * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < outW; x++) {
        const lo = cols.first[x];
        const wt = cols.weights[x];
        let s = 0;
        for (let k = 0; k < wt.length; k++) s += wt[k] * chw[src + y * w + lo + k];
        tmp[y * outW + x] = s;
      }
    }
    const dst = ch * outH * outW;
    for (let y = 0; y < outH; y++) {
      const lo = rows.first[y];
      const wt = rows.weights[y];
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let k = 0; k < wt.length; k++) s += wt[k] * tmp[(lo + k) * outW + x];
        out[dst + y * outW + x] = s;
      }
    }
  }
  return out;
}

/** The largest centred window of an h x w image with the aspect ratio outH : outW. */
export function centerCropBox(h: number, w: number, outH: number, outW: number): { top: number; left: number; height: number; width: number } {
  if (h * outW > w * outH) {
    const height = (w * outH) / outW;
    return { top: (h - height) / 2, left: 0, height, width: w };
  }
  const width = (h * outW) / outH;
  return { top: 0, left: (w - width) / 2, height: h, width };
}

/** Centre-crop to the target aspect ratio, then resize bilinearly to outH x outW. */
export function centerCropResize(chw: Float32Array, c: number, h: number, w: number, outH: number, outW: number): Float32Array {
  return resizeBilinear(chw, c, h, w, outH, outW, centerCropBox(h, w, outH, outW));
}

export interface ImageGridOptions {
  /** Cells per row (default: ceil(sqrt(n))). */
  cols?: number;
  /** Integer nearest-neighbour upscaling of each image (default: about 96 px per cell side). */
  scale?: number;
  /** One caption per image, drawn under its cell in a 5x7 pixel font and also written to <path>.txt. */
  labels?: readonly string[];
  /** Caption lines per cell (default 3; longer captions end in '..'). */
  labelLines?: number;
  /** Gap between cells in pixels (default 4, so neighbouring captions stay apart). */
  pad?: number;
}

/**
 * Write a batch as a PNG grid. 1-channel batches give a grayscale PNG, 3-channel an RGB one. With
 * labels, each cell gets its caption (word-wrapped) underneath and the full captions are also
 * written one per line to a sidecar `<path>.txt`, since the font has few pixels. Returns the
 * grid's size and the files written.
 */
export function saveImageGrid(file: string, images: ImageBatch, opts: ImageGridOptions = {}): { width: number; height: number; files: string[] } {
  checkImageBatch(images, 'saveImageGrid');
  const { n, channels, height: h, width: w } = images;
  if (channels !== 1 && channels !== 3) throw new ArgumentError(`saveImageGrid: images must have 1 or 3 channels, got ${channels}`);
  if (n < 1) throw new ArgumentError('saveImageGrid: the batch is empty');
  const labels = opts.labels;
  if (labels !== undefined && labels.length !== n) throw new ArgumentError(`saveImageGrid: got ${labels.length} labels for ${n} images`);
  const cols = Math.max(1, Math.min(n, Math.floor(opts.cols ?? Math.ceil(Math.sqrt(n)))));
  const rows = Math.ceil(n / cols);
  const scale = Math.max(1, Math.floor(opts.scale ?? Math.max(1, Math.round(96 / Math.max(h, w)))));
  const pad = Math.max(0, Math.floor(opts.pad ?? 4));
  const labelLines = labels ? Math.max(1, Math.floor(opts.labelLines ?? 3)) : 0;
  const cellW = w * scale;
  const cellH = h * scale + (labels ? labelLines * LINE_HEIGHT + 1 : 0);
  const gridW = cols * cellW + (cols + 1) * pad;
  const gridH = rows * cellH + (rows + 1) * pad;
  const plane = gridW * gridH;
  const grid = new Float32Array(channels * plane).fill(0.12);
  const per = channels * h * w;
  const charsPerLine = Math.max(1, Math.floor((cellW + 1) / GLYPH_ADVANCE));
  for (let i = 0; i < n; i++) {
    const x0 = pad + (i % cols) * (cellW + pad);
    const y0 = pad + Math.floor(i / cols) * (cellH + pad);
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < h * scale; y++) {
        const srcRow = i * per + c * h * w + Math.floor(y / scale) * w;
        const dstRow = c * plane + (y0 + y) * gridW + x0;
        for (let x = 0; x < w * scale; x++) grid[dstRow + x] = images.data[srcRow + Math.floor(x / scale)];
      }
    }
    if (labels) {
      const lines = wrapText(labels[i], charsPerLine, labelLines);
      lines.forEach((line, k) => drawText(grid, channels, gridH, gridW, line, x0, y0 + h * scale + 1 + k * LINE_HEIGHT));
    }
  }
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, encodePng(grid, gridW, gridH, channels));
  const files = [file];
  if (labels) {
    const sidecar = `${file}.txt`;
    fs.writeFileSync(sidecar, labels.map((l, i) => `${i}\t${l.replace(/\s+/g, ' ')}`).join('\n') + '\n');
    files.push(sidecar);
  }
  return { width: gridW, height: gridH, files };
}
