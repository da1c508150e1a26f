// The layering holds by itself: every import in src/ (static or dynamic) goes to
// a layer below its own, or stays in its folder. cli/plugin/install -> node ->
// mesh -> bpf -> sys, with the CNI protocol (cni) knowing nothing of meshes or
// BPF, and json and the top-level leaf modules usable from anywhere.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';

const src = join(repoRoot, 'src');

/** Which folders each folder may import from (besides itself and the leaves). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  json: [],
  sys: ['json'],
  kube: ['sys', 'json'],
  cri: ['json'],
  log: ['sys', 'json'],
  bpf: ['sys', 'json'],
  mesh: ['bpf', 'json'],
  cni: ['log', 'json'],
  node: ['cni', 'mesh', 'bpf', 'sys', 'log', 'json'],
  plugin: ['node', 'cni', 'mesh', 'kube', 'bpf', 'sys', 'log', 'json'],
  install: ['node', 'cni', 'mesh', 'kube', 'cri', 'bpf', 'sys', 'log', 'json'],
  cli: ['install', 'node', 'cni', 'mesh', 'kube', 'cri', 'bpf', 'sys', 'log', 'json'],
  '.': ['cli', 'plugin'],
};
/** Top-level modules with no imports of ours that every layer may use. */
const LEAVES = new Set(['usage-error.ts', 'build-info.ts', 'describe-error.ts']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []));
}

/** The folder of a source file: its first path component below src/ ('.' for a top-level file). */
function layerOf(file: string): string {
  const rel = relative(src, file);
  return rel.includes('/') ? (rel.split('/')[0] as string) : '.';
}

interface Edge {
  from: string;
  to: string;
  spec: string;
}

function importsOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const out: Edge[] = [];
  const re = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+)'/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] as string;
    const target = normalize(join(dirname(file), spec.replace(/\.js$/, '.ts')));
    if (!target.startsWith(src)) continue; // dist/ assets (the embedded object)
    out.push({ from: relative(src, file), to: relative(src, target), spec });
  }
  return out;
}

t.test('every import in src/ goes down the layers', async (t) => {
  const all = files(src);
  t.ok(all.length > 50, `${all.length} source files read`);
  const wrong: string[] = [];
  for (const file of all) {
    const from = layerOf(file);
    const allowed = ALLOWED[from];
    if (!allowed) {
      wrong.push(`${relative(src, file)}: its folder '${from}' has no place in the layering (add it to ALLOWED)`);
      continue;
    }
    for (const e of importsOf(file)) {
      const to = layerOf(join(src, e.to));
      if (to === from && from !== '.') continue;
      if (to === '.' && LEAVES.has(e.to)) continue;
      if (!allowed.includes(to)) wrong.push(`${e.from} imports ${e.spec} (${from} -> ${to})`);
    }
  }
  t.same(wrong, [], 'no import goes up or sideways');
  for (const leaf of LEAVES) {
    const path = join(src, leaf);
    if (all.includes(path)) t.same(importsOf(path), [], `${leaf} is a leaf: it imports nothing of ours`);
  }
});

t.test('the check itself sees an upward import', async (t) => {
  const edges = importsOf(join(src, 'main.ts'));
  t.ok(edges.some((e) => e.to.startsWith('plugin/')), 'main imports plugin (dynamic import found)');
  t.notOk(ALLOWED['sys']?.includes('bpf'), 'sys may not import bpf');
});
