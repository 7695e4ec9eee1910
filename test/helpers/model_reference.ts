// Shared by test/nn/torch_parity.test.ts and test/nn/torch_roundtrip.test.ts: locating files of
// the repository from compiled tests, the CLIP wrapper module (the twin of Clip in
// test/reference/torch_mirror.py), model configs from the reference file's JSON metadata, and
// the relative error used for PyTorch parity.
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { Tensor } from '../../lib';

/**
 * Absolute path of `rel` (relative to the repository root), whether the tests run from dist/,
 * dist-<anything>/ (three levels below the root: <out>/test/<dir>/x.js) or straight from the
 * sources; falls back to the current directory.
 */
export function repoFile(rel: string): string {
  const candidates = [
    path.resolve(__dirname, '..', '..', '..', rel), // <root>/<outDir>/test/helpers
    path.resolve(__dirname, '..', '..', rel), // <root>/test/helpers (ts-node and the like)
    path.resolve(process.cwd(), rel),
  ];
  return candidates.find((c) => fs.existsSync(c)) ?? candidates[candidates.length - 1];
}

/** Configs as make_model_reference.py writes them in the "config" metadata entry. */
export interface ModelConfig {
  torch?: string;
  block: { dim: number; heads: number; mlpRatio: number; batch: number; seq: number };
  vit: { imageSize: number; patchSize: number; channels: number; width: number; layers: number; heads: number; mlpRatio: number; outputDim: number };
  text: { vocabSize: number; contextLength: number; width: number; layers: number; heads: number; mlpRatio: number; outputDim: number };
  batch: number;
  adamw: { lr: number; betas: [number, number]; eps: number; weightDecay: number; steps: number };
  noDecay: string[];
  decay: string[];
}

export interface ClipForward {
  vit: nn.TowerOutput;
  text: nn.TowerOutput;
  loss: Tensor;
}

/**
 * The two towers and the learnable log temperature under one module, named vit.*, text.* and
 * logit_scale (0-d), exactly as torch_mirror.Clip, so state dicts move between the two.
 */
export class Clip extends ts.Module {
  readonly logit_scale: Tensor;
  readonly vit: nn.VisionTransformer;
  readonly text: nn.TextTransformer;

  constructor(cfg: Pick<ModelConfig, 'vit' | 'text'>) {
    super();
    this.logit_scale = this.param('logit_scale', ts.tensor(Math.log(1 / 0.07)));
    this.vit = this.child('vit', new nn.VisionTransformer({ ...cfg.vit }));
    this.text = this.child('text', new nn.TextTransformer({ ...cfg.text }));
  }

  forward(images: Tensor, tokens: Tensor, eot: Tensor): ClipForward {
    const vit = this.vit.forward(images);
    const text = this.text.forward(tokens, { eotIndex: eot });
    return { vit, text, loss: ts.losses.clipLoss(vit.pooled, text.pooled, this.logit_scale) };
  }
}

/** The tensors of `all` whose names start with `prefix`, with the prefix removed. */
export function withPrefix(all: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of all) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), t);
  return out;
}

/** max|a - b| / max(max|b|, tiny): the error relative to the reference tensor's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 1e-30;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    num = d > num || Number.isNaN(d) ? d : num;
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}
