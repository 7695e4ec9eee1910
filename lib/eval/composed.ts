// Multimodal retrieval over candidate sets (FuseLIP's evaluation of composed queries: an image
// plus an instruction must retrieve the transformed image; an image plus a question must
// retrieve the answer): each query has its own K candidates, exactly one of which is right, and
// the score is the fraction of queries whose right candidate has the highest cosine similarity.

import { Tensor } from '../tensor';
import { ArgumentError, ShapeError } from '../errors';
import { checkEmbeddingMatrix, normalizedRows } from './similarity';

export interface CandidateAccuracy {
  accuracy: number;
  /** Expected accuracy of a random pick: mean over queries of 1 / K. */
  chance: number;
}

/**
 * queries [Q, D]; candidates [C, D] (a shared pool); candidateSets[q] lists the candidate rows
 * for query q and target[q] is the position (in candidateSets[q]) of the right one.
 */
export function candidateAccuracy(queries: Tensor, candidates: Tensor, candidateSets: ArrayLike<number>[], target: ArrayLike<number>): CandidateAccuracy {
  const op = 'candidateAccuracy';
  checkEmbeddingMatrix(op, 'queries', queries);
  checkEmbeddingMatrix(op, 'candidates', candidates);
  const [Q, D] = queries.shape;
  const C = candidates.shape[0];
  if (candidates.shape[1] !== D) throw new ShapeError(`${op}: queries ${queries.describe()} and candidates ${candidates.describe()} must have the same embedding size`);
  if (candidateSets.length !== Q || target.length !== Q)
    throw new ShapeError(`${op}: need one candidate set and one target per query (${Q}), got ${candidateSets.length} sets and ${target.length} targets`);
  const q = normalizedRows(queries);
  const c = normalizedRows(candidates);
  let right = 0;
  let chance = 0;
  for (let i = 0; i < Q; i++) {
    const set = candidateSets[i];
    const t = target[i];
    if (set.length < 1 || !Number.isInteger(t) || t < 0 || t >= set.length)
      throw new ArgumentError(`${op}: query ${i}: target ${t} is not a position in its candidate set of ${set.length}`);
    let best = -Infinity;
    let arg = -1;
    for (let k = 0; k < set.length; k++) {
      const j = set[k];
      if (!Number.isInteger(j) || j < 0 || j >= C) throw new ArgumentError(`${op}: query ${i}: candidate ${j} is not a row of candidates [0, ${C})`);
      let s = 0;
      for (let d = 0; d < D; d++) s += q[i * D + d] * c[j * D + d];
      if (s > best) {
        best = s;
        arg = k;
      }
    }
    if (arg === t) right++;
    chance += 1 / set.length;
  }
  return { accuracy: right / Q, chance: chance / Q };
}
