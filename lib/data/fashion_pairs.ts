// Fashion-MNIST as a PairDataset for the training harness: the real 28 x 28 grayscale images,
// each with captions from the class templates (lib/data/captions_fashion.ts). Training items come
// from the train split (the first `trainSize` images); evaluation splits the official test split
// in two halves, 'val' (first 5000) and 'test' (last 5000). Captions name only the class, so
// retrieval here is class-level (many equally true captions); zero-shot top-1 over the 10 classes
// is the headline number.

import { ImageBatch, gatherImageBatch } from './image_batch';
import { EvalSplit, PairDataset } from './pair_dataset';
import { CAPTIONS_PER_IMAGE, fashionCaptions, fashionPrompts } from './captions_fashion';
import { FashionMnist, loadFashionMnist } from './fashion_mnist';

export class FashionPairs implements PairDataset {
  readonly name = 'fashion-mnist';
  readonly imageSize = 28;
  readonly channels = 1;
  readonly trainSize: number;
  private readonly train: FashionMnist;
  private testSet: FashionMnist | null = null;

  constructor(readonly seed = 0, trainSize = 60000) {
    this.train = loadFashionMnist('train', { limit: trainSize });
    this.trainSize = this.train.labels.length;
  }

  trainItems(indices: readonly number[], draw: number, captionsPerItem = 1): { images: ImageBatch; captions: string[][] } {
    const images = gatherImageBatch(this.train.images, indices as number[]);
    const captions = indices.map((i) => {
      const all = fashionCaptions(this.train.labels[i], i + draw * this.trainSize);
      return all.slice(0, Math.min(captionsPerItem, CAPTIONS_PER_IMAGE));
    });
    return { images, captions };
  }

  evalSplit(split: 'val' | 'test', count: number): EvalSplit {
    this.testSet ??= loadFashionMnist('test');
    const half = Math.floor(this.testSet.labels.length / 2);
    const start = split === 'val' ? 0 : half;
    const n = Math.min(count, half);
    const idx = Array.from({ length: n }, (_, k) => start + k);
    const images = gatherImageBatch(this.testSet.images, idx);
    const labels = Int32Array.from(idx, (i) => this.testSet!.labels[i]);
    const caps = idx.map((i) => fashionCaptions(this.testSet!.labels[i], i));
    return {
      images,
      texts: caps.flat(),
      textImage: caps.flatMap((c, k) => c.map(() => k)),
      labelSets: [{ name: 'class', classNames: [...this.testSet.classNames], prompts: fashionPrompts(), images, labels }],
    };
  }

  corpus(): string[] {
    return fashionPrompts().flat();
  }
}
