// Zero-shot classification tasks on the world: the shape or the colour of a single object (scenes
// drawn with exactly one object, from their own streams), and the number of objects in an
// ordinary scene. Each task has its class names and a prompt ensemble (several templates per
// class, the CLIP recipe: embed every prompt, average per class).

import { NUMBER_WORDS, COLORS, SHAPES } from './vocab';

export const CLASSIFICATION_TASKS = ['shape', 'color', 'count'] as const;
export type ClassificationTask = (typeof CLASSIFICATION_TASKS)[number];

export const CLASS_NAMES: Readonly<Record<ClassificationTask, readonly string[]>> = {
  shape: SHAPES,
  color: COLORS,
  count: [1, 2, 3].map((n) => `${NUMBER_WORDS[n]} ${n === 1 ? 'object' : 'objects'}`),
};

function a(word: string): string {
  return (/^[aeiou]/.test(word) ? 'an ' : 'a ') + word;
}

const PROMPTS: Readonly<Record<ClassificationTask, readonly ((name: string) => string)[]>> = {
  shape: [(c) => `${a(c)}.`, (c) => `a picture of ${a(c)}.`, (c) => `an image of ${a(c)}.`, (c) => `${a(c)} on a dark background.`, (c) => `a rendering of ${a(c)}.`],
  color: [(c) => `${a(c)} object.`, (c) => `a picture of ${a(c)} shape.`, (c) => `an image of something ${c}.`, (c) => `${a(c)} object on a dark background.`],
  count: [(c) => `${c}.`, (c) => `a picture of ${c}.`, (c) => `an image with ${c}.`, (c) => `${c} on a dark background.`],
};

/** The prompt ensemble of one class: one string per template. */
export function classPrompts(task: ClassificationTask, className: string): string[] {
  return PROMPTS[task].map((f) => f(className));
}
