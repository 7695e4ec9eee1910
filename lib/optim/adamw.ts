// AdamW (Loshchilov & Hutter, decoupled weight decay), exactly torch.optim.AdamW with
// amsgrad=False, maximize=False: per parameter one fused native kernel (adamw_step in
// native/cpu/optim.cpp) does the decay, both moment updates, the bias corrections and the step.
// State per parameter: exp_avg and exp_avg_sq (PyTorch's names), created zero-filled at its
// first update.

import { Tensor } from '../tensor';
import { runKernel } from '../backend';
import { BaseHyper, checkBetas, checkNonNegative, Optimizer, ParamGroup, ParamState } from './optimizer';

export interface AdamWHyper extends BaseHyper {
  betas: [number, number];
  eps: number;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW extends Optimizer<AdamWHyper> {
  constructor(params: Tensor[] | ParamGroup<AdamWHyper>[], opts: AdamWOptions = {}) {
    super('AdamW', ['exp_avg', 'exp_avg_sq'], params, {
      lr: opts.lr ?? 1e-3,
      betas: opts.betas ? [opts.betas[0], opts.betas[1]] : [0.9, 0.999],
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 1e-2,
    });
  }

  protected validateHyper(h: AdamWHyper, where: string): void {
    checkNonNegative(h.lr, 'AdamW', where, 'lr');
    checkBetas(h.betas, 'AdamW', where, false);
    checkNonNegative(h.eps, 'AdamW', where, 'eps');
    checkNonNegative(h.weightDecay, 'AdamW', where, 'weightDecay');
  }

  protected update(p: Tensor, grad: Tensor, st: ParamState, h: AdamWHyper, gradScale: number): void {
    runKernel(
      'adamw_step',
      [p, grad, st.tensors.get('exp_avg')!, st.tensors.get('exp_avg_sq')!],
      [h.lr, h.betas[0], h.betas[1], h.eps, h.weightDecay, st.step, gradScale],
    );
  }
}
