// Per-kernel time of the training step of bench/train_step.bench.ts: wraps every native op of
// the addon with a timer (by op name, and by op name + shapes), runs a few steps and prints the
// table of where the time goes, plus the JS (non-kernel) remainder.
//   TESSERA_ADDON=... node dist/bench/profile_train_step.js [steps] [--shapes]

import * as ts from '../lib';
import { addon } from '../lib/backend';
import { benchThreads } from './harness';
import { makeTrainer } from './train_step.bench';

const steps = Number(process.argv[2] ?? 5);
const byShape = process.argv.includes('--shapes');
ts.setNumThreads(benchThreads());
const tr = makeTrainer();
for (let i = 0; i < 3; i++) tr.step();

const stats = new Map<string, { n: number; t: number }>();
let enabled = false;
for (const [name, fn] of Object.entries(addon.ops)) {
  addon.ops[name] = (storages, layout, scalars) => {
    if (!enabled) return fn(storages, layout, scalars);
    const t0 = process.hrtime.bigint();
    fn(storages, layout, scalars);
    const dt = Number(process.hrtime.bigint() - t0) / 1e6;
    let key = name;
    if (byShape) {
      // decode shapes from the layout: per tensor [dtype, device, offset, ndim, shape..., strides...]
      const parts: string[] = [];
      for (let p = 0; p < layout.length; ) {
        const nd = layout[p + 3];
        const sh = Array.from(layout.slice(p + 4, p + 4 + nd));
        const st = Array.from(layout.slice(p + 4 + nd, p + 4 + 2 * nd));
        parts.push(`[${sh.join(',')}]${st.length ? '/' + st.join(',') : ''}`);
        p += 4 + 2 * nd;
      }
      key += ' ' + parts.join(' ');
    }
    const s = stats.get(key) ?? { n: 0, t: 0 };
    s.n++;
    s.t += dt;
    stats.set(key, s);
  };
}
enabled = true;
const t0 = process.hrtime.bigint();
for (let i = 0; i < steps; i++) tr.step();
const total = Number(process.hrtime.bigint() - t0) / 1e6 / steps;
enabled = false;
let kernels = 0;
const rows = [...stats.entries()].map(([k, s]) => ({ k, n: s.n / steps, t: s.t / steps })).sort((a, b) => b.t - a.t);
for (const r of rows) kernels += r.t;
console.log(`step ${total.toFixed(1)} ms; kernels ${kernels.toFixed(1)} ms; JS + N-API ${(total - kernels).toFixed(1)} ms; ${rows.reduce((a, r) => a + r.n, 0)} kernel calls/step`);
for (const r of rows.slice(0, Number(process.env.TOP ?? 40))) console.log(`${r.t.toFixed(2).padStart(8)} ms ${String(r.n).padStart(5)}x  ${r.k}`);
tr.dispose();
