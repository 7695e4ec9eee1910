// Broadcasting binary ops (add, sub, mul, div, pow, maximum, minimum), comparisons and where.
// Operands are broadcast by stride-0 views, so the native kernels never allocate for it; the
// backward rules sum gradients back over the broadcast dims (sumToShape).

import { runKernel } from '../backend';
import { record } from '../autograd';
import { broadcastShapes, sameShape } from '../shape';
import { Tensor } from '../tensor';
import { isFloat } from '../dtype';
import { checkFloat, checkNumber, checkSameDevice, checkSameDType, checkTensor, operands, TensorOrScalar } from './operand';
import { affine } from './unary';
import { sumToShape } from './reduce';

/** A stride-0 broadcast view of t with `shape` (no autograd; internal). */
export function broadcastTo(t: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(t.shape, shape)) return t;
  const lead = shape.length - t.ndim;
  const strides = shape.map((s, i) => (i < lead || t.shape[i - lead] !== s ? 0 : t.strides[i - lead]));
  return t.viewOf(shape, strides, t.offset);
}

/** Run a broadcasting binary kernel into a new tensor (no autograd). */
export function binaryRaw(kernel: string, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, kernel);
  const out = Tensor.empty(shape, a.dtype, a.device, true);
  const av = broadcastTo(a, shape);
  const bv = broadcastTo(b, shape);
  runKernel(kernel, [av, bv, out]);
  if (av !== a) av.dispose();
  if (bv !== b) bv.dispose();
  return out;
}

function gradFor(g: Tensor, t: Tensor): Tensor | null {
  return t.requiresGrad ? sumToShape(g, t.shape) : null;
}

/** True when exactly one side is a JS number and the tensor is float: done as one affine pass. */
function scalarCase(a: TensorOrScalar, b: TensorOrScalar): a is Tensor {
  // A float tensor with a finite number: one fused 'affine' kernel (CPU and CUDA) instead of a
  // 0-d fill plus a broadcasting kernel.
  return a instanceof Tensor && typeof b === 'number' && Number.isFinite(b) && isFloat(a.dtype) && !a.isDisposed;
}

export function add(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (scalarCase(a, b)) return affine(a, 1, b as number);
  if (scalarCase(b, a)) return affine(b, 1, a as number);
  const [x, y] = operands(a, b, 'add');
  return record(binaryRaw('add', x, y), 'add', [x, y], (g) => [gradFor(g, x), gradFor(g, y)]);
}

export function sub(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (scalarCase(a, b)) return affine(a, 1, -(b as number));
  if (scalarCase(b, a)) return affine(b, -1, a as number);
  const [x, y] = operands(a, b, 'sub');
  return record(binaryRaw('sub', x, y), 'sub', [x, y], (g) => [
    gradFor(g, x),
    y.requiresGrad ? sumToShape(negRaw(g), y.shape) : null,
  ]);
}

export function mul(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (scalarCase(a, b)) return affine(a, b as number, 0);
  if (scalarCase(b, a)) return affine(b, a as number, 0);
  const [x, y] = operands(a, b, 'mul');
  return record(binaryRaw('mul', x, y), 'mul', [x, y], (g) => [
    x.requiresGrad ? sumToShape(binaryRaw('mul', g, y), x.shape) : null,
    y.requiresGrad ? sumToShape(binaryRaw('mul', g, x), y.shape) : null,
  ]);
}

export function div(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (scalarCase(a, b) && b !== 0) return affine(a, 1 / (b as number), 0);
  const [x, y] = operands(a, b, 'div');
  checkFloat(x, 'div', 'a');
  const out = binaryRaw('div', x, y);
  return record(out, 'div', [x, y], (g) => [
    x.requiresGrad ? sumToShape(binaryRaw('div', g, y), x.shape) : null,
    // d(x/y)/dy = -(x/y)/y
    y.requiresGrad ? sumToShape(negRaw(binaryRaw('div', binaryRaw('mul', g, out), y)), y.shape) : null,
  ]);
}

/** a ** b elementwise. With a number exponent this is the cheaper unary pow_scalar. */
export function pow(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (a instanceof Tensor && typeof b === 'number') return powScalar(a, b);
  const [x, y] = operands(a, b, 'pow');
  checkFloat(x, 'pow', 'a');
  const out = binaryRaw('pow', x, y);
  return record(out, 'pow', [x, y], (g) => {
    let gx: Tensor | null = null;
    let gy: Tensor | null = null;
    if (x.requiresGrad) {
      // y * x^(y-1) = y * out / x, written without dividing by x (which may be 0)
      const ym1 = Tensor.empty(y.shape, y.dtype, y.device);
      runKernel('affine', [y, ym1], [1, -1]);
      gx = sumToShape(binaryRaw('mul', g, binaryRaw('mul', y, binaryRaw('pow', x, ym1))), x.shape);
    }
    if (y.requiresGrad) {
      const lx = Tensor.empty(x.shape, x.dtype, x.device);
      runKernel('log', [x, lx]);
      gy = sumToShape(binaryRaw('mul', g, binaryRaw('mul', out, lx)), y.shape);
    }
    return [gx, gy];
  });
}

export function powScalar(x: Tensor, exponent: number): Tensor {
  checkTensor(x, 'pow', 'x');
  checkNumber(exponent, 'pow', 'exponent');
  checkFloat(x, 'pow', 'x');
  const out = Tensor.empty(x.shape, x.dtype, x.device, true);
  runKernel('pow_scalar', [x, out], [exponent]);
  return record(out, 'pow', [x], (g) => {
    const gx = Tensor.empty(x.shape, x.dtype, x.device, true);
    runKernel('pow_scalar_backward', [x, out, g, gx], [exponent]);
    return [gx];
  });
}

function negRaw(g: Tensor): Tensor {
  const out = Tensor.empty(g.shape, g.dtype, g.device, true);
  runKernel('neg', [g, out]);
  return out;
}

/** Gradient of maximum/minimum goes to the winner; ties split evenly (as PyTorch). */
function extremeRule(x: Tensor, y: Tensor, out: Tensor) {
  return (g: Tensor): (Tensor | null)[] => {
    const hx = binaryRaw('eq', x, out);
    const hy = binaryRaw('eq', y, out);
    const share = binaryRaw('div', g, binaryRaw('add', hx, hy));
    return [
      x.requiresGrad ? sumToShape(binaryRaw('mul', share, hx), x.shape) : null,
      y.requiresGrad ? sumToShape(binaryRaw('mul', share, hy), y.shape) : null,
    ];
  };
}

export function maximum(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  const [x, y] = operands(a, b, 'maximum');
  const out = binaryRaw('maximum', x, y);
  return record(out, 'maximum', [x, y], extremeRule(x, y, out));
}

export function minimum(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  const [x, y] = operands(a, b, 'minimum');
  const out = binaryRaw('minimum', x, y);
  return record(out, 'minimum', [x, y], extremeRule(x, y, out));
}

// Comparisons: 1/0 in the operands' dtype, not differentiable.
export const eq = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binaryRaw('eq', ...operands(a, b, 'eq'));
export const ne = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binaryRaw('ne', ...operands(a, b, 'ne'));
export const lt = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binaryRaw('lt', ...operands(a, b, 'lt'));
export const le = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binaryRaw('le', ...operands(a, b, 'le'));
export const gt = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binaryRaw('gt', ...operands(a, b, 'gt'));
export const ge = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binaryRaw('ge', ...operands(a, b, 'ge'));

/** cond != 0 ? a : b, all three broadcast together; cond may have any dtype. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  checkTensor(cond, 'where', 'cond');
  const [x, y] = operands(a, b, 'where');
  checkSameDevice(cond, x, 'where', 'cond', 'a');
  const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, 'where'), y.shape, 'where');
  const out = Tensor.empty(shape, x.dtype, x.device, true);
  const views = [broadcastTo(cond, shape), broadcastTo(x, shape), broadcastTo(y, shape)];
  runKernel('where', [...views, out]);
  views.forEach((v, i) => v !== [cond, x, y][i] && v.dispose());
  return record(out, 'where', [x, y], (g) => {
    const zero = Tensor.empty([], g.dtype, g.device);
    const cv = broadcastTo(cond, shape);
    const zv = broadcastTo(zero, shape);
    const gx = Tensor.empty(shape, g.dtype, g.device, true);
    const gy = Tensor.empty(shape, g.dtype, g.device, true);
    runKernel('where', [cv, g, zv, gx]);
    runKernel('where', [cv, zv, g, gy]);
    return [x.requiresGrad ? sumToShape(gx, x.shape) : null, y.requiresGrad ? sumToShape(gy, y.shape) : null];
  });
}

/** x with `value` where mask != 0 (mask broadcasts to x), like torch.masked_fill. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor(x, 'maskedFill', 'x');
  checkTensor(mask, 'maskedFill', 'mask');
  broadcastShapes(mask.shape, x.shape, 'maskedFill');
  return where(mask, value, x);
}

export { checkSameDType };
