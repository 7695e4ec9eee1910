// Child process of soak.test.ts: 2,000 training steps of a tiny CLIP model (a 1-layer ViT on
// 7x7 images and a 1-layer causal text transformer, width 16, CLIP loss, AdamW with decay
// groups, gradient clipping), each step inside scope(), in one synchronous loop as a training
// script runs it (anything freed only by a finalizer, which Node runs from the event loop, piles
// up here). Checks native memory every 100 steps after warm-up and prints one JSON line with the
// measurements; soak.test.ts asserts on them.
//
// Run by the test as `node --expose-gc --single-threaded --min-semi-space-size=16
// --max-semi-space-size=16 soak.child.js`: a fresh process (no other test's heap in its RSS), a
// full collection at every checkpoint (each 100 steps) and before each RSS reading, and V8's young generation fixed at its largest size
// and its helper threads off, so V8's own adaptive heap sizing (which otherwise grows the
// young generation, and malloc arenas of its compiler threads, by 20+ MB over the first
// thousand steps of such a loop) does not pass for a leak. A leak in JS objects (kept tensors,
// graph nodes, closures) still shows, as heap that survives the collections.
import * as ts from '../../lib';
import { jsRandom } from '../helpers/check';

const STEPS = Number(process.env.SOAK_STEPS ?? 2000);
const WARMUP = 200;
const BATCH = 8;
const CONTEXT = 8;
const VOCAB = 50;

class TinyClip extends ts.Module {
  readonly visual: ts.nn.VisionTransformer;
  readonly text: ts.nn.TextTransformer;
  readonly logit_scale: ts.Tensor;

  constructor() {
    super();
    this.visual = this.child('visual', new ts.nn.VisionTransformer({
      imageSize: 7, patchSize: 7, channels: 1, width: 16, layers: 1, heads: 2, outputDim: 16,
    }));
    this.text = this.child('text', new ts.nn.TextTransformer({
      vocabSize: VOCAB, contextLength: CONTEXT, width: 16, layers: 1, heads: 2, outputDim: 16,
    }));
    this.logit_scale = this.param('logit_scale', ts.tensor(Math.log(1 / 0.07)));
  }

  loss(images: ts.Tensor, tokens: ts.Tensor): ts.Tensor {
    return ts.losses.clipLoss(this.visual.forward(images).pooled, this.text.forward(tokens).pooled, this.logit_scale);
  }
}

/** Resident set size and live JS heap in bytes, after a full collection when one is exposed. */
function measure(): { rss: number; heap: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === 'function') gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

ts.manualSeed(20261123);
const rand = jsRandom(12345);
const model = new TinyClip();
const opt = new ts.optim.AdamW(ts.optim.decayGroups(model, 0.1), { lr: 1e-3 });
const ids = new Int32Array(BATCH * CONTEXT);

const step = (): number =>
  ts.scope(() => {
    opt.zeroGrad();
    // fresh inputs every step, created inside the scope like a data loader's batch
    for (let r = 0; r < BATCH; r++) {
      for (let j = 0; j < CONTEXT; j++) ids[r * CONTEXT + j] = 1 + Math.floor(rand() * (VOCAB - 2));
      ids[r * CONTEXT + 1 + Math.floor(rand() * (CONTEXT - 1))] = VOCAB - 1; // EOT: the largest id
    }
    const tokens = ts.tensor(ids, { shape: [BATCH, CONTEXT], dtype: 'int32' });
    const images = ts.randn([BATCH, 1, 7, 7]);
    const loss = model.loss(images, tokens);
    loss.backward();
    const norm = ts.optim.clipGradNorm(model.parameters(), 1.0);
    if (!Number.isFinite(norm)) throw new Error(`gradient norm ${norm}`);
    opt.step();
    return loss.item();
  });

const t0 = Date.now();
const losses: number[] = [];
const drift: string[] = [];
let base = { bytes: 0, blocks: 0, rss: 0, heap: 0 };
let maxRss = 0;
for (let i = 1; i <= STEPS; i++) {
  const loss = step();
  if (i === 1 || i === STEPS) losses.push(loss);
  if (i === WARMUP) {
    const m = ts.memoryStats();
    base = { bytes: m.hostBytes, blocks: m.hostBlocks, ...measure() };
  } else if (i > WARMUP && i % 100 === 0) {
    const m = ts.memoryStats();
    if (m.hostBytes !== base.bytes || m.hostBlocks !== base.blocks)
      drift.push(`step ${i}: ${m.hostBytes} bytes in ${m.hostBlocks} blocks (step ${WARMUP}: ${base.bytes} in ${base.blocks})`);
    // A full collection at every checkpoint, as at the two RSS readings: without it old-space
    // garbage piles up for 1,800 steps and V8 keeps those pages resident for a while after the
    // final collection, which reads as ~15% RSS "growth" that no live object accounts for.
    const q = measure();
    maxRss = Math.max(maxRss, q.rss);
  }
}
const end = measure();
const seconds = (Date.now() - t0) / 1000;
opt.zeroGrad();
opt.dispose();
model.dispose();
console.log(JSON.stringify({ steps: STEPS, warmup: WARMUP, seconds, losses, base, end, maxRss, drift, gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function' }));
