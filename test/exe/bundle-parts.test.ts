// What a CNI call compiles: the main script of the executable holds the plugin's
// path only. The installer and CLI, the CRI client, the Kubernetes client and
// the probe for Istio's rules (with execa) are parts loaded on first use, so a
// plugin-path import of one of them (even a static import for a rare case)
// fails here instead of costing every CNI call its start-up.
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
  ['execa', 'execa', 'meshlane-iptables.cjs'],
  ["the probe for Istio's rules", 'iptables-save', 'meshlane-iptables.cjs'],
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
