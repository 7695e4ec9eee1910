// Cross-modal retrieval recall at K (CLIP / OpenCLIP protocol): every image is a query over all
// texts and every text a query over all images, ranked by cosine similarity. An image may own
// several texts (several true captions per image): image -> text counts a hit at K when ANY of
// the image's texts is among the K best; text -> image when the text's own image is.
// The rank of a query is the number of candidates scoring strictly higher than its best positive,
// so ties are resolved in the query's favour (as argsort-based code does half of the time); with
// float scores from trained models exact ties are rare.

import { Tensor } from '../tensor';
import { ArgumentError, ShapeError } from '../errors';
import { checkEmbeddingMatrix, forEachSimilarityBlock } from './similarity';

export interface RecallAtK {
  [k: string]: number;
}

export interface RetrievalResult {
  /** Recall@K (fraction in [0, 1]) with each image as the query. */
  imageToText: RecallAtK;
  /** Recall@K with each text as the query. */
  textToImage: RecallAtK;
  /** What random ranking would give (expected recall), for the report. */
  chance: { imageToText: RecallAtK; textToImage: RecallAtK };
  /** Median rank (1-based) of the first positive. */
  medianRank: { imageToText: number; textToImage: number };
}

/**
 * images [N, D], texts [M, D]; textImage[j] (length M) is the index of the image text j belongs
 * to. Every image should own at least one text.
 */
export function retrievalRecall(images: Tensor, texts: Tensor, textImage: ArrayLike<number>, ks: number[] = [1, 5, 10]): RetrievalResult {
  const op = 'retrievalRecall';
  checkEmbeddingMatrix(op, 'images', images);
  checkEmbeddingMatrix(op, 'texts', texts);
  const [N, M] = [images.shape[0], texts.shape[0]];
  if (textImage.length !== M) throw new ShapeError(`${op}: textImage must have one image index per text (${M}), got ${textImage.length}`);
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new ArgumentError(`${op}: ks must be positive integers, got [${ks}]`);
  const owned: number[][] = Array.from({ length: N }, () => []);
  for (let j = 0; j < M; j++) {
    const i = textImage[j];
    if (!Number.isInteger(i) || i < 0 || i >= N) throw new ArgumentError(`${op}: textImage[${j}] = ${i} is not an image index in [0, ${N})`);
    owned[i].push(j);
  }
  const orphan = owned.findIndex((t) => t.length === 0);
  if (orphan >= 0) throw new ArgumentError(`${op}: image ${orphan} has no text in textImage; every image needs at least one`);

  const i2tRank = new Int32Array(N);
  forEachSimilarityBlock(images, texts, (r0, rows, s) => {
    for (let r = 0; r < rows; r++) {
      const base = r * M;
      let best = -Infinity;
      for (const j of owned[r0 + r]) best = Math.max(best, s[base + j]);
      let rank = 0;
      for (let j = 0; j < M; j++) if (s[base + j] > best) rank++;
      // Texts of the same image scoring above its best one cannot exist (best is their max).
      i2tRank[r0 + r] = rank;
    }
  });
  const t2iRank = new Int32Array(M);
  forEachSimilarityBlock(texts, images, (r0, rows, s) => {
    for (let r = 0; r < rows; r++) {
      const base = r * N;
      const pos = s[base + textImage[r0 + r]];
      let rank = 0;
      for (let i = 0; i < N; i++) if (s[base + i] > pos) rank++;
      t2iRank[r0 + r] = rank;
    }
  });
  const recall = (ranks: Int32Array) => Object.fromEntries(ks.map((k) => [`R@${k}`, ranks.reduce((c, r) => c + (r < k ? 1 : 0), 0) / ranks.length]));
  const median = (ranks: Int32Array) => {
    const s = Array.from(ranks).sort((a, b) => a - b);
    return s[Math.floor((s.length - 1) / 2)] + 1;
  };
  // Chance: image -> text with c_i positives among M: 1 - C(M - c, k) / C(M, k); text -> image: k / N.
  const missAll = (m: number, c: number, k: number) => {
    let p = 1;
    for (let t = 0; t < c; t++) p *= Math.max(0, (m - k - t) / (m - t));
    return p;
  };
  const chanceI2T = Object.fromEntries(ks.map((k) => [`R@${k}`, owned.reduce((acc, t) => acc + 1 - missAll(M, t.length, k), 0) / N]));
  const chanceT2I = Object.fromEntries(ks.map((k) => [`R@${k}`, Math.min(1, k / N)]));
  return {
    imageToText: recall(i2tRank),
    textToImage: recall(t2iRank),
    chance: { imageToText: chanceI2T, textToImage: chanceT2I },
    medianRank: { imageToText: median(i2tRank), textToImage: median(t2iRank) },
  };
}
