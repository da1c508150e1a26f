// mkdir -p with a bound. Node's own `mkdirSync(p, { recursive: true })` loops
// forever where the kernel answers ENOENT for a directory whose parent exists
// (e.g. under /proc), so a bad path from a config could hang a CNI call.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { errnoOf } from '../describe-error.js';

const MAX_DEPTH = 64;

export function mkdirp(path: string, mode = 0o755): void {
  const missing: string[] = [];
  let p = resolve(path);
  for (let i = 0; i < MAX_DEPTH; i++) {
    try {
      if (statSync(p).isDirectory()) break;
      throw Object.assign(new Error(`${p} exists and is not a directory`), { code: 'ENOTDIR' });
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    missing.push(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
  }
}
