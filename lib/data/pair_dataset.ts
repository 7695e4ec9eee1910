// What the training harness needs from an image-text data set, whatever its source (the embedded
// world, Fashion-MNIST with caption templates, a user's folder): deterministic training items by
// index, a fixed evaluation split with every true caption of each image, the zero-shot label
// sets that apply to those images, and text to train the tokenizer on. Everything is a pure
// function of (data set seed, index, draw), which is what makes a resumed run identical to an
// uninterrupted one.

import { ImageBatch } from './image_batch';

/** One zero-shot classification task: its images, their classes and a prompt ensemble per class. */
export interface LabelSet {
  name: string;
  classNames: string[];
  /** Prompt ensemble per class: prompts[c] are the texts describing class c. */
  prompts: string[][];
  images: ImageBatch;
  /** Class of every image, 0..classNames.length-1. */
  labels: Int32Array;
}

export interface EvalSplit {
  images: ImageBatch;
  /** Every caption of every image, flattened; textImage[j] is the image caption j belongs to. */
  texts: string[];
  textImage: number[];
  labelSets: LabelSet[];
}

export interface PairDataset {
  readonly name: string;
  readonly imageSize: number;
  readonly channels: number;
  /** Number of training items (indices 0..trainSize-1). */
  readonly trainSize: number;
  /** Images of the given training items and `captionsPerItem` captions each (draw picks which ones). */
  trainItems(indices: readonly number[], draw: number, captionsPerItem?: number): { images: ImageBatch; captions: string[][] };
  /** The first `count` items of a held-out split. */
  evalSplit(split: 'val' | 'test', count: number): EvalSplit;
  /** Text to train the tokenizer on (captions, prompts, instructions...). */
  corpus(): string[];
}
