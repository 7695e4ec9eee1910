// PyTorch-style methods on Tensor (`x.add(y).relu().sum()`), each the same function as the
// free-standing op in lib/ops/. Kept apart from lib/tensor.ts so that the Tensor class does not
// depend on every op module.

import { backward } from './autograd';
import { Device, DType } from './dtype';
import { Tensor } from './tensor';
import * as binary from './ops/binary';
import * as matmulOps from './ops/matmul';
import * as reduce from './ops/reduce';
import * as unary from './ops/unary';
import * as view from './ops/view';
import * as indexing from './ops/indexing';
import * as concat from './ops/concat';
import * as softmaxOps from './ops/softmax';
import { Shape } from './shape';
import { TensorOrScalar } from './ops/operand';

type Dims = number | readonly number[];

declare module './tensor' {
  interface Tensor {
    add(other: TensorOrScalar): Tensor;
    sub(other: TensorOrScalar): Tensor;
    mul(other: TensorOrScalar): Tensor;
    div(other: TensorOrScalar): Tensor;
    pow(exponent: TensorOrScalar): Tensor;
    maximum(other: TensorOrScalar): Tensor;
    minimum(other: TensorOrScalar): Tensor;
    eq(other: TensorOrScalar): Tensor;
    ne(other: TensorOrScalar): Tensor;
    lt(other: TensorOrScalar): Tensor;
    le(other: TensorOrScalar): Tensor;
    gt(other: TensorOrScalar): Tensor;
    ge(other: TensorOrScalar): Tensor;
    maskedFill(mask: Tensor, value: number): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    relu(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    sigmoid(): Tensor;
    logsigmoid(): Tensor;
    softplus(beta?: number, threshold?: number): Tensor;
    tanh(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    sum(dims?: Dims, keepdim?: boolean): Tensor;
    mean(dims?: Dims, keepdim?: boolean): Tensor;
    max(dims?: Dims, keepdim?: boolean): Tensor;
    min(dims?: Dims, keepdim?: boolean): Tensor;
    logsumexp(dims?: Dims, keepdim?: boolean): Tensor;
    var(dims?: Dims, keepdim?: boolean, correction?: number): Tensor;
    matmul(other: Tensor): Tensor;
    reshape(shape: Shape): Tensor;
    view(shape: Shape): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    permute(dims: readonly number[]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    /** Transpose of the last two dims. */
    readonly T: Tensor;
    slice(dim: number, start?: number, end?: number, step?: number): Tensor;
    select(dim: number, index: number): Tensor;
    expand(shape: Shape): Tensor;
    squeeze(dim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    contiguous(): Tensor;
    clone(): Tensor;
    detach(): Tensor;
    /** In-place copy of src (broadcast, converted) into this tensor, outside autograd. */
    copy_(src: Tensor): Tensor;
    to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor;
    gather(dim: number, index: Tensor): Tensor;
    scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    split(sizeOrSections: number | readonly number[], dim?: number): Tensor[];
    softmax(dim?: number): Tensor;
    logSoftmax(dim?: number): Tensor;
    /** Backpropagate from this tensor (see lib/autograd.ts). */
    backward(gradient?: Tensor): void;
    /** Set requiresGrad on a leaf tensor; returns this. */
    requiresGrad_(flag?: boolean): Tensor;
  }
}

const P = Tensor.prototype;
P.add = function (o) { return binary.add(this, o); };
P.sub = function (o) { return binary.sub(this, o); };
P.mul = function (o) { return binary.mul(this, o); };
P.div = function (o) { return binary.div(this, o); };
P.pow = function (e) { return binary.pow(this, e); };
P.maximum = function (o) { return binary.maximum(this, o); };
P.minimum = function (o) { return binary.minimum(this, o); };
P.eq = function (o) { return binary.eq(this, o); };
P.ne = function (o) { return binary.ne(this, o); };
P.lt = function (o) { return binary.lt(this, o); };
P.le = function (o) { return binary.le(this, o); };
P.gt = function (o) { return binary.gt(this, o); };
P.ge = function (o) { return binary.ge(this, o); };
P.maskedFill = function (m, v) { return binary.maskedFill(this, m, v); };
P.neg = function () { return unary.neg(this); };
P.exp = function () { return unary.exp(this); };
P.log = function () { return unary.log(this); };
P.sqrt = function () { return unary.sqrt(this); };
P.rsqrt = function () { return unary.rsqrt(this); };
P.abs = function () { return unary.abs(this); };
P.relu = function () { return unary.relu(this); };
P.gelu = function (a) { return unary.gelu(this, a); };
P.sigmoid = function () { return unary.sigmoid(this); };
P.logsigmoid = function () { return unary.logsigmoid(this); };
P.softplus = function (b, t) { return unary.softplus(this, b, t); };
P.tanh = function () { return unary.tanh(this); };
P.clamp = function (lo, hi) { return unary.clamp(this, lo, hi); };
P.sum = function (d, k) { return reduce.sum(this, d, k); };
P.mean = function (d, k) { return reduce.mean(this, d, k); };
P.max = function (d, k) { return reduce.max(this, d, k); };
P.min = function (d, k) { return reduce.min(this, d, k); };
P.logsumexp = function (d, k) { return reduce.logsumexp(this, d, k); };
P.var = function (d, k, c) { return reduce.variance(this, d, k, c); };
P.matmul = function (o) { return matmulOps.matmul(this, o); };
P.reshape = function (s) { return view.reshape(this, s); };
P.view = function (s) { return view.view(this, s); };
P.flatten = function (s, e) { return view.flatten(this, s, e); };
P.permute = function (d) { return view.permute(this, d); };
P.transpose = function (a, b) { return view.transpose(this, a, b); };
Object.defineProperty(P, 'T', { get(this: Tensor) { return view.transpose(this, -2, -1); } });
P.slice = function (d, s, e, st) { return view.slice(this, d, s, e, st); };
P.select = function (d, i) { return view.select(this, d, i); };
P.expand = function (s) { return view.expand(this, s); };
P.squeeze = function (d) { return view.squeeze(this, d); };
P.unsqueeze = function (d) { return view.unsqueeze(this, d); };
P.contiguous = function () { return view.contiguous(this); };
P.clone = function () { return view.clone(this); };
P.detach = function () { return view.detach(this); };
P.copy_ = function (src) { return view.copy_(this, src); };
P.to = function (t) { return view.to(this, t); };
P.gather = function (d, i) { return indexing.gather(this, d, i); };
P.scatterAdd = function (d, i, s) { return indexing.scatterAdd(this, d, i, s); };
P.indexSelect = function (d, i) { return indexing.indexSelect(this, d, i); };
P.split = function (s, d) { return concat.split(this, s, d); };
P.softmax = function (d) { return softmaxOps.softmax(this, d); };
P.logSoftmax = function (d) { return softmaxOps.logSoftmax(this, d); };
P.backward = function (g) { backward(this, g); };
P.requiresGrad_ = function (flag = true) {
  if (!this.isLeaf) throw new Error(`requiresGrad_: only leaf tensors can change requiresGrad; ${this.describe()} was produced by ${this.gradFn?.name}`);
  this.requiresGrad = flag;
  return this;
};
