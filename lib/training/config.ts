// Every option of `tessera train`, its type, default and help text, in one table: the parser,
// --help, config.json and the checks of bad values all read from it, so they cannot disagree.

import { ArgumentError } from '../errors';

export type OptionKind = 'int' | 'number' | 'string' | 'boolean';

export interface OptionSpec {
  kind: OptionKind;
  default: number | string | boolean | null;
  help: string;
  choices?: readonly string[];
  min?: number;
}

export const METHODS = ['clip', 'siglip', 'ito', 'sotalign', 'fuselip'] as const;
export type MethodName = (typeof METHODS)[number];

export const TRAIN_OPTIONS = {
  data: { kind: 'string', default: 'world', choices: ['world', 'fashion-mnist'], help: 'data set: the embedded image-text world, or Fashion-MNIST (Debian dataset-fashion-mnist) with caption templates' },
  model: { kind: 'string', default: 'small', choices: ['tiny', 'small', 'base'], help: 'model size preset (tiny: tests; small: a few minutes on 2 cores; base: the benchmark size)' },
  steps: { kind: 'int', default: 2000, min: 1, help: 'training steps' },
  'batch-size': { kind: 'int', default: 128, min: 2, help: 'image-text pairs per step' },
  lr: { kind: 'number', default: 1e-3, min: 0, help: 'peak learning rate (AdamW)' },
  warmup: { kind: 'int', default: 50, min: 0, help: 'linear warm-up steps before the cosine decay' },
  'weight-decay': { kind: 'number', default: 0.1, min: 0, help: 'AdamW weight decay (not on norms, biases, temperatures)' },
  'grad-clip': { kind: 'number', default: 1.0, min: 0, help: 'clip the global gradient norm to this (0: off)' },
  seed: { kind: 'int', default: 0, min: 0, help: 'seed of the data, the initialisation and every random draw' },
  device: { kind: 'string', default: 'cpu', choices: ['cpu'], help: 'device (cpu; cuda arrives with the CUDA issues)' },
  threads: { kind: 'int', default: 0, min: 0, help: 'CPU threads (0: all cores)' },
  out: { kind: 'string', default: null, help: 'run folder (default runs/<method>-<data>-seed<seed>)' },
  'eval-every': { kind: 'int', default: 200, min: 0, help: 'evaluate on the validation split every N steps (0: only at the end)' },
  'eval-size': { kind: 'int', default: 500, min: 10, help: 'validation/test images used by the evaluation' },
  'checkpoint-every': { kind: 'int', default: 200, min: 0, help: 'write a checkpoint every N steps (0: only at the end)' },
  keep: { kind: 'int', default: 3, min: 1, help: 'step checkpoints to keep (the best one is kept apart)' },
  'log-every': { kind: 'int', default: 10, min: 1, help: 'log the loss every N steps (metrics.jsonl, plain progress lines)' },
  'image-size': { kind: 'int', default: 32, min: 8, help: 'image side in pixels (embedded world; Fashion-MNIST is 28)' },
  'train-size': { kind: 'int', default: 20000, min: 16, help: 'training images (embedded world; Fashion-MNIST: the first N of its 60000)' },
  'context-length': { kind: 'int', default: 24, min: 4, help: 'text tokens per caption (with <bos>/<eos>)' },
  'vocab-size': { kind: 'int', default: 512, min: 300, help: 'BPE vocabulary size (trained on the data set text at the start of a run)' },
  'ito-views': { kind: 'int', default: 2, min: 1, help: 'ito: augmented image views per sample per step (two-view recipe of lib/data/augment.ts)' },
  'ito-captions': { kind: 'int', default: 2, min: 1, help: 'ito: true captions per sample per step (multiple alignment)' },
  'fusion-weight': { kind: 'number', default: 0.5, min: 0, help: 'ito: weight lambda of the training-time fusion NT-Xent loss (0: multiple alignment only)' },
  'fusion-layers': { kind: 'int', default: 1, min: 1, help: 'ito: transformer blocks of the training-time fusion module (discarded at inference)' },
  'fusion-temperature': { kind: 'number', default: 0.1, min: 1e-4, help: 'ito: NT-Xent temperature of the fusion loss' },
  'ito-augment': { kind: 'string', default: 'full', choices: ['full', 'crop'], help: "ito: image views: 'full' (crop, flip, colour jitter, grayscale) or 'crop' (crop + flip only)" },
  pairs: { kind: 'int', default: 1000, min: 2, help: 'sotalign: paired training items (the first N, one caption each); every item is also used as an unpaired image and an unpaired caption' },
  'klot-weight': { kind: 'number', default: 1, min: 0, help: 'sotalign: weight of the KLOT term on unpaired batches (0: heads trained on the pairs only)' },
  'pretrain-steps': { kind: 'int', default: 800, min: 1, help: 'sotalign: self-supervised NT-Xent pretraining steps of each frozen encoder (batch 128)' },
  'vq-checkpoint': { kind: 'string', default: null, help: 'fuselip: frozen VQ-VAE image tokenizer (a saveVQVAE file); default: train one at the start on 4000 training images and keep it as <out>/vq.safetensors' },
  'vq-patch': { kind: 'int', default: 8, min: 1, help: 'fuselip: VQ-VAE patch side when training the tokenizer (8: 16 tokens per 32 px image; 4: 64 tokens)' },
  resume: { kind: 'boolean', default: false, help: 'continue the run in --out from its last checkpoint' },
  overwrite: { kind: 'boolean', default: false, help: 'replace an existing run in --out' },
  help: { kind: 'boolean', default: false, help: 'show this help' },
} satisfies Record<string, OptionSpec>;

export type TrainOptionName = keyof typeof TRAIN_OPTIONS;
export type TrainConfig = { method: MethodName } & { [K in TrainOptionName]: (typeof TRAIN_OPTIONS)[K]['default'] extends null ? string | null : (typeof TRAIN_OPTIONS)[K]['kind'] extends 'boolean' ? boolean : (typeof TRAIN_OPTIONS)[K]['kind'] extends 'string' ? string : number };

/** Convert and check one option's raw string (or boolean) value. */
export function parseOptionValue(name: string, spec: OptionSpec, raw: string | boolean): number | string | boolean {
  if (spec.kind === 'boolean') return raw === true || raw === 'true';
  const s = String(raw);
  if (spec.kind === 'string') {
    if (spec.choices && !spec.choices.includes(s)) throw new ArgumentError(`--${name}: '${s}' is not one of ${spec.choices.join(', ')}`);
    return s;
  }
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v)) throw new ArgumentError(`--${name}: '${s}' is not a number`);
  if (spec.kind === 'int' && !Number.isInteger(v)) throw new ArgumentError(`--${name}: '${s}' is not an integer`);
  if (spec.min !== undefined && v < spec.min) throw new ArgumentError(`--${name}: ${v} is below the minimum ${spec.min}`);
  return v;
}

export function helpText(command: string, specs: Record<string, OptionSpec>, positional: string): string {
  const lines = [`usage: ${command} ${positional} [options]`, '', 'options:'];
  for (const [name, spec] of Object.entries(specs)) {
    const arg = spec.kind === 'boolean' ? '' : ` <${spec.choices ? spec.choices.join('|') : spec.kind}>`;
    const def = spec.kind === 'boolean' || spec.default === null ? '' : ` (default ${spec.default})`;
    lines.push(`  --${name}${arg}`.padEnd(44) + spec.help + def);
  }
  return lines.join('\n');
}
