// The embedded world as a PairDataset for the training harness: training items are rendered on
// demand with `captionsPerItem` of their true captions, chosen by a hash of (seed, index, draw) so
// a step's batch is reproducible; evaluation uses the first `count` images of val/test with
// CAPTIONS_PER_EVAL_IMAGE captions each (the COCO protocol has 5), and the world's three
// zero-shot tasks (shape and colour of a single object, number of objects).

import { createWorld, World, CLASSIFICATION_TASKS } from './world';
import { ImageBatch } from './image_batch';
import { EvalSplit, LabelSet, PairDataset } from './pair_dataset';

const CAPTIONS_PER_EVAL_IMAGE = 5;

function mix(a: number, b: number, c: number): number {
  let h = (a ^ 0x9e3779b9) >>> 0;
  for (const v of [b, c]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export class WorldPairs implements PairDataset {
  readonly name = 'world';
  readonly world: World;
  readonly channels = 3;

  constructor(readonly seed = 0, readonly imageSize = 32, readonly trainSize = 20000) {
    this.world = createWorld({ seed, imageSize, sizes: { train: trainSize } });
    this.trainSize = Math.min(trainSize, this.world.size('train'));
  }

  trainItems(indices: readonly number[], draw: number, captionsPerItem = 1): { images: ImageBatch; captions: string[][] } {
    const S = this.imageSize;
    const per = 3 * S * S;
    const data = new Float32Array(indices.length * per);
    const captions: string[][] = [];
    indices.forEach((idx, r) => {
      data.set(this.world.image('train', idx), r * per);
      const all = this.world.captions('train', idx);
      const start = mix(this.seed, idx, draw) % all.length;
      const picked: string[] = [];
      for (let k = 0; k < captionsPerItem; k++) picked.push(all[(start + k) % all.length]);
      captions.push(picked);
    });
    return { images: { data, n: indices.length, channels: 3, height: S, width: S }, captions };
  }

  evalSplit(split: 'val' | 'test', count: number): EvalSplit {
    const n = Math.min(count, this.world.size(split));
    const images = this.world.imageBatch(split, 0, n);
    const caps = this.world.captionBatch(split, 0, n, CAPTIONS_PER_EVAL_IMAGE);
    const texts = caps.flat();
    const textImage = caps.flatMap((c, i) => c.map(() => i));
    const labelSets: LabelSet[] = CLASSIFICATION_TASKS.map((task) => {
      const b = this.world.classificationBatch(task, split, 0, Math.min(n, 500));
      const classNames = [...b.classNames];
      return { name: task, classNames, prompts: classNames.map((c) => this.world.prompts(task, c)), images: b.images, labels: b.labels };
    });
    return { images, texts, textImage, labelSets };
  }

  corpus(): string[] {
    return this.world.textCorpus(30000);
  }
}
