// Dropout as a module (torch.nn.Dropout): it has no state, but as a module it follows the
// model's train()/eval() switch, so the same forward code is stochastic in training and the
// identity in evaluation (it then returns x itself, no copy).

import { ArgumentError } from '../errors';
import { dropout } from '../ops/dropout';
import { Tensor } from '../tensor';
import { Module } from './module';

export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ArgumentError(`Dropout: p must be a probability in [0, 1], got ${String(p)}`);
    this.p = p;
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
