// A training run's folder:
//   config.json                 the resolved configuration (every option, defaults included)
//   metrics.jsonl               training and evaluation records (lib/io/metrics_log.ts)
//   checkpoints/step-000123.safetensors   the last `keep` checkpoints (atomic writes)
//   checkpoints/best.safetensors          the checkpoint with the best validation score
//   report.md, plots/*.svg      written at the end (and after each evaluation)
// plus whatever the method keeps beside them (the tokenizer, ...). Checkpoints are written with
// saveCheckpoint (temp file, fsync, rename), so whatever is on disk is always a whole checkpoint;
// pruning old ones happens only after the new one is in place.

import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError } from '../errors';
import { MetricsLog } from '../io/metrics_log';
import { writeTextAtomic } from '../io/text_file';
import { cleanupTempFiles } from '../io/safetensors';

const CKPT = /^step-(\d+)\.safetensors$/;

export class RunFolder {
  readonly metrics: MetricsLog;
  readonly checkpointDir: string;

  constructor(readonly dir: string) {
    this.metrics = new MetricsLog(path.join(dir, 'metrics.jsonl'));
    this.checkpointDir = path.join(dir, 'checkpoints');
  }

  /** Make the folders; refuses a folder that already holds a run unless `resume` or `overwrite`. */
  prepare(opts: { resume: boolean; overwrite: boolean }): void {
    if (!opts.resume && fs.existsSync(path.join(this.dir, 'config.json'))) {
      if (!opts.overwrite)
        throw new ArgumentError(`--out ${this.dir} already holds a run (config.json); pass --resume to continue it, --overwrite to replace it, or choose another --out`);
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    fs.mkdirSync(this.checkpointDir, { recursive: true });
    fs.mkdirSync(path.join(this.dir, 'plots'), { recursive: true });
  }

  get configPath(): string {
    return path.join(this.dir, 'config.json');
  }

  writeConfig(config: object): void {
    writeTextAtomic(this.configPath, JSON.stringify(config, null, 2) + '\n');
  }

  readConfig<T>(): T {
    if (!fs.existsSync(this.configPath)) throw new ArgumentError(`${this.dir} is not a run folder: ${this.configPath} is missing`);
    try {
      return JSON.parse(fs.readFileSync(this.configPath, 'utf8')) as T;
    } catch (e) {
      throw new ArgumentError(`${this.configPath}: not valid JSON (${(e as Error).message})`);
    }
  }

  checkpointPath(step: number): string {
    return path.join(this.checkpointDir, `step-${String(step).padStart(6, '0')}.safetensors`);
  }

  get bestPath(): string {
    return path.join(this.checkpointDir, 'best.safetensors');
  }

  /** Step checkpoints on disk, oldest first. */
  checkpoints(): { step: number; file: string }[] {
    if (!fs.existsSync(this.checkpointDir)) return [];
    return fs.readdirSync(this.checkpointDir)
      .map((n) => CKPT.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ step: Number(m[1]), file: path.join(this.checkpointDir, m[0]) }))
      .sort((a, b) => a.step - b.step);
  }

  latestCheckpoint(): { step: number; file: string } | null {
    const all = this.checkpoints();
    return all.length ? all[all.length - 1] : null;
  }

  /** Remove leftovers of interrupted writes, then all but the newest `keep` step checkpoints. */
  prune(keep: number): void {
    for (const c of this.checkpoints()) cleanupTempFiles(c.file);
    cleanupTempFiles(this.bestPath);
    const all = this.checkpoints();
    for (const c of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(c.file, { force: true });
  }

  writeText(name: string, text: string): string {
    const file = path.join(this.dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeTextAtomic(file, text);
    return file;
  }
}
