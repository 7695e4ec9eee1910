// Rebuilding a run's pieces from its resolved configuration: the data set, the tokenizer (trained
// on the data set's text when the run starts, then loaded from the run folder) and the method.
// `tessera train` and `tessera eval` share it, so an evaluated run is exactly the trained one.

import * as fs from 'fs';
import * as path from 'path';
import { BpeTokenizer } from '../data/bpe_tokenizer';
import { PairDataset } from '../data/pair_dataset';
import { WorldPairs } from '../data/world_pairs';
import { FashionPairs } from '../data/fashion_pairs';
import { ArgumentError } from '../errors';
import { ContrastiveMethod } from '../methods/clip';
import { ItoMethod } from '../methods/ito';
import { SotalignMethod } from '../methods/sotalign';
import { FuseLIP, loadOrTrainFuseTokenizer } from '../methods/fuselip';
import { ModelPreset } from '../methods/dual_encoder';
import { Method, TextTokenizer } from '../methods/method';
import { TrainConfig } from './config';

export function buildDataset(cfg: TrainConfig): PairDataset {
  if (cfg.data === 'world') return new WorldPairs(cfg.seed, cfg['image-size'], cfg['train-size']);
  if (cfg.data === 'fashion-mnist') return new FashionPairs(cfg.seed, cfg['train-size']);
  throw new ArgumentError(`--data: unknown data set '${cfg.data}'`);
}

/** Load the run's tokenizer, or train one on the data set's text and save it there. */
export function runTokenizer(cfg: TrainConfig, dataset: PairDataset, runDir: string, log: (s: string) => void): BpeTokenizer {
  const file = path.join(runDir, 'tokenizer.json');
  if (fs.existsSync(file)) return BpeTokenizer.load(file);
  const t0 = Date.now();
  const tok = BpeTokenizer.train(dataset.corpus(), { vocabSize: cfg['vocab-size'], lowercase: true });
  tok.save(file);
  log(`tokenizer: BPE with ${tok.vocabSize} tokens trained in ${((Date.now() - t0) / 1000).toFixed(1)}s -> ${file}`);
  return tok;
}

/** The tokenizer as methods use it: <bos> text <eos>, padded to the context length. */
export function methodTokenizer(tok: BpeTokenizer): TextTokenizer {
  return {
    vocabSize: tok.vocabSize,
    encodeBatch: (texts, o) => tok.encodeBatch(texts, { length: o.length, addSpecial: true }),
  };
}

/**
 * The method of a run. `runDir` is the run folder (FuseLIP keeps its image tokenizer there);
 * `mustExist` (evaluation) refuses to create missing artefacts such as that tokenizer.
 */
export function buildMethod(cfg: TrainConfig, dataset: PairDataset, tok: BpeTokenizer, runDir = cfg.out as string, mustExist = false): Method {
  if (mustExist && cfg.method === 'fuselip' && cfg['vq-checkpoint'] === null && !fs.existsSync(path.join(runDir, 'vq.safetensors')))
    throw new ArgumentError(`${path.join(runDir, 'vq.safetensors')} is missing: the run's image tokenizer is needed to evaluate fuselip`);
  const ctx = { dataset, tokenizer: methodTokenizer(tok), contextLength: cfg['context-length'], seed: cfg.seed };
  switch (cfg.method) {
    case 'clip':
    case 'siglip':
      return new ContrastiveMethod(cfg.method, ctx, cfg.model as ModelPreset);
    case 'ito':
      return new ItoMethod(ctx, cfg.model as ModelPreset, {
        views: cfg['ito-views'], captions: cfg['ito-captions'], fusionWeight: cfg['fusion-weight'],
        fusionLayers: cfg['fusion-layers'], fusionTemperature: cfg['fusion-temperature'], colorAugment: cfg['ito-augment'] === 'full',
      });
    case 'sotalign':
      return new SotalignMethod(ctx, {
        preset: cfg.model as ModelPreset, nPairs: cfg.pairs, klotWeight: cfg['klot-weight'], pretrainSteps: cfg['pretrain-steps'],
        log: (l) => console.log(`sotalign: ${l}`),
      });
    case 'fuselip': {
      const given = cfg['vq-checkpoint'];
      if (given !== null && !fs.existsSync(given)) throw new ArgumentError(`--vq-checkpoint: ${given} does not exist`);
      const vq = loadOrTrainFuseTokenizer(given ?? path.join(runDir, 'vq.safetensors'), dataset,
        { patchSize: cfg['vq-patch'], seed: cfg.seed, log: (s) => console.log(s) });
      return new FuseLIP(ctx, cfg.model as ModelPreset, { vq });
    }
    default:
      throw new ArgumentError(`unknown method '${String(cfg.method)}'`);
  }
}
