#!/usr/bin/env node
// The one list of native sources, read by CMakeLists.txt and binding.gyp alike:
// every .cpp under native/{core,cpu,napi}, and with --cuda every .cu under native/cuda.
// A new kernel file is picked up by both builds without editing either of them.
'use strict';
const fs = require('fs');
const path = require('path');

const root = __dirname;
const wantCuda = process.argv.includes('--cuda');
const relativeTo = process.argv.includes('--relative') ? path.dirname(root) : null;
const dirs = wantCuda ? ['cuda'] : ['core', 'cpu', 'napi'];
const ext = wantCuda ? '.cu' : '.cpp';

const files = [];
for (const dir of dirs) {
  const full = path.join(root, dir);
  if (!fs.existsSync(full)) continue;
  for (const name of fs.readdirSync(full).sort()) {
    if (name.endsWith(ext)) files.push(path.join(full, name));
  }
}
const out = relativeTo ? files.map((f) => path.relative(relativeTo, f)) : files;
// CMake reads a ';'-separated list, gyp reads whitespace-separated words.
process.stdout.write(process.argv.includes('--cmake') ? out.join(';') : out.join(' '));
