// Cosine similarities between two sets of embeddings, computed by the engine (L2-normalise, then
// one matmul per block of query rows) and handed to a JS callback row block by row block, so
// evaluating 10k x 10k pairs never holds more than `blockRows` x M scores at once.

import { Tensor } from '../tensor';
import { noGrad } from '../autograd';
import { scope } from '../scope';
import { normalize } from '../ops/normalize';
import { matmul } from '../ops/matmul';
import { ShapeError } from '../errors';

export function checkEmbeddingMatrix(op: string, name: string, x: Tensor): void {
  if (x.ndim !== 2 || x.shape[0] < 1 || x.shape[1] < 1)
    throw new ShapeError(`${op}: ${name} must be a non-empty [N, D] embedding matrix, got ${x.describe()}`);
  if (x.dtype === 'int32') throw new ShapeError(`${op}: ${name} must be floating point, got ${x.describe()}`);
}

/**
 * Calls visit(rowStart, rows, scores) for blocks of rows of cos(q, k): scores is a Float32Array or
 * Float64Array of rows x M (row-major) valid only during the call.
 */
export function forEachSimilarityBlock(
  queries: Tensor,
  keys: Tensor,
  visit: (rowStart: number, rows: number, scores: ArrayLike<number>) => void,
  blockRows = 1024,
): void {
  if (queries.shape[1] !== keys.shape[1])
    throw new ShapeError(`similarity: queries ${queries.describe()} and keys ${keys.describe()} must have the same embedding size`);
  noGrad(() =>
    scope(() => {
      const q = normalize(queries.to('cpu'), 2, -1);
      const kT = normalize(keys.to('cpu'), 2, -1).T;
      for (let r0 = 0; r0 < q.shape[0]; r0 += blockRows) {
        const rows = Math.min(blockRows, q.shape[0] - r0);
        scope(() => {
          const s = matmul(q.slice(0, r0, r0 + rows), kT);
          visit(r0, rows, s.toTypedArray());
        });
      }
    }),
  );
}

/** L2-normalised copy of x read back to JS, row-major [N, D]. */
export function normalizedRows(x: Tensor): Float64Array {
  return noGrad(() => scope(() => Float64Array.from(normalize(x.to('cpu'), 2, -1).contiguous().toTypedArray())));
}
