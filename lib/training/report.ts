// The run's human-readable outputs: report.md (configuration, the final evaluation table with
// chance levels, timing) and SVG plots of the training loss, learning rate and validation
// metrics, all regenerated from metrics.jsonl so they are the same for resumed runs.

import { lineChartSvg } from '../io/plot_svg';
import { MetricsRecord } from '../io/metrics_log';
import { EvalRow } from './evaluate';
import { RunFolder } from './run_folder';

const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '—');
const num = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '—');

export function evalTable(rows: EvalRow[]): string {
  const lines = ['| metric | value | chance |', '|---|---:|---:|'];
  for (const r of rows) {
    const asPct = /R@|top-1|separability|retrieval/.test(r.metric);
    lines.push(`| ${r.metric} | ${asPct ? pct(r.value) : num(r.value)} | ${asPct ? pct(r.chance) : num(r.chance)} |`);
  }
  return lines.join('\n');
}

export function writePlots(run: RunFolder): string[] {
  const recs = run.metrics.read();
  const train = recs.filter((r) => r.kind === 'train');
  const val = recs.filter((r) => r.kind === 'val');
  const series = (rs: MetricsRecord[], key: string) => rs.filter((r) => typeof r[key] === 'number').map((r) => [r.step, r[key] as number] as [number, number]);
  const files: string[] = [];
  files.push(run.writeText('plots/loss.svg', lineChartSvg([{ name: 'train loss', points: series(train, 'loss') }], { title: 'Training loss', xLabel: 'step', yLabel: 'loss' })));
  files.push(run.writeText('plots/lr.svg', lineChartSvg([{ name: 'learning rate', points: series(train, 'lr') }], { title: 'Learning rate', xLabel: 'step' })));
  if (val.length) {
    const keys = Object.keys(val[val.length - 1]).filter((k) => /_R1$|top_1$|separability$/.test(k));
    files.push(run.writeText('plots/eval.svg', lineChartSvg(keys.map((k) => ({ name: k, points: series(val, k) })), { title: 'Validation metrics', xLabel: 'step', yLabel: 'fraction' })));
    files.push(run.writeText('plots/modality_gap.svg', lineChartSvg([{ name: 'centroid distance', points: series(val, 'modality_gap_centroid_distance') }], { title: 'Modality gap', xLabel: 'step' })));
  }
  return files;
}

export function writeReport(run: RunFolder, info: { title: string; config: object; rows: EvalRow[]; split: string; seconds: number; steps: number; extra?: string }): string {
  const md = [
    `# ${info.title}`,
    '',
    `${info.steps} steps in ${(info.seconds / 60).toFixed(1)} min. Evaluation on the ${info.split} split; chance is what a random ranking / guess scores.`,
    '',
    evalTable(info.rows),
    '',
    info.extra ?? '',
    '## Plots',
    '',
    '![loss](plots/loss.svg) ![eval](plots/eval.svg) ![gap](plots/modality_gap.svg) ![lr](plots/lr.svg)',
    '',
    '## Configuration',
    '',
    '```json',
    JSON.stringify(info.config, null, 2),
    '```',
    '',
  ].join('\n');
  return run.writeText('report.md', md);
}
