// tessera/nn: model building blocks composed from the engine's differentiable ops, each a
// Module whose state-dict names match the equivalent torch / OpenCLIP module (see each file's
// header for the exact mapping). `import * as nn from './nn'`.

export { Module, StateDictError } from './module';
export type { LoadOptions } from './module';
export * as init from './init';
export { ModuleList } from './container';
export { Linear } from './linear';
export type { LinearOptions } from './linear';
export { Embedding } from './embedding';
export type { EmbeddingOptions } from './embedding';
export { LayerNorm } from './layer_norm';
export type { LayerNormOptions } from './layer_norm';
export { Dropout } from './dropout';
export { MLP, activate } from './mlp';
export type { Activation, MLPOptions } from './mlp';
export { MultiHeadAttention, scaledDotProductAttention, attentionReference, causalMask, clearCausalMaskCache } from './attention';
export type { AttentionOptions, AttentionForwardOptions, MultiHeadAttentionOptions } from './attention';
export { TransformerBlock, Transformer } from './transformer';
export type { TransformerBlockOptions, TransformerOptions } from './transformer';
export { VisionTransformer, sincos2dPositionEmbedding } from './vit';
export type { VisionTransformerConfig, TowerOutput } from './vit';
export { TextTransformer, eotIndexFromTokens } from './text';
export type { TextTransformerConfig, TextForwardOptions } from './text';
