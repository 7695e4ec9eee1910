// Fashion-MNIST from its four IDX files (the Debian package dataset-fashion-mnist installs them in
// /usr/share/datasets/fashion-mnist/). Images come back as a float ImageBatch [n, 1, 28, 28] in
// [0, 1], labels as Int32Array (ready for ts.tensor and cross-entropy). The directory is
// opts.dir, else $TESSERA_FASHION_MNIST_DIR, else the Debian path; a missing file says how to get it.

import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError } from '../errors';
import { FASHION_CLASS_NAMES } from './captions_fashion';
import { DataFileError, ImageBatch } from './image_batch';
import { readIdxImages, readIdxLabels } from './idx';

export { FASHION_CLASS_NAMES } from './captions_fashion';

export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist/';

export type FashionSplit = 'train' | 'test';

export interface FashionMnist {
  /** [n, 1, 28, 28] float pixels in [0, 1]. */
  images: ImageBatch;
  /** n labels in 0..9. */
  labels: Int32Array;
  classNames: readonly string[];
}

const FILES: Record<FashionSplit, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

const HOW_TO_GET = 'install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or set TESSERA_FASHION_MNIST_DIR to a directory holding the IDX files';

/** The directory loadFashionMnist reads: opts.dir, else $TESSERA_FASHION_MNIST_DIR, else the Debian path. */
export function fashionMnistDir(dir?: string): string {
  return dir ?? process.env.TESSERA_FASHION_MNIST_DIR ?? DEFAULT_FASHION_MNIST_DIR;
}

/** `<dir>/<base>.gz` if present, else `<dir>/<base>`; a clear error when neither exists. */
function locate(dir: string, base: string): string {
  for (const name of [`${base}.gz`, base]) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  if (!fs.existsSync(dir)) throw new DataFileError(dir, `Fashion-MNIST directory not found; ${HOW_TO_GET}`);
  throw new DataFileError(path.join(dir, `${base}.gz`), `Fashion-MNIST file not found (nor ${base} uncompressed); ${HOW_TO_GET}`);
}

/**
 * Load a Fashion-MNIST split: 60000 training or 10000 test images. `limit` keeps the first
 * `limit` images (the files are still read whole: they are small).
 */
export function loadFashionMnist(split: FashionSplit, opts: { dir?: string; limit?: number } = {}): FashionMnist {
  if (split !== 'train' && split !== 'test') throw new ArgumentError(`loadFashionMnist: split must be 'train' or 'test', got ${String(split)}`);
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 0)) {
    throw new ArgumentError(`loadFashionMnist: limit must be a non-negative integer, got ${opts.limit}`);
  }
  const dir = fashionMnistDir(opts.dir);
  const imagesFile = locate(dir, FILES[split].images);
  const labelsFile = locate(dir, FILES[split].labels);
  const img = readIdxImages(imagesFile);
  const lab = readIdxLabels(labelsFile);
  if (img.n !== lab.length) {
    throw new DataFileError(imagesFile, `has ${img.n} images but ${labelsFile} has ${lab.length} labels; expected equal counts`);
  }
  if (img.height !== 28 || img.width !== 28) {
    throw new DataFileError(imagesFile, `images are ${img.height} x ${img.width}, expected 28 x 28 for Fashion-MNIST`);
  }
  const n = Math.min(img.n, opts.limit ?? img.n);
  const per = img.height * img.width;
  const data = new Float32Array(n * per);
  for (let i = 0; i < n * per; i++) data[i] = img.data[i] / 255;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const l = lab[i];
    if (l >= FASHION_CLASS_NAMES.length) throw new DataFileError(labelsFile, `label ${l} at item ${i} is outside 0..${FASHION_CLASS_NAMES.length - 1}`);
    labels[i] = l;
  }
  return { images: { data, n, channels: 1, height: img.height, width: img.width }, labels, classNames: FASHION_CLASS_NAMES };
}
