// matmul through the public op (allocating its output, as models use it) vs numpy's matmul on
// Debian's OpenBLAS, float32, square sizes 128-2048, same threads, same run. GFLOP/s = 2n^3 / t.
// For the kernel alone with interleaved rounds against several OpenBLAS kernel sets, see
// bench/matmul_native.js.

import * as ts from '../lib';
import { benchThreads, timeOurs } from './harness';
import { runNumpyPeer } from './peer';
import { printTable, Row } from './table';

export async function runMatmul(sizes = [128, 256, 512, 1024, 2048]): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const cases = sizes.map((n) => {
    const a = ts.keep(ts.randn([n, n]));
    const b = ts.keep(ts.randn([n, n]));
    return { id: `${n}x${n}x${n}`, n, fn: () => ts.matmul(a, b).dispose() };
  });
  const ours = await timeOurs(cases.map(({ id, fn }) => ({ id, fn })));
  const peer = runNumpyPeer(cases.map((c) => ({ id: c.id, op: 'matmul', shapes: [[c.n, c.n], [c.n, c.n]] })), threads);
  if (peer.error) console.log(peer.error);
  const rows: Row[] = cases.map((c) => {
    const flops = 2 * c.n ** 3;
    const p = peer.times.get(c.id);
    return { case: c.id, ours: flops / ours.get(c.id)! / 1e9, peer: p ? flops / p / 1e9 : null };
  });
  return printTable(`matmul float32, ${threads} threads`, 'GFLOP/s', peer.label.replace('numpy', 'OpenBLAS via numpy'), rows);
}

if (require.main === module) runMatmul().catch((e) => { console.error(e); process.exit(1); });
