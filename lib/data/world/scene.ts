// Scene descriptions and their random generation. A scene is 1-3 objects (shape, colour, size,
// centre) on a dark, lightly textured background. Geometry is in normalised image units (0..1),
// so one scene renders at any image size. Each object sits in its own cell of a 3 x 3 grid (with
// jitter), which makes its named region unambiguous and every pair of objects related by a clear
// "left of" or "above"; rejection sampling keeps shapes at least a margin apart so that what the
// captions say stays visibly true (objects never touch or hide each other).

import { Rng } from './rng';
import { SHAPE_BOX, SHAPE_EXTENT } from './shapes';
import {
  BACKGROUND_RGB, COLORS, ColorName, REGIONS, RegionName, RelationName, SHAPES, SIZES, ShapeName, SizeName,
} from './vocab';

export interface WorldObject {
  shape: ShapeName;
  color: ColorName;
  size: SizeName;
  /** Centre, in image units (0 = left/top edge, 1 = right/bottom edge). */
  cx: number;
  cy: number;
  /** Radius in image units (SIZE_RADIUS[size]). */
  radius: number;
  /** The named region the centre lies in (thirds of the image). */
  region: RegionName;
}

export interface Scene {
  objects: WorldObject[];
  /** Index into BACKGROUND_RGB. */
  background: number;
  /** Seed of the per-pixel background texture. */
  textureSeed: number;
}

export const SIZE_RADIUS: Readonly<Record<SizeName, number>> = { small: 0.1, large: 0.16 };
/** Minimum gap between two objects' bounding discs, in image units (2 px at 32 x 32). */
export const OBJECT_GAP = 0.0625;
const CELL_CENTRES = [0.2, 0.5, 0.8];
const JITTER = 0.05;

/** The region of a point: thirds of the image along each axis. */
export function regionOf(cx: number, cy: number): RegionName {
  const col = cx < 1 / 3 ? 0 : cx < 2 / 3 ? 1 : 2;
  const row = cy < 1 / 3 ? 0 : cy < 2 / 3 ? 1 : 2;
  return REGIONS[row * 3 + col];
}

/** Row and column (0..2) of a region name. */
export function regionCell(region: RegionName): [number, number] {
  const k = REGIONS.indexOf(region);
  return [Math.floor(k / 3), k % 3];
}

/** The relations that hold from object a to object b (by grid cell: always clear-cut). */
export function relationsBetween(a: WorldObject, b: WorldObject): RelationName[] {
  const [ra, ca] = regionCell(a.region);
  const [rb, cb] = regionCell(b.region);
  const out: RelationName[] = [];
  if (ca < cb) out.push('left of');
  if (ca > cb) out.push('right of');
  if (ra < rb) out.push('above');
  if (ra > rb) out.push('below');
  return out;
}

/** Pixel bounding box [x0, y0, x1, y1) of an object at a given image size (clipped to the image). */
export function objectBox(o: WorldObject, imageSize: number): [number, number, number, number] {
  const [hx, top, bottom] = SHAPE_BOX[o.shape];
  const S = imageSize;
  const x0 = Math.max(0, Math.floor((o.cx - hx * o.radius) * S));
  const x1 = Math.min(S, Math.ceil((o.cx + hx * o.radius) * S));
  const y0 = Math.max(0, Math.floor((o.cy - top * o.radius) * S));
  const y1 = Math.min(S, Math.ceil((o.cy + bottom * o.radius) * S));
  return [x0, y0, x1, y1];
}

export function objectsOverlap(a: WorldObject, b: WorldObject): boolean {
  const reach = SHAPE_EXTENT[a.shape] * a.radius + SHAPE_EXTENT[b.shape] * b.radius + OBJECT_GAP;
  return Math.hypot(a.cx - b.cx, a.cy - b.cy) < reach;
}

/** Which (shape, colour) pairs a scene may use, and how many objects it has (1-3, or random). */
export interface SceneConstraints {
  allowCombo: (shape: ShapeName, color: ColorName) => boolean;
  count?: number;
}

/** Centre positions are quantised to 1/256 so scene keys are exact and stable. */
function quantise(x: number): number {
  return Math.round(x * 256) / 256;
}

function placeObject(rng: Rng, cell: number, shape: ShapeName, color: ColorName, size: SizeName): WorldObject {
  const radius = SIZE_RADIUS[size];
  const lim = SHAPE_EXTENT[shape] * radius + 0.01;
  const clamp = (x: number) => Math.min(1 - lim, Math.max(lim, x));
  const cx = quantise(clamp(CELL_CENTRES[cell % 3] + rng.uniform(-JITTER, JITTER)));
  const cy = quantise(clamp(CELL_CENTRES[Math.floor(cell / 3)] + rng.uniform(-JITTER, JITTER)));
  return { shape, color, size, cx, cy, radius, region: regionOf(cx, cy) };
}

/**
 * One random scene, or null if the draws could not be placed (the caller retries with the next
 * attempt's stream). Objects have distinct (shape, colour) pairs, distinct cells and no overlaps.
 */
export function generateScene(rng: Rng, constraints: SceneConstraints): Scene | null {
  const u = rng.next();
  const count = constraints.count ?? (u < 0.3 ? 1 : u < 0.65 ? 2 : 3);
  const cells = rng.shuffle([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const objects: WorldObject[] = [];
  let nextCell = 0;
  for (let k = 0; k < count; k++) {
    let placed: WorldObject | null = null;
    for (let tries = 0; tries < 12 && !placed; tries++) {
      const shape = rng.pick(SHAPES);
      const color = rng.pick(COLORS);
      if (!constraints.allowCombo(shape, color)) continue;
      if (objects.some((o) => o.shape === shape && o.color === color)) continue;
      const size = rng.pick(SIZES);
      for (let c = nextCell; c < cells.length; c++) {
        const cand = placeObject(rng, cells[c], shape, color, size);
        if (objects.some((o) => objectsOverlap(o, cand))) continue;
        placed = cand;
        const used = cells[c]; // move the used cell into the taken prefix
        cells[c] = cells[nextCell];
        cells[nextCell] = used;
        nextCell++;
        break;
      }
    }
    if (!placed) return null;
    objects.push(placed);
  }
  return { objects, background: rng.int(BACKGROUND_RGB.length), textureSeed: rng.u32() };
}

/**
 * A canonical string for the content of a scene (objects in a fixed order, quantised centres,
 * background colour; the texture seed is left out, so two scenes that differ only in texture
 * noise count as the same scene). Splits are assigned by hashing this key.
 */
export function sceneKey(scene: Scene): string {
  const parts = scene.objects
    .map((o) => `${o.shape}/${o.color}/${o.size}/${Math.round(o.cx * 256)}/${Math.round(o.cy * 256)}`)
    .sort();
  return `${scene.background}:${parts.join(';')}`;
}

/** A deep copy (transformations edit copies, never the cached original). */
export function cloneScene(scene: Scene): Scene {
  return { objects: scene.objects.map((o) => ({ ...o })), background: scene.background, textureSeed: scene.textureSeed };
}
