// scaledDotProductAttention and MultiHeadAttention against a float64 loop reference (no mask,
// broadcast masks, key padding, causal with Lq != Lk, both together, custom scale), the masking
// guarantees (a blocked key or a future token cannot change an output), fully blocked rows
// (zero attention output and finite, zero gradients, never NaN), gradients by central
// differences, attention dropout only in training, the causal-mask cache, and argument errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { scaledDotProductAttention, causalMask } from '../../lib/nn/attention';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';
import { mhaRef, sdpaRef } from '../helpers/nn_reference';
import { mhaWeights } from '../helpers/nn_weights';

const f64 = { dtype: 'float64' } as const;

/** The module version of mhaRef. */
const mhaRefOf = (m: nn.MultiHeadAttention, x: number[], b: number, l: number, kpm: number[] | null, causal: boolean) =>
  mhaRef(mhaWeights(m), x, b, l, kpm, causal);

const noNaN = (xs: number[], what: string) => assert.ok(xs.every(Number.isFinite), `${what}: non-finite values`);

test('scaledDotProductAttention matches the loop reference (masks, causal, Lq != Lk, scale)', () => {
  seedFor('sdpa reference');
  ts.scope(() => {
    const [B, H, LQ, LK, HD, HDV] = [2, 2, 4, 6, 3, 5];
    const q = ts.randn([B, H, LQ, HD], f64);
    const k = ts.randn([B, H, LK, HD], f64);
    const v = ts.randn([B, H, LK, HDV], f64);
    const [qv, kv, vv] = [q, k, v].map(flat);
    const n = B * H;
    const check = (opts: nn.AttentionOptions, blocked: (n: number, i: number, j: number) => boolean, what: string, scale?: number) => {
      const out = scaledDotProductAttention(q, k, v, opts);
      assert.equal([...out.shape], [B, H, LQ, HDV], `${what}: shape`);
      const got = flat(out);
      noNaN(got, what);
      assertClose(got, sdpaRef(qv, kv, vv, n, LQ, LK, HD, HDV, blocked, scale), 1e-12, 1e-12, what);
    };
    check({}, () => false, 'no mask');
    check({ scale: 0.3 }, () => false, 'scale', 0.3);
    // key padding [B, 1, 1, LK]: batch 0 pads keys 4, 5; batch 1 pads key 0
    const pad = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0];
    const padMask = ts.tensor(pad, { shape: [B, 1, 1, LK] });
    const padBlocked = (nn_: number, _i: number, j: number) => pad[Math.floor(nn_ / H) * LK + j] === 1;
    check({ mask: padMask }, padBlocked, 'key padding');
    check({ mask: ts.tensor(pad, { shape: [B, 1, 1, LK], dtype: 'int32' }) }, padBlocked, 'int32 key padding');
    // causal, top-left aligned for Lq != Lk
    check({ causal: true }, (_n, i, j) => j > i, 'causal');
    check({ causal: true, mask: padMask }, (nn_, i, j) => j > i || padBlocked(nn_, i, j), 'causal + padding (batch 1 query 0 fully blocked)');
    // a per-query [LQ, LK] mask with a fully blocked row 2, broadcast over B and H
    const m2: number[] = [];
    for (let i = 0; i < LQ; i++) for (let j = 0; j < LK; j++) m2.push(i === 2 || (i + j) % 3 === 0 ? 1 : 0);
    check({ mask: ts.tensor(m2, { shape: [LQ, LK], ...f64 }) }, (_n, i, j) => m2[i * LK + j] === 1, 'per-query mask with a fully blocked row');
    // fully blocked rows come out exactly zero
    const z = flat(scaledDotProductAttention(q, k, v, { mask: ts.tensor(m2, { shape: [LQ, LK], ...f64 }) }));
    for (let t = 0; t < n; t++) for (let c = 0; c < HDV; c++) assert.is(z[(t * LQ + 2) * HDV + c], 0, 'blocked row is zero');
    // a fully masked problem: all zeros, no NaN
    const all = flat(scaledDotProductAttention(q, k, v, { mask: ts.ones([1]) }));
    assert.ok(all.every((x) => x === 0), 'everything blocked -> zeros');
    // float32
    const out32 = scaledDotProductAttention(q.to('float32'), k.to('float32'), v.to('float32'), { causal: true, mask: padMask });
    assert.is(out32.dtype, 'float32');
    assertClose(flat(out32), sdpaRef(qv, kv, vv, n, LQ, LK, HD, HDV, (nn_, i, j) => j > i || padBlocked(nn_, i, j)), 1e-4, 1e-5, 'float32');
  });
});

test('MultiHeadAttention: names, forward against the loop reference with and without masks', () => {
  seedFor('mha reference');
  const mha = new nn.MultiHeadAttention(6, 2, f64);
  assert.equal(mha.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`),
    ['in_proj.weight [18, 6]', 'in_proj.bias [18]', 'out_proj.weight [6, 6]', 'out_proj.bias [6]']);
  assert.equal(new nn.MultiHeadAttention(6, 3, { bias: false }).namedParameters().map(([n]) => n), ['in_proj.weight', 'out_proj.weight']);
  // non-zero biases so their roles are checked too
  nn.init.normal_(mha.in_proj.bias!, 0, 0.5);
  nn.init.normal_(mha.out_proj.bias!, 0, 0.5);
  ts.scope(() => {
    const [B, L] = [3, 5];
    const x = ts.randn([B, L, 6], f64);
    const xv = flat(x);
    // right padding, none, left padding (row 0 fully blocked under causal)
    const pad = [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0];
    const kpm = ts.tensor(pad, { shape: [B, L], dtype: 'int32' });
    for (const causal of [false, true])
      for (const mask of [null, kpm]) {
        const what = `MHA causal=${causal} padding=${mask !== null}`;
        const y = mha.forward(x, { causal, keyPaddingMask: mask });
        assert.equal([...y.shape], [B, L, 6]);
        noNaN(flat(y), what);
        assertClose(flat(y), mhaRefOf(mha, xv, B, L, mask ? pad : null, causal), 1e-11, 1e-12, what);
      }
    // float masks work the same
    assertClose(flat(mha.forward(x, { keyPaddingMask: kpm.to('float32') })), mhaRefOf(mha, xv, B, L, pad, false), 1e-11, 1e-12, 'float mask');
    // float32 module
    const m32 = new nn.MultiHeadAttention(6, 3);
    const x32 = x.to('float32');
    assertClose(flat(m32.forward(x32, { causal: true, keyPaddingMask: kpm })), mhaRefOf(m32, flat(x32), B, L, pad, true), 1e-4, 1e-5, 'float32 MHA');
    m32.dispose();
    assertThrows(() => mha.forward(x, { keyPaddingMask: ts.zeros([B, L + 1]) }), ['keyPaddingMask', `[${B}, ${L}]`], 'kpm shape');
    assertThrows(() => mha.forward(ts.randn([B, L, 4], f64)), ['MultiHeadAttention', '[B, L, 6]'], 'x width');
  });
  assertThrows(() => new nn.MultiHeadAttention(6, 4), ['MultiHeadAttention', 'multiple of heads'], 'heads must divide dim');
  mha.dispose();
});

test('a blocked key or a future token cannot change an output', () => {
  seedFor('mha masking');
  const mha = new nn.MultiHeadAttention(8, 2, f64);
  ts.scope(() => {
    const [B, L] = [2, 6];
    const x = ts.randn([B, L, 8], f64);
    // key padding: positions 4, 5 of batch 0 and 5 of batch 1 are padding
    const pad = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1];
    const kpm = ts.tensor(pad, { shape: [B, L] });
    const x2 = x.clone();
    x2.select(0, 0).slice(0, 4).copy_(ts.randn([2, 8], { ...f64, std: 10 }));
    x2.select(0, 1).slice(0, 5).copy_(ts.randn([1, 8], { ...f64, std: 10 }));
    const y1 = flat(mha.forward(x, { keyPaddingMask: kpm }));
    const y2 = flat(mha.forward(x2, { keyPaddingMask: kpm }));
    for (let b = 0; b < B; b++)
      for (let t = 0; t < L; t++) {
        const row = (a: number[]) => a.slice((b * L + t) * 8, (b * L + t + 1) * 8);
        if (pad[b * L + t]) assert.not.equal(row(y2), row(y1), `padded query (${b}, ${t}) sees its own new input`);
        else assertClose(row(y2), row(y1), 0, 1e-13, `real position (${b}, ${t}) unchanged by padded keys`);
      }
    // causal: changing the token at position 3 leaves positions 0..2 unchanged
    const x3 = x.clone();
    x3.slice(1, 3, 4).copy_(ts.randn([B, 1, 8], { ...f64, std: 10 }));
    const c1 = flat(mha.forward(x, { causal: true }));
    const c3 = flat(mha.forward(x3, { causal: true }));
    for (let b = 0; b < B; b++)
      for (let t = 0; t < L; t++) {
        const row = (a: number[]) => a.slice((b * L + t) * 8, (b * L + t + 1) * 8);
        if (t < 3) assertClose(row(c3), row(c1), 0, 1e-13, `causal position (${b}, ${t}) unchanged by a later token`);
        else assert.not.equal(row(c3), row(c1), `causal position (${b}, ${t}) depends on token 3`);
      }
  });
  mha.dispose();
});

test('fully blocked rows: output = out_proj.bias, finite zero gradients, no NaN', () => {
  seedFor('mha fully masked');
  const mha = new nn.MultiHeadAttention(4, 2, f64);
  nn.init.normal_(mha.out_proj.bias!, 0, 1);
  ts.scope(() => {
    const x = ts.randn([2, 3, 4], { ...f64, requiresGrad: true });
    const kpm = ts.tensor([[1, 1, 1], [0, 0, 1]]); // batch 0: every key is padding
    const y = mha.forward(x, { keyPaddingMask: kpm });
    const yv = flat(y);
    noNaN(yv, 'forward');
    const bias = flat(mha.out_proj.bias!);
    for (let t = 0; t < 3; t++) assertClose(yv.slice(t * 4, t * 4 + 4), bias, 0, 1e-15, `batch 0 position ${t} is out_proj.bias`);
    y.mul(y).sum().backward();
    const gx = flat(x.grad!);
    noNaN(gx, 'x.grad');
    assert.ok(gx.slice(0, 12).every((g) => g === 0), 'no gradient reaches a fully padded sequence');
    assert.ok(gx.slice(12).some((g) => g !== 0), 'the other sequence gets gradients');
    for (const [n, p] of mha.namedParameters()) noNaN(flat(p.grad!), `${n}.grad`);
  });
  mha.zeroGrad();
  mha.dispose();
});

test('gradients through scaledDotProductAttention and MultiHeadAttention match central differences', () => {
  seedFor('mha gradcheck');
  ts.scope(() => {
    const q = ts.randn([2, 3, 2], f64);
    const k = ts.randn([2, 4, 2], f64);
    const v = ts.randn([2, 4, 3], f64);
    const mask = ts.tensor([[0, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], f64); // row 1 fully blocked
    gradcheck('sdpa', (a, b, c) => scaledDotProductAttention(a, b, c), [q, k, v]);
    gradcheck('sdpa mask + causal', (a, b, c) => scaledDotProductAttention(a, b, c, { mask, causal: true }), [q, k, v]);
    const mha = new nn.MultiHeadAttention(4, 2, f64);
    nn.init.normal_(mha.in_proj.bias!, 0, 0.3);
    const x = ts.randn([2, 3, 4], f64);
    gradcheck('MHA', (a) => mha.forward(a), [x, ...mha.parameters()]);
    const kpm = ts.tensor([[1, 0, 0], [0, 0, 1]]); // batch 0, query 0 fully blocked under causal
    gradcheck('MHA causal + padding', (a) => mha.forward(a, { causal: true, keyPaddingMask: kpm }), [x, ...mha.parameters()]);
    mha.dispose();
  });
});

test('attention dropout: only in training, reproducible under manualSeed', () => {
  seedFor('mha dropout');
  const mha = new nn.MultiHeadAttention(8, 2, { dropout: 0.5, ...f64 });
  ts.scope(() => {
    const x = ts.randn([2, 5, 8], f64);
    mha.eval();
    assertClose(flat(mha.forward(x)), mhaRefOf(mha, flat(x), 2, 5, null, false), 1e-11, 1e-12, 'eval = no dropout');
    mha.train();
    ts.manualSeed(5);
    const a = flat(mha.forward(x));
    const b = flat(mha.forward(x));
    ts.manualSeed(5);
    assert.equal(flat(mha.forward(x)), a, 'reproducible');
    assert.not.equal(a, b, 'stochastic in training');
    assert.not.equal(a, mhaRefOf(mha, flat(x), 2, 5, null, false));
    // p = 1 drops every probability: the attention output is zero
    const q = ts.randn([1, 2, 3], f64);
    assert.ok(flat(scaledDotProductAttention(q, q, q, { dropout: 1 })).every((t) => t === 0), 'p = 1');
    assertThrows(() => scaledDotProductAttention(q, q, q, { dropout: 2 }), ['scaledDotProductAttention', 'dropout'], 'bad p');
  });
  mha.dispose();
});

test('causal mask is cached per (Lq, Lk, dtype, device); shape errors', () => {
  const before = ts.memoryStats().hostBlocks;
  const m = causalMask(3, 4, 'float32', 'cpu');
  assert.equal(m.toArray(), [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]);
  assert.is(causalMask(3, 4, 'float32', 'cpu'), m, 'same tensor');
  ts.scope(() => causalMask(3, 4, 'float32', 'cpu')); // a scope does not free it
  assert.ok(!m.isDisposed);
  assert.ok(causalMask(3, 4, 'float64', 'cpu') !== m);
  assert.ok(ts.memoryStats().hostBlocks - before <= 2);
  nn.clearCausalMaskCache();
  assert.ok(m.isDisposed);
  ts.scope(() => {
    const q = ts.randn([2, 3, 4]);
    assertThrows(() => scaledDotProductAttention(q, ts.randn([2, 3, 5]), q), ['scaledDotProductAttention', 'same last dim'], 'hd');
    assertThrows(() => scaledDotProductAttention(q, q, ts.randn([2, 2, 4])), ['scaledDotProductAttention', 'number of keys'], 'lk');
    assertThrows(() => scaledDotProductAttention(q, q, q, { mask: ts.zeros([2, 2]) }), ['mask', 'broadcast'], 'mask shape');
  });
});

test.run();
