// Byte-level BPE tokenizer (lib/data/bpe_tokenizer.ts): exact round trips for any string,
// special tokens only where asked for, truncation/padding with the end-token position,
// save/load in the Hugging Face tokenizer.json layout, deterministic training, and errors.
// Training and encoding speed on synthetic captions is printed, not asserted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BpeTokenizer, TokenizerFormatError } from '../../lib/data/bpe_tokenizer';
import { assertThrows, jsRandom, SEED } from '../helpers/check';

const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'white', 'black'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'cross', 'ring'];
const PLACES = ['top left', 'top right', 'bottom left', 'bottom right', 'center'];
const SIZES = ['small', 'large', 'tiny', 'big'];

function captions(n: number, seed: number): string[] {
  const r = jsRandom(seed);
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  return Array.from({ length: n }, () =>
    r() < 0.5
      ? `A ${pick(SIZES)} ${pick(COLORS)} ${pick(SHAPES)} in the ${pick(PLACES)}.`
      : `${pick(COLORS)} ${pick(SHAPES)} next to a ${pick(COLORS)} ${pick(SHAPES)}, ${Math.floor(r() * 100)} pixels apart!`);
}

const corpus = captions(3000, 12345);
const tok = BpeTokenizer.train(corpus, { vocabSize: 400 });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bpe-'));

test('training learns merges up to the vocabulary size, and common words become single tokens', () => {
  assert.is(tok.vocabSize, 400);
  assert.is(tok.merges.length, 400 - 260);
  assert.equal([tok.padId, tok.bosId, tok.eosId, tok.maskId], [0, 1, 2, 3]);
  assert.equal(tok.specialTokens, { pad: '<pad>', bos: '<bos>', eos: '<eos>', mask: '<mask>' });
  assert.is(tok.encode(' triangle').length, 1, 'a frequent word is one token');
  assert.ok(tok.encode(corpus[0]).length < corpus[0].length / 2.5, 'captions compress well');
  const small = BpeTokenizer.train(['ab ab ab', 'cd'], { vocabSize: 1000 });
  assert.ok(small.vocabSize < 270, `stops when pairs get rarer than minFrequency (got ${small.vocabSize})`);
});

test('decode(encode(s)) === s for ASCII, unicode, emoji, whitespace runs and the empty string', () => {
  const samples = [
    '', 'a', 'A red circle in the top left.', '  leading and trailing  ', 'tabs\tand\nnewlines\r\n',
    'naïve café — Ünïcödé', '日本語のテキスト', 'emoji 🎨🟥🔵 and 👩‍👩‍👧 families', 'mixed123numbers4567',
    "it's we'll they'd", '<eos> <bos> <pad> are just text', 'ＦＵＬＬ width', 'e\u0301 combining',
  ];
  for (const s of samples) assert.is(tok.decode(tok.encode(s)), s, JSON.stringify(s));
  assert.is(tok.encode('').length, 0);
  const rand = jsRandom(SEED);
  for (let k = 0; k < 200; k++) {
    let s = '';
    const len = Math.floor(rand() * 12);
    for (let i = 0; i < len; i++) s += String.fromCodePoint(rand() < 0.7 ? 32 + Math.floor(rand() * 95) : 0xa0 + Math.floor(rand() * 0x1f000));
    if (/[\ud800-\udfff]/.test(s.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) continue; // lone surrogates are not UTF-8
    assert.is(tok.decode(tok.encode(s)), s, `random string ${JSON.stringify(s)}`);
  }
});

test('lowercase option: round trip modulo case', () => {
  const lower = BpeTokenizer.train(corpus.slice(0, 500), { vocabSize: 300, lowercase: true });
  assert.is(lower.decode(lower.encode('A Big RED Star')), 'a big red star');
  assert.equal(Array.from(lower.encode('RED')), Array.from(lower.encode('red')));
});

test('special tokens are never produced by text, only by addSpecial', () => {
  const specials = new Set([tok.padId, tok.bosId, tok.eosId, tok.maskId]);
  for (const s of ['<eos>', '<bos><pad><mask>', ...corpus.slice(0, 50)]) assert.ok(Array.from(tok.encode(s)).every((id) => !specials.has(id)), s);
  const ids = tok.encode('red star', { addSpecial: true });
  assert.is(ids[0], tok.bosId);
  assert.is(ids[ids.length - 1], tok.eosId);
  assert.is(tok.decode(ids), 'red star');
  assert.is(tok.decode(ids, { skipSpecial: false }), '<bos>red star<eos>');
});

test('truncation and padding keep <eos> last and report its index', () => {
  const long = corpus[1] + ' ' + corpus[2];
  const full = tok.encode(long, { addSpecial: true });
  const cut = tok.encode(long, { addSpecial: true, maxLength: 6 });
  assert.equal(Array.from(cut), [...Array.from(full.subarray(0, 5)), tok.eosId]);
  const padded = tok.encode('red', { addSpecial: true, maxLength: 6, pad: true });
  assert.equal(Array.from(padded), [tok.bosId, ...Array.from(tok.encode('red')), tok.eosId, 0, 0, 0].slice(0, 6));
  const texts = ['red', long, ''];
  const b = tok.encodeBatch(texts, { length: 8 });
  assert.equal(b.shape, [3, 8]);
  for (let i = 0; i < 3; i++) {
    const row = Array.from(b.ids.subarray(i * 8, i * 8 + 8));
    assert.is(row[b.eotIndex[i]], tok.eosId, `row ${i} has <eos> at its eotIndex`);
    assert.is(b.eotIndex[i], b.lengths[i] - 1);
    assert.ok(row.slice(b.lengths[i]).every((id) => id === tok.padId), `row ${i} padded`);
    assert.is(tok.decode(row), i === 1 ? tok.decode(tok.encode(long, { addSpecial: true, maxLength: 8 })) : texts[i]);
  }
  assert.equal(Array.from(b.eotIndex), [1 + tok.encode('red').length, 7, 1]);
  assert.equal(Array.from(tok.encode(long, { maxLength: 3 })), Array.from(tok.encode(long).subarray(0, 3)));
});

test('save/load gives identical encodings; the file has the Hugging Face layout', () => {
  const file = path.join(tmp, 'tokenizer.json');
  tok.save(file);
  assert.equal(fs.readdirSync(tmp), ['tokenizer.json'], 'no temporary file left behind');
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const k of ['version', 'added_tokens', 'pre_tokenizer', 'post_processor', 'decoder', 'model', 'padding', 'normalizer']) assert.ok(k in json, k);
  assert.is(json.model.type, 'BPE');
  assert.is(json.pre_tokenizer.type, 'ByteLevel');
  assert.is(Object.keys(json.model.vocab).length, 400);
  assert.is(json.model.merges.length, 140);
  assert.is(json.model.vocab['Ġ'], 4 + 32, 'byte 0x20 (space) is Ġ, GPT-2 byte map');
  assert.equal(json.added_tokens.map((a: { content: string; id: number }) => [a.content, a.id]), [['<pad>', 0], ['<bos>', 1], ['<eos>', 2], ['<mask>', 3]]);
  const back = BpeTokenizer.load(file);
  for (const s of [...corpus.slice(0, 100), 'emoji 🎨 ünïcödé']) assert.equal(Array.from(back.encode(s, { addSpecial: true })), Array.from(tok.encode(s, { addSpecial: true })));
  assert.equal(back.toJSON(), tok.toJSON());
  // merges as [left, right] pairs (newer HF files) load too
  const pairs = { ...json, model: { ...json.model, merges: json.model.merges.map((m: string) => m.split(' ')) } };
  assert.equal(Array.from(BpeTokenizer.fromJSON(pairs).encode(corpus[3])), Array.from(tok.encode(corpus[3])));
});

test('training is deterministic', () => {
  const again = BpeTokenizer.train(corpus, { vocabSize: 400 });
  assert.equal(again.merges, tok.merges);
  assert.equal(again.toJSON(), tok.toJSON());
});

test('errors: bad tokenizer files name the file, invalid options are refused', () => {
  const bad = path.join(tmp, 'broken.json');
  fs.writeFileSync(bad, '{"model": {');
  assertThrows(() => BpeTokenizer.load(bad), ['broken.json', 'not valid JSON'], 'truncated JSON');
  let err: unknown = null;
  try { BpeTokenizer.load(bad); } catch (e) { err = e; }
  assert.ok(err instanceof TokenizerFormatError);
  fs.writeFileSync(bad, JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
  assertThrows(() => BpeTokenizer.load(bad), ['broken.json', 'model.type must be "BPE"'], 'not BPE');
  const json = tok.toJSON();
  const noByte = { ...json, model: { ...json.model, vocab: Object.fromEntries(Object.entries(json.model.vocab).filter(([k]) => k !== 'Ġ')) } };
  assertThrows(() => BpeTokenizer.fromJSON(noByte, 'x.json'), ['x.json'], 'missing byte token');
  assertThrows(() => BpeTokenizer.load(path.join(tmp, 'missing.json')), ['missing.json', 'cannot read'], 'missing file');
  assertThrows(() => BpeTokenizer.train(corpus, { vocabSize: 100 }), ['vocabSize', '>= 260', '100'], 'vocab too small');
  assertThrows(() => BpeTokenizer.train(corpus, { minFrequency: 0 }), ['minFrequency'], 'minFrequency 0');
  assertThrows(() => BpeTokenizer.train(corpus, { specialTokens: { pad: '<x>', bos: '<x>' } }), ['distinct'], 'duplicate specials');
  assertThrows(() => tok.encode('a', { maxLength: 1, addSpecial: true }), ['maxLength', '>= 2'], 'maxLength too small for bos+eos');
  assertThrows(() => tok.encode('a', { pad: true }), ['pad needs maxLength'], 'pad without length');
  assertThrows(() => tok.encodeBatch(['a'], { length: 0 }), ['length', '>= 2'], 'zero batch length');
  assertThrows(() => tok.decode([tok.vocabSize]), ['outside the vocabulary'], 'id out of range');
});

test('speed: training and encoding 100k captions (printed)', () => {
  const big = captions(100000, 777);
  let t0 = performance.now();
  const t = BpeTokenizer.train(big.slice(0, 20000), { vocabSize: 1024 });
  const trainMs = performance.now() - t0;
  t0 = performance.now();
  const b = t.encodeBatch(big, { length: 32 });
  const encMs = performance.now() - t0;
  console.log(`  BPE: train on 20k captions ${trainMs.toFixed(0)} ms (${t.vocabSize} tokens), encodeBatch of 100k captions ${encMs.toFixed(0)} ms`);
  assert.is(b.ids.length, 100000 * 32);
  assert.is(t.decode(b.ids.subarray(0, 32)), big[0]);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
