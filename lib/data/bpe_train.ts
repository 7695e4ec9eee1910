// Learning BPE merges from word counts (used by BpeTokenizer.train in bpe_tokenizer.ts).
//
// Why this shape: the corpus is reduced to its unique pre-tokens with their frequencies, each a
// sequence of symbol ids (0..255 are the bytes). Pair counts are kept for the whole corpus with
// an index from each pair to the words containing it, and a merge only revisits those words:
// their old pairs are subtracted and their new pairs added, so a merge costs the size of the
// words it touches, never a recount of the corpus. The most frequent pair comes from a max-heap
// with lazy invalidation: counts of pairs not involving the new symbol only ever go down, so a
// popped entry whose count is stale is pushed back with its current count; new pairs are pushed
// when they appear. Ties break on the smaller (left, right) symbol ids, so training is
// deterministic.

const KEY = 2097152; // 2^21: pair key = left * KEY + right (symbol ids < 2^21)

/** Max-heap of (count, left, right) ordered by count desc, then left asc, then right asc. */
class PairHeap {
  private c: number[] = [];
  private a: number[] = [];
  private b: number[] = [];

  get size(): number {
    return this.c.length;
  }

  private above(i: number, j: number): boolean {
    const { c, a, b } = this;
    if (c[i] !== c[j]) return c[i] > c[j];
    if (a[i] !== a[j]) return a[i] < a[j];
    return b[i] < b[j];
  }

  private swap(i: number, j: number): void {
    for (const arr of [this.c, this.a, this.b]) {
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
  }

  push(count: number, left: number, right: number): void {
    this.c.push(count);
    this.a.push(left);
    this.b.push(right);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number, number] {
    const top: [number, number, number] = [this.c[0], this.a[0], this.b[0]];
    const last = this.c.length - 1;
    this.swap(0, last);
    this.c.pop();
    this.a.pop();
    this.b.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.c.length && this.above(l, m)) m = l;
      if (r < this.c.length && this.above(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

/** Replace every non-overlapping (a, b), left to right, by z. */
function mergeWord(sym: number[], a: number, b: number, z: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < sym.length; i++) {
    if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
      out.push(z);
      i++;
    } else out.push(sym[i]);
  }
  return out;
}

/**
 * Learn up to `numMerges` merges over `words` (each a sequence of byte values 0..255, with its
 * frequency), stopping early when the best pair occurs fewer than minFrequency times.
 * Returns the merges as pairs of symbol ids; merge k creates symbol 256 + k.
 */
export function learnMerges(words: number[][], freqs: number[], numMerges: number, minFrequency: number): [number, number][] {
  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (sym: number[], idx: number, f: number, delta: Map<number, number> | null) => {
    for (let i = 0; i + 1 < sym.length; i++) {
      const k = sym[i] * KEY + sym[i + 1];
      if (delta) delta.set(k, (delta.get(k) ?? 0) + f);
      else counts.set(k, (counts.get(k) ?? 0) + f);
      if (f > 0) {
        let s = where.get(k);
        if (!s) where.set(k, (s = new Set()));
        s.add(idx);
      }
    }
  };
  words.forEach((w, idx) => addPairs(w, idx, freqs[idx], null));
  const heap = new PairHeap();
  for (const [k, c] of counts) heap.push(c, Math.floor(k / KEY), k % KEY);

  const merges: [number, number][] = [];
  while (merges.length < numMerges && heap.size > 0) {
    const [count, a, b] = heap.pop();
    const key = a * KEY + b;
    const actual = counts.get(key) ?? 0;
    if (actual !== count) {
      if (actual > 0) heap.push(actual, a, b);
      continue;
    }
    if (actual < minFrequency) break;
    const z = 256 + merges.length;
    merges.push([a, b]);
    const delta = new Map<number, number>();
    for (const idx of where.get(key) ?? []) {
      const sym = words[idx];
      let has = false;
      for (let i = 0; i + 1 < sym.length && !has; i++) has = sym[i] === a && sym[i + 1] === b;
      if (!has) continue;
      addPairs(sym, idx, -freqs[idx], delta);
      const merged = mergeWord(sym, a, b, z);
      words[idx] = merged;
      addPairs(merged, idx, freqs[idx], delta);
    }
    where.delete(key);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (counts.get(k) ?? 0) + d;
      if (c <= 0) {
        counts.delete(k);
        where.delete(k);
      } else {
        counts.set(k, c);
        if (d > 0) heap.push(c, Math.floor(k / KEY), k % KEY);
      }
    }
  }
  return merges;
}
