// The world's closed vocabulary: shapes, colours (with their RGB values), sizes and the nine named
// image regions, each with the synonyms the caption templates may use. Everything that turns a
// scene into text (captions, instructions, questions, phrases) and the caption parser read from
// these tables, so a synonym can only ever name the attribute it is listed under.

export const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'cross', 'ring', 'star'] as const;
export type ShapeName = (typeof SHAPES)[number];

export const COLORS = ['red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'pink', 'white'] as const;
export type ColorName = (typeof COLORS)[number];

export const SIZES = ['small', 'large'] as const;
export type SizeName = (typeof SIZES)[number];

/** Row-major 3 x 3 grid of regions: index = row * 3 + col (row 0 = top, col 0 = left). */
export const REGIONS = [
  'top left', 'top', 'top right',
  'left', 'center', 'right',
  'bottom left', 'bottom', 'bottom right',
] as const;
export type RegionName = (typeof REGIONS)[number];

/** Linear RGB in [0, 1]; bright and saturated so every colour stands out from the dark backgrounds. */
export const COLOR_RGB: Readonly<Record<ColorName, readonly [number, number, number]>> = {
  red: [0.86, 0.12, 0.12],
  orange: [0.97, 0.55, 0.1],
  yellow: [0.95, 0.88, 0.15],
  green: [0.15, 0.7, 0.22],
  cyan: [0.12, 0.82, 0.88],
  blue: [0.15, 0.3, 0.92],
  purple: [0.56, 0.22, 0.8],
  pink: [0.98, 0.55, 0.8],
  white: [0.96, 0.96, 0.96],
};

/** Dark neutral backgrounds (far from every object colour, so "non-background" is easy to tell). */
export const BACKGROUND_RGB: readonly (readonly [number, number, number])[] = [
  [0.07, 0.07, 0.09],
  [0.16, 0.16, 0.17],
  [0.2, 0.17, 0.14],
  [0.1, 0.14, 0.19],
];
/** Amplitude of the per-pixel background texture (values vary by at most +-this). */
export const BACKGROUND_TEXTURE = 0.025;

export const COLOR_SYNONYMS: Readonly<Record<ColorName, readonly string[]>> = {
  red: ['red', 'crimson', 'scarlet'],
  orange: ['orange', 'tangerine'],
  yellow: ['yellow', 'golden'],
  green: ['green', 'emerald'],
  cyan: ['cyan', 'turquoise', 'aqua'],
  blue: ['blue', 'cobalt'],
  purple: ['purple', 'violet'],
  pink: ['pink', 'rose'],
  white: ['white', 'snow-white'],
};

/** Singular and plural nouns for each shape. */
export const SHAPE_SYNONYMS: Readonly<Record<ShapeName, readonly (readonly [string, string])[]>> = {
  circle: [['circle', 'circles'], ['disc', 'discs'], ['dot', 'dots']],
  square: [['square', 'squares'], ['box', 'boxes']],
  triangle: [['triangle', 'triangles']],
  diamond: [['diamond', 'diamonds'], ['rhombus', 'rhombi']],
  cross: [['cross', 'crosses'], ['plus sign', 'plus signs']],
  ring: [['ring', 'rings'], ['hoop', 'hoops'], ['donut', 'donuts']],
  star: [['star', 'stars']],
};

export const SIZE_SYNONYMS: Readonly<Record<SizeName, readonly string[]>> = {
  small: ['small', 'little', 'tiny'],
  large: ['large', 'big'],
};

/** How a region is said after an object ("a red circle at the top left"). */
export const REGION_PHRASES: Readonly<Record<RegionName, readonly string[]>> = {
  'top left': ['at the top left', 'in the top left corner', 'in the upper left'],
  top: ['at the top', 'at the top center', 'in the upper middle'],
  'top right': ['at the top right', 'in the top right corner', 'in the upper right'],
  left: ['on the left', 'at the left side', 'on the left side'],
  center: ['in the center', 'in the middle'],
  right: ['on the right', 'at the right side', 'on the right side'],
  'bottom left': ['at the bottom left', 'in the bottom left corner', 'in the lower left'],
  bottom: ['at the bottom', 'at the bottom center', 'in the lower middle'],
  'bottom right': ['at the bottom right', 'in the bottom right corner', 'in the lower right'],
};

export type RelationName = 'left of' | 'right of' | 'above' | 'below';
export const RELATION_PHRASES: Readonly<Record<RelationName, readonly string[]>> = {
  'left of': ['to the left of', 'left of'],
  'right of': ['to the right of', 'right of'],
  above: ['above', 'over'],
  below: ['below', 'under', 'beneath'],
};

export const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four'] as const;
export const OBJECT_NOUNS: readonly (readonly [string, string])[] = [['object', 'objects'], ['shape', 'shapes'], ['item', 'items']];
