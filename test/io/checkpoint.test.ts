// Checkpoints: a model, an optimizer's state, the step, the RNG stream and extras saved to one
// safetensors file and restored into fresh objects exactly (training resumes bit for bit); strict
// loading names every missing, unexpected and mis-shaped key and changes nothing; files that are
// not tessera checkpoints, or whose metadata is damaged, are refused before any tensor is read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { Module, StateDictError } from '../../lib/nn/module';
import { CHECKPOINT_FORMAT, CheckpointOptimizer, loadCheckpoint, restoreCheckpoint, saveCheckpoint } from '../../lib/io/checkpoint';
import { CheckpointError, inspectSafetensors, saveSafetensors } from '../../lib/io/safetensors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ckpt-'));
const tmpFile = (name: string) => path.join(dir, name);
const blocks = () => ts.memoryStats().hostBlocks;
const bytesOf = (t: Tensor) => {
  const a = t.toTypedArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
};

class Inner extends Module {
  readonly w: Tensor;
  constructor() {
    super();
    this.w = this.param('w', ts.randn([3]));
  }
}

interface TinyOptions {
  weightShape?: number[];
  biasName?: string;
  extraChild?: boolean;
}

class Tiny extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly counts: Tensor;
  readonly inner: Inner;
  constructor(opts: TinyOptions = {}) {
    super();
    this.weight = this.param('weight', ts.randn(opts.weightShape ?? [2, 3]));
    this.bias = this.param(opts.biasName ?? 'bias', ts.rand([3]));
    this.counts = this.buffer('counts', ts.tensor([1, 2, 3, 4], { dtype: 'int32' }));
    this.inner = this.child('inner', new Inner());
    if (opts.extraChild) this.child('head', new Inner());
  }
}

/** A stand-in for an Adam-like optimizer: state tensors per parameter plus hyper-parameters. */
class FakeOptimizer implements CheckpointOptimizer {
  state = new Map<string, Tensor>();
  hyper: Record<string, unknown> = { lr: 0.001, betas: [0.9, 0.999], eps: 1e-8, t: 0 };
  constructor(model: Module, fill: number) {
    for (const [k, p] of model.namedParameters()) {
      this.state.set(`${k}.exp_avg`, ts.fullLike(p, fill));
      this.state.set(`${k}.exp_avg_sq`, ts.randn(p.shape, { dtype: 'float64' }));
    }
  }
  stateDict(): Map<string, Tensor> {
    return this.state;
  }
  loadStateDict(m: Map<string, Tensor>): void {
    for (const t of this.state.values()) t.dispose();
    this.state = new Map([...m].map(([k, t]) => [k, ts.keep(t.clone())])); // copy: the inputs are disposed after
  }
  hyperState(): Record<string, unknown> {
    return this.hyper;
  }
  loadHyperState(h: Record<string, unknown>): void {
    this.hyper = h;
  }
  dispose(): void {
    for (const t of this.state.values()) t.dispose();
  }
}

function assertSameState(actual: Map<string, Tensor>, expected: Map<string, Tensor>, what: string): void {
  assert.equal([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: keys`);
  for (const [k, t] of expected) {
    const a = actual.get(k)!;
    assert.is(a.dtype, t.dtype, `${what} ${k}: dtype`);
    assert.equal([...a.shape], [...t.shape], `${what} ${k}: shape`);
    assert.ok(bytesOf(a).equals(bytesOf(t)), `${what} ${k}: values differ`);
  }
}

test('save, then restore into fresh objects: identical tensors, step, RNG stream, optimizer state, extras', () => {
  ts.manualSeed(1234);
  const model = new Tiny();
  const opt = new FakeOptimizer(model, 0.5);
  opt.hyper.t = 17;
  ts.rand([5]).dispose(); // move the stream along
  const rng = ts.getRngState();
  const extra = { epoch: 3, note: 'ünïcode "quoted"', nested: { a: [1, null, true], b: -0.25 } };
  const file = tmpFile('resume.safetensors');
  saveCheckpoint(file, { model, optimizer: opt, step: 4321, extra });
  assert.equal(ts.getRngState(), rng, 'saving does not consume random numbers');
  const continuation = ts.randn([6]);
  const expectedNext = bytesOf(continuation);

  // On disk: one file, model.* and optim.* tensors, JSON metadata with the format tag.
  const header = inspectSafetensors(file);
  assert.is(header.metadata.format, CHECKPOINT_FORMAT);
  assert.equal(JSON.parse(header.metadata.step), 4321);
  assert.equal(JSON.parse(header.metadata.rng), rng);
  assert.equal(
    header.entries.map((e) => e.name).sort(),
    [...[...model.stateDict().keys()].map((k) => `model.${k}`), ...[...opt.state.keys()].map((k) => `optim.${k}`)].sort(),
  );

  // loadCheckpoint gives everything back.
  const ck = loadCheckpoint(file);
  assertSameState(ck.model, model.stateDict(), 'loadCheckpoint model');
  assertSameState(ck.optim, opt.state, 'loadCheckpoint optim');
  assert.is(ck.step, 4321);
  assert.equal(ck.rng, rng);
  assert.equal(ck.optimizerHyper, opt.hyper);
  assert.equal(ck.extra, extra);
  [...ck.model.values(), ...ck.optim.values()].forEach((t) => t.dispose());

  // Restore into fresh objects made from a different seed.
  ts.manualSeed(99);
  const model2 = new Tiny();
  const opt2 = new FakeOptimizer(model2, 7);
  assert.not.ok(bytesOf(model2.weight).equals(bytesOf(model.weight)), 'the fresh model starts different');
  const before = blocks();
  const step = restoreCheckpoint(file, model2, opt2);
  assert.is(blocks() - before, 0, 'restoring frees everything it loaded (the optimizer copied its state)');
  assert.is(step, 4321);
  assertSameState(model2.stateDict(), model.stateDict(), 'restored model');
  assertSameState(opt2.state, opt.state, 'restored optimizer');
  assert.equal(opt2.hyper, opt.hyper);
  assert.equal(ts.getRngState(), rng, 'RNG state restored');
  const next = ts.randn([6]);
  assert.ok(bytesOf(next).equals(expectedNext), 'random numbers after restore continue the saved stream');
  for (const t of [continuation, next]) t.dispose();
  for (const x of [model, model2, opt, opt2]) x.dispose();
});

test('checkpoints without an optimizer; optimizers that expose a `hyper` field', () => {
  const model = new Tiny();
  const file = tmpFile('no-optim.safetensors');
  saveCheckpoint(file, { model, optimizer: null, step: 0 });
  const ck = loadCheckpoint(file);
  assert.is(ck.optimizerHyper, null);
  assert.is(ck.optim.size, 0);
  assert.equal(ck.extra, {});
  ck.model.forEach((t) => t.dispose());
  const fresh = new Tiny();
  assert.is(restoreCheckpoint(file, fresh), 0);
  assertSameState(fresh.stateDict(), model.stateDict(), 'model-only restore');
  const opt = new FakeOptimizer(fresh, 1);
  const err = (() => {
    try {
      restoreCheckpoint(file, fresh, opt);
    } catch (e) {
      return e as Error;
    }
    return null;
  })();
  assert.ok(err instanceof CheckpointError && err.message.includes(file) && /saved without optimizer state/.test(err.message), String(err));

  // The save-side shape from the brief: stateDict() plus a plain `hyper` object.
  const plain = { stateDict: () => opt.state, hyper: { lr: 0.1 } };
  saveCheckpoint(file, { model, optimizer: plain, step: 5 });
  const ck2 = loadCheckpoint(file);
  assert.equal(ck2.optimizerHyper, { lr: 0.1 });
  assert.is(ck2.optim.size, opt.state.size);
  [...ck2.model.values(), ...ck2.optim.values()].forEach((t) => t.dispose());
  for (const x of [model, fresh, opt]) x.dispose();
});

test('restoring into a model that does not match names every mis-shaped, missing and unexpected key and changes nothing', () => {
  const model = new Tiny();
  const file = tmpFile('strict.safetensors');
  ts.manualSeed(5);
  saveCheckpoint(file, { model, step: 9 });
  ts.manualSeed(77);
  const cases: [TinyOptions, string[]][] = [
    [{ weightShape: [3, 2] }, ['mis-shaped', 'weight: expected [3, 2], got [2, 3]']],
    [{ biasName: 'scale' }, ['missing keys: scale', 'unexpected keys: bias']],
    [{ extraChild: true }, ['missing keys: head.w']],
    [{ weightShape: [4], biasName: 'offset', extraChild: true }, ['weight: expected [4], got [2, 3]', 'head.w', 'offset', 'unexpected keys: bias']],
  ];
  for (const [opts, patterns] of cases) {
    const other = new Tiny(opts);
    const snapshot = new Map([...other.stateDict()].map(([k, t]) => [k, bytesOf(t)]));
    const rngBefore = ts.getRngState();
    const before = blocks();
    let err: unknown = null;
    try {
      restoreCheckpoint(file, other);
    } catch (e) {
      err = e;
    }
    const what = JSON.stringify(opts);
    assert.ok(err instanceof StateDictError, `${what}: expected a StateDictError, got ${String(err)}`);
    const msg = (err as Error).message;
    assert.ok(msg.includes(file), `${what}: "${msg}" names the file`);
    for (const p of patterns) assert.ok(msg.includes(p), `${what}: "${msg}" should mention "${p}"`);
    for (const [k, t] of other.stateDict()) assert.ok(bytesOf(t).equals(snapshot.get(k)!), `${what}: ${k} unchanged`);
    assert.equal(ts.getRngState(), rngBefore, `${what}: RNG state unchanged`);
    assert.is(blocks(), before, `${what}: loaded tensors freed`);
    other.dispose();
  }
  model.dispose();
});

test('refuses files that are not tessera checkpoints or whose metadata is damaged, before reading tensors', () => {
  const x = ts.ones([2]);
  const good = { format: CHECKPOINT_FORMAT, step: '3', rng: '{"seed":1,"offset":2}', optimizer: 'null', extra: '{}' };
  const cases: [Record<string, string> | undefined, Record<string, Tensor>, string][] = [
    [undefined, { 'model.x': x }, 'not a tessera checkpoint: expected format "tessera-checkpoint/1" in the metadata, found no format tag'],
    [{ ...good, format: 'tessera-checkpoint/2' }, { 'model.x': x }, 'found format "tessera-checkpoint/2"'],
    [{ ...good, step: '-1' }, { 'model.x': x }, 'step must be a non-negative integer, got -1'],
    [{ ...good, step: '1.5' }, { 'model.x': x }, 'step must be a non-negative integer'],
    [{ ...good, step: 'abc' }, { 'model.x': x }, "metadata 'step' is not valid JSON"],
    [{ format: CHECKPOINT_FORMAT, step: '3', optimizer: 'null', extra: '{}' }, { 'model.x': x }, "no 'rng' entry"],
    [{ ...good, rng: '{"seed":1}' }, { 'model.x': x }, 'rng must be'],
    [{ ...good, optimizer: '[1]' }, { 'model.x': x }, 'optimizer state must be an object or null'],
    [{ ...good, extra: '7' }, { 'model.x': x }, 'extra must be an object'],
    [good, { 'model.x': x, stray: x }, "unexpected tensor 'stray'"],
    [good, { 'model.x': x, 'optim.m': x }, "tensor 'optim.m' is optimizer state, but the checkpoint says it was saved without an optimizer"],
  ];
  const file = tmpFile('not-a-checkpoint.safetensors');
  const model = new Tiny();
  for (const [metadata, tensors, pattern] of cases) {
    saveSafetensors(file, tensors, { metadata });
    const before = blocks();
    for (const fn of [() => loadCheckpoint(file), () => restoreCheckpoint(file, model)]) {
      let err: unknown = null;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof CheckpointError, `${pattern}: expected a CheckpointError, got ${String(err)}`);
      const msg = (err as Error).message;
      assert.ok(msg.includes(file) && msg.includes(pattern), `"${msg}" should name the file and say "${pattern}"`);
    }
    assert.is(blocks(), before, `${pattern}: no tensor created`);
  }
  x.dispose();
  model.dispose();
});

test('non-JSON-safe state and bad arguments are refused at save time, naming the offending value', () => {
  const model = new Tiny();
  const file = tmpFile('refused.safetensors');
  const opt = { stateDict: () => new Map<string, Tensor>(), hyperState: () => ({ lr: NaN }) };
  const cases: [() => void, RegExp][] = [
    [() => saveCheckpoint(file, { model, optimizer: opt, step: 1 }), /optimizer hyper-state\.lr is NaN/],
    [() => saveCheckpoint(file, { model, step: 1, extra: { sched: { warm: [1, Infinity] } } }), /extra\.sched\.warm\[1\] is Infinity/],
    [() => saveCheckpoint(file, { model, step: 1, extra: { f: () => 1 } }), /extra\.f is a function/],
    [() => saveCheckpoint(file, { model, step: 1, extra: { when: new Date() } }), /extra\.when is a Date/],
    [() => saveCheckpoint(file, { model, step: 1, extra: { u: undefined } }), /extra\.u is undefined/],
    [() => saveCheckpoint(file, { model, step: 1.5 }), /step must be a non-negative integer/],
    [() => saveCheckpoint(file, { model, step: -1 }), /step must be a non-negative integer/],
    [() => saveCheckpoint(file, { model: {} as Module, step: 1 }), /state\.model must be a Module/],
  ];
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  cases.push([() => saveCheckpoint(file, { model, step: 1, extra: cyclic }), /extra\.self is a circular reference/]);
  for (const [fn, re] of cases) assert.throws(fn, re);
  assert.not.ok(fs.existsSync(file), 'nothing was written');
  model.dispose();
});

test.after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
