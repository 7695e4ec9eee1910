// Weight-decay parameter groups, following OpenCLIP (open_clip_train/main.py):
//
//   exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
//
// so biases, LayerNorm/BatchNorm gains, 1-D tokens (ViT's class_embedding) and the CLIP
// temperature get no weight decay, and every matrix does (including positional_embedding and
// token_embedding.weight, which OpenCLIP decays). Names are substring-matched exactly as
// OpenCLIP does, on the dotted names Module.namedParameters() gives (which match OpenCLIP's).
// `excludeEmbeddings: true` additionally exempts position and class embeddings whatever their
// rank (timm's no_weight_decay convention: pos_embed, cls_token, positional_embedding,
// class_embedding). The no-decay group comes first, as in OpenCLIP, so parameter indices (and
// optimizer state keys) line up with an OpenCLIP optimizer built the same way.

import { Module } from '../nn/module';
import { Tensor } from '../tensor';
import { ParamGroup } from './optimizer';

export interface DecayGroupOptions {
  /** Also exclude position/class embeddings of any rank (default false: OpenCLIP's rule). */
  excludeEmbeddings?: boolean;
}

const EMBEDDING_TOKENS = ['positional_embedding', 'class_embedding', 'pos_embed', 'cls_token'];

/** True if the parameter `name` / `p` gets weight decay under OpenCLIP's rule (plus options). */
export function shouldDecay(name: string, p: Tensor, opts: DecayGroupOptions = {}): boolean {
  if (p.ndim < 2) return false;
  if (name.includes('bn') || name.includes('ln') || name.includes('bias') || name.includes('logit_scale')) return false;
  if (opts.excludeEmbeddings) {
    const last = name.split('.').pop() ?? name;
    if (EMBEDDING_TOKENS.some((t) => last.includes(t))) return false;
  }
  return true;
}

/**
 * Two groups over model's parameters: `[{ params: noDecay, weightDecay: 0 }, { params: decay,
 * weightDecay }]`, each in namedParameters() order. Either group may be empty.
 */
export function decayGroups(model: Module, weightDecay: number, opts: DecayGroupOptions = {}): ParamGroup[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [name, p] of model.namedParameters()) (shouldDecay(name, p, opts) ? decay : noDecay).push(p);
  return [
    { params: noDecay, weightDecay: 0, name: 'no_decay' },
    { params: decay, weightDecay, name: 'decay' },
  ];
}
