// The contract between the training harness (lib/training) and a method (CLIP, SigLIP, ITO,
// SOTAlign, FuseLIP): a model whose parameters the harness optimises, a loss on a batch of
// training indices, and encoders that map images and texts into the joint space for evaluation.
// Methods are thin: they compose nn/, losses/ and data/.

import { Tensor } from '../tensor';
import { Module } from '../nn/module';
import { PairDataset } from '../data/pair_dataset';

/** What a method needs from the text tokenizer. */
export interface TextTokenizer {
  readonly vocabSize: number;
  /** ids int32 [N * length] row-major, padded/truncated; eotIndex[i] the end-of-text position. */
  encodeBatch(texts: string[], opts: { length: number }): { ids: Int32Array; eotIndex: Int32Array };
}

export interface MethodContext {
  dataset: PairDataset;
  tokenizer: TextTokenizer;
  contextLength: number;
  seed: number;
}

export interface Method {
  readonly name: string;
  /** Everything trainable (and saved in checkpoints). */
  readonly model: Module;
  /** The training loss (a 0-d tensor with a graph) on the training items `indices` at `step`. */
  trainingLoss(indices: readonly number[], step: number): Tensor;
  /** Extra numbers to log with the loss (e.g. the temperature); read after trainingLoss. */
  logs?(): Record<string, number>;
  /** Joint-space embeddings of images [N, C, H, W], L2-normalised. */
  encodeImages(images: Tensor): Tensor;
  /** Joint-space embeddings of texts, L2-normalised. */
  encodeTexts(texts: string[]): Tensor;
}
