// The data layer: image batches and files (PNG/JPEG, IDX), Fashion-MNIST, a user's image folder,
// the embedded procedural image-text world, the BPE tokenizer, batched augmentations, batching,
// and the PairDataset adapters the training harness consumes.
export * from './image_batch';
export * from './image_io';
export * from './idx';
export * from './fashion_mnist';
export * from './captions_fashion';
export * from './image_folder';
export * from './batcher';
export * from './bpe_tokenizer';
export * from './augment';
export type { PairDataset, EvalSplit, LabelSet } from './pair_dataset';
export { WorldPairs } from './world_pairs';
export * as world from './world';
export * as vq from './vq';
export { FashionPairs } from './fashion_pairs';
