// Progress while training: on a terminal, one live line (cli-progress) with step, loss, learning
// rate, samples/s and ETA; when output is a file or a pipe (CI, nohup), a plain line every
// `every` steps and at the end, so logs stay readable.

import { SingleBar } from 'cli-progress';

export interface ProgressValues {
  loss: number;
  lr: number;
}

export class Progress {
  private bar: SingleBar | null = null;
  private readonly t0 = Date.now();
  private lastPlain = 0;
  private samples = 0;
  private emaLoss = NaN;

  constructor(
    private readonly total: number,
    private readonly start: number,
    private readonly batchSize: number,
    private readonly every: number,
    private readonly stream: NodeJS.WriteStream = process.stdout,
  ) {
    if (stream.isTTY && process.env.CI !== 'true') {
      this.bar = new SingleBar({
        format: 'step {value}/{total} |{bar}| loss {loss} | lr {lr} | {sps} samples/s | ETA {eta_formatted}',
        barsize: 24,
        hideCursor: true,
        stream,
        etaBuffer: 50,
      });
      this.bar.start(total, start, { loss: '-', lr: '-', sps: '-' });
    }
  }

  update(step: number, v: ProgressValues): void {
    this.samples += this.batchSize;
    this.emaLoss = Number.isNaN(this.emaLoss) ? v.loss : 0.9 * this.emaLoss + 0.1 * v.loss;
    const secs = (Date.now() - this.t0) / 1000;
    const sps = secs > 0 ? this.samples / secs : 0;
    if (this.bar) {
      this.bar.update(step, { loss: this.emaLoss.toFixed(4), lr: v.lr.toExponential(2), sps: sps.toFixed(0) });
      return;
    }
    if (step - this.lastPlain >= this.every || step === this.total) {
      this.lastPlain = step;
      const done = step - this.start;
      const eta = done > 0 ? ((this.total - step) * secs) / done : NaN;
      this.stream.write(`step ${step}/${this.total}  loss ${this.emaLoss.toFixed(4)}  lr ${v.lr.toExponential(2)}  ${sps.toFixed(0)} samples/s  ETA ${formatSeconds(eta)}\n`);
    }
  }

  /** Print a line above the live bar (or just print it). */
  log(line: string): void {
    if (this.bar) {
      this.stream.write('\r\x1b[2K' + line + '\n');
      this.bar.render();
    } else this.stream.write(line + '\n');
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}
