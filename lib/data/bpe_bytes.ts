// The byte level under the BPE tokenizer (lib/data/bpe_tokenizer.ts): GPT-2's reversible map
// from the 256 byte values to printable unicode characters (so every vocabulary entry is a
// readable string and the vocab/merges fit the Hugging Face tokenizer.json layout), UTF-8
// conversion, and the pre-tokenisation regex.
//
// Why this shape: working on UTF-8 bytes makes every string encodable with a 256-symbol base
// alphabet and no unknown token, and decoding the bytes back gives the exact input. The regex is
// GPT-2's (Hugging Face's ByteLevel pre-tokenizer with use_regex): its alternatives cover every
// character, so the pieces concatenate back to the input.

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
function buildByteTable(): string[] {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return table;
}

/** BYTE_TO_CHAR[b]: the vocabulary character standing for byte b. */
export const BYTE_TO_CHAR: readonly string[] = buildByteTable();

/** CHAR_TO_BYTE.get(ch): the byte a vocabulary character stands for. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch, b]));

/** GPT-2's pre-tokenisation pattern: contractions, letters, digits, other symbols, whitespace. */
export const PRETOKENIZE_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Split text into pre-tokens (their concatenation is the text). */
export function pretokenize(text: string): string[] {
  return text.match(PRETOKENIZE_PATTERN) ?? [];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

/** A piece of text as a string of byte characters (its UTF-8 bytes through BYTE_TO_CHAR). */
export function toByteChars(piece: string): string {
  const bytes = encoder.encode(piece);
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

/** The UTF-8 bytes a byte-character string stands for, or null if it has other characters. */
export function byteCharsToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = CHAR_TO_BYTE.get(token[i]);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

/** Decode UTF-8 bytes (invalid sequences become U+FFFD). */
export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
