// Runs a peer library's timings for the same cases, in the same process run as ours, so the
// ratios compare like with like on this (shared, noisy) machine. The CPU peer is numpy on
// Debian's python3 (OpenBLAS for matmul); when it is missing the ratio column says why.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export interface PeerCase {
  id: string;
  op: string;
  shapes: number[][];
  dtype?: 'float32' | 'float64';
  axis?: number;
  reps?: number;
}

export interface PeerResult {
  times: Map<string, number>;
  label: string;
  error?: string;
}

const PYTHON = process.env.TESSERA_PEER_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

export function runNumpyPeer(cases: PeerCase[], threads: number): PeerResult {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'peers', 'numpy_ops.py');
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  // Some machines pin OpenBLAS to an older kernel set (OPENBLAS_CORETYPE=Haswell on ours, which
  // halves its speed on AVX-512 CPUs); let it detect the CPU unless the caller asks otherwise.
  delete env.OPENBLAS_CORETYPE;
  if (process.env.BENCH_OPENBLAS_CORETYPE) env.OPENBLAS_CORETYPE = process.env.BENCH_OPENBLAS_CORETYPE;
  const r = spawnSync(PYTHON, [script], { input: JSON.stringify(cases), env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || 'unknown error').trim().split('\n').slice(-1)[0];
    return { times: new Map(), label: 'numpy', error: `numpy peer unavailable (${why}); install python3-numpy and libopenblas0` };
  }
  const parsed = JSON.parse(r.stdout) as { times: Record<string, number>; numpy: string; blas: string };
  return { times: new Map(Object.entries(parsed.times)), label: `numpy ${parsed.numpy}${parsed.blas ? ' / ' + parsed.blas : ''}` };
}
