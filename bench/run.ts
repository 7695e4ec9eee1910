// `npm run bench`: every CPU suite in one run, each printing `case | tessera | peer | ratio`.
// BENCH_TIME_MS sets the sampling time per case, BENCH_THREADS the thread count for both sides.

import * as os from 'os';
import { cpuInfo } from '../lib';
import { runAugment } from './augment.bench';
import { runContrastive } from './contrastive.bench';
import { runElementwise } from './elementwise.bench';
import { runFlashAttention } from './flash_attention.bench';
import { runMatmul } from './matmul.bench';
import { runReduce } from './reduce.bench';
import { runSinkhorn } from './sinkhorn.bench';
import { runTrainStep } from './train_step.bench';

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`tessera benchmarks, ${new Date().toISOString().slice(0, 10)}, ${cpu}, simd ${cpuInfo().simd}\n`);
  await runMatmul();
  await runElementwise();
  await runReduce();
  await runSinkhorn();
  await runContrastive();
  await runFlashAttention();
  await runAugment();
  await runTrainStep();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
