// Element types and devices. The numeric codes match native/core/dtype.h.

export type DType = 'float32' | 'float64' | 'int32';
export type Device = 'cpu' | 'cuda';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32'];

export const dtypeCode: Record<DType, number> = { float32: 0, float64: 1, int32: 2 };
export const deviceCode: Record<Device, number> = { cpu: 0, cuda: 1 };
export const dtypeSize: Record<DType, number> = { float32: 4, float64: 8, int32: 4 };

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : Int32Array;
export type AnyTypedArray = Float32Array | Float64Array | Int32Array;

export function typedArrayFor(dtype: DType, buffer: ArrayBuffer): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

export function isDType(x: unknown): x is DType {
  return x === 'float32' || x === 'float64' || x === 'int32';
}

export function isDevice(x: unknown): x is Device {
  return x === 'cpu' || x === 'cuda';
}
