// Texts -> the int32 token tensor and end-of-text positions a TextTransformer consumes.

import { Tensor } from '../tensor';
import { tensor } from '../ops/creation';
import { TextTokenizer } from './method';

export function tokenize(tokenizer: TextTokenizer, texts: string[], contextLength: number): { tokens: Tensor; eot: number[] } {
  const { ids, eotIndex } = tokenizer.encodeBatch(texts, { length: contextLength });
  return { tokens: tensor(ids, { shape: [texts.length, contextLength], dtype: 'int32' }), eot: Array.from(eotIndex) };
}
