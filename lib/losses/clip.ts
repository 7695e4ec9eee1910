// The CLIP loss (Radford et al. 2021) written as a composition of primitive ops: L2-normalise
// both embeddings, logits = exp(logitScale) * img @ txt^T, and the mean of the cross-entropies
// image->text (rows) and text->image (columns) with the diagonal as targets, as OpenCLIP's
// ClipLoss. It materialises the N x N logits; the fused streaming kernel of
// lib/losses/contrastive.ts (Fused kernels issue) replaces it for large batches and is checked
// against this composition.

import { Tensor } from '../tensor';
import { arange } from '../ops/creation';
import { crossEntropy } from '../ops/cross_entropy';
import { matmul } from '../ops/matmul';
import { normalize } from '../ops/normalize';
import { exp } from '../ops/unary';
import { mul } from '../ops/binary';
import { ShapeError } from '../errors';

export interface ClipLossOptions {
  /** Normalise the embeddings first (default true; OpenCLIP normalises in the model). */
  normalize?: boolean;
}

/**
 * CLIP loss for paired rows of `image` [N, D] and `text` [N, D]; `logitScale` is the learnable
 * log temperature (a 0-d or [1] tensor, OpenCLIP initialises it to log(1/0.07)).
 */
export function clipLoss(image: Tensor, text: Tensor, logitScale: Tensor, opts: ClipLossOptions = {}): Tensor {
  if (image.ndim !== 2 || text.ndim !== 2 || image.shape[0] !== text.shape[0] || image.shape[1] !== text.shape[1])
    throw new ShapeError(`clipLoss: image and text must both be [N, D] with the same N and D, got ${image.describe()} and ${text.describe()}`);
  if (logitScale.numel !== 1) throw new ShapeError(`clipLoss: logitScale must have one element, got ${logitScale.describe()}`);
  const img = opts.normalize === false ? image : normalize(image, 2, -1);
  const txt = opts.normalize === false ? text : normalize(text, 2, -1);
  const scale = exp(logitScale.numel === 1 && logitScale.ndim > 0 ? logitScale.reshape([]) : logitScale);
  const logits = mul(matmul(img, txt.T), scale);
  const labels = arange(0, image.shape[0], 1, { dtype: 'int32', device: image.device });
  const li = crossEntropy(logits, labels);
  const lt = crossEntropy(logits.T, labels);
  return li.add(lt).mul(0.5);
}
