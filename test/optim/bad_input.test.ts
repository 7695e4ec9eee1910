// Bad arguments raise clear errors, from the kernels themselves (called directly: every check
// runs before any parallel work, and the message names the op and the offending argument) and
// from the TypeScript optimizers (hyper-parameters, groups, gradients, schedules, clipping).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { runKernel } from '../../lib/backend';
import { AdamW, clipGradNorm, cosineWithWarmup, gradNorm, Lion, SGD } from '../../lib/optim';
import { assertThrows, flat } from '../helpers/check';

const ADAM = [1e-3, 0.9, 0.999, 1e-8, 0.01, 1, 1];

test('adamw_step validates tensors and hyper-parameters before touching memory', () => {
  ts.scope(() => {
    const p = ts.ones([2, 3]);
    const g = ts.ones([2, 3]);
    const m = ts.zeros([2, 3]);
    const v = ts.zeros([2, 3]);
    const k = (ten: ts.Tensor[], sc: number[] = ADAM) => () => runKernel('adamw_step', ten, sc);
    assertThrows(k([p, g, ts.zeros([3, 2]), v]), ['adamw_step', 'param and exp_avg must have the same shape', 'float32[3, 2]'], 'shape');
    assertThrows(k([p, ts.ones([2, 3], { dtype: 'float64' }), m, v]), ['adamw_step', 'param and grad must have the same dtype'], 'dtype');
    assertThrows(k([ts.ones([2, 3], { dtype: 'int32' }), g, m, v]), ['adamw_step', 'param must be float32 or float64'], 'int');
    assertThrows(k([p, g, m]), ['adamw_step', 'expected 4 tensors'], 'count');
    assertThrows(k([p, g, m, v], ADAM.slice(0, 6)), ['adamw_step', 'expected 7 scalars', 'grad_scale'], 'scalars');
    assertThrows(k([p, ts.ones([3, 2]).transpose(), m, v]), ['adamw_step', 'grad must be contiguous'], 'contiguous');
    assertThrows(k([p, g, p, v]), ['adamw_step', 'param and exp_avg must not share memory'], 'aliasing');
    assertThrows(k([p, g, m, v], [NaN, 0.9, 0.999, 1e-8, 0, 1, 1]), ['adamw_step', 'lr must be finite'], 'NaN lr');
    assertThrows(k([p, g, m, v], [Infinity, 0.9, 0.999, 1e-8, 0, 1, 1]), ['adamw_step', 'lr must be finite'], 'inf lr');
    assertThrows(k([p, g, m, v], [1e-3, 0.9, 0.999, 1e-8, 0, 1, NaN]), ['adamw_step', 'grad_scale must be finite'], 'NaN scale');
    assertThrows(k([p, g, m, v], [-1, 0.9, 0.999, 1e-8, 0, 1, 1]), ['adamw_step', 'lr must be >= 0'], 'negative lr');
    assertThrows(k([p, g, m, v], [1e-3, 1, 0.999, 1e-8, 0, 1, 1]), ['adamw_step', 'beta1 must be in [0, 1)'], 'beta1');
    assertThrows(k([p, g, m, v], [1e-3, 0.9, 0.999, 1e-8, 0, 0, 1]), ['adamw_step', 'step must be >= 1'], 'step 0');
    assertThrows(k([p, g, m, v], [1e-3, 0.9, 0.999, 1e-8, 0, -3, 1]), ['adamw_step', 'step must be >= 1'], 'negative step');
    assertThrows(k([p, g, m, v], [1e-3, 0.9, 0.999, 1e-8, 0, 1.5, 1]), ['adamw_step', 'must be an integer'], 'fractional step');
    assert.equal(flat(p), [1, 1, 1, 1, 1, 1], 'param untouched by every failed call');
    assert.equal(flat(m), [0, 0, 0, 0, 0, 0]);
  });
});

test('sgd_step, lion_step and sum_squares validate their arguments', () => {
  ts.scope(() => {
    const p = ts.ones([4]);
    const g = ts.ones([4]);
    const b = ts.zeros([4]);
    const sgd = [0.1, 0.9, 0, 0, 0, 1, 1];
    assertThrows(() => runKernel('sgd_step', [p, g, ts.zeros([5])], sgd), ['sgd_step', 'param and momentum_buf must have the same shape'], 'shape');
    assertThrows(() => runKernel('sgd_step', [p, g, b], [0.1, 0.9, 0.5, 0, 1, 1, 1]), ['sgd_step', 'nesterov momentum requires momentum > 0 and dampening = 0'], 'nesterov');
    assertThrows(() => runKernel('sgd_step', [p, g, b], [0.1, 0.9, 0, 0, 2, 1, 1]), ['sgd_step', 'nesterov must be 0 or 1'], 'flag');
    assertThrows(() => runKernel('sgd_step', [p, g, b], [0.1, NaN, 0, 0, 0, 1, 1]), ['sgd_step', 'momentum must be finite'], 'NaN momentum');
    assertThrows(() => runKernel('lion_step', [p, g, ts.zeros([2, 2])], [1e-4, 0.9, 0.99, 0, 1]), ['lion_step', 'param and exp_avg must have the same shape'], 'lion shape');
    assertThrows(() => runKernel('lion_step', [p, g, b], [1e-4, 0.9, 1.5, 0, 1]), ['lion_step', 'beta2 must be in [0, 1]'], 'lion beta');
    assertThrows(() => runKernel('lion_step', [p, g, b], [1e-4, 0.9, 0.99, -Infinity, 1]), ['lion_step', 'weight_decay must be finite'], 'lion wd');
    assertThrows(() => runKernel('sum_squares', [p, ts.zeros([2], { dtype: 'float64' })]), ['sum_squares', 'out must have one element'], 'out shape');
    assertThrows(() => runKernel('sum_squares', [p, ts.zeros([], { dtype: 'int32' })]), ['sum_squares', 'out must be float64 or float32'], 'out dtype');
    assertThrows(() => runKernel('sum_squares', [ts.ones([3, 2]).transpose(), ts.zeros([])]), ['sum_squares', 'x must be contiguous'], 'x contiguous');
    assert.equal(flat(p), [1, 1, 1, 1]);
  });
});

test('optimizers check hyper-parameters, groups and parameters when built', () => {
  ts.scope(() => {
    const a = ts.zeros([2, 2]);
    const b = ts.zeros([2]);
    assertThrows(() => new AdamW([a], { lr: NaN }), ['AdamW', 'defaults', 'lr must be a finite number >= 0, got NaN'], 'NaN lr');
    assertThrows(() => new AdamW([a], { lr: Infinity }), ['AdamW', 'lr must be a finite number'], 'inf lr');
    assertThrows(() => new AdamW([a], { betas: [1, 0.9] }), ['AdamW', 'betas must be two numbers in [0, 1)'], 'betas');
    assertThrows(() => new AdamW([a], { eps: -1 }), ['AdamW', 'eps must be a finite number >= 0'], 'eps');
    assertThrows(() => new AdamW([{ params: [a], lr: -2 }]), ['AdamW', 'param group 0', 'lr'], 'group lr');
    assertThrows(() => new AdamW([{ params: [a], weight_decay: 0 } as never]), ['AdamW', "unknown option 'weight_decay'", 'weightDecay'], 'typo');
    assertThrows(() => new AdamW([a, b, a]), ['AdamW', 'appears more than once'], 'duplicate');
    assertThrows(() => new AdamW([{ params: [a] }, { params: [a] }]), ['AdamW', 'appears more than once'], 'duplicate across groups');
    assertThrows(() => new AdamW([ts.zeros([2], { dtype: 'int32' })]), ['AdamW', 'must be float32 or float64'], 'int param');
    assertThrows(() => new AdamW([]), ['AdamW: got an empty parameter list'], 'empty');
    assertThrows(() => new AdamW([{ params: [] }]), ['AdamW: got an empty parameter list'], 'empty group');
    assertThrows(() => new AdamW([{ params: [a] }, a] as never), ['AdamW: param group 1 must be an object with a params array'], 'mixed');
    assertThrows(() => new SGD([a], {} as never), ['SGD: lr is required'], 'sgd lr');
    assertThrows(() => new SGD([a], { lr: 0.1, nesterov: true }), ['SGD', 'Nesterov momentum requires momentum > 0'], 'nesterov');
    assertThrows(() => new Lion([a], { betas: [0.9, 1.1] }), ['Lion', 'betas must be two numbers in [0, 1]'], 'lion betas');
  });
});

test('step, lr and dispose report misuse clearly', () => {
  ts.scope(() => {
    const a = ts.keep(ts.zeros([2, 2]));
    const opt = new AdamW([a]);
    a.grad = ts.zeros([4]);
    assertThrows(() => opt.step(), ['AdamW.step', 'parameter 0 is float32[2, 2] but its gradient is float32[4]'], 'grad shape');
    // a bad gradient anywhere updates nothing
    const b = ts.keep(ts.ones([3]));
    const two = new AdamW([b, a]);
    b.grad = ts.ones([3]);
    assertThrows(() => two.step(), ['AdamW.step', 'parameter 1'], 'second bad');
    assert.equal(flat(b), [1, 1, 1], 'parameter 0 untouched');
    assert.is(two.stepCount(0), 0);
    two.dispose();
    b.dispose();
    a.grad = ts.zeros([2, 2], { dtype: 'float64' });
    assertThrows(() => opt.step(), ['AdamW.step', 'gradient is float64[2, 2]'], 'grad dtype');
    assert.is(opt.stepCount(0), 0, 'a failed update does not count');
    a.grad = ts.zeros([2, 2]);
    assertThrows(() => opt.step({ gradScale: NaN }), ['AdamW.step', 'gradScale must be a finite number'], 'gradScale');
    assertThrows(() => (opt.lr = NaN), ['AdamW', 'lr must be a finite number >= 0'], 'set lr');
    opt.paramGroups[0].lr = Infinity;
    assertThrows(() => opt.step(), ['AdamW', 'param group 0', 'lr must be a finite number >= 0, got Infinity'], 'group lr');
    opt.paramGroups[0].lr = 1e-3;
    opt.step();
    assert.is(opt.stepCount(0), 1);
    opt.dispose();
    assertThrows(() => opt.step(), ['AdamW.step', 'has been disposed'], 'disposed');
    a.dispose();
  });
});

test('schedules and clipping reject bad arguments', () => {
  assertThrows(() => cosineWithWarmup({ baseLr: NaN, warmupSteps: 1, totalSteps: 10 }), ['cosineWithWarmup', 'baseLr'], 'base');
  assertThrows(() => cosineWithWarmup({ baseLr: 1, warmupSteps: 10, totalSteps: 10 }), ['cosineWithWarmup', 'totalSteps must be an integer > warmupSteps'], 'total');
  assertThrows(() => cosineWithWarmup({ baseLr: 1, warmupSteps: -1, totalSteps: 10 }), ['cosineWithWarmup', 'warmupSteps'], 'warmup');
  assertThrows(() => cosineWithWarmup({ baseLr: 1, warmupSteps: 1, totalSteps: 10, minLr: 2 }), ['cosineWithWarmup', 'minLr'], 'minLr');
  assertThrows(() => cosineWithWarmup({ baseLr: 1, warmupSteps: 1, totalSteps: 10 })(-1), ['cosineWithWarmup', 'step must be an integer >= 0'], 'step');
  ts.scope(() => {
    const p = ts.zeros([2]);
    p.grad = ts.ones([2]);
    assertThrows(() => clipGradNorm([p], -1), ['clipGradNorm', 'maxNorm must be a number >= 0'], 'maxNorm');
    assertThrows(() => gradNorm([p], 0), ['gradNorm', 'normType must be a positive number or Infinity'], 'normType');
    p.grad = ts.tensor([Infinity, 1]);
    assertThrows(() => clipGradNorm([p], 1, 2, { errorIfNonfinite: true }), ['clipGradNorm', 'is Infinity'], 'nonfinite');
  });
});

test.run();
