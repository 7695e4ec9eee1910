// Question-answer pairs for VQA-as-retrieval: colour, shape, count, position and size questions
// about a scene, each answered by one word or phrase from a fixed vocabulary per question type
// (the retrieval candidates). Objects are named by a unique reference that never uses the
// attribute being asked about ("what shape is the red object?"), so every question has exactly
// one correct answer, read straight from the scene description.

import { Rng } from './rng';
import { Scene } from './scene';
import { Attribute, uniqueReference } from './referring';
import { COLORS, NUMBER_WORDS, REGIONS, SHAPES, SIZES } from './vocab';

export const QUESTION_TYPES = ['color', 'shape', 'count', 'position', 'size'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

/** The candidate answers of each question type (the canonical attribute names). */
export const ANSWER_VOCABULARY: Readonly<Record<QuestionType, readonly string[]>> = {
  color: COLORS,
  shape: SHAPES,
  count: NUMBER_WORDS.slice(1, 4),
  position: REGIONS,
  size: SIZES,
};

export interface QuestionText {
  type: QuestionType;
  question: string;
  answer: string;
  /** ANSWER_VOCABULARY[type]: the candidates to retrieve the answer from. */
  answers: readonly string[];
  answerIndex: number;
  /** The object asked about (null for count questions). */
  objectIndex: number | null;
}

const TEMPLATES: Readonly<Record<QuestionType, readonly string[]>> = {
  color: ['what colour is {o}?', 'what is the colour of {o}?', 'which colour does {o} have?', 'what color is {o}?'],
  shape: ['what shape is {o}?', 'what is the shape of {o}?', 'which shape does {o} have?'],
  count: ['how many objects are there?', 'how many shapes are in the image?', 'how many items can you see?', 'count the objects.'],
  position: ['where is {o}?', 'in which part of the image is {o}?', 'where in the picture is {o}?'],
  size: ['is {o} small or large?', 'what size is {o}?', 'how big is {o}, small or large?'],
};

/** Which attributes a reference may use for each question type (never the one asked about). */
const REFERENCE_ATTRIBUTES: Readonly<Record<Exclude<QuestionType, 'count'>, readonly Attribute[]>> = {
  color: ['shape', 'size'],
  shape: ['color', 'size'],
  position: ['shape', 'color', 'size'],
  size: ['shape', 'color'],
};

/** A random question about `scene` (type uniform, object uniform) and its answer. */
export function questionFor(rng: Rng, scene: Scene, type: QuestionType = rng.pick(QUESTION_TYPES)): QuestionText {
  const answers = ANSWER_VOCABULARY[type];
  const template = rng.pick(TEMPLATES[type]);
  if (type === 'count') {
    const answer = NUMBER_WORDS[scene.objects.length];
    return { type, question: template, answer, answers, answerIndex: answers.indexOf(answer), objectIndex: null };
  }
  const k = rng.int(scene.objects.length);
  const o = scene.objects[k];
  const ref = uniqueReference(rng, scene, k, REFERENCE_ATTRIBUTES[type]);
  const answer = type === 'color' ? o.color : type === 'shape' ? o.shape : type === 'size' ? o.size : o.region;
  return { type, question: template.replace('{o}', ref.text), answer, answers, answerIndex: answers.indexOf(answer), objectIndex: k };
}
