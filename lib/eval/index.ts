// Evaluation of joint embeddings: retrieval R@K, zero-shot classification with prompt
// ensembles, the modality gap, and accuracy over candidate sets for composed (multimodal) queries.
export { retrievalRecall } from './retrieval';
export type { RetrievalResult, RecallAtK } from './retrieval';
export { classEmbeddings, zeroShotAccuracy } from './zero_shot';
export type { ZeroShotResult } from './zero_shot';
export { modalityGap } from './modality_gap';
export type { ModalityGapResult } from './modality_gap';
export { candidateAccuracy } from './composed';
export type { CandidateAccuracy } from './composed';
