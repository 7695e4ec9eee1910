// `npm run demo`: trains a small MLP classifier on an embedded procedural data set (three
// interleaved 2-D spirals) with the engine's autograd, and reports loss and accuracy. A quick
// end-to-end check that install, native kernels and autograd work on this machine. (The main
// training job, `lib/train.ts`, arrives with the training-harness issue.)

import * as ts from './index';
import { crossEntropy } from './index';

interface Spirals {
  x: ts.Tensor;
  y: ts.Tensor;
}

/** n points per class on `classes` spiral arms, with Gaussian jitter; deterministic by seed. */
export function spirals(nPerClass: number, classes: number, seed: number): Spirals {
  ts.manualSeed(seed);
  const noise = ts.randn([nPerClass * classes, 2], { std: 0.08 }).toTypedArray();
  const xs = new Float32Array(nPerClass * classes * 2);
  const ys = new Int32Array(nPerClass * classes);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < nPerClass; i++) {
      const k = c * nPerClass + i;
      const r = (i + 1) / nPerClass;
      const theta = (c * 2 * Math.PI) / classes + r * 4;
      xs[2 * k] = r * Math.sin(theta) + noise[2 * k];
      xs[2 * k + 1] = r * Math.cos(theta) + noise[2 * k + 1];
      ys[k] = c;
    }
  }
  return { x: ts.tensor(xs, { shape: [nPerClass * classes, 2] }), y: ts.tensor(ys) };
}

function linear(inDim: number, outDim: number): { w: ts.Tensor; b: ts.Tensor } {
  const bound = 1 / Math.sqrt(inDim);
  return {
    w: ts.rand([inDim, outDim], { low: -bound, high: bound, requiresGrad: true }),
    b: ts.zeros([outDim], { requiresGrad: true }),
  };
}

export function runDemo(steps = 600, log: (line: string) => void = console.log): { loss: number; accuracy: number } {
  const { cpuInfo, cudaInfo } = ts;
  const cuda = cudaInfo();
  log(`tessera demo: CPU ${cpuInfo().threads} threads (${cpuInfo().simd}), CUDA ${cuda.compiled ? `compiled, ${cuda.deviceCount} device(s)` : 'not compiled'}`);
  const data = spirals(200, 3, 1);
  ts.manualSeed(2);
  const layers = [linear(2, 64), linear(64, 64), linear(64, 3)];
  const params = layers.flatMap((l) => [l.w, l.b]);
  const lr = 0.5;
  const forward = (x: ts.Tensor) =>
    layers.reduce((h, l, i) => {
      const z = h.matmul(l.w).add(l.b);
      return i < layers.length - 1 ? z.gelu() : z;
    }, x);

  let loss = NaN;
  const started = Date.now();
  for (let step = 1; step <= steps; step++) {
    loss = ts.scope(() => {
      const l = crossEntropy(forward(data.x), data.y);
      l.backward();
      ts.noGrad(() => {
        for (const p of params) {
          p.copy_(p.sub(p.grad!.mul(lr)));
          p.grad!.dispose();
          p.grad = null;
        }
      });
      return l.item();
    });
    if (step % 100 === 0 || step === 1) log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}`);
  }
  const accuracy = ts.scope(() =>
    ts.noGrad(() => {
      const logits = forward(data.x);
      const pred = ts.eq(logits, ts.max(logits, 1, true)).toTypedArray();
      const labels = data.y.toTypedArray();
      let correct = 0;
      for (let i = 0; i < labels.length; i++) if (pred[i * 3 + labels[i]] === 1) correct++;
      return correct / labels.length;
    }),
  );
  log(`trained ${steps} full-batch steps on ${data.y.numel} points in ${((Date.now() - started) / 1000).toFixed(1)}s: loss ${loss.toFixed(4)}, accuracy ${(accuracy * 100).toFixed(1)}% (chance 33.3%)`);
  log(`native memory in use: ${(ts.memoryStats().hostBytes / 1024).toFixed(0)} KiB`);
  return { loss, accuracy };
}

if (require.main === module) runDemo();
