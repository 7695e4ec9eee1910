// Saving and loading a trained VQ-VAE tokenizer as one safetensors checkpoint (lib/io).
//
// The file is an ordinary tessera checkpoint (saveCheckpoint: tensors under "model.<name>",
// written atomically) whose `extra` metadata holds {"format": "tessera-vqvae/1", "config": {...}}:
// the config is needed to rebuild the module before its weights can be loaded, and the format
// tag lets a loader refuse some other model's checkpoint with a clear message instead of a list
// of missing keys. loadVQVAE checks the config field by field, builds the model, loads the state
// dict strictly (every key, every shape) and returns it frozen: eval mode, no parameter requires
// grad, the codebook never moves. Every problem is a CheckpointError naming the file.

import { ArgumentError, TesseraError } from '../../errors';
import { CheckpointError } from '../../io/errors';
import { loadCheckpoint, saveCheckpoint } from '../../io/checkpoint';
import { getRngState, setRngState } from '../../random';
import { DEFAULT_VQVAE_CONFIG, VQVAE, VQVAEConfig } from './vq_vae';

export const VQVAE_FORMAT = 'tessera-vqvae/1';

/** Write `model` (weights, codebook, config) to `file`; `step` records how long it trained. */
export function saveVQVAE(file: string, model: VQVAE, opts: { step?: number; extra?: Record<string, unknown> } = {}): void {
  if (!(model instanceof VQVAE)) throw new ArgumentError('saveVQVAE: model must be a VQVAE');
  const config: Record<string, number> = { ...model.config };
  saveCheckpoint(file, { model, step: opts.step ?? 0, extra: { ...opts.extra, format: VQVAE_FORMAT, config } });
}

function readConfig(file: string, extra: Record<string, unknown>): VQVAEConfig {
  if (extra.format !== VQVAE_FORMAT)
    throw new CheckpointError(file, `not a VQ-VAE checkpoint: expected extra.format "${VQVAE_FORMAT}", found ${JSON.stringify(extra.format ?? null)}`);
  const raw = extra.config;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CheckpointError(file, 'VQ-VAE checkpoint has no config object in its metadata');
  const cfg = raw as Record<string, unknown>;
  const out: Partial<VQVAEConfig> = {};
  for (const key of Object.keys(DEFAULT_VQVAE_CONFIG) as (keyof VQVAEConfig)[]) {
    const v = cfg[key];
    if (typeof v !== 'number') throw new CheckpointError(file, `VQ-VAE config.${key} must be a number, got ${JSON.stringify(v ?? null)}`);
    out[key] = v;
  }
  const unknown = Object.keys(cfg).filter((k) => !(k in DEFAULT_VQVAE_CONFIG));
  if (unknown.length) throw new CheckpointError(file, `VQ-VAE config has unknown fields: ${unknown.join(', ')}`);
  return out as VQVAEConfig;
}

/** Load a tokenizer saved by saveVQVAE, frozen (eval mode, parameters without grad). */
export function loadVQVAE(file: string): VQVAE {
  const ck = loadCheckpoint(file);
  let model: VQVAE | null = null;
  try {
    const config = readConfig(file, ck.extra);
    const rng = getRngState(); // building the module draws init values: keep the caller's stream
    try {
      model = new VQVAE(config);
    } catch (e) {
      throw new CheckpointError(file, `VQ-VAE config is invalid: ${(e as Error).message}`, e);
    } finally {
      setRngState(rng);
    }
    try {
      model.loadStateDict(ck.model, { strict: true });
    } catch (e) {
      if (e instanceof TesseraError) throw new CheckpointError(file, `weights do not fit the saved config: ${e.message}`, e);
      throw e;
    }
    return model.freeze();
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    for (const t of ck.model.values()) t.dispose();
    for (const t of ck.optim.values()) t.dispose();
  }
}
