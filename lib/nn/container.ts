// ModuleList: an indexed list of child modules registered as "0", "1", ... (torch.nn.ModuleList),
// which is what gives a stack of blocks the dotted names "blocks.0.attn.in_proj.weight" that
// torch and OpenCLIP checkpoints use. It has no forward: the owner decides how to call them.

import { Module } from './module';

export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.child(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new RangeError(`ModuleList: index ${i} is out of range for ${this.items.length} modules`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
