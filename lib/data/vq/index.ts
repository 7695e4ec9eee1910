// lib/data/vq: FuseLIP's discrete image tokenizer (a VQ-VAE with an EMA codebook), its training
// loop and metrics, and its safetensors checkpoint. `import { trainVQVAE, loadVQVAE } from './vq'`.

export { VQVAE, DEFAULT_VQVAE_CONFIG, resolveVQVAEConfig } from './vq_vae';
export type { VQVAEConfig, VQForward } from './vq_vae';
export { EMACodebook, codeUsage } from './codebook';
export type { EMACodebookOptions, Quantized, CodeUsage } from './codebook';
export { trainVQVAE, evaluateVQVAE, meanImage } from './train_vq';
export type { TrainVQOptions, TrainVQResult, VQStepStats, VQEvaluation } from './train_vq';
export { saveVQVAE, loadVQVAE, VQVAE_FORMAT } from './checkpoint';
