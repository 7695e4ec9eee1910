// tessera: the public API. `import * as ts from 'tessera'` (or from './lib').
import './tensor_methods';

export { Tensor } from './tensor';
export type { GradFn, NestedArray } from './tensor';
export type { DType, Device } from './dtype';
export { TesseraError, ShapeError, DTypeError, DisposedError, ArgumentError } from './errors';
export { scope, keep } from './scope';
export { noGrad, enableGrad, backward, isGradEnabled } from './autograd';
export { manualSeed, getRngState, setRngState } from './random';
export { memoryStats, emptyCache, cudaInfo, cudaAvailable, cpuInfo, setNumThreads, defaultDevice } from './backend';
export * from './ops/creation';
export * from './ops/view';
export * from './ops/unary';
export {
  add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, where, maskedFill,
} from './ops/binary';
export { sum, mean, max, min, logsumexp, variance, variance as var_ } from './ops/reduce';
export { matmul, bmm } from './ops/matmul';
export { gather, scatterAdd, indexSelect, embedding } from './ops/indexing';
export { cat, stack, split } from './ops/concat';
export { dropout } from './ops/dropout';
export { normalize } from './ops/normalize';
export { copy_ } from './ops/view';
export { softmax, logSoftmax } from './ops/softmax';
export { layerNorm } from './ops/layernorm';
export { flashAttention } from './ops/flash_attention';
export type { FlashAttentionOptions } from './ops/flash_attention';
export { crossEntropy } from './ops/cross_entropy';
export type { CrossEntropyOptions, CrossEntropyReduction } from './ops/cross_entropy';
export * from './io';
export * as nn from './nn';
export { Module, StateDictError } from './nn/module';
export * as optim from './optim';
export * as losses from './losses';
export * as data from './data';
export * as evaluation from './eval';
