// The native matmul kernel, checked directly (no TypeScript layer) against a float64 triple loop
// on every micro-kernel this CPU can run: test/ops/matmul_kernel_check.js does the work in child
// processes (one per instruction-set level, since the level is chosen once per process).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'child_process';
import * as path from 'path';

test('matmul kernel: thousands of shapes, layouts and betas match a float64 reference on every SIMD level', () => {
  const script = path.resolve(__dirname, '..', '..', '..', 'test', 'ops', 'matmul_kernel_check.js');
  const addon = process.env.TESSERA_ADDON ?? path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'tessera.node');
  const r = spawnSync(process.execPath, [script], { env: { ...process.env, TESSERA_ADDON: addon }, encoding: 'utf8' });
  const out = `${r.stdout}\n${r.stderr}`;
  const summary = out.split('\n').filter((l) => l.includes('checks,') || l.includes('matmul check'));
  console.log(summary.map((l) => '  ' + l.trim()).join('\n'));
  assert.is(r.status, 0, `matmul kernel check failed:\n${out.slice(-3000)}`);
  assert.ok(/all passed/.test(out), 'summary line present');
});

test.run();
