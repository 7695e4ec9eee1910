// The one error class of lib/io. Reading a file someone else wrote (or that a crash cut short)
// is where tessera meets untrusted bytes, so every problem found there becomes a CheckpointError
// that names the file and says what is wrong with it, instead of a RangeError from a typed-array
// constructor or, worse, a tensor made of garbage. Writes that fail (disk full, missing
// directory) are reported the same way, naming the target and saying it was left untouched.

import { TesseraError } from '../errors';

export class CheckpointError extends TesseraError {
  /** The file (or buffer label) the problem is in. */
  readonly file: string;
  /** The problem alone, without the file name. */
  readonly problem: string;

  constructor(file: string, problem: string, cause?: unknown) {
    super(`${file}: ${problem}`);
    this.file = file;
    this.problem = problem;
    if (cause !== undefined) this.cause = cause;
  }
}
