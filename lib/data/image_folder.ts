// A user's own captioned images: a directory of PNG/JPEG files plus a captions file naming them.
// Three captions formats, picked by extension: TSV (`filename<TAB>caption`), CSV with a header
// (`filename,caption`, RFC 4180 quoting) and JSONL (`{"file": ..., "caption": ...}` or
// `"captions": [...]`). A file may appear on several rows; its captions are collected in order.
// Every bad row is an error naming the captions file and its 1-based line, because a silently
// skipped row would quietly change the data set. Images are centre-cropped to the target aspect
// ratio and resized bilinearly, so any photo becomes one cell of an ImageBatch.

import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError } from '../errors';
import { DataFileError, ImageBatch } from './image_batch';
import { centerCropResize, decodeImageFile } from './image_io';

export interface ImageFolderOptions {
  /** Captions file, relative to dir or absolute (default: captions.tsv, captions.jsonl or captions.csv in dir). */
  captionsFile?: string;
  /** Output size: S for S x S, or [height, width]. */
  imageSize: number | [number, number];
  /** 3 (RGB, default) or 1 (luma, 0.299 R + 0.587 G + 0.114 B). */
  channels?: 1 | 3;
}

export interface ImageFolder {
  images: ImageBatch;
  /** captions[i]: every caption given for files[i], in file order. */
  captions: string[][];
  /** Image paths as written in the captions file (relative to dir), in order of first appearance. */
  files: string[];
}

/** One (file, caption) pair and the 1-based line it came from. */
export interface CaptionRow {
  file: string;
  caption: string;
  line: number;
}

export const DEFAULT_CAPTIONS_FILES = ['captions.tsv', 'captions.jsonl', 'captions.csv'] as const;
const FILE_KEYS = ['file', 'filename', 'image'];

function needText(captionsFile: string, line: number, value: string, what: string): string {
  const v = value.trim();
  if (v === '') throw new DataFileError(captionsFile, `empty ${what}`, line);
  return v;
}

/** Rows of a TSV captions file; blank lines and '#' comments are skipped, a `filename<TAB>caption` header too. */
export function parseCaptionsTsv(text: string, captionsFile: string): CaptionRow[] {
  const rows: CaptionRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '' || raw.startsWith('#')) return;
    const tab = raw.indexOf('\t');
    if (tab < 0) throw new DataFileError(captionsFile, `expected "filename<TAB>caption", found no tab in "${raw.slice(0, 60)}"`, line);
    const file = raw.slice(0, tab).trim();
    const caption = raw.slice(tab + 1);
    if (rows.length === 0 && FILE_KEYS.includes(file.toLowerCase()) && caption.trim().toLowerCase() === 'caption') return;
    rows.push({ file: needText(captionsFile, line, file, 'filename'), caption: needText(captionsFile, line, caption, 'caption'), line });
  });
  return rows;
}

/** CSV records with the 1-based line each starts on; quoted fields may hold commas, "" and newlines. */
function csvRecords(text: string, captionsFile: string): { fields: string[]; line: number }[] {
  const records: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  let i = 0;
  const endRecord = (): void => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0].trim() === '')) records.push({ fields, line: start });
    fields = [];
    field = '';
  };
  while (i < text.length) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (ch === '"') { quoted = false; i++; continue; }
      if (ch === '\n') line++;
      field += ch;
      i++;
      continue;
    }
    if (ch === '"' && field.trim() === '') { quoted = true; field = ''; i++; continue; }
    if (ch === ',') { fields.push(field); field = ''; i++; continue; }
    if (ch === '\r' && text[i + 1] === '\n') { i++; continue; }
    if (ch === '\n') { endRecord(); line++; start = line; i++; continue; }
    field += ch;
    i++;
  }
  if (quoted) throw new DataFileError(captionsFile, 'unterminated quoted field', start);
  if (field !== '' || fields.length > 0) endRecord();
  return records;
}

/** Rows of a CSV captions file whose header names a filename column (file/filename/image) and a caption column. */
export function parseCaptionsCsv(text: string, captionsFile: string): CaptionRow[] {
  const records = csvRecords(text, captionsFile);
  if (records.length === 0) return [];
  const header = records[0].fields.map((h) => h.trim().toLowerCase());
  const fileCol = header.findIndex((h) => FILE_KEYS.includes(h));
  const capCol = header.indexOf('caption');
  if (fileCol < 0 || capCol < 0) {
    throw new DataFileError(captionsFile, `expected a header "filename,caption", found "${records[0].fields.join(',')}"`, records[0].line);
  }
  return records.slice(1).map(({ fields, line }) => {
    if (fields.length !== header.length) {
      throw new DataFileError(captionsFile, `expected ${header.length} columns (${header.join(', ')}), found ${fields.length}`, line);
    }
    return { file: needText(captionsFile, line, fields[fileCol], 'filename'), caption: needText(captionsFile, line, fields[capCol], 'caption'), line };
  });
}

/** Rows of a JSONL captions file: one object per line with file (or filename/image) and caption or captions. */
export function parseCaptionsJsonl(text: string, captionsFile: string): CaptionRow[] {
  const rows: CaptionRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw new DataFileError(captionsFile, `invalid JSON: ${(e as Error).message}`, line);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new DataFileError(captionsFile, 'expected a JSON object', line);
    const rec = obj as Record<string, unknown>;
    const key = FILE_KEYS.find((k) => k in rec);
    const file = key === undefined ? undefined : rec[key];
    if (typeof file !== 'string') throw new DataFileError(captionsFile, 'expected a string "file" field', line);
    let caps: unknown[];
    if (typeof rec.caption === 'string') caps = [rec.caption];
    else if (Array.isArray(rec.captions)) caps = rec.captions;
    else throw new DataFileError(captionsFile, 'expected a string "caption" or an array "captions"', line);
    if (caps.length === 0) throw new DataFileError(captionsFile, 'empty "captions" array', line);
    for (const c of caps) {
      if (typeof c !== 'string') throw new DataFileError(captionsFile, `captions must be strings, found ${JSON.stringify(c)}`, line);
      rows.push({ file: needText(captionsFile, line, file, 'filename'), caption: needText(captionsFile, line, c, 'caption'), line });
    }
  });
  return rows;
}

/** Parse a captions file by its extension (.tsv, .csv, .jsonl). */
export function readCaptionsFile(captionsFile: string): CaptionRow[] {
  let text: string;
  try {
    text = fs.readFileSync(captionsFile, 'utf8');
  } catch (e) {
    throw new DataFileError(captionsFile, `cannot read captions file: ${(e as Error).message}`);
  }
  const ext = path.extname(captionsFile).toLowerCase();
  if (ext === '.tsv') return parseCaptionsTsv(text, captionsFile);
  if (ext === '.csv') return parseCaptionsCsv(text, captionsFile);
  if (ext === '.jsonl') return parseCaptionsJsonl(text, captionsFile);
  throw new DataFileError(captionsFile, `unknown captions format "${ext}": expected .tsv, .csv or .jsonl`);
}

function outputSize(size: number | [number, number]): [number, number] {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new ArgumentError(`loadImageFolder: imageSize must be a positive integer or [height, width], got ${JSON.stringify(size)}`);
  }
  return [h, w];
}

/**
 * Load every image named in the captions file of `dir`, centre-cropped and resized to imageSize,
 * with its captions. Rows naming files that do not exist are errors (with the line number).
 */
export function loadImageFolder(dir: string, opts: ImageFolderOptions): ImageFolder {
  const [outH, outW] = outputSize(opts.imageSize);
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new ArgumentError(`loadImageFolder: channels must be 1 or 3, got ${String(channels)}`);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DataFileError(dir, 'image folder not found (expected a directory)');
  let captionsFile: string;
  if (opts.captionsFile !== undefined) {
    captionsFile = path.resolve(dir, opts.captionsFile);
  } else {
    const found = DEFAULT_CAPTIONS_FILES.map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
    if (found === undefined) throw new DataFileError(dir, `no captions file: expected one of ${DEFAULT_CAPTIONS_FILES.join(', ')} or opts.captionsFile`);
    captionsFile = found;
  }
  const rows = readCaptionsFile(captionsFile);
  const byFile = new Map<string, string[]>();
  for (const row of rows) {
    let caps = byFile.get(row.file);
    if (caps === undefined) {
      const p = path.resolve(dir, row.file);
      if (!fs.existsSync(p) || !fs.statSync(p).isFile()) throw new DataFileError(captionsFile, `unknown file "${row.file}" (not found in ${dir})`, row.line);
      caps = [];
      byFile.set(row.file, caps);
    }
    caps.push(row.caption);
  }
  const files = [...byFile.keys()];
  const per = channels * outH * outW;
  const data = new Float32Array(files.length * per);
  files.forEach((f, i) => {
    const img = decodeImageFile(path.resolve(dir, f));
    const rgb = centerCropResize(img.data, 3, img.height, img.width, outH, outW);
    if (channels === 3) {
      data.set(rgb, i * per);
    } else {
      const plane = outH * outW;
      for (let p = 0; p < plane; p++) data[i * per + p] = 0.299 * rgb[p] + 0.587 * rgb[plane + p] + 0.114 * rgb[2 * plane + p];
    }
  });
  return { images: { data, n: files.length, channels, height: outH, width: outW }, captions: files.map((f) => byFile.get(f) as string[]), files };
}
