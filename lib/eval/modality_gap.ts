// The modality gap (Liang et al. 2022, "Mind the Gap"): after L2 normalisation, image and text
// embeddings of contrastively trained models sit in two separate cones. We report
//   - gap: the Euclidean distance between the centroid of the normalised image embeddings and
//     the centroid of the normalised text embeddings (0 when the two clouds share a centre);
//   - linear separability: held-out accuracy of a logistic-regression probe trained to tell an
//     image embedding from a text embedding (0.5 = indistinguishable, 1 = fully separated);
//   - the mean cosine similarity of matched pairs vs random pairs, for context.
// ITO's claim is that its training-time fusion closes the gap; these numbers make it checkable.

import { Tensor } from '../tensor';
import { ShapeError } from '../errors';
import { enableGrad, noGrad } from '../autograd';
import { scope } from '../scope';
import { tensor, zeros } from '../ops/creation';
import { AdamW } from '../optim/adamw';
import { checkEmbeddingMatrix, normalizedRows } from './similarity';

export interface ModalityGapResult {
  /** ||mean(normalize(images)) - mean(normalize(texts))||. */
  gap: number;
  /** Held-out accuracy of a linear image-vs-text probe (chance 0.5). */
  linearSeparability: number;
  /** Mean cosine of pairs (images[i], texts[i]) when both have N rows, else NaN. */
  pairedCosine: number;
}

/** Deterministic split (every 4th item is held out) and a few hundred full-batch AdamW steps. */
export function modalityGap(images: Tensor, texts: Tensor, opts: { probeSteps?: number } = {}): ModalityGapResult {
  const op = 'modalityGap';
  checkEmbeddingMatrix(op, 'images', images);
  checkEmbeddingMatrix(op, 'texts', texts);
  const D = images.shape[1];
  if (texts.shape[1] !== D) throw new ShapeError(`${op}: images ${images.describe()} and texts ${texts.describe()} must have the same embedding size`);
  const xi = normalizedRows(images);
  const xt = normalizedRows(texts);
  const [N, M] = [images.shape[0], texts.shape[0]];
  const ci = new Float64Array(D);
  const ct = new Float64Array(D);
  for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) ci[d] += xi[i * D + d] / N;
  for (let j = 0; j < M; j++) for (let d = 0; d < D; d++) ct[d] += xt[j * D + d] / M;
  let gap = 0;
  for (let d = 0; d < D; d++) gap += (ci[d] - ct[d]) ** 2;
  let pairedCosine = NaN;
  if (N === M) {
    pairedCosine = 0;
    for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) pairedCosine += (xi[i * D + d] * xt[i * D + d]) / N;
  }
  return { gap: Math.sqrt(gap), linearSeparability: probeAccuracy(xi, N, xt, M, D, opts.probeSteps ?? 300), pairedCosine };
}

function probeAccuracy(xi: Float64Array, N: number, xt: Float64Array, M: number, D: number, steps: number): number {
  const train: number[][] = [];
  const test: number[][] = [];
  const rows = (x: Float64Array, n: number, label: number) => {
    for (let i = 0; i < n; i++) (i % 4 === 3 ? test : train).push([...x.subarray(i * D, (i + 1) * D), label]);
  };
  rows(xi, N, 1);
  rows(xt, M, 0);
  if (train.length === 0 || test.length === 0) return NaN;
  const pack = (set: number[][]) => {
    const x = new Float32Array(set.length * D);
    const y = new Float32Array(set.length);
    set.forEach((r, i) => {
      x.set(r.slice(0, D), i * D);
      y[i] = r[D];
    });
    return [tensor(x, { shape: [set.length, D] }), tensor(y, { shape: [set.length, 1] })];
  };
  // The probe trains with gradients even when the caller evaluates under noGrad.
  return enableGrad(() => scope(() => {
    const [xTrain, yTrain] = pack(train);
    const [xTest, yTest] = pack(test);
    const w = zeros([D, 1], { requiresGrad: true });
    const b = zeros([1], { requiresGrad: true });
    const opt = new AdamW([w, b], { lr: 0.05, weightDecay: 0 });
    // Logistic loss with logits z: softplus(z) - y z.
    for (let s = 0; s < steps; s++) {
      scope(() => {
        const z = xTrain.matmul(w).add(b);
        const loss = z.softplus().sub(z.mul(yTrain)).mean();
        loss.backward();
        opt.step();
        opt.zeroGrad();
      });
    }
    return noGrad(() => {
      const z = xTest.matmul(w).add(b).toTypedArray();
      const y = yTest.toTypedArray();
      let right = 0;
      for (let i = 0; i < z.length; i++) if ((z[i] > 0 ? 1 : 0) === y[i]) right++;
      return right / z.length;
    });
  }));
}
