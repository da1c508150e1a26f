// Parts of the single executable that most calls never use: the CLI and
// installer, the Kubernetes client, the Istio-rules probe, the native module and
// the eBPF object.
// scripts/build.mjs appends them to dist/meshlane after the SEA blob, so that a
// CNI call does not read, compile or scan them (big literals in the main script
// cost start-up even unused). This module is bundled into each script; it reads
// a part on demand:
//
//   <part bytes>... <index JSON: {"name":[offset,length],...}> <u64 LE index length> "MLPARTS1"
//
// Outside the executable (node dist/meshlane.cjs) the parts are the files in dist/.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';

export const MAGIC = 'MLPARTS1';
/** Where each part is when there is no trailer (relative to the bundle's directory, dist/). */
export const PART_FILES = { cli: 'meshlane-cli.cjs', kube: 'meshlane-kube.cjs', native: 'native/meshlane.node', bpf: 'bpf/meshlane.o', bpfCompat: 'bpf/meshlane-compat.o' };

let index;

function readAt(fd, length, position) {
  const buf = Buffer.allocUnsafe(length);
  let off = 0;
  while (off < length) {
    const n = readSync(fd, buf, off, length - off, position + off);
    if (n === 0) throw new Error(`${process.execPath}: short read of its parts`);
    off += n;
  }
  return buf;
}

/** The parts appended to the executable, or null when it has none. */
function trailer() {
  if (index !== undefined) return index;
  index = null;
  let fd;
  try {
    fd = openSync(process.execPath, 'r');
    const size = fstatSync(fd).size;
    if (size < 16) return index;
    const tail = readAt(fd, 16, size - 16);
    if (tail.toString('latin1', 8) !== MAGIC) return index;
    const len = Number(tail.readBigUInt64LE(0));
    index = JSON.parse(readAt(fd, len, size - 16 - len).toString('utf8'));
  } catch {
    index = null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return index;
}

/** A part's bytes. */
export function readPart(name) {
  const t = trailer();
  const at = t && t[name];
  if (!at) return readFileSync(join(__dirname, PART_FILES[name]));
  const fd = openSync(process.execPath, 'r');
  try {
    return readAt(fd, at[1], at[0]);
  } finally {
    closeSync(fd);
  }
}

const loaded = new Map();
/** A script part (a CommonJS bundle) compiled and run once; its exports. */
export function loadPart(name) {
  let m = loaded.get(name);
  if (!m) {
    m = { exports: {} };
    const code = readPart(name).toString('utf8');
    // node:vm only when a part is run (a CNI call of a decided pod never loads it).
    const fn = require('node:vm').runInThisContext(`(function (exports, require, module, __filename, __dirname) {${code}\n})`, { filename: PART_FILES[name] });
    fn.call(m.exports, m.exports, require, m, __filename, __dirname);
    loaded.set(name, m);
  }
  return m.exports;
}
