// Zero-shot classification with prompt ensembles (CLIP, Radford et al. 2021, section 3.1.4):
// each class is described by several prompts ("a photo of a {}", "a drawing of a {}", ...);
// their text embeddings are L2-normalised, averaged and re-normalised into one class embedding,
// and an image is assigned the class whose embedding has the highest cosine similarity.

import { Tensor } from '../tensor';
import { ArgumentError, ShapeError } from '../errors';
import { tensor } from '../ops/creation';
import { checkEmbeddingMatrix, forEachSimilarityBlock, normalizedRows } from './similarity';

export interface ZeroShotResult {
  top1: number;
  top5: number;
  /** 1 / number of classes. */
  chance: number;
  /** Accuracy per class (NaN for a class without images). */
  perClass: number[];
  /** Predicted class of every image. */
  predictions: Int32Array;
}

/**
 * Class embeddings from prompt embeddings: promptEmbeddings [P, D] with promptClass[p] the class
 * of prompt p (classes 0..C-1, each with at least one prompt). Returns [C, D], L2-normalised.
 */
export function classEmbeddings(promptEmbeddings: Tensor, promptClass: ArrayLike<number>, numClasses: number): Tensor {
  const op = 'classEmbeddings';
  checkEmbeddingMatrix(op, 'promptEmbeddings', promptEmbeddings);
  const [P, D] = promptEmbeddings.shape;
  if (promptClass.length !== P) throw new ShapeError(`${op}: promptClass needs one class per prompt (${P}), got ${promptClass.length}`);
  const rows = normalizedRows(promptEmbeddings);
  const acc = new Float64Array(numClasses * D);
  const count = new Int32Array(numClasses);
  for (let p = 0; p < P; p++) {
    const c = promptClass[p];
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) throw new ArgumentError(`${op}: promptClass[${p}] = ${c} is not a class in [0, ${numClasses})`);
    count[c]++;
    for (let d = 0; d < D; d++) acc[c * D + d] += rows[p * D + d];
  }
  for (let c = 0; c < numClasses; c++) {
    if (count[c] === 0) throw new ArgumentError(`${op}: class ${c} has no prompt`);
    let n = 0;
    for (let d = 0; d < D; d++) n += acc[c * D + d] ** 2;
    n = Math.sqrt(n) || 1;
    for (let d = 0; d < D; d++) acc[c * D + d] /= n;
  }
  return tensor(acc, { shape: [numClasses, D], dtype: 'float32' });
}

/** images [N, D], classes [C, D] (e.g. from classEmbeddings), labels [N] in 0..C-1. */
export function zeroShotAccuracy(images: Tensor, classes: Tensor, labels: ArrayLike<number>): ZeroShotResult {
  const op = 'zeroShotAccuracy';
  checkEmbeddingMatrix(op, 'images', images);
  checkEmbeddingMatrix(op, 'classes', classes);
  const [N, C] = [images.shape[0], classes.shape[0]];
  if (labels.length !== N) throw new ShapeError(`${op}: labels needs one class per image (${N}), got ${labels.length}`);
  const predictions = new Int32Array(N);
  let top1 = 0;
  let top5 = 0;
  const hits = new Float64Array(C);
  const seen = new Float64Array(C);
  forEachSimilarityBlock(images, classes, (r0, rows, s) => {
    for (let r = 0; r < rows; r++) {
      const y = labels[r0 + r];
      if (!Number.isInteger(y) || y < 0 || y >= C) throw new ArgumentError(`${op}: labels[${r0 + r}] = ${y} is not a class in [0, ${C})`);
      const base = r * C;
      let arg = 0;
      let above = 0;
      for (let c = 0; c < C; c++) {
        if (s[base + c] > s[base + arg]) arg = c;
        if (s[base + c] > s[base + y]) above++;
      }
      predictions[r0 + r] = arg;
      seen[y]++;
      if (above === 0) {
        top1++;
        hits[y]++;
      }
      if (above < 5) top5++;
    }
  });
  return { top1: top1 / N, top5: top5 / N, chance: 1 / C, perClass: Array.from(hits, (h, c) => (seen[c] ? h / seen[c] : NaN)), predictions };
}
