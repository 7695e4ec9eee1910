// tessera I/O: safetensors files and training checkpoints. Re-exported from lib/index.ts; the
// test-only saveHooks and the internal loadSafetensorsChecked stay out of this list on purpose.

export { CheckpointError } from './errors';
export {
  saveSafetensors,
  loadSafetensors,
  parseSafetensors,
  serializeSafetensors,
  inspectSafetensors,
  cleanupTempFiles,
  writeFileAtomic,
  float32ToBF16Bits,
  bf16BitsToFloat32,
  MAX_HEADER_BYTES,
} from './safetensors';
export type { SafetensorsDType, SafetensorsEntry, SafetensorsHeader, SaveOptions, LoadOptions, LoadedSafetensors } from './safetensors';
export { saveCheckpoint, loadCheckpoint, restoreCheckpoint, CHECKPOINT_FORMAT } from './checkpoint';
export type { CheckpointOptimizer, SaveableOptimizer, CheckpointState, LoadedCheckpoint } from './checkpoint';
