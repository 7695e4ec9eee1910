// Optimizer: the shared machinery of every optimizer (param groups, per-parameter state, the
// step loop, saving and restoring). A subclass supplies only its hyper-parameters, the names of
// its state tensors and one `update` that runs its fused native kernel (native/cpu/optim.cpp)
// on one parameter: an optimizer step is one kernel launch per parameter that has a gradient,
// with no temporaries, so a training loop's memory stays flat.
//
// Shaped after torch.optim.Optimizer so recipes carry over:
//   - params are a list of tensors or of groups `{ params, lr?, weightDecay?, ... }` whose
//     missing hyper-parameters come from the optimizer's defaults; a group's values may be
//     changed between steps (that is how schedules set the learning rate);
//   - a parameter is numbered by its position in the order given (across groups), which keys
//     its state: stateDict() maps "<index>.<name>" (e.g. "3.exp_avg") to the live state tensors;
//   - parameters without a gradient are skipped, and their step count does not advance;
//   - zeroGrad() drops the gradients (set_to_none=True, PyTorch's default).
// Per-parameter step counts and group hyper-parameters are plain JSON (hyperState()), separate
// from the tensors, so a checkpoint writer stores tensors in one file and JSON in another;
// resuming needs both (loadStateDict + loadHyperState) and then continues bit-identically.
// State tensors are keep()-ed: a scope() around a training step never frees them.

import { runKernel } from '../backend';
import { isFloat } from '../dtype';
import { ArgumentError, DTypeError, ShapeError, TesseraError } from '../errors';
import { keep } from '../scope';
import { fmtShape, sameShape } from '../shape';
import { Tensor } from '../tensor';

/** Hyper-parameters every optimizer has, per group. */
export interface BaseHyper {
  lr: number;
  weightDecay: number;
}

/** A group of parameters sharing hyper-parameters; omitted ones take the optimizer's defaults. */
export type ParamGroup<H extends BaseHyper = BaseHyper> = { params: Tensor[]; name?: string } & Partial<H>;

/** A group as the optimizer holds it: every hyper-parameter resolved (and mutable). */
export type ResolvedGroup<H extends BaseHyper = BaseHyper> = H & { readonly params: readonly Tensor[]; name?: string };

export interface StepOptions {
  /**
   * Multiplies every gradient before the update reads it (default 1), inside the same kernel:
   * pass the clip coefficient here (see clipCoefficient in ./clip) to clip without a separate
   * pass over the gradients.
   */
  gradScale?: number;
}

/** Per-parameter state: how many updates it has had and its state tensors by name. */
export interface ParamState {
  step: number;
  tensors: Map<string, Tensor>;
}

/**
 * The JSON half of an optimizer's state (the tensors are in stateDict()). A type alias, not an
 * interface, so that it is assignable to Record<string, unknown>: that is what lets an Optimizer
 * be passed to saveCheckpoint / restoreCheckpoint (their hyperState() returns that).
 */
export type OptimizerHyperState = {
  optimizer: string;
  groups: (Record<string, unknown> & { paramCount: number })[];
  /** Per parameter (in the order given): updates applied so far. */
  steps: number[];
};

export class OptimizerStateError extends TesseraError {}

function isGroupList(x: unknown[]): x is ParamGroup[] {
  return x.length > 0 && !(x[0] instanceof Tensor);
}

export abstract class Optimizer<H extends BaseHyper = BaseHyper> {
  readonly paramGroups: ResolvedGroup<H>[];
  readonly defaults: Readonly<H>;
  /** Every parameter, numbered in the order given. */
  protected readonly params: Tensor[] = [];
  protected readonly state: ParamState[] = [];
  private disposed = false;

  /**
   * @param name the optimizer's name, used in error messages and saved state ("AdamW")
   * @param stateNames every state tensor this optimizer may keep per parameter
   */
  protected constructor(
    readonly name: string,
    protected readonly stateNames: readonly string[],
    params: Tensor[] | ParamGroup<H>[],
    defaults: H,
  ) {
    if (!Array.isArray(params)) throw new ArgumentError(`${name}: params must be an array of tensors or of param groups`);
    this.validateHyper(defaults, 'defaults');
    this.defaults = Object.freeze({ ...defaults });
    const groups: ParamGroup<H>[] = isGroupList(params) ? params : [{ params: params as Tensor[] } as ParamGroup<H>];
    const allowed = new Set(['params', 'name', ...Object.keys(defaults)]);
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      if (g === null || typeof g !== 'object' || !Array.isArray(g.params))
        throw new ArgumentError(`${name}: param group ${gi} must be an object with a params array`);
      for (const k of Object.keys(g))
        if (!allowed.has(k))
          throw new ArgumentError(`${name}: param group ${gi} has unknown option '${k}' (expected one of ${[...allowed].join(', ')})`);
      g.params.forEach((p, pi) => {
        if (!(p instanceof Tensor)) throw new ArgumentError(`${name}: param group ${gi} entry ${pi} is not a Tensor`);
        p.assertAlive(name, `parameter ${this.params.length}`);
        if (!isFloat(p.dtype)) throw new DTypeError(`${name}: parameter ${this.params.length} (${p.describe()}) must be float32 or float64`);
        if (seen.has(p)) throw new ArgumentError(`${name}: parameter ${p.describe()} appears more than once`);
        seen.add(p);
        this.params.push(p);
        this.state.push({ step: 0, tensors: new Map() });
      });
      const resolved = {} as H;
      for (const k of Object.keys(defaults) as (keyof H)[])
        resolved[k] = cloneJson(g[k] !== undefined ? g[k] : defaults[k]) as H[keyof H];
      this.validateHyper(resolved, `param group ${gi}`);
      const out = { ...resolved, params: Object.freeze([...g.params]) } as ResolvedGroup<H>;
      if (g.name !== undefined) out.name = g.name;
      return out;
    });
    // As torch.optim: almost always a mistake (a model not built yet, a filter that matched
    // nothing). A single empty group among others is fine (decayGroups of a bias-free model).
    if (this.params.length === 0) throw new ArgumentError(`${name}: got an empty parameter list`);
  }

  /** Throw an ArgumentError naming `where` if a hyper-parameter is out of its domain. */
  protected abstract validateHyper(h: H, where: string): void;

  /**
   * Run this optimizer's fused kernel on one parameter. The tensors stateFor(group) names
   * already exist and state.step already counts this update (it is 1 on the first).
   */
  protected abstract update(param: Tensor, grad: Tensor, state: ParamState, group: H, gradScale: number): void;

  /** The state tensors a parameter needs under `group` (created zero-filled before its first update). */
  protected stateFor(_group: H): readonly string[] {
    return this.stateNames;
  }

  /**
   * Apply one update to every parameter that has a gradient. Everything checkable is checked
   * for every parameter first, so a bad gradient or hyper-parameter updates nothing.
   */
  step(opts: StepOptions = {}): void {
    this.assertAlive('step');
    const op = `${this.name}.step`;
    const gradScale = opts.gradScale ?? 1;
    if (typeof gradScale !== 'number' || !Number.isFinite(gradScale))
      throw new ArgumentError(`${op}: gradScale must be a finite number, got ${String(gradScale)}`);
    const work: [Tensor, Tensor, number, H][] = [];
    let index = 0;
    this.paramGroups.forEach((group, gi) => {
      this.validateHyper(group, `param group ${gi}`);
      for (const p of group.params) {
        const i = index++;
        const grad = p.grad;
        if (!grad) continue;
        p.assertAlive(op, `parameter ${i}`);
        grad.assertAlive(op, `gradient of parameter ${i}`);
        if (!sameShape(grad.shape, p.shape)) throw new ShapeError(`${op}: parameter ${i} is ${p.describe()} but its gradient is ${grad.describe()}`);
        if (grad.dtype !== p.dtype || grad.device !== p.device)
          throw new DTypeError(`${op}: parameter ${i} is ${p.describe()} but its gradient is ${grad.describe()}`);
        if (!p.isContiguous()) throw new ArgumentError(`${op}: parameter ${i} (${p.describe()}) must be contiguous`);
        work.push([p, grad, i, group]);
      }
    });
    for (const [p, grad, i, group] of work) {
      const st = this.state[i];
      for (const key of this.stateFor(group)) if (!st.tensors.has(key)) st.tensors.set(key, zerosLike(p));
      const g = grad.isContiguous() ? grad : contiguousCopy(grad);
      st.step++;
      try {
        this.update(p, g, st, group, gradScale);
      } catch (err) {
        st.step--;
        throw err;
      } finally {
        if (g !== grad) g.dispose();
      }
    }
  }

  /** Drop every parameter's gradient (frees them). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The learning rate of the first group. */
  get lr(): number {
    return this.paramGroups.length ? this.paramGroups[0].lr : this.defaults.lr;
  }

  /** Set the learning rate of every group (OpenCLIP's assign_learning_rate). */
  set lr(value: number) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      throw new ArgumentError(`${this.name}: lr must be a finite number >= 0, got ${String(value)}`);
    for (const g of this.paramGroups) g.lr = value;
  }

  /** Every parameter in index order (the numbering of stateDict keys). */
  parameters(): readonly Tensor[] {
    return this.params;
  }

  /** Updates applied so far to parameter `index`. */
  stepCount(index: number): number {
    return this.state[index]?.step ?? 0;
  }

  /** The state tensors themselves (not copies), keyed "<paramIndex>.<name>". */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.state.forEach((st, i) => {
      for (const [k, t] of st.tensors) out.set(`${i}.${k}`, t);
    });
    return out;
  }

  /**
   * Replace the state tensors with copies of `state`'s (as stateDict() returns them). Everything
   * is checked before anything changes: unknown keys, parameter indices out of range, shapes
   * that differ from the parameter's. Values are copied (converting dtype to the parameter's),
   * so the caller may dispose `state` afterwards. Step counts come from loadHyperState().
   */
  loadStateDict(state: Map<string, Tensor> | Record<string, Tensor>): void {
    this.assertAlive('loadStateDict');
    const incoming = state instanceof Map ? state : new Map(Object.entries(state));
    const problems: string[] = [];
    const parsed: [number, string, Tensor][] = [];
    for (const [key, t] of incoming) {
      const m = /^(\d+)\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(key);
      if (!m) {
        problems.push(`'${key}' is not of the form <paramIndex>.<name>`);
        continue;
      }
      const i = Number(m[1]);
      const name = m[2];
      if (i >= this.params.length) problems.push(`'${key}': there are only ${this.params.length} parameters`);
      else if (!this.stateNames.includes(name)) problems.push(`'${key}': ${this.name} keeps no state named '${name}' (expected ${this.stateNames.join(', ')})`);
      else if (!(t instanceof Tensor)) problems.push(`'${key}' is not a Tensor`);
      else if (t.isDisposed) problems.push(`'${key}' has been disposed`);
      else if (!sameShape(t.shape, this.params[i].shape))
        problems.push(`'${key}': expected ${fmtShape(this.params[i].shape)} (parameter ${this.params[i].describe()}), got ${fmtShape(t.shape)}`);
      else if (t.device !== this.params[i].device) problems.push(`'${key}' is on ${t.device}, the parameter on ${this.params[i].device}`);
      else parsed.push([i, name, t]);
    }
    if (problems.length) throw new OptimizerStateError(`${this.name}.loadStateDict: ${problems.join('; ')}`);
    const fresh: Map<string, Tensor>[] = this.params.map(() => new Map());
    for (const [i, name, t] of parsed) {
      const dst = zerosLike(this.params[i]);
      runKernel('copy', [t, dst]);
      fresh[i].set(name, dst);
    }
    this.state.forEach((st, i) => {
      for (const t of st.tensors.values()) t.dispose();
      // keep the stateNames order so stateDict() lists keys the same way after a load
      st.tensors = new Map(this.stateNames.filter((n) => fresh[i].has(n)).map((n) => [n, fresh[i].get(n)!]));
    });
  }

  /** Step counts and group hyper-parameters as plain JSON (JSON.stringify-able, exact). */
  hyperState(): OptimizerHyperState {
    return {
      optimizer: this.name,
      groups: this.paramGroups.map((g) => {
        const out: Record<string, unknown> & { paramCount: number } = { paramCount: g.params.length };
        for (const k of Object.keys(this.defaults)) out[k] = cloneJson((g as unknown as Record<string, unknown>)[k]);
        if (g.name !== undefined) out.name = g.name;
        return out;
      }),
      steps: this.state.map((s) => s.step),
    };
  }

  /** Restore what hyperState() returned, after checking it describes this optimizer's groups. */
  loadHyperState(h: OptimizerHyperState): void {
    this.assertAlive('loadHyperState');
    const where = `${this.name}.loadHyperState`;
    if (!h || typeof h !== 'object' || !Array.isArray(h.groups) || !Array.isArray(h.steps))
      throw new OptimizerStateError(`${where}: expected { optimizer, groups, steps }`);
    if (h.optimizer !== this.name) throw new OptimizerStateError(`${where}: state is for ${String(h.optimizer)}, not ${this.name}`);
    if (h.groups.length !== this.paramGroups.length)
      throw new OptimizerStateError(`${where}: state has ${h.groups.length} param groups, this optimizer ${this.paramGroups.length}`);
    if (h.steps.length !== this.params.length)
      throw new OptimizerStateError(`${where}: state has steps for ${h.steps.length} parameters, this optimizer has ${this.params.length}`);
    h.steps.forEach((s, i) => {
      if (!Number.isInteger(s) || s < 0) throw new OptimizerStateError(`${where}: step count of parameter ${i} must be an integer >= 0, got ${String(s)}`);
    });
    const resolved = h.groups.map((g, gi) => {
      const mine = this.paramGroups[gi];
      if (g.paramCount !== mine.params.length)
        throw new OptimizerStateError(`${where}: param group ${gi} has ${String(g.paramCount)} parameters in the state, ${mine.params.length} here`);
      const r = {} as H;
      for (const k of Object.keys(this.defaults) as (keyof H & string)[]) {
        if (!(k in g)) throw new OptimizerStateError(`${where}: param group ${gi} lacks '${k}'`);
        r[k] = cloneJson(g[k]) as H[keyof H & string];
      }
      this.validateHyper(r, `param group ${gi}`);
      return r;
    });
    resolved.forEach((r, gi) => Object.assign(this.paramGroups[gi], r));
    h.steps.forEach((s, i) => (this.state[i].step = s));
  }

  /** Free every state tensor. The optimizer is unusable afterwards (parameters are untouched). */
  dispose(): void {
    for (const st of this.state) {
      for (const t of st.tensors.values()) t.dispose();
      st.tensors.clear();
    }
    this.disposed = true;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private assertAlive(what: string): void {
    if (this.disposed) throw new OptimizerStateError(`${this.name}.${what}: the optimizer has been disposed`);
  }
}

/** A zero-filled contiguous tensor like `p`, kept out of every scope. */
function zerosLike(p: Tensor): Tensor {
  const t = keep(Tensor.empty(p.shape, p.dtype, p.device));
  runKernel('fill', [t], [0]);
  return t;
}

function contiguousCopy(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype, t.device);
  runKernel('copy', [t, out]);
  return out;
}

function cloneJson(v: unknown): unknown {
  return Array.isArray(v) ? v.map(cloneJson) : v;
}

// --- hyper-parameter checks shared by the optimizers ------------------------------------------

export function checkNonNegative(v: unknown, opt: string, where: string, name: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new ArgumentError(`${opt}: ${where}: ${name} must be a finite number >= 0, got ${String(v)}`);
}

export function checkBetas(v: unknown, opt: string, where: string, closed: boolean): void {
  const ok =
    Array.isArray(v) &&
    v.length === 2 &&
    v.every((b) => typeof b === 'number' && Number.isFinite(b) && b >= 0 && (closed ? b <= 1 : b < 1));
  if (!ok) throw new ArgumentError(`${opt}: ${where}: betas must be two numbers in [0, 1${closed ? ']' : ')'}, got ${JSON.stringify(v)}`);
}
