// nn layers: Linear, Embedding, LayerNorm, Dropout, MLP, ModuleList. Names and shapes of the
// registered tensors, forwards against plain float64 JS references, gradients by central
// differences, dropout switched off by eval(), and state-dict round trips between instances.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ts from '../../lib';
import * as nn from '../../lib/nn';
import { assertClose, assertThrows, flat, gradcheck, seedFor } from '../helpers/check';
import { activations as act, layerNormRef, linearRef } from '../helpers/nn_reference';

const f64 = { dtype: 'float64' } as const;

const names = (m: nn.Module) => m.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`);

test('Linear: names, shapes, forward against the reference (2-D, 3-D, 1-D, no bias, float32)', () => {
  seedFor('Linear forward');
  const lin = new nn.Linear(5, 3, f64);
  assert.equal(names(lin), ['weight [3, 5]', 'bias [3]']);
  const nb = new nn.Linear(5, 3, { bias: false, ...f64 });
  assert.equal(names(nb), ['weight [3, 5]']);
  assert.is(nb.bias, null);
  ts.scope(() => {
    const w = flat(lin.weight);
    const b = flat(lin.bias as ts.Tensor);
    const x = ts.randn([2, 4, 5], f64);
    const y = lin.forward(x);
    assert.equal([...y.shape], [2, 4, 3]);
    assertClose(flat(y), linearRef(flat(x), 8, w, 3, 5, b), 1e-12, 1e-12, 'Linear 3-D');
    const x2 = ts.randn([5, 7], f64).T; // non-contiguous [7, 5]
    assertClose(flat(lin.forward(x2)), linearRef(flat(x2), 7, w, 3, 5, b), 1e-12, 1e-12, 'Linear transposed input');
    const x1 = ts.randn([5], f64);
    const y1 = lin.forward(x1);
    assert.equal([...y1.shape], [3]);
    assertClose(flat(y1), linearRef(flat(x1), 1, w, 3, 5, b), 1e-12, 1e-12, 'Linear 1-D');
    assertClose(flat(nb.forward(x)), linearRef(flat(x), 8, flat(nb.weight), 3, 5, null), 1e-12, 1e-12, 'Linear no bias');
    const l32 = new nn.Linear(5, 3);
    const x32 = ts.randn([4, 5]);
    assertClose(flat(l32.forward(x32)), linearRef(flat(x32), 4, flat(l32.weight), 3, 5, flat(l32.bias as ts.Tensor)), 1e-5, 1e-5, 'Linear float32');
    assertThrows(() => lin.forward(ts.randn([2, 4], f64)), ['Linear(5 -> 3)', 'last dim 5'], 'wrong width');
    gradcheck('Linear', (a) => lin.forward(a), [ts.randn([2, 3, 5], f64), lin.weight, lin.bias as ts.Tensor]);
  });
  lin.dispose();
  nb.dispose();
});

test('Embedding and LayerNorm modules', () => {
  seedFor('Embedding LayerNorm');
  const emb = new nn.Embedding(7, 3, f64);
  assert.equal(names(emb), ['weight [7, 3]']);
  const ln = new nn.LayerNorm(4, { eps: 1e-3, ...f64 });
  assert.equal(names(ln), ['weight [4]', 'bias [4]']);
  assert.equal(names(new nn.LayerNorm([2, 3], { elementwiseAffine: false })), []);
  assert.equal(names(new nn.LayerNorm(3, { bias: false })), ['weight [3]']);
  ts.scope(() => {
    const ids = ts.tensor([[6, 0], [2, 2]], { dtype: 'int32' });
    const e = emb.forward(ids);
    assert.equal([...e.shape], [2, 2, 3]);
    const w = flat(emb.weight);
    assert.equal(flat(e), [6, 0, 2, 2].flatMap((i) => w.slice(3 * i, 3 * i + 3)));
    // LayerNorm with non-trivial affine parameters
    ln.weight!.copy_(ts.tensor([1, 2, -1, 0.5], f64));
    ln.bias!.copy_(ts.tensor([0, 1, 2, 3], f64));
    const x = ts.randn([3, 4], f64);
    const ref = layerNormRef(flat(x), 3, 4, [1, 2, -1, 0.5], [0, 1, 2, 3], 1e-3);
    assertClose(flat(ln.forward(x)), ref, 1e-12, 1e-12, 'LayerNorm module');
  });
  emb.dispose();
  ln.dispose();
});

test('Dropout: identity in eval, drops in training, follows the parent module', () => {
  seedFor('Dropout module');
  ts.scope(() => {
    const d = new nn.Dropout(0.5);
    const x = ts.ones([1000]);
    const y = d.forward(x);
    const zeros = flat(y).filter((v) => v === 0).length;
    assert.ok(zeros > 400 && zeros < 600, `about half dropped (${zeros})`);
    assert.ok(flat(y).every((v) => v === 0 || v === 2), 'survivors scaled by 2');
    d.eval();
    assert.is(d.forward(x), x, 'eval returns x itself');
    assertThrows(() => new nn.Dropout(1.5), ['Dropout', 'p'], 'bad p');
    // train/eval propagate through children
    const mlp = new nn.MLP(4, 8, { dropout: 0.5 });
    mlp.eval();
    assert.ok(!mlp.training && !mlp.fc1.training && !mlp.fc2.training, 'eval propagates');
    const xi = ts.randn([3, 4]);
    assert.equal(flat(mlp.forward(xi)), flat(mlp.forward(xi)), 'MLP deterministic in eval');
    mlp.train();
    assert.not.equal(flat(mlp.forward(xi)), flat(mlp.forward(xi)), 'MLP stochastic in training');
    mlp.dispose();
  });
});

test('MLP: fc1/fc2 names, forward against the reference for each activation, gradients', () => {
  seedFor('MLP forward');
  ts.scope(() => {
    for (const activation of ['gelu', 'gelu_tanh', 'relu'] as const) {
      const mlp = new nn.MLP(4, 6, { activation, ...f64 });
      assert.equal(names(mlp), ['fc1.weight [6, 4]', 'fc1.bias [6]', 'fc2.weight [4, 6]', 'fc2.bias [4]']);
      const x = ts.randn([2, 3, 4], f64);
      const h = linearRef(flat(x), 6, flat(mlp.fc1.weight), 6, 4, flat(mlp.fc1.bias as ts.Tensor)).map(act[activation]);
      const ref = linearRef(h, 6, flat(mlp.fc2.weight), 4, 6, flat(mlp.fc2.bias as ts.Tensor));
      assertClose(flat(mlp.forward(x)), ref, 1e-12, 1e-12, `MLP ${activation}`);
      gradcheck(`MLP ${activation}`, (a) => mlp.forward(a), [x, ...mlp.parameters()]);
      mlp.dispose();
    }
    const wide = new nn.MLP(4, 6, { outDim: 2, bias: false });
    assert.equal(names(wide), ['fc1.weight [6, 4]', 'fc2.weight [2, 6]']);
    assert.equal([...wide.forward(ts.randn([5, 4])).shape], [5, 2]);
    wide.dispose();
    assertThrows(() => new nn.MLP(4, 6, { activation: 'swish' as nn.Activation }), ['MLP', 'activation'], 'bad activation');
  });
});

test('ModuleList: indexed names, iteration, at()', () => {
  const list = new nn.ModuleList([new nn.Linear(2, 2), new nn.LayerNorm(2)]);
  list.append(new nn.Linear(2, 1, { bias: false }));
  assert.is(list.length, 3);
  assert.equal(list.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '1.weight', '1.bias', '2.weight']);
  assert.ok(list.at(-1) instanceof nn.Linear);
  assert.is([...list].length, 3);
  assert.throws(() => list.at(3), /out of range/);
  list.dispose();
});

test('stateDict / loadStateDict round trip between two instances', () => {
  seedFor('state dict layers');
  ts.scope(() => {
    const a = new nn.MLP(4, 8, { activation: 'gelu_tanh' });
    const b = new nn.MLP(4, 8, { activation: 'gelu_tanh' });
    const x = ts.randn([3, 4]);
    assert.not.equal(flat(a.forward(x)), flat(b.forward(x)), 'different before loading');
    b.loadStateDict(a.stateDict());
    assert.equal(flat(b.forward(x)), flat(a.forward(x)), 'identical after loading');
    // the tensors are copied, not shared
    assert.ok(b.fc1.weight !== a.fc1.weight);
    // converted across dtypes
    const c = new nn.MLP(4, 8, { activation: 'gelu_tanh', ...f64 });
    c.loadStateDict(a.stateDict());
    assertClose(flat(c.forward(x.to('float64'))), flat(a.forward(x)), 1e-5, 1e-5, 'loaded into float64');
    // mismatched architectures are reported
    const d = new nn.MLP(4, 6);
    assertThrows(() => d.loadStateDict(a.stateDict()), ['mis-shaped', 'fc1.weight'], 'mis-shaped');
    const e = new nn.MLP(4, 8, { bias: false });
    assertThrows(() => e.loadStateDict(a.stateDict()), ['unexpected keys', 'fc1.bias'], 'unexpected');
    for (const m of [a, b, c, d, e]) m.dispose();
  });
});

test.run();
