// The `tessera train` command end to end, in child processes: options are checked with clear
// messages; a run killed with SIGKILL mid-training and resumed ends with exactly the losses of an
// uninterrupted run; Ctrl-C (SIGINT) checkpoints and exits 130; incompatible or corrupt
// checkpoints are reported, never ignored.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseTrainArgs } from '../../lib/train';

const TRAIN = path.resolve(__dirname, '..', '..', 'lib', 'train.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-train-'));
const TINY = ['clip', '--model', 'tiny', '--steps', '24', '--batch-size', '16', '--warmup', '4', '--eval-every', '0', '--eval-size', '20',
  '--checkpoint-every', '6', '--log-every', '1', '--train-size', '200', '--vocab-size', '300', '--context-length', '16', '--threads', '1'];

function runSync(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [TRAIN, ...args], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  return { code: r.status, out: r.stdout + r.stderr };
}

function trainLosses(dir: string): [number, number][] {
  return fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((r) => r.kind === 'train').map((r) => [r.step, r.loss]);
}

test('bad options name the option and the accepted values', () => {
  assert.throws(() => parseTrainArgs(['clip', '--steps', 'abc']), /--steps: 'abc' is not a number/);
  assert.throws(() => parseTrainArgs(['clip', '--steps', '2.5']), /--steps: '2.5' is not an integer/);
  assert.throws(() => parseTrainArgs(['clip', '--model', 'huge']), /--model: 'huge' is not one of tiny, small, base/);
  assert.throws(() => parseTrainArgs(['clip', '--batch-size', '1']), /--batch-size: 1 is below the minimum 2/);
  assert.throws(() => parseTrainArgs(['dino']), /unknown method 'dino': expected one of clip, siglip, ito/);
  assert.throws(() => parseTrainArgs(['clip', '--stpes', '3']), /stpes.*see --help/);
  const cfg = parseTrainArgs(['siglip', '--lr', '3e-4']);
  assert.equal([cfg.method, cfg.lr, cfg.steps, cfg.out], ['siglip', 3e-4, 2000, path.join('runs', 'siglip-world-seed0')]);
  const help = runSync(['--help']);
  assert.equal(help.code, 0);
  for (const opt of ['--steps', '--batch-size', '--lr', '--resume', '--eval-every', '--out']) assert.ok(help.out.includes(opt), `--help lists ${opt}`);
  assert.match(help.out, /\(default 2000\)/);
  const bad = runSync(['clip', '--model', 'huge']);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /tessera train: --model: 'huge' is not one of/);
});

test('SIGKILL mid-run, then --resume: the losses equal those of an uninterrupted run', async () => {
  const full = path.join(tmp, 'full');
  const r = runSync([...TINY, '--out', full]);
  assert.equal(r.code, 0, r.out);
  const reference = trainLosses(full);
  assert.equal(reference.length, 24);
  assert.ok(fs.existsSync(path.join(full, 'report.md')) && fs.existsSync(path.join(full, 'plots', 'loss.svg')));

  const killed = path.join(tmp, 'killed');
  const child = spawn(process.execPath, [TRAIN, ...TINY, '--out', killed], { stdio: 'ignore', env: { ...process.env, CI: 'true' } });
  const ckpt = path.join(killed, 'checkpoints', 'step-000012.safetensors');
  const deadline = Date.now() + 60000;
  while (!fs.existsSync(ckpt) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  child.kill('SIGKILL');
  await new Promise((res) => child.on('exit', res));
  assert.ok(fs.existsSync(ckpt), 'the run reached its step-12 checkpoint before the kill');
  assert.ok(!fs.existsSync(path.join(killed, 'report.md')), 'killed before the end');
  const resumed = runSync([...TINY, '--out', killed, '--resume']);
  assert.equal(resumed.code, 0, resumed.out);
  assert.match(resumed.out, /resumed from .*step-0000(12|18)/);
  assert.equal(trainLosses(killed), reference, 'identical step/loss records');
});

test('SIGINT writes a checkpoint and exits 130; --resume finishes the run', async () => {
  const dir = path.join(tmp, 'sigint');
  const child = spawn(process.execPath, [TRAIN, ...TINY, '--out', dir, '--checkpoint-every', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
  let out = '';
  child.stdout.on('data', (d) => { out += d; if (/step \d+\/24/.test(out) && !child.killed) child.kill('SIGINT'); });
  child.stderr.on('data', (d) => { out += d; });
  const code = await new Promise((res) => child.on('exit', (c) => res(c)));
  assert.equal(code, 130, out);
  assert.match(out, /interrupted: checkpoint written at step \d+/);
  const left = fs.readdirSync(path.join(dir, 'checkpoints')).filter((f) => /^step-/.test(f));
  assert.equal(left.length, 1);
  const resumed = runSync([...TINY, '--out', dir, '--resume']);
  assert.equal(resumed.code, 0, resumed.out);
  assert.equal(trainLosses(dir).length, 24);
});

test('incompatible options, an existing run, and a corrupt checkpoint are reported', () => {
  const full = path.join(tmp, 'full');
  const other = runSync([...TINY, '--out', full, '--resume', '--model', 'small']);
  assert.equal(other.code, 2);
  assert.match(other.out, /--resume: --model small differs from the run's tiny/);
  const again = runSync([...TINY, '--out', full]);
  assert.equal(again.code, 2);
  assert.match(again.out, /already holds a run.*--resume.*--overwrite/);
  const none = runSync([...TINY, '--out', path.join(tmp, 'nothing-here'), '--resume']);
  assert.equal(none.code, 2);
  assert.match(none.out, /is not a run folder: .*config\.json is missing/);
  const CLI = path.resolve(__dirname, '..', '..', 'lib', 'cli.js');
  const ev = spawnSync(process.execPath, [CLI, 'eval', full, '--split', 'val'], { encoding: 'utf8' });
  assert.equal(ev.status, 0, ev.stderr);
  assert.match(ev.stdout, /best\.safetensors \(step 24\), val split, 20 images/);
  assert.match(ev.stdout, /\| image->text R@1 \| [\d.]+% \| 5\.0% \|/);
  const noRun = spawnSync(process.execPath, [CLI, 'eval', path.join(tmp, 'nope')], { encoding: 'utf8' });
  assert.equal(noRun.status, 2);
  assert.match(noRun.stderr, /run folder .*nope does not exist/);
  // Corrupt the newest checkpoint: resuming must refuse it and name the file.
  const ck = fs.readdirSync(path.join(full, 'checkpoints')).filter((f) => /^step-/.test(f)).sort().pop()!;
  const file = path.join(full, 'checkpoints', ck);
  fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
  const corrupt = runSync([...TINY, '--out', full, '--resume']);
  assert.not.equal(corrupt.code, 0);
  assert.ok(corrupt.out.includes(ck), corrupt.out);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
