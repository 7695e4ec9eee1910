// Text-guided image transformations (FuseLIP's task): what a transformation is, the instruction
// that asks for it, and how its target image is made. Geometric and photometric ones act on the
// rendered source pixels (image_ops.ts), so a flipped target IS the flipped source; a recolour
// re-renders the scene with one object's colour changed (same texture, same geometry), so only
// that object's pixels change. Transformations are grouped into families; the candidate sets
// (transform_candidates.ts) draw hard negatives from the same family.

import { Rng } from './rng';
import { Scene, cloneScene } from './scene';
import { renderScene } from './raster';
import { uniqueReference } from './referring';
import { cropResize, flip, grayscale, rotateClockwise, scaleBrightness, scaleContrast } from './image_ops';
import { COLORS, COLOR_SYNONYMS, ColorName, ShapeName } from './vocab';

export const CROP_REGIONS = ['top left', 'top right', 'bottom left', 'bottom right', 'center'] as const;
export type CropRegion = (typeof CROP_REGIONS)[number];

export type Transformation =
  | { kind: 'crop'; region: CropRegion }
  | { kind: 'rotate'; degrees: 90 | 180 | 270 } // clockwise
  | { kind: 'flip'; axis: 'horizontal' | 'vertical' }
  | { kind: 'recolor'; object: number; color: ColorName }
  | { kind: 'grayscale' }
  | { kind: 'brightness'; direction: 'up' | 'down' }
  | { kind: 'contrast'; direction: 'up' | 'down' };

export const TRANSFORM_FAMILIES = ['crop', 'orientation', 'recolor', 'photometric'] as const;
export type TransformFamily = (typeof TRANSFORM_FAMILIES)[number];

export const BRIGHTNESS_FACTOR = { up: 1.5, down: 0.6 } as const;
export const CONTRAST_FACTOR = { up: 1.6, down: 0.5 } as const;

export function familyOf(t: Transformation): TransformFamily {
  switch (t.kind) {
    case 'crop': return 'crop';
    case 'rotate': case 'flip': return 'orientation';
    case 'recolor': return 'recolor';
    default: return 'photometric';
  }
}

/** The scene-independent members of a family (recolour depends on the scene: see recolorOptions). */
export function familyMembers(family: Exclude<TransformFamily, 'recolor'>): Transformation[] {
  switch (family) {
    case 'crop': return CROP_REGIONS.map((region) => ({ kind: 'crop', region }));
    case 'orientation': return [
      { kind: 'rotate', degrees: 90 }, { kind: 'rotate', degrees: 180 }, { kind: 'rotate', degrees: 270 },
      { kind: 'flip', axis: 'horizontal' }, { kind: 'flip', axis: 'vertical' },
    ];
    case 'photometric': return [
      { kind: 'grayscale' }, { kind: 'brightness', direction: 'up' }, { kind: 'brightness', direction: 'down' },
      { kind: 'contrast', direction: 'up' }, { kind: 'contrast', direction: 'down' },
    ];
  }
}

/**
 * Every valid recolour of a scene: object k to a colour it does not have, that no other object of
 * the same shape has (references stay unique), and that `allow` accepts for its shape.
 */
export function recolorOptions(scene: Scene, allow: (shape: ShapeName, color: ColorName) => boolean): Transformation[] {
  const out: Transformation[] = [];
  scene.objects.forEach((o, k) => {
    for (const color of COLORS) {
      if (color === o.color || !allow(o.shape, color)) continue;
      if (scene.objects.some((p) => p.shape === o.shape && p.color === color)) continue;
      out.push({ kind: 'recolor', object: k, color });
    }
  });
  return out;
}

export function sameTransformation(a: Transformation, b: Transformation): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Pixel window of a crop region: a quarter of the image, or its central half-size square. */
export function cropBox(region: CropRegion, size: number): { top: number; left: number; height: number; width: number } {
  const h = size / 2;
  const top = region === 'center' ? size / 4 : region.startsWith('bottom') ? h : 0;
  const left = region === 'center' ? size / 4 : region.endsWith('right') ? h : 0;
  return { top, left, height: h, width: h };
}

const CROP_TEXT = ['zoom into the {r} quarter', 'crop to the {r} quarter', 'show only the {r} quarter of the image', 'zoom in on the {r} quarter'];
const CENTER_TEXT = ['zoom into the center', 'crop to the central part', 'zoom in on the middle of the image'];
const ROTATE_TEXT: Record<90 | 180 | 270, string[]> = {
  90: ['rotate by 90 degrees clockwise', 'rotate the image 90 degrees to the right', 'turn the picture a quarter turn clockwise'],
  180: ['rotate by 180 degrees', 'turn the image around by 180 degrees', 'rotate the picture half a turn'],
  270: ['rotate by 90 degrees counterclockwise', 'rotate the image 90 degrees to the left', 'turn the picture a quarter turn counterclockwise'],
};
const FLIP_TEXT = {
  horizontal: ['flip horizontally', 'mirror the image left to right', 'flip the picture horizontally'],
  vertical: ['flip vertically', 'mirror the image top to bottom', 'flip the picture upside down'],
};
const RECOLOR_TEXT = ['make {o} {c}', 'change the colour of {o} to {c}', 'paint {o} {c}', 'recolour {o} {c}', 'turn {o} {c}'];
const PHOTO_TEXT = {
  grayscale: ['make the image grayscale', 'remove the colours', 'convert the picture to black and white'],
  brightness: {
    up: ['make the image brighter', 'increase the brightness', 'brighten the picture'],
    down: ['make the image darker', 'decrease the brightness', 'darken the picture'],
  },
  contrast: {
    up: ['increase the contrast', 'make the image more contrasted', 'raise the contrast'],
    down: ['reduce the contrast', 'make the image less contrasted', 'lower the contrast'],
  },
};

/** An instruction asking for `t` on `scene` (recolours name the object by a unique reference). */
export function instructionText(rng: Rng, t: Transformation, scene: Scene): string {
  switch (t.kind) {
    case 'crop':
      return t.region === 'center' ? rng.pick(CENTER_TEXT) : rng.pick(CROP_TEXT).replace('{r}', t.region);
    case 'rotate': return rng.pick(ROTATE_TEXT[t.degrees]);
    case 'flip': return rng.pick(FLIP_TEXT[t.axis]);
    case 'recolor': {
      const ref = uniqueReference(rng, scene, t.object, ['shape', 'color', 'size']).text;
      return rng.pick(RECOLOR_TEXT).replace('{o}', ref).replace('{c}', rng.pick(COLOR_SYNONYMS[t.color]));
    }
    case 'grayscale': return rng.pick(PHOTO_TEXT.grayscale);
    case 'brightness': return rng.pick(PHOTO_TEXT.brightness[t.direction]);
    case 'contrast': return rng.pick(PHOTO_TEXT.contrast[t.direction]);
  }
}

/** The scene after a recolour (other transformations leave the scene description as it is). */
export function recoloredScene(scene: Scene, t: Extract<Transformation, { kind: 'recolor' }>): Scene {
  const out = cloneScene(scene);
  out.objects[t.object].color = t.color;
  return out;
}

/** The target image of `t` applied to `source` (the render of `scene` at `size`). */
export function applyTransformation(t: Transformation, scene: Scene, source: Float32Array, size: number): Float32Array {
  switch (t.kind) {
    case 'crop': return cropResize(source, 3, size, cropBox(t.region, size), size);
    case 'rotate': return rotateClockwise(source, 3, size, t.degrees / 90);
    case 'flip': return flip(source, 3, size, t.axis);
    case 'recolor': return renderScene(recoloredScene(scene, t), size);
    case 'grayscale': return grayscale(source, size);
    case 'brightness': return scaleBrightness(source, BRIGHTNESS_FACTOR[t.direction]);
    case 'contrast': return scaleContrast(source, CONTRAST_FACTOR[t.direction]);
  }
}

/** A random transformation for a scene: a family uniformly, then a member (recolour if possible). */
export function drawTransformation(rng: Rng, scene: Scene, allow: (shape: ShapeName, color: ColorName) => boolean): Transformation {
  const family = rng.pick(TRANSFORM_FAMILIES);
  if (family === 'recolor') {
    const options = recolorOptions(scene, allow);
    if (options.length > 0) return rng.pick(options);
    return rng.pick(familyMembers('orientation'));
  }
  return rng.pick(familyMembers(family));
}
