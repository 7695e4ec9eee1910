// The two multimodal evaluations of FuseLIP (Schlarmann et al. 2025, Sec. 4: text-guided image
// transformation retrieval and VQA as retrieval), for any Method that can embed an image + text
// query as one vector (a ComposedEncoder):
//
//   transformation retrieval: query  q_i = f(source_i, instruction_i), candidates the K images
//     of world.transformationCandidates(split, i, K) (the true target + hard negatives: the same
//     source under other transformations of the family, other sources under the same one);
//     correct when argmax_k cos(q_i, g(c_ik)) is the target.
//   VQA: query q_i = f(image_i, question_i), candidates the answer vocabulary of the question's
//     type (world.question: answers, answerIndex), embedded as texts; correct when the right
//     answer has the highest cosine.
//
// Both are scored by lib/eval/composed.ts candidateAccuracy (chance = mean 1 / |candidates|),
// and broken down per transformation family / question type.
//
// lateFusion(method) turns a dual encoder into a ComposedEncoder the way the paper's late-fusion
// baselines do by addition: f(x, t) = normalize(normalize(g_img(x)) + normalize(g_txt(t))).

import { Tensor } from '../tensor';
import '../tensor_methods';
import { noGrad } from '../autograd';
import { scope, keep } from '../scope';
import { cat } from '../ops/concat';
import { normalize } from '../ops/normalize';
import { tensor } from '../ops/creation';
import { ArgumentError } from '../errors';
import { candidateAccuracy, CandidateAccuracy } from '../eval/composed';
import type { World, Split } from '../data/world';
import { Method } from './method';

/** A method that also embeds image + text queries into its joint space (L2-normalised). */
export interface ComposedEncoder extends Method {
  /** images [N, C, H, W] with texts[N] -> [N, D]. */
  encodeComposed(images: Tensor, texts: string[]): Tensor;
}

/** Late fusion by addition of the normalised unimodal embeddings of a dual encoder. */
export function lateFusion(method: Method): ComposedEncoder {
  return {
    name: `${method.name}+late-fusion`,
    model: method.model,
    trainingLoss: (i, s) => method.trainingLoss(i, s),
    encodeImages: (x) => method.encodeImages(x),
    encodeTexts: (t) => method.encodeTexts(t),
    encodeComposed: (x, t) => normalize(normalize(method.encodeImages(x), 2, -1).add(normalize(method.encodeTexts(t), 2, -1)), 2, -1),
  };
}

export interface ComposedResult extends CandidateAccuracy {
  queries: number;
  /** Accuracy and chance per transformation family / question type. */
  groups: Record<string, CandidateAccuracy & { queries: number }>;
}

export interface ComposedEvaluation {
  transformation: ComposedResult;
  vqa: ComposedResult;
}

const BATCH = 128;

function imagesTensor(data: Float32Array[], size: number): Tensor {
  const per = 3 * size * size;
  const all = new Float32Array(data.length * per);
  data.forEach((d, i) => all.set(d, i * per));
  return tensor(all, { shape: [data.length, 3, size, size], dtype: 'float32' });
}

/** Embed row batches with `fn` (each batch inside its own scope), concatenated [N, D]. */
function batched(n: number, fn: (start: number, count: number) => Tensor): Tensor {
  const parts: Tensor[] = [];
  for (let s = 0; s < n; s += BATCH) parts.push(keep(scope(() => fn(s, Math.min(BATCH, n - s)))));
  const out = cat(parts, 0);
  parts.forEach((t) => t.dispose());
  return out;
}

function grouped(queries: Tensor, candidates: Tensor, sets: number[][], target: number[], groupOf: string[]): ComposedResult {
  const all = candidateAccuracy(queries, candidates, sets, target);
  const groups: ComposedResult['groups'] = {};
  for (const g of [...new Set(groupOf)].sort()) {
    const rows = groupOf.flatMap((x, i) => (x === g ? [i] : []));
    const q = queries.indexSelect(0, tensor(rows, { dtype: 'int32' }));
    groups[g] = { ...candidateAccuracy(q, candidates, rows.map((r) => sets[r]), rows.map((r) => target[r])), queries: rows.length };
  }
  return { ...all, queries: sets.length, groups };
}

function withEval<T>(method: Method, fn: () => T): T {
  const was = method.model.training;
  method.model.eval();
  try {
    return noGrad(() => scope(fn));
  } finally {
    method.model.train(was);
  }
}

/** Text-guided image transformation retrieval over the first `count` pairs of `split`. */
export function transformationRetrieval(enc: ComposedEncoder, world: World, split: Split, count: number, k = 8): ComposedResult {
  if (!Number.isInteger(count) || count < 1 || count > world.size(split))
    throw new ArgumentError(`transformationRetrieval: count must be an integer in [1, ${world.size(split)}] (split '${split}'), got ${String(count)}`);
  const S = world.imageSize;
  const items = Array.from({ length: count }, (_, i) => world.transformationCandidates(split, i, k));
  return withEval(enc, () => {
    const queries = batched(count, (s, n) =>
      enc.encodeComposed(imagesTensor(items.slice(s, s + n).map((c) => c.pair.source), S), items.slice(s, s + n).map((c) => c.pair.instruction)));
    const offsets: number[] = [];
    let total = 0;
    for (const c of items) {
      offsets.push(total);
      total += c.candidates.n;
    }
    const per = 3 * S * S;
    const flat = new Float32Array(total * per);
    items.forEach((c, i) => flat.set(c.candidates.data, offsets[i] * per));
    const candidates = batched(total, (s, n) => enc.encodeImages(tensor(flat.subarray(s * per, (s + n) * per), { shape: [n, 3, S, S], dtype: 'float32' })));
    const sets = items.map((c, i) => Array.from({ length: c.candidates.n }, (_, j) => offsets[i] + j));
    return grouped(queries, candidates, sets, items.map((c) => c.targetIndex), items.map((c) => c.pair.family));
  });
}

/** VQA as retrieval over each question type's answer vocabulary, first `count` questions. */
export function vqaRetrieval(enc: ComposedEncoder, world: World, split: Split, count: number): ComposedResult {
  if (!Number.isInteger(count) || count < 1 || count > world.size(split))
    throw new ArgumentError(`vqaRetrieval: count must be an integer in [1, ${world.size(split)}] (split '${split}'), got ${String(count)}`);
  const S = world.imageSize;
  const qs = Array.from({ length: count }, (_, i) => world.question(split, i));
  const pool: string[] = [];
  const at = new Map<string, number>();
  for (const q of qs) for (const a of q.answers) if (!at.has(a)) { at.set(a, pool.length); pool.push(a); }
  return withEval(enc, () => {
    const queries = batched(count, (s, n) => enc.encodeComposed(imagesTensor(qs.slice(s, s + n).map((q) => q.image), S), qs.slice(s, s + n).map((q) => q.question)));
    const answers = enc.encodeTexts(pool);
    return grouped(queries, answers, qs.map((q) => q.answers.map((a) => at.get(a)!)), qs.map((q) => q.answerIndex), qs.map((q) => q.type));
  });
}

/** Both evaluations on `count` items of `split` (K = 8 transformation candidates). */
export function composedEvaluation(enc: ComposedEncoder, world: World, split: Split, count: number, k = 8): ComposedEvaluation {
  return { transformation: transformationRetrieval(enc, world, split, count, k), vqa: vqaRetrieval(enc, world, split, count) };
}
