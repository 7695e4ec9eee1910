// Read a module's parameters into the plain arrays the loop references take
// (test/helpers/nn_reference.ts).
import * as nn from '../../lib/nn';
import { flat } from './check';
import { BlockWeights, MHAWeights, MLPWeights } from './nn_reference';

const opt = (t: { toTypedArray(): ArrayLike<number> } | null) => (t ? Array.from(t.toTypedArray()) : null);

export function mhaWeights(m: nn.MultiHeadAttention): MHAWeights {
  return { dim: m.dim, heads: m.heads, inW: flat(m.in_proj.weight), inB: opt(m.in_proj.bias), outW: flat(m.out_proj.weight), outB: opt(m.out_proj.bias) };
}

export function mlpWeights(m: nn.MLP): MLPWeights {
  return {
    dim: m.fc1.inFeatures, hidden: m.fc1.outFeatures, out: m.fc2.outFeatures,
    w1: flat(m.fc1.weight), b1: opt(m.fc1.bias), w2: flat(m.fc2.weight), b2: opt(m.fc2.bias), activation: m.activation,
  };
}

export function blockWeights(b: nn.TransformerBlock): BlockWeights {
  const ln = (l: nn.LayerNorm): [number[], number[]] => [flat(l.weight!), flat(l.bias!)];
  return { ln1: ln(b.ln_1), attn: mhaWeights(b.attn), ln2: ln(b.ln_2), mlp: mlpWeights(b.mlp), eps: b.ln_1.eps };
}
