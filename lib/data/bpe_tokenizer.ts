// A byte-level BPE tokenizer (GPT-2/CLIP style, simplified) for the captions of the text
// encoders: train on a corpus, encode (with begin/end tokens, truncation and padding, and the
// end-token position for end-of-text pooling), decode, and save/load in the Hugging Face
// tokenizer.json layout.
//
// Why this shape: text is lowercased (optional), split by GPT-2's regex (bpe_bytes.ts), and each
// piece's UTF-8 bytes are merged by the learned rules (bpe_train.ts), so any string encodes with
// no unknown token and decode(encode(s)) === s (lowercased if that option is on; lone UTF-16
// surrogates, which are not valid UTF-8, come back as U+FFFD). Special tokens are never produced
// from text: "<eos>" in a caption is spelt out in bytes. Encoded pieces are cached, so a caption
// corpus with a small vocabulary of words encodes at memory speed.
//
// Vocabulary layout of a trained tokenizer: 0 <pad>, 1 <bos>, 2 <eos>, 3 <mask> (names
// configurable), then the 256 byte characters, then one entry per merge in merge order.

import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError } from '../errors';
import { BYTE_TO_CHAR, byteCharsToBytes, pretokenize, toByteChars, utf8Decode } from './bpe_bytes';
import { fromTokenizerJson, SpecialTokenNames, TokenizerFormatError, TokenizerJson, toTokenizerJson } from './bpe_json';
import { learnMerges } from './bpe_train';

export { TokenizerFormatError } from './bpe_json';
export type { SpecialTokenNames, TokenizerJson } from './bpe_json';

export interface BpeTrainOptions {
  /** Total vocabulary size, special tokens and the 256 bytes included (default 1024; >= 260). */
  vocabSize?: number;
  /** A pair must occur at least this often to be merged (default 2). */
  minFrequency?: number;
  /** Names of the special tokens (default <pad>, <bos>, <eos>, <mask>). */
  specialTokens?: Partial<SpecialTokenNames>;
  /** Lowercase text before tokenizing (default false). */
  lowercase?: boolean;
}

export interface EncodeOptions {
  /** Wrap the tokens in <bos> ... <eos> (default false). */
  addSpecial?: boolean;
  /** Truncate to this many tokens (keeping <eos> last when addSpecial). */
  maxLength?: number;
  /** Pad with <pad> up to maxLength (default false). */
  pad?: boolean;
}

export interface EncodedBatch {
  /** Token ids, row-major [n, length], padded with padId. */
  ids: Int32Array;
  /** Position of each row's end token (<eos>; its last token when addSpecial is false). */
  eotIndex: Int32Array;
  /** Tokens before the padding in each row. */
  lengths: Int32Array;
  shape: [number, number];
}

const DEFAULT_SPECIALS: SpecialTokenNames = { pad: '<pad>', bos: '<bos>', eos: '<eos>', mask: '<mask>' };
const PAIR_KEY = 2097152;
const CACHE_LIMIT = 200000;

function checkInt(v: unknown, min: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ArgumentError(`BpeTokenizer: ${what} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

export class BpeTokenizer {
  /** Token strings by id (byte characters, or a special token's name). */
  readonly tokens: readonly string[];
  /** Merges in rank order, as pairs of token strings. */
  readonly merges: readonly (readonly [string, string])[];
  readonly lowercase: boolean;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly maskId: number;
  private readonly specialIds: Set<number>;
  private readonly byteIds: Int32Array; // byte value -> token id
  private readonly mergeRank = new Map<number, number>(); // pair key -> rank
  private readonly mergeId: Int32Array; // rank -> merged token id
  private readonly mergeLeft: Int32Array; // rank -> left token id
  private readonly mergeRight: Int32Array; // rank -> right token id
  private readonly tokenBytes: (Uint8Array | null)[]; // null for special tokens
  private readonly cache = new Map<string, Int32Array>();

  /** Build from a vocabulary (token -> id), merges in rank order and the special token names. */
  constructor(vocab: ReadonlyMap<string, number>, merges: readonly (readonly [string, string])[], specials: SpecialTokenNames, lowercase = false) {
    const tokens: string[] = [];
    for (const [tok, id] of vocab) {
      if (!Number.isInteger(id) || id < 0 || tokens[id] !== undefined) throw new ArgumentError(`BpeTokenizer: vocabulary id ${id} of ${JSON.stringify(tok)} is invalid or repeated`);
      tokens[id] = tok;
    }
    for (let i = 0; i < tokens.length; i++) if (tokens[i] === undefined) throw new ArgumentError(`BpeTokenizer: vocabulary ids must be 0..${tokens.length - 1} without gaps; id ${i} is missing`);
    const idOf = (name: string, role: string): number => {
      const id = vocab.get(name);
      if (id === undefined) throw new ArgumentError(`BpeTokenizer: the ${role} token ${JSON.stringify(name)} is not in the vocabulary`);
      return id;
    };
    this.tokens = tokens;
    this.lowercase = lowercase;
    this.padId = idOf(specials.pad, 'pad');
    this.bosId = idOf(specials.bos, 'bos');
    this.eosId = idOf(specials.eos, 'eos');
    this.maskId = idOf(specials.mask, 'mask');
    this.specialIds = new Set([this.padId, this.bosId, this.eosId, this.maskId]);
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) this.byteIds[b] = idOf(BYTE_TO_CHAR[b], `byte 0x${b.toString(16)}`);
    this.tokenBytes = tokens.map((t, id) => (this.specialIds.has(id) ? null : byteCharsToBytes(t)));
    this.merges = merges.map(([a, b]) => [a, b] as const);
    this.mergeId = new Int32Array(merges.length);
    this.mergeLeft = new Int32Array(merges.length);
    this.mergeRight = new Int32Array(merges.length);
    merges.forEach(([a, b], rank) => {
      const ia = idOf(a, `merge ${rank} left`), ib = idOf(b, `merge ${rank} right`);
      this.mergeId[rank] = idOf(a + b, `merge ${rank} result`);
      this.mergeLeft[rank] = ia;
      this.mergeRight[rank] = ib;
      const key = ia * PAIR_KEY + ib;
      if (!this.mergeRank.has(key)) this.mergeRank.set(key, rank);
    });
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  get specialTokens(): SpecialTokenNames {
    return { pad: this.tokens[this.padId], bos: this.tokens[this.bosId], eos: this.tokens[this.eosId], mask: this.tokens[this.maskId] };
  }

  /** Learn a vocabulary from a corpus (deterministic: the same corpus and options give the same tokenizer). */
  static train(corpus: readonly string[], options: BpeTrainOptions = {}): BpeTokenizer {
    if (!Array.isArray(corpus) || corpus.some((s) => typeof s !== 'string')) throw new ArgumentError('BpeTokenizer.train: corpus must be an array of strings');
    const specials = { ...DEFAULT_SPECIALS, ...(options.specialTokens ?? {}) };
    const names = [specials.pad, specials.bos, specials.eos, specials.mask];
    if (names.some((n) => typeof n !== 'string' || n.length === 0) || new Set(names).size !== 4)
      throw new ArgumentError(`BpeTokenizer.train: specialTokens must be 4 distinct non-empty strings, got ${JSON.stringify(names)}`);
    const vocabSize = checkInt(options.vocabSize ?? 1024, 260, 'vocabSize (4 special tokens + 256 bytes + merges)');
    const minFrequency = checkInt(options.minFrequency ?? 2, 1, 'minFrequency');
    const lowercase = options.lowercase ?? false;
    const wordFreq = new Map<string, number>();
    for (const line of corpus) for (const w of pretokenize(lowercase ? line.toLowerCase() : line)) wordFreq.set(w, (wordFreq.get(w) ?? 0) + 1);
    const words: number[][] = [];
    const freqs: number[] = [];
    const enc = new TextEncoder();
    for (const [w, f] of wordFreq) {
      words.push(Array.from(enc.encode(w)));
      freqs.push(f);
    }
    const merges = learnMerges(words, freqs, vocabSize - 260, minFrequency);
    const symbols = [...BYTE_TO_CHAR];
    for (const [a, b] of merges) symbols.push(symbols[a] + symbols[b]);
    const vocab = new Map<string, number>(names.map((n, i) => [n, i]));
    symbols.forEach((s) => {
      if (vocab.has(s)) throw new ArgumentError(`BpeTokenizer.train: special token name ${JSON.stringify(s)} collides with a byte token`);
      vocab.set(s, vocab.size);
    });
    return new BpeTokenizer(vocab, merges.map(([a, b]) => [symbols[a], symbols[b]]), specials, lowercase);
  }

  /** Token ids of one pre-token (cached). */
  private encodePiece(piece: string): Int32Array {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    const bytes = new TextEncoder().encode(piece);
    let sym: number[] = Array.from(bytes, (b) => this.byteIds[b]);
    while (sym.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.mergeRank.get(sym[i] * PAIR_KEY + sym[i + 1]);
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const ia = this.mergeLeft[best], ib = this.mergeRight[best], z = this.mergeId[best];
      const out: number[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (i + 1 < sym.length && sym[i] === ia && sym[i + 1] === ib) {
          out.push(z);
          i++;
        } else out.push(sym[i]);
      }
      sym = out;
    }
    const ids = Int32Array.from(sym);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }

  /** Token ids of `text` (see EncodeOptions). */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') throw new ArgumentError(`BpeTokenizer.encode: text must be a string, got ${typeof text}`);
    const { addSpecial = false, pad = false } = options;
    const maxLength = options.maxLength === undefined ? undefined : checkInt(options.maxLength, addSpecial ? 2 : 1, 'maxLength');
    if (pad && maxLength === undefined) throw new ArgumentError('BpeTokenizer.encode: pad needs maxLength');
    const ids: number[] = [];
    if (addSpecial) ids.push(this.bosId);
    const budget = maxLength === undefined ? Infinity : maxLength - (addSpecial ? 1 : 0);
    for (const piece of pretokenize(this.lowercase ? text.toLowerCase() : text)) {
      for (const id of this.encodePiece(piece)) ids.push(id);
      if (ids.length >= budget) break;
    }
    if (ids.length > budget) ids.length = budget;
    if (addSpecial) ids.push(this.eosId);
    if (pad) while (ids.length < maxLength!) ids.push(this.padId);
    return Int32Array.from(ids);
  }

  /** Encode texts into one [n, length] batch, truncated and padded, with the end-token positions. */
  encodeBatch(texts: readonly string[], options: { length: number; addSpecial?: boolean }): EncodedBatch {
    if (!Array.isArray(texts)) throw new ArgumentError('BpeTokenizer.encodeBatch: texts must be an array of strings');
    const addSpecial = options?.addSpecial ?? true;
    const length = checkInt(options?.length, addSpecial ? 2 : 1, 'encodeBatch length');
    const n = texts.length;
    const ids = new Int32Array(n * length).fill(this.padId);
    const eotIndex = new Int32Array(n);
    const lengths = new Int32Array(n);
    texts.forEach((t, i) => {
      const row = this.encode(t, { addSpecial, maxLength: length });
      ids.set(row, i * length);
      lengths[i] = row.length;
      eotIndex[i] = Math.max(0, row.length - 1);
    });
    return { ids, eotIndex, lengths, shape: [n, length] };
  }

  /** Text of token ids; special tokens are dropped unless skipSpecial is false (then written by name). */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const skip = options.skipSpecial ?? true;
    const parts: Uint8Array[] = [];
    let total = 0;
    let text = '';
    const flush = () => {
      const all = new Uint8Array(total);
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      text += utf8Decode(all);
      parts.length = 0;
      total = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.tokens.length)
        throw new ArgumentError(`BpeTokenizer.decode: id ${id} at position ${i} is outside the vocabulary [0, ${this.tokens.length})`);
      const bytes = this.tokenBytes[id];
      if (bytes) {
        parts.push(bytes);
        total += bytes.length;
      } else if (!skip) {
        flush();
        text += this.tokens[id];
      }
    }
    flush();
    return text;
  }

  /** The Hugging Face tokenizer.json object (bpe_json.ts). */
  toJSON(): TokenizerJson {
    return toTokenizerJson(this);
  }

  /** Write tokenizer.json atomically (a temporary file in the same directory, then rename). */
  save(file: string): void {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(this.toJSON()));
    fs.renameSync(tmp, file);
  }

  /** A tokenizer from a parsed tokenizer.json; `source` names it in error messages. */
  static fromJSON(json: unknown, source = 'tokenizer JSON'): BpeTokenizer {
    const spec = fromTokenizerJson(json, source);
    try {
      return new BpeTokenizer(spec.vocab, spec.merges, spec.specials, spec.lowercase);
    } catch (e) {
      throw new TokenizerFormatError(`${source}: ${(e as Error).message}`);
    }
  }

  static load(file: string): BpeTokenizer {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new TokenizerFormatError(`BpeTokenizer.load: cannot read ${file}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TokenizerFormatError(`BpeTokenizer.load: ${file} is not valid JSON (${(e as Error).message})`);
    }
    return BpeTokenizer.fromJSON(json, file);
  }
}
