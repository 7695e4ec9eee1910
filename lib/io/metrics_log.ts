// metrics.jsonl: one JSON object per line ({ step, kind, ...numbers }), appended as training
// goes. A resumed run first truncates the log to the checkpoint's step (rewritten atomically),
// so the log of a resumed run is identical to the log of an uninterrupted one. A torn last line
// (the process was killed mid-append) is dropped on read instead of poisoning the whole log.

import * as fs from 'fs';
import { writeTextAtomic } from './text_file';

export interface MetricsRecord {
  step: number;
  kind: string;
  [key: string]: number | string;
}

export class MetricsLog {
  constructor(readonly file: string) {}

  append(record: MetricsRecord): void {
    fs.appendFileSync(this.file, JSON.stringify(record) + '\n');
  }

  /** Every complete record, in order (a torn final line is ignored). */
  read(): MetricsRecord[] {
    if (!fs.existsSync(this.file)) return [];
    const out: MetricsRecord[] = [];
    const lines = fs.readFileSync(this.file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        out.push(JSON.parse(line) as MetricsRecord);
      } catch (e) {
        if (i < lines.length - 2) throw new Error(`${this.file}:${i + 1}: not a JSON record (${(e as Error).message})`);
      }
    });
    return out;
  }

  /** Keep only the records with step <= maxStep (for resuming from a checkpoint at maxStep). */
  truncateAfter(maxStep: number): void {
    const kept = this.read().filter((r) => r.step <= maxStep);
    writeTextAtomic(this.file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}
