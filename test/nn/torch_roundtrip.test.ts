// Round trip to PyTorch: train the tiny CLIP pair a few AdamW steps in tessera, save the state
// dict with tessera's own writers (saveSafetensors, and saveCheckpoint), together with inputs and
// tessera's outputs, and let test/reference/check_checkpoint_in_torch.py load the weights into
// the torch mirror modules (same names, strict=True) and reproduce the outputs (rel < 1e-4).
// Without python3 or torch the tests print "torch round trip: SKIPPED (<reason>)" and pass.
// The model configs are those of the parity reference file (one place for the numbers).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { Clip, ModelConfig, repoFile } from '../helpers/model_reference';

const PYTHON = process.env.TESSERA_PYTHON ?? '/usr/bin/python3';
const script = repoFile('test/reference/check_checkpoint_in_torch.py');
const cfg = JSON.parse(ts.inspectSafetensors(repoFile('test/reference/model_reference.safetensors')).metadata.config) as ModelConfig;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-roundtrip-'));
const STEPS = 3;

let skipReason: string | null = null;
let skipAnnounced = false;

/** Run the checker; null when it cannot run here (then the reason is printed once). */
function check(args: string[]): { status: number; output: string } | null {
  if (skipReason === null) {
    const r = spawnSync(PYTHON, [script, ...args], { encoding: 'utf8', timeout: 120_000 });
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    if (r.error) skipReason = (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? `${PYTHON} not found` : `${PYTHON} could not run: ${r.error.message}`;
    else if (r.status === 3) skipReason = output.replace(/^SKIP:\s*/, '').split('\n')[0];
    else return { status: r.status ?? -1, output };
  }
  if (!skipAnnounced) {
    console.log(`  torch round trip: SKIPPED (${skipReason})`);
    skipAnnounced = true;
  }
  return null;
}

// Train in tessera (its own init, fixed seed), then record inputs and eval-mode outputs.
ts.manualSeed(4321);
const clip = new Clip(cfg);
const B = cfg.batch;
const L = cfg.text.contextLength;
const eotPos = Array.from({ length: B }, (_, r) => (L - 1 - 2 * r + L * B) % L);
const tokenIds = new Int32Array(B * L);
eotPos.forEach((e, r) => {
  for (let j = 0; j < e; j++) tokenIds[r * L + j] = 1 + ((r * 7 + j * 13) % (cfg.text.vocabSize - 2));
  tokenIds[r * L + e] = cfg.text.vocabSize - 1;
});
const inputs = new Map<string, Tensor>([
  ['input.images', ts.keep(ts.randn([B, cfg.vit.channels, cfg.vit.imageSize, cfg.vit.imageSize]))],
  ['input.tokens', ts.keep(ts.tensor(tokenIds, { shape: [B, L] }))],
  ['input.eot', ts.keep(ts.tensor(Int32Array.from(eotPos)))],
]);
const forward = () => clip.forward(inputs.get('input.images')!, inputs.get('input.tokens')!, inputs.get('input.eot')!);
const opt = new ts.optim.AdamW(ts.optim.decayGroups(clip, cfg.adamw.weightDecay), { lr: 1e-3 });
const losses: number[] = [];
for (let s = 0; s < STEPS; s++) {
  ts.scope(() => {
    opt.zeroGrad();
    const { loss } = forward();
    losses.push(loss.item());
    loss.backward();
    opt.step();
  });
}
const outputs = ts.noGrad(() => {
  const o = forward();
  const m = new Map<string, Tensor>([
    ['output.vit.pooled', o.vit.pooled], ['output.vit.tokens', o.vit.tokens],
    ['output.text.pooled', o.text.pooled], ['output.text.tokens', o.text.tokens], ['output.clip_loss', o.loss],
  ]);
  for (const t of m.values()) ts.keep(t);
  return m;
});
const metadata = { config: JSON.stringify({ vit: cfg.vit, text: cfg.text }) };
const ioFile = path.join(dir, 'io.safetensors'); // inputs and tessera's outputs, no weights
ts.saveSafetensors(ioFile, new Map([...inputs, ...outputs]));

test(`tessera-trained weights (${STEPS} AdamW steps), saveSafetensors: PyTorch reproduces the outputs`, () => {
  assert.ok(losses[STEPS - 1] < losses[0], `training lowered the loss (${losses.join(' -> ')})`);
  const file = path.join(dir, 'clip.safetensors');
  const all = new Map<string, Tensor>([...inputs, ...outputs]);
  for (const [k, t] of clip.stateDict()) all.set(`model.${k}`, t);
  ts.saveSafetensors(file, all, { metadata });
  const r = check([file]);
  if (!r) return;
  console.log(r.output.replace(/^/gm, '    '));
  assert.is(r.status, 0, `check_checkpoint_in_torch.py failed (exit ${r.status}):\n${r.output}`);
  assert.match(r.output, /^OK: /m);
});

test('a saveCheckpoint file (model + optimizer state) with a separate inputs/outputs file', () => {
  const ckpt = path.join(dir, 'clip.ckpt.safetensors');
  ts.saveCheckpoint(ckpt, { model: clip, optimizer: opt, step: STEPS, extra: { config: { vit: cfg.vit, text: cfg.text } } });
  const r = check([ckpt, ioFile]);
  if (!r) return;
  assert.is(r.status, 0, `check_checkpoint_in_torch.py failed on the checkpoint (exit ${r.status}):\n${r.output}`);
  assert.match(r.output, /^OK: /m);
});

test('the checker fails on weights that do not produce the outputs, and on wrong names', () => {
  const sd = clip.stateDict();
  ts.scope(() => {
    const tampered = new Map<string, Tensor>();
    for (const [k, t] of sd) tampered.set(`model.${k}`, k === 'text.ln_final.weight' ? t.mul(1.01) : t);
    const bad = path.join(dir, 'tampered.safetensors');
    ts.saveSafetensors(bad, tampered, { metadata });
    const r = check([bad, ioFile]);
    if (!r) return;
    assert.is(r.status, 1, `expected exit 1 for tampered weights, got ${r.status}:\n${r.output}`);
    assert.match(r.output, /FAIL: PyTorch does not reproduce tessera's outputs: text\.pooled/);

    const renamed = new Map<string, Tensor>();
    for (const [k, t] of sd) renamed.set(`model.${k.replace('in_proj.weight', 'in_proj_weight')}`, t);
    const wrong = path.join(dir, 'renamed.safetensors');
    ts.saveSafetensors(wrong, renamed, { metadata });
    const r2 = check([wrong, ioFile]);
    if (!r2) return;
    assert.is(r2.status, 1, `expected exit 1 for renamed weights, got ${r2.status}:\n${r2.output}`);
    assert.match(r2.output, /strict=True[\s\S]*in_proj_weight/);
  });
});

test.after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const t of [...inputs.values(), ...outputs.values()]) t.dispose();
  opt.dispose();
  clip.dispose();
});

test.run();
