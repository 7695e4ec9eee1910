// The shared vocabulary of the data layer: ImageBatch, the one image-batch type every loader speaks
// (float32 NCHW pixels in [0, 1] in a flat array plus the four dims), and DataFileError, the error
// every loader raises for a bad file (it carries the path and, for text files, the 1-based line).
// An ImageBatch is a plain JS object (not a Tensor) so loaders, the synthetic world
// and file writers can build and slice batches without touching native memory; a training loop
// turns it into a tensor with imageBatchToTensor when it needs one.

import { ShapeError, TesseraError } from '../errors';
import { tensor } from '../ops/creation';
import { Tensor } from '../tensor';

/** A data file that is missing, truncated, malformed or undecodable; the message names the file. */
export class DataFileError extends TesseraError {
  constructor(readonly file: string, message: string, readonly line?: number) {
    super(line === undefined ? `${file}: ${message}` : `${file}:${line}: ${message}`);
  }
}

/** N images of C x H x W float32 pixels in [0, 1], stored NCHW in `data` (length n*c*h*w). */
export interface ImageBatch {
  data: Float32Array;
  n: number;
  channels: number;
  height: number;
  width: number;
}

/** Throws a ShapeError naming `what` if the dims are not positive integers or disagree with data.length. */
export function checkImageBatch(b: ImageBatch, what = 'image batch'): void {
  const dims: [string, number][] = [['n', b.n], ['channels', b.channels], ['height', b.height], ['width', b.width]];
  for (const [name, v] of dims) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${what}: ${name} must be a non-negative integer, got ${v}`);
  }
  const expected = b.n * b.channels * b.height * b.width;
  if (!(b.data instanceof Float32Array)) throw new ShapeError(`${what}: data must be a Float32Array`);
  if (b.data.length !== expected) {
    throw new ShapeError(
      `${what}: data has ${b.data.length} floats but [n=${b.n}, c=${b.channels}, h=${b.height}, w=${b.width}] needs ${expected}`,
    );
  }
}

/** A float32 cpu tensor of shape [n, c, h, w] holding a copy of the batch's pixels. */
export function imageBatchToTensor(b: ImageBatch): Tensor {
  checkImageBatch(b, 'imageBatchToTensor');
  return tensor(b.data, { dtype: 'float32', device: 'cpu', shape: [b.n, b.channels, b.height, b.width] });
}

/** Images [start, start + count) of a batch as a new batch (the pixels are copied). */
export function sliceImageBatch(b: ImageBatch, start: number, count: number): ImageBatch {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > b.n) {
    throw new ShapeError(`sliceImageBatch: images [${start}, ${start + count}) are outside a batch of ${b.n}`);
  }
  const per = b.channels * b.height * b.width;
  return { data: b.data.slice(start * per, (start + count) * per), n: count, channels: b.channels, height: b.height, width: b.width };
}

/** The images at `indices` (in that order) gathered into a new batch. */
export function gatherImageBatch(b: ImageBatch, indices: ArrayLike<number>): ImageBatch {
  const per = b.channels * b.height * b.width;
  const data = new Float32Array(indices.length * per);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= b.n) throw new ShapeError(`gatherImageBatch: index ${i} is outside a batch of ${b.n}`);
    data.set(b.data.subarray(i * per, (i + 1) * per), k * per);
  }
  return { data, n: indices.length, channels: b.channels, height: b.height, width: b.width };
}
