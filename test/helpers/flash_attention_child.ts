// Child process for test/ops/flash_attention.test.ts: measurements that need a fresh process.
//   memory <B> <H> <L> <hd> [causal]   one float32 forward + backward of flashAttention; prints
//       JSON {extraPeak, inputs, outputs}: the host peak (memoryStats().hostPeakBytes) above what
//       was live before the call, in a process whose peak has never been higher, so the number is
//       the op's own peak (outputs and gradients included).
//   kernels                            flashAttention against attentionReference (float64) over a
//       few shapes and masks, with whatever TESSERA_MATMUL_KERNEL / TESSERA_FA_BLOCK the parent
//       set (read once per process); prints JSON {worst: [label, relError][]}.
import * as ts from '../../lib';
import { flashAttention } from '../../lib/ops/flash_attention';
import { attentionReference } from '../../lib/nn/attention';
import { relError } from './check';

const [mode, ...rest] = process.argv.slice(2);

function memory(): void {
  const [B, H, L, hd] = rest.slice(0, 4).map(Number);
  const causal = rest[4] === 'causal';
  ts.manualSeed(1);
  const opts = { requiresGrad: true } as const;
  const q = ts.randn([B, H, L, hd], opts);
  const k = ts.randn([B, H, L, hd], opts);
  const v = ts.randn([B, H, L, hd], opts);
  const g = ts.randn([B, H, L, hd]);
  const before = ts.memoryStats();
  ts.scope(() => flashAttention(q, k, v, { causal }).backward(g));
  const after = ts.memoryStats();
  const grads = [q, k, v].every((t) => t.grad !== null && t.grad.toTypedArray().every(Number.isFinite));
  console.log(JSON.stringify({ extraPeak: after.hostPeakBytes - before.hostBytes, inputs: before.hostBytes, grads, peakBefore: before.hostPeakBytes }));
}

function kernels(): void {
  ts.manualSeed(2);
  const worst: [string, number][] = [];
  const shapes: [number, number, number, number, number][] = [[2, 2, 7, 130, 16], [1, 3, 130, 65, 64], [1, 1, 1, 9, 128], [2, 1, 97, 97, 33]];
  for (const dtype of ['float64', 'float32'] as const)
    for (const [B, H, Lq, Lk, hd] of shapes)
      for (const variant of ['none', 'causal', 'padding']) {
        const label = `${dtype} [${B},${H},${Lq},${Lk},${hd}] ${variant}`;
        ts.scope(() => {
          const mk = (l: number) => ts.randn([B, H, l, hd], { dtype: 'float64' });
          const [q, k, v] = [mk(Lq), mk(Lk), mk(Lk)];
          const go = ts.randn([B, H, Lq, hd], { dtype: 'float64' });
          const padData = Array.from({ length: B * Lk }, (_, i) => (i % Lk) % 3 === 2 || (i >= Lk && i < 2 * Lk) ? 1 : 0);
          const pad = variant === 'padding' ? ts.tensor(padData, { shape: [B, Lk] }) : null;
          const causal = variant === 'causal';
          const run = (f: typeof flashAttention | null, dt: 'float32' | 'float64') => {
            const xs = [q, k, v].map((t) => t.to(dt).detach());
            xs.forEach((t) => (t.requiresGrad = true));
            const o = f
              ? f(xs[0], xs[1], xs[2], { causal, keyPaddingMask: pad })
              : attentionReference(xs[0], xs[1], xs[2], { causal, mask: pad ? pad.reshape([B, 1, 1, Lk]) : null });
            o.backward(go.to(dt));
            return [o, ...xs.map((t) => t.grad!)].map((t) => Array.from(t.toTypedArray()));
          };
          const ref = run(null, 'float64');
          const got = run(flashAttention, dtype);
          worst.push([label, Math.max(...got.map((a, i) => relError(a, ref[i])))]);
        });
      }
  console.log(JSON.stringify({ worst }));
}

if (mode === 'memory') memory();
else if (mode === 'kernels') kernels();
else throw new Error(`flash_attention_child: unknown mode ${mode}`);
