// Module: the base of every model part. A module owns parameters (trainable tensors), buffers
// (state that is saved but not trained, e.g. fixed position tables) and child modules, all
// registered by name so that namedParameters() and stateDict() produce PyTorch-style dotted
// names ("blocks.0.attn.in_proj.weight") that match the equivalent torch.nn.Module and let
// checkpoints move between the two.

import { DTypeError, TesseraError } from '../errors';
import { keep } from '../scope';
import { fmtShape, sameShape } from '../shape';
import { Tensor } from '../tensor';
import { runKernel } from '../backend';

export class StateDictError extends TesseraError {}

export interface LoadOptions {
  /** Require the keys to match exactly (default true); otherwise load what matches. */
  strict?: boolean;
}

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Register a trainable tensor under `name` (kept out of any scope; marked requiresGrad). */
  protected param(name: string, t: Tensor): Tensor {
    this.checkName(name);
    keep(t);
    t.requiresGrad = true;
    this.params.set(name, t);
    return t;
  }

  /** Register an absent optional parameter (e.g. bias = false) so it shows in no listing. */
  protected noParam(name: string): null {
    this.checkName(name);
    this.params.set(name, null);
    return null;
  }

  /** Register a saved, non-trainable tensor. */
  protected buffer(name: string, t: Tensor): Tensor {
    this.checkName(name);
    keep(t);
    this.buffers.set(name, t);
    return t;
  }

  /** Register a child module. */
  protected child<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this.children.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (!name || name.includes('.')) throw new TesseraError(`Module: invalid member name '${name}'`);
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name))
      throw new TesseraError(`Module: '${name}' is already registered on ${this.constructor.name}`);
  }

  /** Child modules in registration order, with their names. */
  namedChildren(): [string, Module][] {
    return [...this.children.entries()];
  }

  /** Every parameter of this module and its descendants, with dotted names, in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.params) if (p) out.push([prefix + n, p]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this.buffers) out.push([prefix + n, b]);
    for (const [n, c] of this.children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.numel, 0);
  }

  /** Switch this module and its descendants to training (true) or evaluation (false) mode. */
  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drop every parameter's gradient (frees them). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Parameters and buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copy values from `state` into this module's parameters and buffers (converting dtype). With
   * strict (the default), missing, unexpected and mis-shaped keys are all reported in one error
   * and nothing is changed.
   */
  loadStateDict(state: Map<string, Tensor> | Record<string, Tensor>, opts: LoadOptions = {}): { missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const incoming = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpected = [...incoming.keys()].filter((k) => !own.has(k));
    const misShaped: string[] = [];
    for (const [k, t] of own) {
      const src = incoming.get(k);
      if (src && !sameShape(src.shape, t.shape)) misShaped.push(`${k}: expected ${fmtShape(t.shape)}, got ${fmtShape(src.shape)}`);
    }
    const problems: string[] = [];
    if (misShaped.length) problems.push(`mis-shaped keys: ${misShaped.join('; ')}`);
    if (strict && missing.length) problems.push(`missing keys: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    if (problems.length) throw new StateDictError(`loadStateDict (${this.constructor.name}): ${problems.join('. ')}`);
    for (const [k, t] of own) {
      const src = incoming.get(k);
      if (!src) continue;
      src.assertAlive('loadStateDict', k);
      if (src.device !== t.device) throw new DTypeError(`loadStateDict: ${k} is on ${src.device}, the module on ${t.device}`);
      runKernel('copy', [src, t]);
    }
    return { missing, unexpected };
  }

  /** Free every parameter and buffer (and their gradients). The module is unusable afterwards. */
  dispose(): void {
    for (const p of this.params.values()) p?.dispose();
    for (const b of this.buffers.values()) b.dispose();
    for (const c of this.children.values()) c.dispose();
  }
}
