// What a CNI call compiles: the main script of the executable holds the plugin's
// path only. The installer and CLI (with execa), the CRI client and the
// Kubernetes client are parts loaded on first use, so a plugin-path import of
// one of them (even a static import for a rare case) fails here instead of
// costing every CNI call its start-up. And the plugin's path runs no process:
// the main script holds no way to start one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';

const dist = join(repoRoot, 'dist');
const read = (f: string): string => {
  try {
    return readFileSync(join(dist, f), 'utf8');
  } catch {
    throw new Error(`dist/${f} is missing: run 'npm run build' first`);
  }
};
const main = read('meshlane.cjs');

/** A string that only the module it names contains, and the part it must be in. */
const MARKERS: Array<[what: string, marker: string, part: string]> = [
  ['the installer', 'serving /healthz', 'meshlane-cli.cjs'],
  ['the CRI client', 'ListPodSandbox', 'meshlane-cli.cjs'],
  ['the Kubernetes client', 'service account token was refused', 'meshlane-kube.cjs'],
  ['execa', 'execa', 'meshlane-cli.cjs'],
];

for (const [what, marker, part] of MARKERS) {
  t.test(`${what} is in ${part}, not in the main script`, async (t) => {
    t.ok(read(part).includes(marker), `${part} holds ${JSON.stringify(marker)} (the marker still names it)`);
    t.notOk(main.includes(marker), `dist/meshlane.cjs holds no ${JSON.stringify(marker)}`);
  });
}

t.test('the main script stays small', async (t) => {
  t.ok(main.length < 160_000, `dist/meshlane.cjs is ${main.length} bytes (a CNI call compiles all of it)`);
});

t.test('the main script starts no process and names no host tool', async (t) => {
  for (const word of ['child_process', 'execa', 'nsenter', 'iptables-save', 'iptables-legacy-save', 'bpftool', '"tc"']) {
    t.notOk(main.includes(word), `dist/meshlane.cjs holds no ${JSON.stringify(word)}`);
  }
});
