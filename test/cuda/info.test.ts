// Runs everywhere (with or without a GPU): what cudaInfo() reports, the clear error for a cuda
// tensor where no device is usable, and the moments of the random streams that CPU and CUDA share.
//
//   TESSERA_EXPECT_CUDA_COMPILED=1  fail unless the addon was built with nvcc
//   TESSERA_EXPECT_CUDA=1           fail unless a CUDA device is usable (implies the above)

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import { assertThrows, seedFor } from '../helpers/check';

const expectDevice = process.env.TESSERA_EXPECT_CUDA === '1';
const expectCompiled = expectDevice || process.env.TESSERA_EXPECT_CUDA_COMPILED === '1';

test('cudaInfo: shape of the report', () => {
  const info = ts.cudaInfo();
  console.log(
    `  cudaInfo: compiled=${info.compiled} deviceCount=${info.deviceCount}` +
      (info.deviceNames.length ? ` devices=[${info.deviceNames.join(', ')}]` : '') +
      (info.error ? ` error="${info.error}"` : ''),
  );
  assert.type(info.compiled, 'boolean');
  assert.type(info.deviceCount, 'number');
  assert.ok(Number.isInteger(info.deviceCount) && info.deviceCount >= 0, `deviceCount ${info.deviceCount}`);
  assert.ok(Array.isArray(info.deviceNames), 'deviceNames is an array');
  assert.is(info.deviceNames.length, info.deviceCount);
  for (const name of info.deviceNames) assert.ok(typeof name === 'string' && name.length > 0, `device name '${name}'`);
  assert.type(info.error, 'string');
  if (info.deviceCount === 0) assert.ok(info.error.length > 0, 'no device: cudaInfo().error says why');
  else assert.is(info.error, '');
  if (!info.compiled) assert.is(info.deviceCount, 0, 'an addon built without CUDA reports no devices');
  assert.is(ts.cudaAvailable(), info.deviceCount > 0);
});

test('cudaInfo: compiled with nvcc when the environment expects it', () => {
  const info = ts.cudaInfo();
  if (expectCompiled) assert.ok(info.compiled, 'TESSERA_EXPECT_CUDA(_COMPILED)=1 but the addon was built without CUDA');
  if (expectDevice) assert.ok(info.deviceCount > 0, `TESSERA_EXPECT_CUDA=1 but no usable device: ${info.error}`);
});

test('cuda tensors without a usable device: a clear error, nothing leaked', () => {
  if (ts.cudaAvailable()) return; // covered by parity.test.ts
  const compiled = ts.cudaInfo().compiled;
  const pattern = compiled ? 'no usable CUDA device' : 'built without CUDA';
  const before = ts.memoryStats();
  ts.scope(() => {
    assertThrows(() => ts.zeros([2, 3], { device: 'cuda' }), [pattern], 'zeros on cuda');
    assertThrows(() => ts.randn([4], { device: 'cuda' }), [pattern], 'randn on cuda');
    assertThrows(() => ts.tensor([1, 2, 3], { device: 'cuda' }), [pattern], 'tensor on cuda');
    const x = ts.randn([3, 4]);
    assertThrows(() => x.to('cuda'), [pattern], 'to(cuda)');
    assertThrows(() => ts.to(x, { device: 'cuda', dtype: 'float64' }), [pattern], 'to({device: cuda})');
  });
  const after = ts.memoryStats();
  assert.is(after.deviceBlocks, before.deviceBlocks, 'no device blocks counted');
  assert.is(after.hostBlocks, before.hostBlocks, 'no host blocks leaked');
});

// normal_from() (native/core/philox.h) computes log and cos itself so that CPU and CUDA streams
// agree bit for bit; check the distribution it makes on whatever device this machine has.
test('randn/rand moments (the Philox stream CPU and CUDA share)', () => {
  seedFor('randn moments');
  ts.scope(() => {
    const n = 1 << 20;
    for (const dtype of ['float32', 'float64'] as const) {
      const z = ts.randn([n], { dtype }).toTypedArray();
      let s1 = 0, s2 = 0, s3 = 0, s4 = 0;
      for (let i = 0; i < n; i++) {
        const v = z[i];
        s1 += v;
        s2 += v * v;
        s3 += v * v * v;
        s4 += v * v * v * v;
      }
      const mean = s1 / n, m2 = s2 / n;
      // Standard errors: mean 1e-3, E[z^2] 1.4e-3, E[z^3] 3.9e-3, E[z^4] 9e-3; allow ~5 sigma.
      assert.ok(Math.abs(mean) < 5e-3, `${dtype} randn mean ${mean}`);
      assert.ok(Math.abs(m2 - 1) < 7e-3, `${dtype} randn E[z^2] ${m2}`);
      assert.ok(Math.abs(s3 / n) < 2e-2, `${dtype} randn E[z^3] ${s3 / n}`);
      assert.ok(Math.abs(s4 / n - 3) < 5e-2, `${dtype} randn E[z^4] ${s4 / n}`);
      const u = ts.rand([n], { dtype, low: -2, high: 3 }).toTypedArray();
      let u1 = 0, lo = Infinity, hi = -Infinity;
      for (let i = 0; i < n; i++) {
        u1 += u[i];
        lo = Math.min(lo, u[i]);
        hi = Math.max(hi, u[i]);
      }
      assert.ok(lo >= -2 && hi < 3, `${dtype} rand range [${lo}, ${hi}]`);
      assert.ok(Math.abs(u1 / n - 0.5) < 1e-2, `${dtype} rand mean ${u1 / n}`);
    }
  });
});

test.run();
