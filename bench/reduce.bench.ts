// Reductions vs numpy, in GB/s of input read: over the last dim (contiguous rows), over the
// first dim (vectorised across columns), and over everything.

import * as ts from '../lib';
import { benchThreads, timeOurs } from './harness';
import { PeerCase, runNumpyPeer } from './peer';
import { printTable, Row } from './table';

const M = 2048;

export async function runReduce(): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const x = ts.keep(ts.randn([M, M]));
  const cases: { id: string; peer: PeerCase; fn: () => void }[] = [
    { id: 'sum [2048,2048] dim -1', peer: { id: 's1', op: 'sum', shapes: [[M, M]], axis: -1 }, fn: () => ts.scope(() => ts.sum(x, -1)) },
    { id: 'sum [2048,2048] dim 0', peer: { id: 's0', op: 'sum', shapes: [[M, M]], axis: 0 }, fn: () => ts.scope(() => ts.sum(x, 0)) },
    { id: 'sum [2048,2048] all', peer: { id: 'sa', op: 'sum', shapes: [[M, M]] }, fn: () => ts.scope(() => ts.sum(x)) },
    { id: 'mean [2048,2048] dim -1', peer: { id: 'm1', op: 'mean', shapes: [[M, M]], axis: -1 }, fn: () => ts.scope(() => ts.mean(x, -1)) },
    { id: 'max [2048,2048] dim -1', peer: { id: 'x1', op: 'max', shapes: [[M, M]], axis: -1 }, fn: () => ts.scope(() => ts.max(x, -1)) },
  ];
  const ours = await timeOurs(cases);
  const peer = runNumpyPeer(cases.map((c) => c.peer), threads);
  const bytes = 4 * M * M;
  const rows: Row[] = cases.map((c) => {
    const p = peer.times.get(c.peer.id);
    return { case: c.id, ours: bytes / ours.get(c.id)! / 1e9, peer: p ? bytes / p / 1e9 : null };
  });
  if (peer.error) console.log(peer.error);
  return printTable(`Reductions, float32, ${threads} threads`, 'GB/s', peer.label, rows);
}

if (require.main === module) runReduce().catch((e) => { console.error(e); process.exit(1); });
