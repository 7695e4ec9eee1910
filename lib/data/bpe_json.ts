// BpeTokenizer <-> the Hugging Face tokenizer.json layout ({version, added_tokens, normalizer,
// pre_tokenizer, post_processor, decoder, model: {type: 'BPE', vocab, merges}}).
//
// Why this shape: the file stays loadable by the `tokenizers` library (byte-level BPE with
// GPT-2's pre-tokenizer), and the roles of the special tokens are stored in HF's own places:
// <bos>/<eos> in the TemplateProcessing post-processor, <pad> in `padding`; <mask> has no HF
// slot and is found by name among the added tokens ('<mask>', or any special token containing
// "mask"). Every problem names the file it came from.

import { TesseraError } from '../errors';

/** A tokenizer file that cannot be read or does not have the expected layout. */
export class TokenizerFormatError extends TesseraError {}

export interface SpecialTokenNames { pad: string; bos: string; eos: string; mask: string }

/** What a tokenizer file holds: vocabulary, merges in rank order, special token names, lowercasing. */
export interface TokenizerSpec {
  vocab: Map<string, number>;
  merges: [string, string][];
  specials: SpecialTokenNames;
  lowercase: boolean;
}

/** The parts of a tokenizer that are written out. */
export interface TokenizerContents {
  tokens: readonly string[];
  merges: readonly (readonly [string, string])[];
  padId: number;
  bosId: number;
  eosId: number;
  maskId: number;
  lowercase: boolean;
}

/** The Hugging Face tokenizer.json layout read and written here. */
export interface TokenizerJson {
  version: string;
  truncation: null;
  padding: { strategy: string; direction: string; pad_to_multiple_of: null; pad_id: number; pad_type_id: number; pad_token: string } | null;
  added_tokens: { id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean }[];
  normalizer: { type: string } | null;
  pre_tokenizer: { type: string; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  post_processor: {
    type: 'TemplateProcessing';
    single: object[];
    pair: object[];
    special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }>;
  } | null;
  decoder: { type: string; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  model: {
    type: 'BPE'; dropout: null; unk_token: null; continuing_subword_prefix: null; end_of_word_suffix: null;
    fuse_unk: boolean; byte_fallback: boolean; ignore_merges: boolean; vocab: Record<string, number>; merges: string[];
  };
}

export function toTokenizerJson(t: TokenizerContents): TokenizerJson {
  const sp = { pad: t.tokens[t.padId], bos: t.tokens[t.bosId], eos: t.tokens[t.eosId], mask: t.tokens[t.maskId] };
  const special = [t.padId, t.bosId, t.eosId, t.maskId].sort((a, b) => a - b);
  const vocab: Record<string, number> = {};
  t.tokens.forEach((tok, id) => (vocab[tok] = id));
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: { strategy: 'BatchLongest', direction: 'Right', pad_to_multiple_of: null, pad_id: t.padId, pad_type_id: 0, pad_token: sp.pad },
    added_tokens: special.map((id) => ({ id, content: t.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: t.lowercase ? { type: 'Lowercase' } : null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: sp.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sp.eos, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: sp.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sp.eos, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sp.eos, type_id: 1 } },
      ],
      special_tokens: {
        [sp.bos]: { id: sp.bos, ids: [t.bosId], tokens: [sp.bos] },
        [sp.eos]: { id: sp.eos, ids: [t.eosId], tokens: [sp.eos] },
      },
    },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: t.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function fromTokenizerJson(json: unknown, source: string): TokenizerSpec {
  const fail = (msg: string): never => {
    throw new TokenizerFormatError(`BpeTokenizer: ${source}: ${msg}`);
  };
  if (!isObject(json)) return fail('expected a tokenizer.json object');
  const model = json.model;
  if (!isObject(model) || model.type !== 'BPE') return fail(`model.type must be "BPE", got ${isObject(model) ? JSON.stringify(model.type) : 'no model'}`);
  if (!isObject(model.vocab)) return fail('model.vocab must be an object {token: id}');
  if (!Array.isArray(model.merges)) return fail('model.merges must be an array');
  const pre = json.pre_tokenizer;
  if (!isObject(pre) || pre.type !== 'ByteLevel') return fail(`pre_tokenizer must be ByteLevel (the only one supported), got ${isObject(pre) ? JSON.stringify(pre.type) : String(pre)}`);
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(model.vocab)) {
    if (typeof id !== 'number') return fail(`model.vocab[${JSON.stringify(tok)}] must be a number, got ${typeof id}`);
    vocab.set(tok, id);
  }
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  for (const a of added) {
    if (!isObject(a) || typeof a.content !== 'string' || typeof a.id !== 'number') return fail('added_tokens entries must have content and id');
    if (!vocab.has(a.content)) vocab.set(a.content, a.id);
  }
  const merges: [string, string][] = model.merges.map((m: unknown, i: number) => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string')
      return fail(`model.merges[${i}] must be "left right" or [left, right], got ${JSON.stringify(m)}`);
    return [pair[0], pair[1]] as [string, string];
  });
  const specialNames = added.filter((a) => isObject(a) && a.special !== false).map((a) => (a as { content: string }).content);
  const pick = (fromHf: unknown, fallback: string, role: string, test: (s: string) => boolean): string => {
    if (typeof fromHf === 'string') return fromHf;
    if (specialNames.includes(fallback)) return fallback;
    const found = specialNames.find(test);
    return found ?? fail(`no ${role} token (looked for ${fallback} among the added tokens)`);
  };
  const post = isObject(json.post_processor) ? json.post_processor : null;
  const single = post && post.type === 'TemplateProcessing' && Array.isArray(post.single) ? post.single : [];
  const tokenAt = (i: number): unknown => {
    const e = single[i];
    return isObject(e) && isObject(e.SpecialToken) ? e.SpecialToken.id : undefined;
  };
  const specials: SpecialTokenNames = {
    bos: pick(tokenAt(0), '<bos>', 'bos', (s) => /bos|start|<s>/i.test(s)),
    eos: pick(tokenAt(single.length - 1), '<eos>', 'eos', (s) => /eos|end|<\/s>/i.test(s)),
    pad: pick(isObject(json.padding) ? json.padding.pad_token : undefined, '<pad>', 'pad', (s) => /pad/i.test(s)),
    mask: pick(undefined, '<mask>', 'mask', (s) => /mask/i.test(s)),
  };
  const lowercase = isObject(json.normalizer) && json.normalizer.type === 'Lowercase';
  return { vocab, merges, specials, lowercase };
}
