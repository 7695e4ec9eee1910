// Losses: the CLIP composition (clip.ts, the readable reference), the fused contrastive family
// (contrastive.ts: CLIP, multi-positive, NT-Xent, SigLIP) and optimal transport (ot.ts:
// log-domain Sinkhorn, the Sinkhorn divergence, SOTAlign's KLOT).
export { clipLoss } from './clip';
export type { ClipLossOptions } from './clip';
export { clipLossFused, multiPositiveClipLoss, ntXentLoss, sigLipLoss, SIGLIP_INIT } from './contrastive';
export type { ContrastiveIdsOptions } from './contrastive';
export { sinkhorn, sinkhornDivergence, klot } from './ot';
export type { OTCost, EpsScaling, SinkhornOptions, SinkhornResult, KlotOptions } from './ot';
