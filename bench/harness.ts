// Times tessera cases with tinybench (warm-up, then samples for a fixed time budget) and
// reports each case's median latency in seconds.

import { Bench } from 'tinybench';

export interface OurCase {
  id: string;
  fn: () => void;
}

export async function timeOurs(cases: OurCase[], timeMs = Number(process.env.BENCH_TIME_MS ?? 400)): Promise<Map<string, number>> {
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs / 4), iterations: 5 });
  for (const c of cases) bench.add(c.id, c.fn);
  await bench.run();
  const out = new Map<string, number>();
  for (const task of bench.tasks) {
    const r = task.result;
    if (!r || r.error) throw new Error(`benchmark ${task.name} failed: ${r?.error?.message ?? 'no result'}`);
    out.set(task.name, (r.latency.p50 ?? r.latency.mean) / 1000);
  }
  return out;
}

/** Threads used by both tessera and the peer (BENCH_THREADS, default all cores). */
export function benchThreads(): number {
  return Number(process.env.BENCH_THREADS ?? require('os').availableParallelism?.() ?? require('os').cpus().length);
}
