// Indexing ops: gather, scatterAdd, indexSelect, embedding (torch semantics, int32 indices).
//
// Shapes, ranks, dtypes and devices are checked here with messages naming the op and the
// tensors; index *values* are checked by the native kernels (native/cpu/indexing.cpp) before
// they write anything, which is the one place that sees every value without an extra pass.
// Their "value v at index[i, j] is out of range ..." errors are re-raised as ArgumentErrors
// under the op's public name. Each backward rule is the adjoint native kernel:
//   gather      <-> scatter_add (into zeros)     indexSelect <-> index_add (into zeros)
//   embedding   <-> embedding_backward (on the CPU a deterministic, row-owning scatter-add)
// On CUDA the scatters (scatter_add, index_add, embedding_backward) use atomic adds: repeated
// targets are summed in no fixed order, so float results can differ from run to run by rounding.
// Outputs are freshly allocated and contiguous, as the kernels require; inputs may have any
// strides (transposed, sliced, expanded), so nothing is copied to make them contiguous.

import { runKernel } from '../backend';
import { record } from '../autograd';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { normDim, sameShape } from '../shape';
import { Tensor } from '../tensor';
import { checkSameDevice, checkSameDType, checkTensor } from './operand';
import { reshape } from './view';

function checkIndexTensor(index: Tensor, op: string, role = 'index'): void {
  if (index.dtype !== 'int32')
    throw new DTypeError(`${op}: ${role} must be an int32 tensor, got ${index.describe()} (convert it with .to('int32'))`);
}

/**
 * Run a native kernel whose errors should carry the op's public name; `out` (a fresh output)
 * is disposed when the kernel throws.
 */
function runNative(op: string, kernel: string, tensors: Tensor[], scalars: number[], out: Tensor): void {
  try {
    runKernel(kernel, tensors, scalars);
  } catch (e) {
    out.dispose();
    if (e instanceof Error && e.message.startsWith(`${kernel}:`)) throw new ArgumentError(op + e.message.slice(kernel.length));
    throw e;
  }
}

/**
 * out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (torch.gather). `index` is int32 with x's
 * rank, index.size(d) <= x.size(d) for d != dim; the output has index's shape.
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const op = 'gather';
  checkTensor(x, op, 'x');
  checkTensor(index, op, 'index');
  checkIndexTensor(index, op);
  checkSameDevice(x, index, op, 'x', 'index');
  if (index.ndim !== x.ndim)
    throw new ShapeError(`${op}: index ${index.describe()} must have as many dimensions as x ${x.describe()}`);
  if (x.ndim === 0) {
    normDim(dim, 1, op);
    return reshape(gather(reshape(x, [1]), 0, reshape(index, [1])), []);
  }
  const d = normDim(dim, x.ndim, op);
  for (let i = 0; i < x.ndim; i++)
    if (i !== d && index.shape[i] > x.shape[i])
      throw new ShapeError(`${op}: index ${index.describe()} is larger than x ${x.describe()} in dim ${i}; index.size(d) <= x.size(d) is required for every d other than dim ${dim}`);
  const out = Tensor.empty(index.shape, x.dtype, x.device, true); // every element is gathered
  runNative(op, 'gather', [x, index, out], [d], out);
  return record(out, op, [x], (g) => {
    const gx = Tensor.empty(x.shape, g.dtype, g.device);
    runKernel('scatter_add', [index, g, gx], [d]);
    return [gx];
  });
}

/**
 * x with src added at the positions index names along dim (torch.scatter_add, out of place):
 * out = x.clone(); out[i][index[i][j][k]][k] += src[i][j][k] for dim = 1. index, src and x have
 * the same rank; index.size(d) <= src.size(d) for every d and <= x.size(d) for d != dim.
 * Repeated indices accumulate, in ascending order along dim (deterministic on the CPU; on CUDA
 * atomic adds sum them in no fixed order).
 */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const op = 'scatterAdd';
  checkTensor(x, op, 'x');
  checkTensor(index, op, 'index');
  checkTensor(src, op, 'src');
  checkIndexTensor(index, op);
  checkSameDevice(x, index, op, 'x', 'index');
  checkSameDevice(x, src, op, 'x', 'src');
  checkSameDType(x, src, op, 'x', 'src');
  if (index.ndim !== x.ndim || src.ndim !== x.ndim)
    throw new ShapeError(`${op}: x ${x.describe()}, index ${index.describe()} and src ${src.describe()} must have the same number of dimensions`);
  if (x.ndim === 0) {
    normDim(dim, 1, op);
    return reshape(scatterAdd(reshape(x, [1]), 0, reshape(index, [1]), reshape(src, [1])), []);
  }
  const d = normDim(dim, x.ndim, op);
  for (let i = 0; i < x.ndim; i++) {
    if (index.shape[i] > src.shape[i])
      throw new ShapeError(`${op}: index ${index.describe()} is larger than src ${src.describe()} in dim ${i}; index.size(d) <= src.size(d) is required for every d`);
    if (i !== d && index.shape[i] > x.shape[i])
      throw new ShapeError(`${op}: index ${index.describe()} is larger than x ${x.describe()} in dim ${i}; index.size(d) <= x.size(d) is required for every d other than dim ${dim}`);
  }
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  runKernel('copy', [x, out]);
  runNative(op, 'scatter_add', [index, src, out], [d], out);
  return record(out, op, [x, src], (g) => [x.requiresGrad ? g : null, src.requiresGrad ? scatterSrcGrad(g, d, index, src) : null]);
}

/** d out / d src = g gathered at index, placed in the index-shaped corner of a src-shaped zero tensor. */
function scatterSrcGrad(g: Tensor, d: number, index: Tensor, src: Tensor): Tensor {
  const gi = Tensor.empty(index.shape, g.dtype, g.device);
  runKernel('gather', [g, index, gi], [d]);
  if (sameShape(index.shape, src.shape)) return gi;
  const gs = Tensor.empty(src.shape, g.dtype, g.device);
  const corner = gs.viewOf(index.shape, gs.strides, 0);
  runKernel('copy', [gi, corner]);
  corner.dispose();
  gi.dispose();
  return gs;
}

/**
 * The entries of x at positions `index` along dim (torch.index_select): out has x's shape with
 * size(dim) = index.length. `index` is a 1-D (or 0-d, taken as length 1) int32 tensor; entries
 * may repeat and come in any order.
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const op = 'indexSelect';
  checkTensor(x, op, 'x');
  checkTensor(index, op, 'index');
  checkIndexTensor(index, op);
  checkSameDevice(x, index, op, 'x', 'index');
  if (index.ndim > 1) throw new ShapeError(`${op}: index must be 1-D, got ${index.describe()}`);
  if (x.ndim === 0) throw new ShapeError(`${op}: x must have at least one dimension, got ${x.describe()}`);
  const d = normDim(dim, x.ndim, op);
  const n = index.ndim === 0 ? 1 : index.shape[0];
  const as1d = (): Tensor => (index.ndim === 0 ? index.viewOf([1], [1], index.offset) : index);
  const shape = x.shape.map((s, i) => (i === d ? n : s));
  const out = Tensor.empty(shape, x.dtype, x.device);
  const idx = as1d();
  try {
    runNative(op, 'index_select', [x, idx, out], [d], out);
  } finally {
    if (idx !== index) idx.dispose();
  }
  return record(out, op, [x], (g) => {
    const gx = Tensor.empty(x.shape, g.dtype, g.device);
    runKernel('index_add', [as1d(), g, gx], [d]);
    return [gx];
  });
}

/**
 * Rows of `weight` [V, D] picked by `ids` (int32, any shape): out has shape [...ids.shape, D]
 * (torch.nn.functional.embedding(ids, weight)). The gradient w.r.t. weight sums the output
 * gradient rows of every position holding an id (on the CPU deterministically, whatever the thread count; on CUDA by atomic adds).
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  const op = 'embedding';
  checkTensor(weight, op, 'weight');
  checkTensor(ids, op, 'ids');
  checkIndexTensor(ids, op, 'ids');
  checkSameDevice(weight, ids, op, 'weight', 'ids');
  if (weight.ndim !== 2) throw new ShapeError(`${op}: weight must be 2-D [num_embeddings, dim], got ${weight.describe()}`);
  if (ids.ndim > 7) throw new ShapeError(`${op}: ids may have at most 7 dimensions (the output adds one), got ${ids.describe()}`);
  const out = Tensor.empty([...ids.shape, weight.shape[1]], weight.dtype, weight.device, true); // every row is copied
  runNative(op, 'embedding', [weight, ids, out], [], out);
  return record(out, op, [weight], (g) => {
    const gw = Tensor.empty(weight.shape, g.dtype, g.device);
    runKernel('embedding_backward', [ids, g, gw]);
    return [gw];
  });
}
