// The autograd graph. An op that produces `out` from inputs calls record(); when grad mode is
// on and some input requires a gradient, `out` gets a GradFn holding the inputs and the op's
// backward rule. backward() walks the graph from a root in reverse topological order, calls each
// rule once with the gradient summed over all of the node's uses, and accumulates into the
// `.grad` of leaf tensors that require it. Rules run with grad mode off, inside scopes, so the
// temporaries they create are freed as soon as the gradient they produce has been passed on.

import { runKernel } from './backend';
import { ArgumentError, ShapeError } from './errors';
import { keep, scope } from './scope';
import { fmtShape, sameShape } from './shape';
import { GradFn, Tensor } from './tensor';
import { dtypeSize } from './dtype';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn with gradient recording off (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run fn with gradient recording on (undoes an enclosing noGrad). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Attach a backward rule to `out` if any input requires a gradient (and grad mode is on).
 * `backward(g)` returns one gradient per input, shaped like that input (null = none).
 */
export function record(
  out: Tensor,
  name: string,
  inputs: readonly Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
  addInto?: (grad: Tensor, into: Tensor) => void,
): Tensor {
  if (!gradEnabled) return out;
  if (!inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.gradFn = addInto ? { name, inputs, backward, addInto } : { name, inputs, backward };
  return out;
}

/** Mark a leaf tensor as requiring a gradient. */
export function requiresGrad_(t: Tensor, flag = true): Tensor {
  if (!t.isLeaf) throw new ArgumentError(`requiresGrad_: only leaf tensors can change requiresGrad; ${t.describe()} was produced by ${t.gradFn?.name}`);
  t.requiresGrad = flag;
  return t;
}

/** Nodes reachable from root that have a backward rule, root first (reverse topological order). */
function reverseTopological(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn ? t.gradFn.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && child.gradFn && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      if (t.gradFn) order.push(t);
    }
  }
  return order.reverse();
}

/**
 * Compute gradients of `root` w.r.t. every leaf that requires one, adding them into `.grad`.
 * `root` must have one element unless `gradient` (same shape as root) is given.
 */
export function backward(root: Tensor, gradient?: Tensor): void {
  root.assertAlive('backward', 'root');
  if (!root.requiresGrad)
    throw new ArgumentError(`backward: ${root.describe()} does not require grad (no input of the graph has requiresGrad = true, or it was computed under noGrad)`);
  if (gradient === undefined && root.numel !== 1)
    throw new ShapeError(`backward: the root must have one element to be differentiated implicitly, got ${root.describe()}; pass a gradient of the same shape`);
  if (gradient !== undefined) {
    gradient.assertAlive('backward', 'gradient');
    if (!sameShape(gradient.shape, root.shape) || gradient.dtype !== root.dtype)
      throw new ShapeError(`backward: gradient ${gradient.describe()} must match root ${root.describe()}`);
  }

  // Gradient tensors are shared by reference (a rule may pass its input gradient straight
  // through, to several inputs); `uses` counts the live references so each is freed exactly once.
  const uses = new Map<Tensor, number>();
  const retain = (g: Tensor) => uses.set(g, (uses.get(g) ?? 0) + 1);
  const release = (g: Tensor) => {
    const n = (uses.get(g) ?? 0) - 1;
    if (n <= 0) {
      uses.delete(g);
      g.dispose();
    } else uses.set(g, n);
  };
  const pending = new Map<Tensor, Tensor>();

  const accumulateLeaf = (leaf: Tensor, g: Tensor) => {
    leaf.assertAlive('backward', 'leaf');
    if (leaf.grad === null) {
      // Take the gradient over when nothing else can see its memory; otherwise copy it.
      const exclusive = !uses.has(g) && g.storage.refCount === 1 && g.isContiguous() && g.offset === 0;
      leaf.grad = keep(exclusive ? g : copyOf(g));
      if (exclusive) uses.set(g, Infinity);
    } else {
      leaf.grad.assertAlive('backward', 'existing .grad of ' + leaf.describe());
      runKernel('add', [leaf.grad, broadcastLike(g, leaf.grad), leaf.grad]);
    }
  };

  // A pending gradient only this engine can see (one pending use, no other view of its memory,
  // dense): further gradients for the same tensor are added into it in place.
  const exclusive = (p: Tensor) => uses.get(p) === 1 && p.storage.refCount === 1 && isDense(p);

  const accumulate = (t: Tensor, g: Tensor) => {
    if (!sameShape(g.shape, t.shape))
      throw new ShapeError(`backward: a rule produced a gradient of shape ${fmtShape(g.shape)} for ${t.describe()} (internal error in the op's backward)`);
    if (!t.gradFn) {
      accumulateLeaf(t, g);
      return;
    }
    const prev = pending.get(t);
    if (!prev) {
      pending.set(t, g);
      retain(g);
    } else if (prev !== g && exclusive(prev)) {
      runKernel('add', [prev, g, prev]);
    } else {
      const sum = Tensor.empty(t.shape, t.dtype, t.device, true);
      runKernel('add', [prev, g, sum]);
      keep(sum);
      pending.set(t, sum);
      retain(sum);
      release(prev);
    }
  };

  // Rules with addInto (slice) add straight into the input's pending gradient when it is ours,
  // else into a fresh zero buffer laid out like the input (so a later permute back is free).
  const addIntoInput = (fn: GradFn, g: Tensor): boolean => {
    const x = fn.inputs[0];
    if (!fn.addInto || fn.inputs.length !== 1 || !x.gradFn || !x.requiresGrad) return false;
    const prev = pending.get(x);
    if (prev && exclusive(prev)) {
      scope(() => fn.addInto!(g, prev));
      return true;
    }
    const fresh = keep(zerosLayoutLike(x));
    scope(() => fn.addInto!(g, fresh));
    accumulate(x, fresh);
    if (!uses.has(fresh)) fresh.dispose();
    return true;
  };

  noGrad(() => {
    const order = reverseTopological(root);
    let seed: Tensor;
    if (gradient) {
      seed = gradient;
      uses.set(seed, Infinity); // the caller's tensor: never ours to free
    } else {
      seed = keep(Tensor.empty(root.shape, root.dtype, root.device, true));
      runKernel('fill', [seed], [1]);
    }
    if (!root.gradFn) {
      accumulateLeaf(root, seed);
      return;
    }
    pending.set(root, seed);
    uses.set(seed, (uses.get(seed) ?? 0) + 1);

    for (const t of order) {
      const g = pending.get(t);
      if (!g) continue;
      pending.delete(t);
      const fn = t.gradFn as GradFn;
      if (addIntoInput(fn, g)) {
        release(g);
        continue;
      }
      const grads = scope(() => fn.backward(g));
      // Let go of g before passing the results on (unless one of them is g itself): a result
      // that is a view of g (reshape, permute, a transposed weight gradient) then holds the only
      // reference to its memory and can become a leaf's .grad or be added into in place.
      const passesThrough = grads.includes(g);
      if (!passesThrough) release(g);
      fn.inputs.forEach((input, i) => {
        const gi = grads[i];
        if (gi && input.requiresGrad) accumulate(input, gi);
      });
      for (const gi of new Set(grads)) if (gi && !uses.has(gi)) gi.dispose();
      if (passesThrough) release(g);
    }
    for (const g of pending.values()) release(g);
  });
}

/** Strides of a dense layout of t's shape in t's own dim order (t's strides if t is dense), or null. */
function denseStridesLike(t: Tensor): number[] | null {
  const n = t.ndim;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => t.strides[b] - t.strides[a] || a - b);
  const st = new Array<number>(n);
  let acc = 1;
  for (let i = n - 1; i >= 0; i--) {
    const d = order[i];
    if (t.shape[d] !== 1 && t.strides[d] !== acc) return null;
    st[d] = acc;
    acc *= t.shape[d];
  }
  return st;
}

/** Non-overlapping and gap-free over its whole storage. */
function isDense(t: Tensor): boolean {
  return t.offset === 0 && t.numel > 0 && t.numel * dtypeSize[t.dtype] === t.storage.native.nbytes && denseStridesLike(t) !== null;
}

/** A zero-filled tensor shaped like x, laid out in x's dim order when x is a dense permutation. */
function zerosLayoutLike(x: Tensor): Tensor {
  const base = Tensor.empty(x.shape, x.dtype, x.device);
  const st = x.numel > 0 ? denseStridesLike(x) : null;
  if (!st) return base;
  const v = base.viewOf(x.shape, st, 0);
  base.dispose();
  return v;
}

function copyOf(g: Tensor): Tensor {
  const out = Tensor.empty(g.shape, g.dtype, g.device, true);
  runKernel('copy', [g, out]);
  return out;
}

function broadcastLike(g: Tensor, like: Tensor): Tensor {
  if (sameShape(g.shape, like.shape)) return g;
  throw new ShapeError(`backward: gradient ${g.describe()} does not match ${like.describe()}`);
}
