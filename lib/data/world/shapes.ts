// Shape geometry in an object's own frame: u to the right, v downwards, both in units of the
// object's radius, centred on the object. `insideShape` is the exact point test the rasteriser
// supersamples; `SHAPE_EXTENT` bounds each shape (for overlap rejection and bounding boxes); and
// `SHAPE_PROBE` is a point well inside each shape (a ring's centre is background, so its probe
// sits on the band), used wherever a pixel "of the object" is needed.

import { ShapeName } from './vocab';

function starPolygon(points: number, outer: number, inner: number): Float64Array {
  const xy = new Float64Array(points * 4);
  for (let k = 0; k < points * 2; k++) {
    const r = k % 2 === 0 ? outer : inner;
    const a = -Math.PI / 2 + (k * Math.PI) / points;
    xy[2 * k] = r * Math.cos(a);
    xy[2 * k + 1] = r * Math.sin(a);
  }
  return xy;
}

const STAR = starPolygon(5, 1.05, 0.5);
// upward triangle: apex (0, -1), base corners (+-0.98, 0.72)
const TRI_APEX = -1;
const TRI_BASE = 0.72;
const TRI_HALF = 0.98;

/** Even-odd point-in-polygon for a flat [x0, y0, x1, y1, ...] vertex list. */
function insidePolygon(xy: Float64Array, u: number, v: number): boolean {
  let inside = false;
  const n = xy.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = xy[2 * i], yi = xy[2 * i + 1], xj = xy[2 * j], yj = xy[2 * j + 1];
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function insideShape(shape: ShapeName, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= 0.82 && Math.abs(v) <= 0.82;
    case 'triangle':
      return v >= TRI_APEX && v <= TRI_BASE && Math.abs(u) <= (TRI_HALF * (v - TRI_APEX)) / (TRI_BASE - TRI_APEX);
    case 'diamond':
      return Math.abs(u) + Math.abs(v) <= 1.05;
    case 'cross': {
      const au = Math.abs(u), av = Math.abs(v);
      return (au <= 0.34 && av <= 1) || (av <= 0.34 && au <= 1);
    }
    case 'ring': {
      const r2 = u * u + v * v;
      return r2 <= 1 && r2 >= 0.5 * 0.5;
    }
    case 'star':
      return insidePolygon(STAR, u, v);
  }
}

/** Radius (in object radii) of a disc around the centre that contains the whole shape. */
export const SHAPE_EXTENT: Readonly<Record<ShapeName, number>> = {
  circle: 1,
  square: 0.82 * Math.SQRT2,
  triangle: Math.hypot(TRI_HALF, TRI_BASE),
  diamond: 1.05,
  cross: Math.hypot(1, 0.34),
  ring: 1,
  star: 1.05,
};

/** Axis-aligned half extents [left/right, top, bottom] in object radii (for tight bounding boxes). */
export const SHAPE_BOX: Readonly<Record<ShapeName, readonly [number, number, number]>> = {
  circle: [1, 1, 1],
  square: [0.82, 0.82, 0.82],
  triangle: [TRI_HALF, -TRI_APEX, TRI_BASE],
  diamond: [1.05, 1.05, 1.05],
  cross: [1, 1, 1],
  ring: [1, 1, 1],
  star: [1.05 * Math.cos(Math.PI / 10), 1.05, 1.05 * Math.cos(Math.PI / 5)],
};

/** A point well inside each shape, in object radii (the ring's is on its band). */
export const SHAPE_PROBE: Readonly<Record<ShapeName, readonly [number, number]>> = {
  circle: [0, 0],
  square: [0, 0],
  triangle: [0, 0.2],
  diamond: [0, 0],
  cross: [0, 0],
  ring: [0.75, 0],
  star: [0, 0],
};
