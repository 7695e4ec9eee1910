// FuseLIP's extended vocabulary and sequence building (Schlarmann et al. 2025, "FuseLIP:
// Multimodal Embeddings via Early Fusion of Discrete Tokens", Sec. 3.1): text tokens and the
// discrete codes of a frozen image tokenizer share one vocabulary, so any input (an image, a
// text, or an image + text pair) is one token sequence for one transformer.
//
// Layout of the extended vocabulary (size V_t + K + 3):
//   [0, V_t)            the text tokenizer's ids (its <pad>, <bos>, <eos> included)
//   [V_t, V_t + K)      image code c as V_t + c (K = codebook size of the VQ-VAE)
//   V_t + K             <boi>  begin of image
//   V_t + K + 1         <eoi>  end of image
//   V_t + K + 2         <eot>  the final token; its last-layer state is the embedding
//
// Sequence of one input, then padded with the text <pad> id up to `length`:
//   image + text:  <boi> v_1 .. v_T <eoi> <bos> t_1 .. t_m <eos> <eot>
//   image only:    <boi> v_1 .. v_T <eoi> <eot>
//   text only:     <bos> t_1 .. t_m <eos> <eot>
// (the paper: <bot> image tokens <eot> text tokens <eot>; here the text keeps the tokenizer's own
// <bos>/<eos>, and the image gets its own delimiters). A text that does not fit is truncated
// (keeping its <eos>); the image codes are never cut, so `length` must be at least T + 4.

import { ArgumentError, ShapeError } from '../errors';
import { TextTokenizer } from './method';

export interface FuseInput {
  /** Image codes (T of them, each in [0, K)); omitted for a text-only input. */
  codes?: ArrayLike<number>;
  /** Text; omitted for an image-only input. */
  text?: string;
}

export interface FusedBatch {
  /** Token ids in the extended vocabulary, row-major [N, length]. */
  ids: Int32Array;
  /** Position of each row's final <eot> (the pooled position). */
  eotIndex: number[];
  /** 1 where a position is padding, else 0, row-major [N, length] (float32, a key-padding mask). */
  padding: Float32Array;
  length: number;
}

export class FuseVocabulary {
  readonly textVocabSize: number;
  readonly codebookSize: number;
  readonly tokensPerImage: number;
  readonly boi: number;
  readonly eoi: number;
  readonly eot: number;
  /** Text <pad> id (the padding of every sequence). */
  readonly pad: number;

  constructor(readonly tokenizer: TextTokenizer, codebookSize: number, tokensPerImage: number, pad = 0) {
    for (const [name, v] of [['codebookSize', codebookSize], ['tokensPerImage', tokensPerImage], ['tokenizer.vocabSize', tokenizer.vocabSize]] as const)
      if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`FuseVocabulary: ${name} must be a positive integer, got ${String(v)}`);
    this.textVocabSize = tokenizer.vocabSize;
    this.codebookSize = codebookSize;
    this.tokensPerImage = tokensPerImage;
    this.boi = this.textVocabSize + codebookSize;
    this.eoi = this.boi + 1;
    this.eot = this.boi + 2;
    this.pad = pad;
  }

  /** Size of the extended vocabulary. */
  get size(): number {
    return this.textVocabSize + this.codebookSize + 3;
  }

  /** Id of image code c. */
  imageToken(c: number): number {
    return this.textVocabSize + c;
  }

  /** Shortest `length` that holds an image + a text of m tokens (with <bos>/<eos>). */
  minLength(textTokens = 0): number {
    return this.tokensPerImage + 2 + (textTokens > 0 ? textTokens + 2 : 0) + 1;
  }

  /**
   * Build the padded sequences of `inputs` (each has codes, text or both). Texts are tokenised
   * together with the tokenizer's <bos>/<eos>, truncated to the room left after the image.
   */
  build(inputs: readonly FuseInput[], length: number): FusedBatch {
    const op = 'FuseVocabulary.build';
    const T = this.tokensPerImage;
    const needsImage = inputs.some((x) => x.codes !== undefined);
    const minimum = needsImage ? T + 4 : 4;
    if (!Number.isInteger(length) || length < minimum)
      throw new ArgumentError(`${op}: length must be an integer >= ${minimum} (${needsImage ? `${T} image tokens + ` : ''}delimiters), got ${String(length)}`);
    const n = inputs.length;
    const ids = new Int32Array(n * length).fill(this.pad);
    const padding = new Float32Array(n * length).fill(1);
    const eotIndex: number[] = [];
    // Tokenise every text at the room it has: length - 1 (the <eot>) - image part, if any.
    const textRows: { row: number; room: number; text: string }[] = [];
    inputs.forEach((x, r) => {
      if (x.codes === undefined && x.text === undefined) throw new ArgumentError(`${op}: input ${r} has neither codes nor text`);
      if (x.text !== undefined) textRows.push({ row: r, room: length - 1 - (x.codes !== undefined ? T + 2 : 0), text: x.text });
    });
    const encoded = new Map<number, Int32Array>();
    for (const room of new Set(textRows.map((t) => t.room))) {
      const rows = textRows.filter((t) => t.room === room);
      const { ids: tid, eotIndex: teot } = this.tokenizer.encodeBatch(rows.map((t) => t.text), { length: room });
      rows.forEach((t, k) => encoded.set(t.row, tid.slice(k * room, k * room + teot[k] + 1)));
    }
    inputs.forEach((x, r) => {
      const base = r * length;
      let p = 0;
      if (x.codes !== undefined) {
        if (x.codes.length !== T) throw new ShapeError(`${op}: input ${r} has ${x.codes.length} image codes, expected ${T}`);
        ids[base + p++] = this.boi;
        for (let j = 0; j < T; j++) {
          const c = x.codes[j];
          if (!Number.isInteger(c) || c < 0 || c >= this.codebookSize)
            throw new ArgumentError(`${op}: input ${r} image code ${j} is ${String(c)}, expected an integer in [0, ${this.codebookSize})`);
          ids[base + p++] = this.imageToken(c);
        }
        ids[base + p++] = this.eoi;
      }
      const t = encoded.get(r);
      if (t) {
        ids.set(t, base + p);
        p += t.length;
      }
      ids[base + p] = this.eot;
      eotIndex.push(p);
      padding.fill(0, base, base + p + 1);
    });
    return { ids, eotIndex, padding, length };
  }
}
