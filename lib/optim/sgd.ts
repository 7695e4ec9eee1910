// SGD with optional momentum, dampening, Nesterov momentum and (coupled, L2) weight decay:
// torch.optim.SGD (maximize=False), one fused native kernel per parameter (sgd_step in
// native/cpu/optim.cpp). The momentum buffer ("momentum_buffer", PyTorch's name) exists only
// when momentum != 0; as in PyTorch it is set to the gradient on its first update.

import { Tensor } from '../tensor';
import { runKernel } from '../backend';
import { ArgumentError } from '../errors';
import { keep } from '../scope';
import { BaseHyper, checkNonNegative, Optimizer, ParamGroup, ParamState } from './optimizer';

export interface SGDHyper extends BaseHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer<SGDHyper> {
  constructor(params: Tensor[] | ParamGroup<SGDHyper>[], opts: SGDOptions) {
    if (!opts || opts.lr === undefined) throw new ArgumentError('SGD: lr is required');
    super('SGD', ['momentum_buffer'], params, {
      lr: opts.lr,
      momentum: opts.momentum ?? 0,
      dampening: opts.dampening ?? 0,
      weightDecay: opts.weightDecay ?? 0,
      nesterov: opts.nesterov ?? false,
    });
  }

  protected validateHyper(h: SGDHyper, where: string): void {
    checkNonNegative(h.lr, 'SGD', where, 'lr');
    checkNonNegative(h.momentum, 'SGD', where, 'momentum');
    checkNonNegative(h.weightDecay, 'SGD', where, 'weightDecay');
    if (typeof h.dampening !== 'number' || !Number.isFinite(h.dampening))
      throw new ArgumentError(`SGD: ${where}: dampening must be a finite number, got ${String(h.dampening)}`);
    if (typeof h.nesterov !== 'boolean') throw new ArgumentError(`SGD: ${where}: nesterov must be a boolean, got ${String(h.nesterov)}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0))
      throw new ArgumentError(`SGD: ${where}: Nesterov momentum requires momentum > 0 and dampening = 0, got momentum ${h.momentum}, dampening ${h.dampening}`);
  }

  // The buffer is made here rather than by the base class: whether this is its first update
  // depends on whether it exists, not on the step count (momentum may be switched on later).
  protected override stateFor(): readonly string[] {
    return [];
  }

  protected update(p: Tensor, grad: Tensor, st: ParamState, h: SGDHyper, gradScale: number): void {
    const scalars = [h.lr, h.momentum, h.dampening, h.weightDecay, h.nesterov ? 1 : 0, 0, gradScale];
    if (h.momentum === 0) {
      runKernel('sgd_step', [p, grad], scalars);
      return;
    }
    let buf = st.tensors.get('momentum_buffer');
    let created = false;
    if (!buf) {
      buf = keep(Tensor.empty(p.shape, p.dtype, p.device));
      created = true;
      scalars[5] = 1;
    }
    try {
      runKernel('sgd_step', [p, grad, buf], scalars);
    } catch (err) {
      if (created) buf.dispose();
      throw err;
    }
    if (created) st.tensors.set('momentum_buffer', buf);
  }
}
