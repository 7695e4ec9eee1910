// GPU matmul throughput: tessera's CUDA matmul (native/cuda/matmul.cu) vs torch.matmul, square
// float32 / float64 sizes up to 4096^3, TFLOP/s = 2 n^3 / t. Runs ON the GPU machine.
//
//   bash bench/gpu/pack.sh                                 (here: builds .carry with dist/bench)
//   device tool, carry [".carry"]:
//     xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && \
//     TESSERA_ADDON=$PWD/.carry/tessera.node NODE_PATH=$PWD/.carry/node_modules \
//     /tmp/node .carry/dist/bench/gpu/matmul_bench.js [sizes...]
//
// Ours is timed on a preallocated output through the 'matmul' kernel (what ts.matmul runs, minus
// the output allocation), `iters` launches between two device synchronizations, best of 5 rounds.
// torch (python3 with torch, if present; set PYTHON to choose the interpreter) is timed the same
// way with torch.cuda.synchronize(), for TF32 (allow_tf32 = True) and full float32 (False), and
// float64. Ratios >= 0.6 of torch's TF32 are the target at 4096^3 (torch uses cuBLAS).
import { spawnSync } from 'child_process';
import * as ts from '../../lib';
import { addon, runKernel } from '../../lib/backend';

type Mode = 'tf32' | 'fp32';

function timeOurs(n: number, dtype: 'float32' | 'float64', mode: Mode): number {
  process.env.TESSERA_CUDA_MATMUL = mode;
  return ts.scope(() => {
    const a = ts.randn([1, n, n], { dtype, device: 'cuda' });
    const b = ts.randn([1, n, n], { dtype, device: 'cuda' });
    const out = ts.zeros([1, n, n], { dtype, device: 'cuda' });
    const iters = Math.max(3, Math.min(50, Math.round(4e11 / (2 * n ** 3))));
    for (let i = 0; i < 3; i++) runKernel('matmul', [a, b, out], [0]);
    addon.cudaSynchronize();
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters; i++) runKernel('matmul', [a, b, out], [0]);
      addon.cudaSynchronize();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9 / iters);
    }
    return best;
  });
}

const TORCH = `
import json, sys, time
import torch
sizes = json.loads(sys.argv[1])
res = {}
for n in sizes:
    for name, dtype, tf32 in [("tf32", torch.float32, True), ("fp32", torch.float32, False), ("f64", torch.float64, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        out = torch.empty(n, n, device="cuda", dtype=dtype)
        iters = max(3, min(50, round(4e11 / (2 * n ** 3))))
        for _ in range(3): torch.matmul(a, b, out=out)
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(iters): torch.matmul(a, b, out=out)
            torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t0) / iters)
        res[f"{n}/{name}"] = best
print(json.dumps({"torch": torch.__version__, "times": res}))
`;

function timeTorch(sizes: number[]): { label: string; times: Record<string, number> } | string {
  const py = process.env.PYTHON ?? 'python3';
  const r = spawnSync(py, ['-c', TORCH, JSON.stringify(sizes)], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) return `torch not timed (${py}: ${r.error?.message ?? r.stderr.trim().split('\n').pop()})`;
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { label: `torch ${j.torch}`, times: j.times };
}

function main(): void {
  const info = ts.cudaInfo();
  if (info.deviceCount === 0) {
    console.log(`matmul_bench: no usable CUDA device (${info.error})`);
    process.exit(2);
  }
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  if (!sizes.length) sizes.push(1024, 2048, 4096);
  console.log(`matmul on ${info.deviceNames[0]}, square n x n x n, TFLOP/s = 2 n^3 / t`);
  const torch = timeTorch(sizes);
  if (typeof torch === 'string') console.log(torch);
  const tflops = (n: number, t: number | undefined): string => (t ? ((2 * n ** 3) / t / 1e12).toFixed(1) : '-');
  console.log(`${'case'.padEnd(22)}${'ours'.padStart(10)}${'torch'.padStart(10)}${'ours/torch'.padStart(12)}`);
  for (const n of sizes) {
    const rows: [string, 'float32' | 'float64', Mode, string][] = [
      ['float32 tf32', 'float32', 'tf32', 'tf32'],
      ['float32 fp32', 'float32', 'fp32', 'fp32'],
      ['float64', 'float64', 'fp32', 'f64'],
    ];
    for (const [name, dtype, mode, key] of rows) {
      if (dtype === 'float64' && n > 4096) continue;
      const ours = timeOurs(n, dtype, mode);
      const theirs = typeof torch === 'string' ? undefined : torch.times[`${n}/${key}`];
      const ratio = theirs ? (theirs / ours).toFixed(2) : '-';
      console.log(`${`${n}^3 ${name}`.padEnd(22)}${tflops(n, ours).padStart(10)}${tflops(n, theirs).padStart(10)}${ratio.padStart(12)}`);
    }
  }
  if (typeof torch !== 'string') console.log(`(torch: ${torch.label}, cuBLAS)`);
}

main();
