// The table every benchmark prints: case | ours | peer | ratio (ours / peer for throughputs).

export interface Row {
  case: string;
  ours: number;
  peer: number | null;
}

export function printTable(title: string, unit: string, peerLabel: string, rows: Row[]): string {
  const lines = [
    `### ${title}`,
    '',
    `| case | tessera ${unit} | ${peerLabel} ${unit} | ratio |`,
    '|---|---:|---:|---:|',
    ...rows.map((r) => {
      const peer = r.peer === null ? 'n/a' : r.peer.toFixed(2);
      const ratio = r.peer === null || r.peer === 0 ? 'n/a' : (r.ours / r.peer).toFixed(2);
      return `| ${r.case} | ${r.ours.toFixed(2)} | ${peer} | ${ratio} |`;
    }),
  ];
  const text = lines.join('\n');
  console.log(text + '\n');
  return text;
}
