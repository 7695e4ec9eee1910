// `tessera eval <run-folder>`: rebuild the run's data set, tokenizer and model from its
// config.json and tokenizer.json, load a checkpoint (best by default), and print the evaluation
// table. A missing folder, config, tokenizer or checkpoint, or a checkpoint that does not fit the
// model, is reported with the path, never ignored.

import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { ArgumentError } from '../errors';
import { loadCheckpoint } from '../io/checkpoint';
import { BpeTokenizer } from '../data/bpe_tokenizer';
import { TrainConfig } from './config';
import { RunFolder } from './run_folder';
import { buildDataset, buildMethod } from './setup';
import { evaluateComposed, evaluateMethod } from './evaluate';
import { evalTable } from './report';

export const EVAL_USAGE = `usage: tessera eval <run-folder> [options]

options:
  --checkpoint <best|last|file>   which weights to evaluate (default best, or last when there is no best)
  --split <test|val>              evaluation split (default test)
  --eval-size <int>               images to evaluate (default: the run's --eval-size)
  --help                          show this help`;

export function evalCommand(argv: string[], log: (s: string) => void = (s) => console.log(s)): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { checkpoint: { type: 'string' }, split: { type: 'string' }, 'eval-size': { type: 'string' }, help: { type: 'boolean' } },
    });
  } catch (e) {
    throw new ArgumentError(`${(e as Error).message.split('\n')[0]}; see --help`);
  }
  if (parsed.values.help) {
    log(EVAL_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new ArgumentError('expected exactly one run folder (see --help)');
  const run = new RunFolder(parsed.positionals[0]);
  if (!fs.existsSync(run.dir)) throw new ArgumentError(`run folder ${run.dir} does not exist`);
  const cfg = run.readConfig<TrainConfig>();
  const split = parsed.values.split ?? 'test';
  if (split !== 'test' && split !== 'val') throw new ArgumentError(`--split: '${split}' is not one of test, val`);
  const size = parsed.values['eval-size'] === undefined ? cfg['eval-size'] : Number(parsed.values['eval-size']);
  if (!Number.isInteger(size) || size < 10) throw new ArgumentError(`--eval-size: '${parsed.values['eval-size']}' is not an integer >= 10`);
  const which = parsed.values.checkpoint ?? 'best';
  let file: string;
  if (which === 'best' || which === 'last') {
    const last = run.latestCheckpoint();
    file = which === 'best' && fs.existsSync(run.bestPath) ? run.bestPath : last?.file ?? '';
    if (!file) throw new ArgumentError(`no checkpoint in ${run.checkpointDir}: train first, or pass --checkpoint <file>`);
  } else {
    file = path.resolve(which);
    if (!fs.existsSync(file)) throw new ArgumentError(`--checkpoint: ${file} does not exist`);
  }
  const tokFile = path.join(run.dir, 'tokenizer.json');
  if (!fs.existsSync(tokFile)) throw new ArgumentError(`${tokFile} is missing: the run's tokenizer is needed to embed texts`);
  const dataset = buildDataset(cfg);
  const method = buildMethod(cfg, dataset, BpeTokenizer.load(tokFile), run.dir, true);
  const ck = loadCheckpoint(file);
  try {
    method.model.loadStateDict(ck.model, { strict: true });
  } finally {
    for (const t of ck.model.values()) t.dispose();
    for (const t of ck.optim.values()) t.dispose();
  }
  const res = evaluateMethod(method, dataset.evalSplit(split, size));
  res.rows.push(...evaluateComposed(method, dataset, split, size));
  log(`${cfg.method} (${cfg.model}) from ${file} (step ${ck.step}), ${split} split, ${size} images:\n\n${evalTable(res.rows)}`);
  return 0;
}
