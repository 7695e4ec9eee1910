// A tiny 5x7 bitmap font (printable ASCII) drawn straight into CHW float images, so image grids
// written by saveImageGrid can carry their captions under each cell without a font library.
// Glyphs are drawn here as 7 rows of 5 characters ('#' = ink; 9 rows for g j p q y, whose tails
// hang below the baseline) so they are easy to read and fix; they are parsed once into bit masks.
// Characters without a glyph draw as a hollow box.

export const GLYPH_WIDTH = 5;
/** Rows above the baseline (capitals, digits); descenders (g j p q y) add two more. */
export const GLYPH_HEIGHT = 7;
/** Vertical advance per text line: glyph, descender and a blank row, in unscaled pixels. */
export const LINE_HEIGHT = GLYPH_HEIGHT + 3;
/** Horizontal advance per character (glyph plus one blank column), in unscaled pixels. */
export const GLYPH_ADVANCE = GLYPH_WIDTH + 1;

const GLYPHS: Record<string, string> = {
  A: '.###. #...# #...# ##### #...# #...# #...#', B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.', D: '####. #...# #...# #...# #...# #...# ####.',
  E: '##### #.... #.... ####. #.... #.... #####', F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####', H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.', J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#', L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#', N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.', P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#', R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.###. #...# #.... .###. ....# #...# .###.', T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.', V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.', X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..', Z: '##### ....# ...#. ..#.. .#... #.... #####',
  a: '..... ..... .###. ....# .#### #...# .####', b: '#.... #.... ####. #...# #...# #...# ####.',
  c: '..... ..... .###. #.... #.... #...# .###.', d: '....# ....# .#### #...# #...# #...# .####',
  e: '..... ..... .###. #...# ##### #.... .###.', f: '..##. .#..# .#... ###.. .#... .#... .#...',
  h: '#.... #.... #.##. ##..# #...# #...# #...#', i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.',
  k: '#.... #.... #..#. #.#.. ##... #.#.. #..#.', l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  m: '..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#', n: '..... ..... #.##. ##..# #...# #...# #...#',
  o: '..... ..... .###. #...# #...# #...# .###.', r: '..... ..... #.##. ##..# #.... #.... #....',
  s: '..... ..... .###. #.... .###. ....# ####.', t: '.#... .#... ###.. .#... .#... .#..# ..##.',
  u: '..... ..... #...# #...# #...# #..## .##.#', v: '..... ..... #...# #...# #...# .#.#. ..#..',
  w: '..... ..... #...# #...# #.#.# #.#.# .#.#.', x: '..... ..... #...# .#.#. ..#.. .#.#. #...#',
  z: '..... ..... ##### ...#. ..#.. .#... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.', '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####', '3': '####. ....# ....# .###. ....# ....# ####.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.', '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.', '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.', '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....', '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...', ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  ';': '..... .##.. .##.. ..... .##.. ..#.. .#...', '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..', '-': '..... ..... ..... ##### ..... ..... .....',
  _: '..... ..... ..... ..... ..... ..... #####', '/': '....# ....# ...#. ..#.. .#... #.... #....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.', ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....', '"': '.#.#. .#.#. ..... ..... ..... ..... .....',
  '%': '##..# ##.#. ...#. ..#.. .#... .#.## #..##', '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '=': '..... ..... ##### ..... ##### ..... .....', '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.#', '[': '.###. .#... .#... .#... .#... .#... .###.',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.', '<': '...#. ..#.. .#... #.... .#... ..#.. ...#.',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#...', '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
};
/** Lowercase letters with descenders: 9 rows, the top two blank (except j's dot), the last two below the baseline. */
const DESCENDERS: Record<string, string> = {
  g: '..... ..... .#### #...# #...# #...# .#### ....# .###.', j: '...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..',
  p: '..... ..... ####. #...# #...# #...# ####. #.... #....', q: '..... ..... .#### #...# #...# #...# .#### ....# ....#',
  y: '..... ..... #...# #...# #...# #...# .#### ....# .###.',
};
const MISSING = '##### #...# #...# #...# #...# #...# #####';

/** Per glyph, 7 (or 9, with a descender) row masks; bit (4 - x) of row y is set when pixel (x, y) is ink. */
const MASKS = new Map<string, number[]>();
function parseGlyph(art: string): number[] {
  return art.split(' ').map((row) => [...row].reduce((m, ch) => (m << 1) | (ch === '#' ? 1 : 0), 0));
}
for (const [ch, art] of [...Object.entries(GLYPHS), ...Object.entries(DESCENDERS)]) MASKS.set(ch, parseGlyph(art));
const MISSING_MASK = parseGlyph(MISSING);

/** The glyph of `ch` as row masks from the top of the line (a hollow box for characters the font lacks). */
export function glyphMask(ch: string): readonly number[] {
  return MASKS.get(ch) ?? MISSING_MASK;
}

/** True when the font has a real glyph for `ch`. */
export function hasGlyph(ch: string): boolean {
  return MASKS.has(ch);
}

/** Width in pixels of `text` drawn at `scale` (no trailing blank column). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

/**
 * Greedy word wrap of `text` into at most `maxLines` lines of at most `maxChars` characters.
 * Words longer than a line are cut; text that does not fit ends in '..'.
 */
export function wrapText(text: string, maxChars: number, maxLines: number): string[] {
  if (maxChars < 1 || maxLines < 1) return [];
  const pieces: string[] = [];
  for (const word of text.split(/\s+/)) {
    for (let i = 0; i < word.length; i += maxChars) pieces.push(word.slice(i, i + maxChars));
  }
  const lines: string[] = [];
  let cur = '';
  for (const piece of pieces) {
    const next = cur === '' ? piece : `${cur} ${piece}`;
    if (next.length <= maxChars) {
      cur = next;
    } else {
      lines.push(cur);
      cur = piece;
    }
  }
  if (cur !== '') lines.push(cur);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  const last = kept[maxLines - 1];
  kept[maxLines - 1] = last.length + 2 <= maxChars ? `${last}..` : `${last.slice(0, Math.max(0, maxChars - 2))}..`;
  return kept;
}

/**
 * Draw `text` into a CHW float image (values in [0, 1]) with its top-left corner at (x, y).
 * `color` has one value per channel (default white); pixels outside the image are skipped.
 */
export function drawText(
  image: Float32Array, channels: number, height: number, width: number,
  text: string, x: number, y: number, opts: { scale?: number; color?: readonly number[] } = {},
): void {
  const scale = Math.max(1, Math.floor(opts.scale ?? 1));
  const color = opts.color ?? new Array<number>(channels).fill(1);
  const plane = height * width;
  let penX = x;
  for (const ch of text) {
    const mask = glyphMask(ch);
    for (let gy = 0; gy < mask.length; gy++) {
      const row = mask[gy];
      if (row === 0) continue;
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
        if (((row >> (GLYPH_WIDTH - 1 - gx)) & 1) === 0) continue;
        for (let sy = 0; sy < scale; sy++) {
          const py = y + gy * scale + sy;
          if (py < 0 || py >= height) continue;
          for (let sx = 0; sx < scale; sx++) {
            const px = penX + gx * scale + sx;
            if (px < 0 || px >= width) continue;
            for (let c = 0; c < channels; c++) image[c * plane + py * width + px] = color[c] ?? color[0];
          }
        }
      }
    }
    penX += GLYPH_ADVANCE * scale;
  }
}
