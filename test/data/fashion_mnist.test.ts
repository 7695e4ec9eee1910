// Fashion-MNIST: the real files (counts, shapes, label range, pixel statistics), limit, the
// errors for a missing directory and mismatched image/label counts, and the caption/prompt
// templates. Tests that need the real data say so and skip when it is not installed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { assertThrows } from '../helpers/check';
import { loadFashionMnist, fashionMnistDir, FASHION_CLASS_NAMES } from '../../lib/data/fashion_mnist';
import { fashionCaptions, fashionPrompts, CAPTIONS_PER_IMAGE } from '../../lib/data/captions_fashion';
import { encodeIdx } from '../../lib/data/idx';
import { imageBatchToTensor } from '../../lib/data/image_batch';

const haveData = fs.existsSync(path.join(fashionMnistDir(), 't10k-images-idx3-ubyte.gz'));
if (!haveData) console.log(`  (Fashion-MNIST not found in ${fashionMnistDir()}: real-data tests skipped)`);
const real = haveData ? test : test.skip;

function stats(data: Float32Array): { min: number; max: number; mean: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of data) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: sum / data.length };
}

real('test split: 10000 images of 1x28x28 in [0, 1], labels 0..9 with 1000 per class, mean pixel ~0.28', () => {
  const { images, labels, classNames } = loadFashionMnist('test');
  assert.equal([images.n, images.channels, images.height, images.width], [10000, 1, 28, 28]);
  assert.is(images.data.length, 10000 * 784);
  assert.is(labels.length, 10000);
  const counts = new Array(10).fill(0);
  for (const l of labels) counts[l]++;
  assert.equal(counts, new Array(10).fill(1000));
  const s = stats(images.data);
  assert.is(s.min, 0);
  assert.is(s.max, 1);
  assert.ok(Math.abs(s.mean - 0.286) < 0.05, `mean pixel ${s.mean}`);
  assert.is(classNames[9], 'Ankle boot');
  assert.is(classNames.length, 10);
});

real('train split: 60000 images and labels, all labels in 0..9, mean pixel ~0.286', () => {
  const { images, labels } = loadFashionMnist('train');
  assert.is(images.n, 60000);
  assert.is(labels.length, 60000);
  let bad = 0;
  for (const l of labels) if (l < 0 || l > 9) bad++;
  assert.is(bad, 0);
  const s = stats(images.data);
  assert.ok(s.min >= 0 && s.max <= 1, `range [${s.min}, ${s.max}]`);
  assert.ok(Math.abs(s.mean - 0.286) < 0.05, `mean pixel ${s.mean}`);
});

real('limit keeps the first images and labels, identical to the full load, and converts to a tensor', () => {
  const small = loadFashionMnist('test', { limit: 16 });
  const full = loadFashionMnist('test');
  assert.is(small.images.n, 16);
  assert.equal(Array.from(small.labels), Array.from(full.labels.subarray(0, 16)));
  assert.equal(Array.from(small.images.data), Array.from(full.images.data.subarray(0, 16 * 784)));
  const t = imageBatchToTensor(small.images);
  assert.equal([...t.shape], [16, 1, 28, 28]);
  assert.is(t.dtype, 'float32');
  assert.ok(Math.abs(t.mean().item() - stats(small.images.data).mean) < 1e-5);
  t.dispose();
});

test('a missing directory tells how to install the data or set TESSERA_FASHION_MNIST_DIR', () => {
  const missing = path.join(os.tmpdir(), 'tessera-no-such-fashion-dir');
  assertThrows(() => loadFashionMnist('train', { dir: missing }), [missing, /apt-get install dataset-fashion-mnist/, /TESSERA_FASHION_MNIST_DIR/], 'missing dir');
  const old = process.env.TESSERA_FASHION_MNIST_DIR;
  process.env.TESSERA_FASHION_MNIST_DIR = missing;
  try {
    assertThrows(() => loadFashionMnist('test'), [missing, /not found/], 'env dir');
  } finally {
    if (old === undefined) delete process.env.TESSERA_FASHION_MNIST_DIR;
    else process.env.TESSERA_FASHION_MNIST_DIR = old;
  }
});

test('fixture files: a missing label file and an image/label count mismatch are errors; valid fixtures load', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-fmnist-'));
  try {
    const px = Uint8Array.from({ length: 3 * 784 }, (_, i) => i % 256);
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), encodeIdx([3, 28, 28], px, { gzip: true }));
    assertThrows(() => loadFashionMnist('test', { dir }), [/t10k-labels-idx1-ubyte\.gz: Fashion-MNIST file not found/, /apt-get install dataset-fashion-mnist/], 'no labels');
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([2], Uint8Array.from([1, 2]))); // uncompressed is accepted too
    assertThrows(() => loadFashionMnist('test', { dir }), [/t10k-images-idx3-ubyte\.gz: has 3 images but .*t10k-labels-idx1-ubyte has 2 labels/], 'count mismatch');
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([3], Uint8Array.from([1, 12, 3])));
    assertThrows(() => loadFashionMnist('test', { dir }), [/label 12 at item 1 is outside 0\.\.9/], 'bad label');
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([3], Uint8Array.from([1, 9, 3])));
    const ok = loadFashionMnist('test', { dir });
    assert.equal(Array.from(ok.labels), [1, 9, 3]);
    assert.is(ok.images.data[785], Math.fround((785 % 256) / 255));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('captions: all true for the class, with the right article, and a per-image selection of distinct ones', () => {
  assert.is(FASHION_CLASS_NAMES.length, 10);
  const boots = fashionCaptions(9);
  assert.ok(boots.includes('a photo of an ankle boot'), boots.slice(0, 5).join(' | '));
  assert.ok(boots.includes('a grayscale picture of a boot'));
  assert.ok(fashionCaptions(1).includes('a small image of a pair of trousers'));
  for (let label = 0; label < 10; label++) {
    const all = fashionCaptions(label);
    assert.ok(all.length >= 20, `class ${label} has ${all.length} captions`);
    for (let index = 0; index < 50; index++) {
      const pick = fashionCaptions(label, index);
      assert.is(pick.length, CAPTIONS_PER_IMAGE);
      assert.is(new Set(pick).size, CAPTIONS_PER_IMAGE, `distinct captions for ${label}/${index}`);
      for (const c of pick) assert.ok(all.includes(c));
    }
  }
  assert.equal(fashionCaptions(3, 7), fashionCaptions(3, 7));
  assert.not.equal(fashionCaptions(3, 7), fashionCaptions(3, 8));
  assertThrows(() => fashionCaptions(10), [/label must be an integer in \[0, 9\], got 10/], 'bad label');
});

test('prompts: one ensemble per class, no prompt shared between classes', () => {
  const prompts = fashionPrompts();
  assert.is(prompts.length, 10);
  const owner = new Map<string, number>();
  prompts.forEach((ps, label) => {
    assert.ok(ps.length >= 20);
    for (const p of ps) {
      assert.ok(!owner.has(p) || owner.get(p) === label, `"${p}" is a prompt of classes ${owner.get(p)} and ${label}`);
      owner.set(p, label);
    }
  });
});

test.run();
