// Errors tessera raises from TypeScript. Native kernels raise plain Errors whose message already
// names the op; these subclasses let callers tell a shape problem from a disposed tensor.

export class TesseraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit the op (wrong rank, mismatched or unbroadcastable dims, bad dims). */
export class ShapeError extends TesseraError {}
/** A dtype or device the op does not accept, or operands that disagree. */
export class DTypeError extends TesseraError {}
/** A tensor used after dispose(). */
export class DisposedError extends TesseraError {}
/** An argument outside its domain: NaN sizes, negative counts, out-of-range indices. */
export class ArgumentError extends TesseraError {}
