import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { candidateAccuracy, classEmbeddings, modalityGap, retrievalRecall, zeroShotAccuracy } from '../../lib/eval';
import { jsRandom, seedFor } from '../helpers/check';

function randomRows(rand: () => number, n: number, d: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rand() * 2 - 1));
}
const cos = (a: number[], b: number[]) => {
  let s = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { s += a[i] * b[i]; na += a[i] ** 2; nb += b[i] ** 2; }
  return s / Math.sqrt(na * nb);
};

test('retrievalRecall matches a brute-force ranking, several texts per image', () => {
  const rand = jsRandom(seedFor('retrieval'));
  const [N, D] = [37, 8];
  const img = randomRows(rand, N, D);
  const textImage: number[] = [];
  for (let i = 0; i < N; i++) for (let c = 0; c < 1 + (i % 3); c++) textImage.push(i);
  // Texts: noisy copies of their image, so recall is neither 0 nor 1.
  const txt = textImage.map((i) => img[i].map((v) => v + (rand() * 2 - 1) * 0.9));
  const r = retrievalRecall(ts.tensor(img), ts.tensor(txt), textImage, [1, 5]);
  for (const k of [1, 5]) {
    let hitI = 0;
    for (let i = 0; i < N; i++) {
      const ranked = txt.map((t, j) => [cos(img[i], t), j]).sort((a, b) => b[0] - a[0]).slice(0, k);
      if (ranked.some(([, j]) => textImage[j] === i)) hitI++;
    }
    let hitT = 0;
    txt.forEach((t, j) => {
      const ranked = img.map((m, i) => [cos(t, m), i]).sort((a, b) => b[0] - a[0]).slice(0, k);
      if (ranked.some(([, i]) => i === textImage[j])) hitT++;
    });
    assert.equal(r.imageToText[`R@${k}`], hitI / N, `i2t R@${k}`);
    assert.equal(r.textToImage[`R@${k}`], hitT / txt.length, `t2i R@${k}`);
  }
  assert.ok(r.imageToText['R@1'] > 0.1 && r.imageToText['R@1'] < 1, `${r.imageToText['R@1']}`);
  assert.ok(Math.abs(r.chance.textToImage['R@5'] - 5 / N) < 1e-12);
  // Perfect embeddings give recall 1 and median rank 1.
  const p = retrievalRecall(ts.tensor(img), ts.tensor(textImage.map((i) => img[i])), textImage);
  assert.equal([p.imageToText['R@1'], p.textToImage['R@1'], p.medianRank.textToImage], [1, 1, 1]);
});

test('retrievalRecall: random embeddings stay near chance', () => {
  seedFor('retrieval chance');
  const N = 400;
  const r = retrievalRecall(ts.randn([N, 32]), ts.randn([N, 32]), Array.from({ length: N }, (_, i) => i));
  assert.ok(Math.abs(r.textToImage['R@10'] - 10 / N) < 0.03, `${r.textToImage['R@10']}`);
  assert.ok(Math.abs(r.chance.imageToText['R@10'] - 10 / N) < 1e-9, `${r.chance.imageToText['R@10']}`);
});

test('zero-shot: prompt ensembles average normalised prompts; accuracy matches argmax by hand', () => {
  const rand = jsRandom(seedFor('zeroshot'));
  const [C, P, D, N] = [5, 3, 6, 50];
  const prompts = randomRows(rand, C * P, D);
  const promptClass = prompts.map((_, p) => Math.floor(p / P));
  const cls = classEmbeddings(ts.tensor(prompts), promptClass, C);
  const clsRows = cls.toArray() as number[][];
  for (let c = 0; c < C; c++) {
    const mean = Array.from({ length: D }, (_, d) => [0, 1, 2].reduce((s, k) => { const r = prompts[c * P + k]; return s + r[d] / Math.hypot(...r); }, 0));
    const n = Math.hypot(...mean);
    for (let d = 0; d < D; d++) assert.ok(Math.abs(clsRows[c][d] - mean[d] / n) < 1e-6);
  }
  const imgs = randomRows(rand, N, D);
  const labels = imgs.map(() => Math.floor(rand() * C));
  const r = zeroShotAccuracy(ts.tensor(imgs), cls, labels);
  let right = 0;
  imgs.forEach((x, i) => {
    const scores = clsRows.map((c) => cos(x, c));
    if (scores.indexOf(Math.max(...scores)) === labels[i]) right++;
  });
  assert.equal(r.top1, right / N);
  assert.equal(r.chance, 1 / C);
  assert.throws(() => zeroShotAccuracy(ts.tensor(imgs), cls, labels.slice(1)), /labels needs one class per image \(50\)/);
  assert.throws(() => classEmbeddings(ts.tensor(prompts), promptClass.map(() => 0), C), /class 1 has no prompt/);
});

test('modality gap: 0 and chance separability for one cloud, large and separable for shifted clouds', () => {
  seedFor('gap');
  const x = ts.randn([200, 16]);
  const same = modalityGap(x, x);
  assert.ok(same.gap < 1e-6, `${same.gap}`);
  assert.ok(Math.abs(same.pairedCosine - 1) < 1e-6);
  assert.ok(same.linearSeparability <= 0.6, `${same.linearSeparability}`);
  const shift = ts.zeros([1, 16]).add(ts.tensor([[10, ...Array(15).fill(0)]]));
  const moved = modalityGap(x, ts.randn([200, 16]).add(shift));
  assert.ok(moved.gap > 0.5, `${moved.gap}`);
  assert.ok(moved.linearSeparability >= 0.97, `${moved.linearSeparability}`);
});

test('candidateAccuracy counts argmax hits and reports chance; bad targets are named', () => {
  const q = ts.tensor([[1, 0], [0, 1], [1, 1]]);
  const c = ts.tensor([[1, 0.1], [0, 1], [-1, 0], [1, 1]]);
  const r = candidateAccuracy(q, c, [[2, 0, 1], [0, 1], [3, 0, 1, 2]], [1, 1, 1]);
  assert.equal(r.accuracy, 2 / 3);
  assert.ok(Math.abs(r.chance - (1 / 3 + 1 / 2 + 1 / 4) / 3) < 1e-12);
  assert.throws(() => candidateAccuracy(q, c, [[0], [1], [2]], [0, 0, 1]), /query 2: target 1 is not a position/);
  assert.throws(() => candidateAccuracy(q, c, [[0], [1], [9]], [0, 0, 0]), /candidate 9 is not a row/);
});

test.run();
