#!/usr/bin/env node
// The `tessera` command: `tessera train <method> [options]`, `tessera eval <run-folder>`.

import { ArgumentError } from './errors';
import { trainCommand } from './train';
import { evalCommand } from './training/eval_command';

const USAGE = `usage: tessera <command> [options]

commands:
  train <method>       train a method (clip, siglip) and write a run folder (tessera train --help)
  eval <run-folder>    evaluate a trained run (tessera eval --help)`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'train') return trainCommand(rest);
  if (cmd === 'eval') return evalCommand(rest);
  if (cmd === undefined || cmd === '--help' || cmd === '-h') {
    console.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  throw new ArgumentError(`unknown command '${cmd}': expected train or eval`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(e instanceof ArgumentError ? `tessera: ${e.message}` : e);
    process.exit(e instanceof ArgumentError ? 2 : 1);
  },
);
