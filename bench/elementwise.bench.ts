// Elementwise ops vs numpy: memory-bound kernels, reported as GB/s of data touched
// (inputs read + output written). Broadcast and transposed inputs are included because they are
// where a naive strided loop loses most.

import * as ts from '../lib';
import { runKernel } from '../lib/backend';
import { benchThreads, timeOurs } from './harness';
import { PeerCase, runNumpyPeer } from './peer';
import { printTable, Row } from './table';

interface Case {
  id: string;
  peer: PeerCase;
  bytes: number;
  make: () => () => void;
}

const N = 1 << 22; // 4M elements = 16 MB per float32 tensor: larger than cache
const M = 2048;

export function elementwiseCases(): Case[] {
  const f = (shape: number[]) => ts.keep(ts.randn(shape));
  const out = (shape: number[]) => ts.keep(ts.empty(shape));
  const binary = (op: string, sa: number[], sb: number[]) => {
    const a = f(sa);
    const b = f(sb);
    const shape = sa.length >= sb.length ? sa : sb;
    const o = out(shape);
    const bv = b.expand(shape);
    return () => runKernel(op, [a, bv, o]);
  };
  const unary = (op: string) => {
    const a = op === 'log' || op === 'sqrt' ? ts.keep(ts.rand([N], { low: 0.1, high: 2 })) : f([N]);
    const o = out([N]);
    return () => runKernel(op, [a, o]);
  };
  return [
    { id: 'add [4M] + [4M]', peer: { id: 'add', op: 'add', shapes: [[N], [N]] }, bytes: 12 * N, make: () => binary('add', [N], [N]) },
    { id: 'mul [2048,2048] * [2048]', peer: { id: 'mulb', op: 'mul', shapes: [[M, M], [M]] }, bytes: 8 * M * M, make: () => binary('mul', [M, M], [M]) },
    { id: 'exp [4M]', peer: { id: 'exp', op: 'exp', shapes: [[N]] }, bytes: 8 * N, make: () => unary('exp') },
    { id: 'tanh [4M]', peer: { id: 'tanh', op: 'tanh', shapes: [[N]] }, bytes: 8 * N, make: () => unary('tanh') },
    { id: 'relu [4M]', peer: { id: 'relu', op: 'relu', shapes: [[N]] }, bytes: 8 * N, make: () => unary('relu') },
    { id: 'log [4M]', peer: { id: 'log', op: 'log', shapes: [[N]] }, bytes: 8 * N, make: () => unary('log') },
    {
      id: 'contiguous() of [2048,2048]^T',
      peer: { id: 'tcopy', op: 'transpose_copy', shapes: [[M, M]] },
      bytes: 8 * M * M,
      make: () => {
        const a = f([M, M]);
        const o = out([M, M]);
        const t = a.T;
        return () => runKernel('copy', [t, o]);
      },
    },
  ];
}

export async function runElementwise(): Promise<string> {
  const threads = benchThreads();
  ts.setNumThreads(threads);
  const cases = elementwiseCases();
  const ours = await timeOurs(cases.map((c) => ({ id: c.id, fn: c.make() })));
  const peer = runNumpyPeer(cases.map((c) => c.peer), threads);
  const rows: Row[] = cases.map((c) => {
    const p = peer.times.get(c.peer.id);
    return { case: c.id, ours: c.bytes / ours.get(c.id)! / 1e9, peer: p ? c.bytes / p / 1e9 : null };
  });
  if (peer.error) console.log(peer.error);
  return printTable(`Elementwise, float32, ${threads} threads`, 'GB/s', peer.label, rows);
}

if (require.main === module) runElementwise().catch((e) => { console.error(e); process.exit(1); });
