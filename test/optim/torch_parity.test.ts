// Parity with PyTorch: 10 float64 steps of torch.optim.AdamW, torch.optim.SGD (plain,
// momentum + dampening, Nesterov, weight decay), Lion (lucidrains/lion-pytorch's update written
// out in torch), param groups with their own hyper-parameters and clip_grad_norm_ before each
// step, replayed through tessera's optimizers with the same parameters and gradients
// (test/reference/optim_reference.json, made by test/reference/make_optim_reference.py).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../../lib';
import { AdamW, clipGradNorm, Lion, Optimizer, SGD } from '../../lib/optim';
import { relError } from '../helpers/check';

interface Case {
  name: string;
  optimizer: 'AdamW' | 'SGD' | 'Lion';
  options: Record<string, number | boolean | number[]>;
  groups: { params: number[]; options: Record<string, number> }[] | null;
  clip: number | null;
  shapes: number[][];
  init: number[][];
  grads: number[][][];
  after: number[][][];
  norms: number[];
}

const file = path.resolve(__dirname, '..', '..', '..', 'test', 'reference', 'optim_reference.json');
const reference = JSON.parse(fs.readFileSync(file, 'utf8')) as { torch: string; steps: number; cases: Case[] };

/** PyTorch option names to tessera's. */
function hyper(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k === 'weight_decay' ? 'weightDecay' : k] = v;
  return out;
}

function build(c: Case, params: ts.Tensor[]): Optimizer {
  // Groups and options come from JSON; the optimizers validate them, so `never` casts suffice.
  const spec = (c.groups ? c.groups.map((g) => ({ params: g.params.map((i) => params[i]), ...hyper(g.options) })) : params) as never;
  const o = hyper(c.options) as never;
  if (c.optimizer === 'AdamW') return new AdamW(spec, o);
  if (c.optimizer === 'SGD') return new SGD(spec, o);
  return new Lion(spec, o);
}

test('the reference file covers every optimizer', () => {
  const kinds = new Set(reference.cases.map((c) => c.optimizer));
  assert.equal([...kinds].sort(), ['AdamW', 'Lion', 'SGD']);
  assert.ok(reference.cases.length >= 10);
});

for (const c of reference.cases) {
  test(`${c.name}: ${reference.steps} float64 steps match torch ${reference.torch} (rel < 1e-6)`, () => {
    const params = c.init.map((d, i) => ts.keep(ts.tensor(Float64Array.from(d), { dtype: 'float64', shape: c.shapes[i] })));
    const opt = build(c, params);
    let worst = 0;
    for (let step = 0; step < reference.steps; step++) {
      ts.scope(() => {
        params.forEach((p, i) => (p.grad = ts.tensor(Float64Array.from(c.grads[step][i]), { dtype: 'float64', shape: c.shapes[i] })));
        if (c.clip !== null) {
          const norm = clipGradNorm(params, c.clip);
          assert.ok(Math.abs(norm - c.norms[step]) <= 1e-12 * c.norms[step], `step ${step}: norm ${norm} vs torch ${c.norms[step]}`);
        }
        opt.step();
        opt.zeroGrad();
      });
      params.forEach((p, i) => {
        const err = relError(p.toTypedArray(), c.after[step][i]);
        worst = Math.max(worst, err);
        assert.ok(err < 1e-6, `${c.name} step ${step + 1} parameter ${i}: relative error ${err.toExponential(2)}`);
      });
    }
    // float64 against float64: far tighter than the 1e-6 asked for
    assert.ok(worst < 1e-12, `${c.name}: worst relative error ${worst.toExponential(2)}`);
    opt.dispose();
    params.forEach((p) => p.dispose());
  });
}

test.run();
