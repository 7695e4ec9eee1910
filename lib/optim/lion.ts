// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as
// lucidrains/lion-pytorch: decoupled weight decay, a sign update from an interpolation of the
// momentum and the gradient, then the momentum update with a second beta. One fused native
// kernel per parameter (lion_step in native/cpu/optim.cpp); state: exp_avg.
// Lion's update has unit magnitude per element, so its lr is typically 3-10x smaller than
// AdamW's and its weight decay correspondingly larger.

import { Tensor } from '../tensor';
import { runKernel } from '../backend';
import { BaseHyper, checkBetas, checkNonNegative, Optimizer, ParamGroup, ParamState } from './optimizer';

export interface LionHyper extends BaseHyper {
  betas: [number, number];
}

export interface LionOptions {
  lr?: number;
  betas?: [number, number];
  weightDecay?: number;
}

export class Lion extends Optimizer<LionHyper> {
  constructor(params: Tensor[] | ParamGroup<LionHyper>[], opts: LionOptions = {}) {
    super('Lion', ['exp_avg'], params, {
      lr: opts.lr ?? 1e-4,
      betas: opts.betas ? [opts.betas[0], opts.betas[1]] : [0.9, 0.99],
      weightDecay: opts.weightDecay ?? 0,
    });
  }

  protected validateHyper(h: LionHyper, where: string): void {
    checkNonNegative(h.lr, 'Lion', where, 'lr');
    checkBetas(h.betas, 'Lion', where, true);
    checkNonNegative(h.weightDecay, 'Lion', where, 'weightDecay');
  }

  protected update(p: Tensor, grad: Tensor, st: ParamState, h: LionHyper, gradScale: number): void {
    runKernel('lion_step', [p, grad, st.tensors.get('exp_avg')!], [h.lr, h.betas[0], h.betas[1], h.weightDecay, gradScale]);
  }
}
