// Small text files (configs, reports, plots, metric logs) written atomically, with the same
// temp-file + fsync + rename discipline as checkpoints: a crash never leaves half a report.

import * as fs from 'fs';
import { writeFileAtomic } from './safetensors';

export function writeTextAtomic(file: string, text: string): void {
  writeFileAtomic(file, (fd) => {
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
  }, 'writeTextAtomic');
}
