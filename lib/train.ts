// `tessera train <method> [options]` (also `npm run train -- <method> [options]`; with no method
// it trains `clip`): trains a method on a data set, evaluates it, and leaves a run folder with
// config.json, metrics.jsonl, checkpoints, report.md and plots. See --help for every option.

import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { manualSeed } from './random';
import { setNumThreads } from './backend';
import { ArgumentError } from './errors';
import { TRAIN_OPTIONS, METHODS, TrainConfig, parseOptionValue, helpText, OptionSpec, MethodName } from './training/config';
import { RunFolder } from './training/run_folder';
import { buildDataset, buildMethod, runTokenizer } from './training/setup';
import { trainLoop } from './training/loop';
import { evaluateComposed, evaluateMethod } from './training/evaluate';
import { evalTable, writePlots, writeReport } from './training/report';

/** Options that define the model and data: a resumed run must not change them. */
const FIXED_ON_RESUME = ['method', 'data', 'model', 'seed', 'batch-size', 'image-size', 'train-size', 'context-length', 'vocab-size', 'lr', 'warmup', 'weight-decay', 'grad-clip', 'steps',
  'ito-views', 'ito-captions', 'fusion-weight', 'fusion-layers', 'fusion-temperature', 'ito-augment',
  'pairs', 'klot-weight', 'pretrain-steps', 'vq-checkpoint', 'vq-patch'] as const;

export function parseTrainArgs(argv: string[]): TrainConfig {
  const specs = TRAIN_OPTIONS as Record<string, OptionSpec>;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(Object.entries(specs).map(([k, s]) => [k, { type: s.kind === 'boolean' ? 'boolean' : 'string' } as const])),
    });
  } catch (e) {
    throw new ArgumentError(`${(e as Error).message.split('\n')[0]}; see --help for the accepted options`);
  }
  const cfg: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const raw = (parsed.values as Record<string, string | boolean | undefined>)[name];
    cfg[name] = raw === undefined ? spec.default : parseOptionValue(name, spec, raw);
  }
  if (parsed.positionals.length > 1) throw new ArgumentError(`expected one method, got '${parsed.positionals.join(' ')}'`);
  const method = parsed.positionals[0] ?? 'clip';
  if (!cfg.help && !(METHODS as readonly string[]).includes(method))
    throw new ArgumentError(`unknown method '${method}': expected one of ${METHODS.join(', ')}`);
  cfg.method = method as MethodName;
  if (cfg.out === null) cfg.out = path.join('runs', `${method}-${cfg.data}-seed${cfg.seed}`);
  return cfg as TrainConfig;
}

export async function trainCommand(argv: string[], log: (s: string) => void = (s) => console.log(s)): Promise<number> {
  const cfg = parseTrainArgs(argv);
  if (cfg.help) {
    log(helpText('tessera train', TRAIN_OPTIONS, `<${METHODS.join('|')}>`));
    return 0;
  }
  const run = new RunFolder(cfg.out as string);
  if (cfg.resume) {
    const old = run.readConfig<TrainConfig>();
    const changed = FIXED_ON_RESUME.filter((k) => JSON.stringify(old[k]) !== JSON.stringify(cfg[k]));
    if (changed.length)
      throw new ArgumentError(`--resume: ${changed.map((k) => `--${k} ${String(cfg[k])} differs from the run's ${String(old[k])}`).join('; ')} (${run.configPath})`);
  }
  run.prepare({ resume: cfg.resume, overwrite: cfg.overwrite });
  const { resume, overwrite, help, ...persisted } = cfg;
  void resume, overwrite, help;
  run.writeConfig(persisted);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  log(`tessera train ${cfg.method}: data ${cfg.data}, model ${cfg.model}, ${cfg.steps} steps of ${cfg['batch-size']}, ${os.cpus().length} cores -> ${run.dir}`);
  const t0 = Date.now();
  const dataset = buildDataset(cfg);
  const tok = runTokenizer(cfg, dataset, run.dir, log);
  const method = buildMethod(cfg, dataset, tok);
  log(`model: ${(method.model.numParameters() / 1e6).toFixed(2)}M parameters`);
  const val = dataset.evalSplit('val', cfg['eval-size']);
  const result = await trainLoop(method, run, {
    steps: cfg.steps, batchSize: cfg['batch-size'], lr: cfg.lr, warmup: cfg.warmup, weightDecay: cfg['weight-decay'],
    gradClip: cfg['grad-clip'], seed: cfg.seed, evalEvery: cfg['eval-every'], checkpointEvery: cfg['checkpoint-every'],
    keep: cfg.keep, logEvery: cfg['log-every'],
  }, { trainSize: dataset.trainSize, val }, { resume: cfg.resume, log });
  if (result.interrupted) return 130;
  const test = evaluateMethod(method, dataset.evalSplit('test', cfg['eval-size']));
  test.rows.push(...evaluateComposed(method, dataset, 'test', cfg['eval-size']));
  const seconds = (Date.now() - t0) / 1000;
  writePlots(run);
  const report = writeReport(run, {
    title: `${cfg.method} on ${cfg.data} (${cfg.model})`, config: persisted, rows: test.rows, split: 'test', seconds, steps: result.finalStep,
    extra: Number.isFinite(result.bestScore)
      ? `The table is the final model. Best validation mean R@1: ${(result.bestScore * 100).toFixed(1)}% (checkpoints/best.safetensors; \`tessera eval\` uses it by default).\n`
      : '',
  });
  log(`\nTest split (${cfg['eval-size']} images), final model:\n\n${evalTable(test.rows)}\n`);
  log(`report: ${report}\nplots: ${path.join(run.dir, 'plots')}\ncheckpoints: ${run.checkpointDir}`);
  return 0;
}

if (require.main === module) {
  trainCommand(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(e instanceof ArgumentError ? `tessera train: ${e.message}` : e);
      process.exit(e instanceof ArgumentError ? 2 : 1);
    },
  );
}
