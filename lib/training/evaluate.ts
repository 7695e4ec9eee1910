// The evaluation suite every method reports: image->text and text->image retrieval R@1/5/10,
// zero-shot top-1 for each label set of the data set (prompt ensembles), and the modality gap
// with its linear-probe separability, each next to its chance level. Runs in eval mode without
// gradients, embedding in batches so memory stays bounded.

import { Tensor } from '../tensor';
import { noGrad } from '../autograd';
import { scope, keep } from '../scope';
import { cat } from '../ops/concat';
import { tensor } from '../ops/creation';
import { imageBatchToTensor, ImageBatch } from '../data/image_batch';
import { EvalSplit } from '../data/pair_dataset';
import { classEmbeddings, modalityGap, retrievalRecall, zeroShotAccuracy } from '../eval';
import { Method } from '../methods/method';
import { ComposedEncoder, composedEvaluation, lateFusion } from '../methods/composed_eval';
import { PairDataset } from '../data/pair_dataset';
import { WorldPairs } from '../data/world_pairs';

export interface EvalRow {
  metric: string;
  value: number;
  chance: number;
}

export interface EvalResult {
  rows: EvalRow[];
  /** The headline number used to pick the best checkpoint: mean of the two R@1. */
  score: number;
}

function sliceImages(b: ImageBatch, start: number, count: number): ImageBatch {
  const per = b.channels * b.height * b.width;
  return { ...b, n: count, data: b.data.subarray(start * per, (start + count) * per) };
}

export function embedImages(method: Method, images: ImageBatch, batch = 256): Tensor {
  const parts: Tensor[] = [];
  for (let s = 0; s < images.n; s += batch) parts.push(keep(scope(() => method.encodeImages(imageBatchToTensor(sliceImages(images, s, Math.min(batch, images.n - s)))))));
  const out = cat(parts, 0);
  parts.forEach((t) => t.dispose());
  return out;
}

export function embedTexts(method: Method, texts: string[], batch = 512): Tensor {
  const parts: Tensor[] = [];
  for (let s = 0; s < texts.length; s += batch) parts.push(keep(scope(() => method.encodeTexts(texts.slice(s, s + batch)))));
  const out = cat(parts, 0);
  parts.forEach((t) => t.dispose());
  return out;
}

export function evaluateMethod(method: Method, split: EvalSplit): EvalResult {
  const wasTraining = method.model.training;
  method.model.eval();
  try {
    return noGrad(() => scope(() => {
      const img = embedImages(method, split.images);
      const txt = embedTexts(method, split.texts);
      const rows: EvalRow[] = [];
      const r = retrievalRecall(img, txt, split.textImage);
      for (const k of [1, 5, 10]) rows.push({ metric: `image->text R@${k}`, value: r.imageToText[`R@${k}`], chance: r.chance.imageToText[`R@${k}`] });
      for (const k of [1, 5, 10]) rows.push({ metric: `text->image R@${k}`, value: r.textToImage[`R@${k}`], chance: r.chance.textToImage[`R@${k}`] });
      for (const set of split.labelSets) {
        const prompts = set.prompts.flat();
        const promptClass = set.prompts.flatMap((ps, c) => ps.map(() => c));
        const cls = classEmbeddings(embedTexts(method, prompts), promptClass, set.classNames.length);
        const z = zeroShotAccuracy(embedImages(method, set.images), cls, set.labels);
        rows.push({ metric: `zero-shot ${set.name} top-1`, value: z.top1, chance: z.chance });
      }
      // Modality gap on matched pairs: each image with its first caption.
      const firstCaption: number[] = [];
      split.textImage.forEach((i, j) => { if (firstCaption[i] === undefined) firstCaption[i] = j; });
      const gap = modalityGap(img, txt.indexSelect(0, tensor(firstCaption, { dtype: 'int32' })));
      rows.push({ metric: 'modality gap (centroid distance)', value: gap.gap, chance: NaN });
      rows.push({ metric: 'modality linear separability', value: gap.linearSeparability, chance: 0.5 });
      rows.push({ metric: 'matched-pair cosine', value: gap.pairedCosine, chance: NaN });
      return { rows, score: (r.imageToText['R@1'] + r.textToImage['R@1']) / 2 };
    }));
  } finally {
    method.model.train(wasTraining);
  }
}

/** Flat record for metrics.jsonl: "image->text R@1" -> "image_text_R1". */
export function rowsToRecord(rows: EvalRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[metricKey(r.metric)] = r.value;
  return out;
}

export function metricKey(metric: string): string {
  return metric.replace(/->/g, '_').replace(/@/g, '').replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

/**
 * The multimodal tasks of the embedded world (FuseLIP's evaluation): text-guided transformation
 * retrieval over 8 candidates and VQA as retrieval over the answer vocabulary. Methods without
 * their own image+text encoder are scored by late fusion (sum of the normalised embeddings).
 * Empty for data sets without these tasks.
 */
export function evaluateComposed(method: Method, dataset: PairDataset, split: 'val' | 'test', count: number): EvalRow[] {
  if (!(dataset instanceof WorldPairs)) return [];
  const own = typeof (method as Partial<ComposedEncoder>).encodeComposed === 'function';
  const enc: ComposedEncoder = own ? (method as ComposedEncoder) : lateFusion(method);
  const how = own ? '' : ' (late fusion)';
  const wasTraining = method.model.training;
  method.model.eval();
  try {
    const r = noGrad(() => composedEvaluation(enc, dataset.world, split, Math.min(count, 500)));
    return [
      { metric: `transformation retrieval, 8 candidates${how}`, value: r.transformation.accuracy, chance: r.transformation.chance },
      { metric: `VQA as retrieval${how}`, value: r.vqa.accuracy, chance: r.vqa.chance },
    ];
  } finally {
    method.model.train(wasTraining);
  }
}
