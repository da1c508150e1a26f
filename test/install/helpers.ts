// Shared inputs for the conflist tests: the real files other CNIs write, Istio's
// installer goldens, and meshlane's own entry from cni-conf/meshlane.json.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ConfigFile } from '../../src/install/cniconf/files.js';
import { parseCniConfig } from '../../src/install/cniconf/validity.js';
import { repoRoot, upstreamFixtures } from '../helpers/paths.js';

export const conflistsDir = resolve(upstreamFixtures, 'conflists');
export const istioGoldenDir = resolve(upstreamFixtures, 'istio-install-golden');

export const meshlaneEntry = JSON.parse(readFileSync(resolve(repoRoot, 'cni-conf', 'meshlane.json'), 'utf8')) as Record<string, unknown>;

export function readConfig(dir: string, name: string, as = name): ConfigFile {
  return { name: as, bytes: new Uint8Array(readFileSync(join(dir, name))) };
}

/** Every real primary config: `<cni>-<file name>` in fixtures/conflists, read as `<file name>`. */
export function realConfigs(): Array<{ fixture: string; file: ConfigFile }> {
  return readdirSync(conflistsDir)
    .filter((f) => f.endsWith('.conflist') || f.endsWith('.conf'))
    .sort()
    .map((fixture) => {
      // "aws-vpc-cni-10-aws.conflist" → "10-aws.conflist": the name it has on a node.
      const m = /(\d\d-.*)$/.exec(fixture);
      return { fixture, file: readConfig(conflistsDir, fixture, m?.[1] ?? fixture) };
    });
}

export function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('utf8');
}

export function bytesOf(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'utf8'));
}

/** The parsed document, failing loudly when the file is not valid. */
export function docOf(file: ConfigFile): Record<string, unknown> {
  const p = parseCniConfig(file.name, file.bytes);
  if (!p.ok) throw new Error(`${file.name}: ${p.reason}`);
  return p.doc;
}

export function pluginsOf(doc: Record<string, unknown>): Array<Record<string, unknown>> {
  const plugins = doc['plugins'];
  if (!Array.isArray(plugins)) throw new Error('no plugins array');
  return plugins as Array<Record<string, unknown>>;
}

export function without(obj: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
}
