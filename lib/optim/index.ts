// tessera/optim: optimizers whose update is one fused native kernel per parameter, their
// parameter groups, learning-rate schedules and gradient clipping.

export { Optimizer, OptimizerStateError } from './optimizer';
export type { BaseHyper, ParamGroup, ResolvedGroup, StepOptions, ParamState, OptimizerHyperState } from './optimizer';
export { AdamW } from './adamw';
export type { AdamWHyper, AdamWOptions } from './adamw';
export { SGD } from './sgd';
export type { SGDHyper, SGDOptions } from './sgd';
export { Lion } from './lion';
export type { LionHyper, LionOptions } from './lion';
export { decayGroups, shouldDecay } from './param_groups';
export type { DecayGroupOptions } from './param_groups';
export { cosineWithWarmup, applyLr } from './schedule';
export type { CosineWithWarmupOptions, LrSchedule } from './schedule';
export { clipGradNorm, gradNorm, clipCoefficient } from './clip';
export type { ClipOptions } from './clip';
