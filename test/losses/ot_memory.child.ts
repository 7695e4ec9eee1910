// Child process of ot.test.ts's memory test (a fresh process, so memoryStats().hostPeakBytes
// starts from this run's own allocations): Sinkhorn on two 16384 x 64 float32 point clouds with
// the cost computed on the fly, 3 iterations. Prints one JSON line: the peak native memory above
// what was allocated before the call (inputs excluded), the wall time, and the growth of the
// process's max RSS (which also sees untracked allocations).
import * as ts from '../../lib';
import { sinkhorn } from '../../lib/losses/ot';

ts.manualSeed(7);
const n = 16384;
const d = 64;
const x = ts.randn([n, d]);
const y = ts.randn([n, d]).mul(0.5).add(0.25);
// Warm the addon (threads, kernels) on a small problem first.
ts.scope(() => sinkhorn(ts.randn([64, d]), ts.randn([64, d]), { eps: 1, maxIter: 2, tol: 0 }));
const before = ts.memoryStats();
const rssBefore = process.resourceUsage().maxRSS * 1024;
const t0 = process.hrtime.bigint();
const r = sinkhorn(x, y, { eps: 1, maxIter: 3, tol: 0 });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const after = ts.memoryStats();
const rssAfter = process.resourceUsage().maxRSS * 1024;
console.log(JSON.stringify({
  peakExtra: after.hostPeakBytes - before.hostBytes,
  seconds,
  iterations: r.iterations,
  value: r.value.item(),
  rssExtra: rssAfter - rssBefore,
}));
