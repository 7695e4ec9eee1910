// Scoped cleanup of temporaries. `scope(fn)` disposes every tensor created while fn runs except
// those reachable from its return value (a tensor, or arrays / plain objects / Maps holding
// tensors) and those passed to keep(). Scopes nest: what an inner scope returns belongs to the
// outer one. This is what keeps a training loop's native memory flat:
//
//   for (const batch of batches) scope(() => { const loss = model.loss(batch); loss.backward(); opt.step(); });

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];

/** Called by every new tensor: it belongs to the innermost open scope, if any. */
export function track(t: Disposable): void {
  if (stack.length) stack[stack.length - 1].add(t);
}

/** Take `t` out of every open scope so no scope disposes it. Returns t. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable).dispose === 'function' && 'isDisposed' in (value as object)) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) collect(v, out, seen);
  }
}

/** Run fn; dispose the tensors it created that it does not return. Synchronous functions only. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Disposable>();
  stack.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw err;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of mine) t.dispose();
    throw new Error('scope: fn returned a Promise; scope() only supports synchronous functions (await outside, or use keep())');
  }
  const returned = new Set<Disposable>();
  collect(result, returned, new Set());
  const parent = stack.length ? stack[stack.length - 1] : null;
  for (const t of mine) {
    if (returned.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Number of scopes currently open (for tests and diagnostics). */
export function scopeDepth(): number {
  return stack.length;
}
