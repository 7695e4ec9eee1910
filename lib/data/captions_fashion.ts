// Captions and zero-shot prompts for Fashion-MNIST. The data set has labels, not text, so every
// image gets captions built from templates ("a grayscale picture of a {}") and per-class noun
// phrases (a class's synonyms, all true for every image of the class). Captions for training are
// the template x noun product; a per-image selection varies which ones an image is paired with,
// deterministically from its index. Prompt ensembles for zero-shot classification use the same
// phrases, so a model is evaluated on the vocabulary it was trained with.

import { ArgumentError } from '../errors';

/** The ten class names, in label order, as the data set's authors give them. */
export const FASHION_CLASS_NAMES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

/** Noun phrases per class (first = the canonical one); each is true of every image in the class. */
export const FASHION_CLASS_NOUNS: readonly (readonly string[])[] = Object.freeze([
  ['t-shirt', 'top', 'tee'],
  ['pair of trousers', 'pair of pants', 'pair of jeans'],
  ['pullover', 'sweater', 'jumper'],
  ['dress', 'frock'],
  ['coat', 'jacket'],
  ['sandal', 'open shoe'],
  ['shirt', 'button-up shirt', 'blouse'],
  ['sneaker', 'trainer', 'running shoe'],
  ['bag', 'handbag', 'purse'],
  ['ankle boot', 'boot', 'short boot'],
]);

/** Caption templates; `{}` is replaced by an article and noun phrase ("an ankle boot"). */
export const FASHION_TEMPLATES: readonly string[] = Object.freeze([
  'a photo of {}',
  'a grayscale picture of {}',
  'a small image of {}',
  'a black and white photo of {}',
  'a low resolution photo of {}',
  'a product photo of {}',
  'a centered photo of {}',
  'a thumbnail of {}',
  'an image of {}',
  '{}',
]);

function withArticle(noun: string): string {
  return /^[aeiou]/i.test(noun) ? `an ${noun}` : `a ${noun}`;
}

function checkLabel(label: number, op: string): void {
  if (!Number.isInteger(label) || label < 0 || label >= FASHION_CLASS_NAMES.length) {
    throw new ArgumentError(`${op}: label must be an integer in [0, ${FASHION_CLASS_NAMES.length - 1}], got ${label}`);
  }
}

const ALL = FASHION_CLASS_NOUNS.map((nouns) =>
  nouns.flatMap((noun) => FASHION_TEMPLATES.map((t) => t.replace('{}', withArticle(noun)))));

/** Captions per image when an index is given (like the 5 per image of captioned data sets). */
export const CAPTIONS_PER_IMAGE = 5;

/**
 * True captions for an image of class `label`. Without `index`: every template x noun caption of
 * the class. With `index` (the image's position in its split): CAPTIONS_PER_IMAGE of them, a
 * deterministic selection that differs between neighbouring indices.
 */
export function fashionCaptions(label: number, index?: number): string[] {
  checkLabel(label, 'fashionCaptions');
  const all = ALL[label];
  if (index === undefined) return [...all];
  if (!Number.isInteger(index) || index < 0) throw new ArgumentError(`fashionCaptions: index must be a non-negative integer, got ${index}`);
  // A multiplicative hash picks the start, a stride coprime to the count picks the rest: distinct captions.
  const n = all.length;
  const start = Math.imul(index + 1, 0x9e3779b1) >>> 0;
  let stride = 7;
  while (gcd(stride, n) !== 1) stride++;
  const out: string[] = [];
  for (let k = 0; k < Math.min(CAPTIONS_PER_IMAGE, n); k++) out.push(all[(start + k * stride) % n]);
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The prompt ensemble per class for zero-shot classification: prompts[label] = captions of the class. */
export function fashionPrompts(): string[][] {
  return ALL.map((c) => [...c]);
}
