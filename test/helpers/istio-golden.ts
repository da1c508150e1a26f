// Istio's iptables goldens (testing/fixtures/istio-plugin-iptables-golden,
// from istio/istio cni/pkg/plugin/testdata) restored into a sandbox pod's
// netns as istio-cni does it, for the tests that run meshlane beside or
// against Istio's rules (istio-cni, istio-parity, istio-validation).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pod } from '../../testing/sandbox/node.js';
import { run } from '../../src/sys/exec.js';
import { parseNatSave } from './nat-save.js';
import { upstreamFixtures } from './paths.js';

export const GOLDEN_DIR = join(upstreamFixtures, 'istio-plugin-iptables-golden');

/** What the injector writes for a native-sidecar pod in CNI mode (the only annotation Istio's plugin test needs). */
export const SIDECAR_STATUS = { 'sidecar.istio.io/status': '{"initContainers":["istio-validation","istio-proxy"],"containers":null,"volumes":["istio-envoy"]}' };

/** The annotations Istio's plugin test (cni/pkg/plugin/plugin_dryrun_test.go) gave for each golden, by golden file. */
export const GOLDEN_ANNOTATIONS = {
  'basic.txt.golden': { ...SIDECAR_STATUS },
  'include-exclude-ip.txt.golden': {
    ...SIDECAR_STATUS,
    'traffic.sidecar.istio.io/includeOutboundIPRanges': '127.0.0.0/8',
    'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.0.0.0/8',
  },
  'include-exclude-ports.txt.golden': {
    ...SIDECAR_STATUS,
    'traffic.sidecar.istio.io/includeInboundPorts': '1111,2222',
    'traffic.sidecar.istio.io/excludeInboundPorts': '3333,4444',
    'traffic.sidecar.istio.io/excludeOutboundPorts': '5555,6666',
  },
} as const;

/** Run a command inside the pod's netns as istio-cni does (nsenter, argv, bounded). */
export async function inNetns(pod: Pod, cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run('nsenter', [`--net=${pod.netnsPath}`, '--', cmd, ...args], { timeoutMs: 10_000, ...(input !== undefined ? { input } : {}) });
  return r.stdout;
}

/** The golden's rule lines (what iptables-restore must keep, all of them). */
export function goldenRules(text: string): string[] {
  return text.split('\n').filter((l) => /^-[AI] /.test(l));
}

/**
 * Istio writes the same rules with ip6tables for a pod with IPv6 (istio-iptables
 * builds both from one rule list, with ::1/128 for 127.0.0.1/32 and ::6/128 for
 * the 127.0.0.6/32 passthrough). The goldens were generated with IPv6 off, so
 * the IPv6 set here is DERIVED from them by exactly that substitution. A golden
 * with IPv4 ranges of its own (include-exclude-ip) gets them dropped: Istio
 * splits a range list by family, and the IPv4 ranges have no IPv6 rules.
 */
export function v6Counterpart(text: string): string {
  const out = text
    .replaceAll('127.0.0.1/32', '::1/128')
    .replaceAll('127.0.0.6/32', '::6/128')
    .split('\n')
    .filter((l) => !/ -d \d+\.\d+\.\d+\.\d+\/\d+ /.test(l))
    .join('\n');
  if (/\d+\.\d+\.\d+\.\d+/.test(out)) throw new Error('the golden holds an IPv4 literal without an IPv6 counterpart');
  return out;
}

export interface Applied { pod: string; file: string; family: 4 | 6; golden: number; inNetns: number; hooked: string[] }

/**
 * Apply a golden in the pod's netns. The goldens are the exact input istio-cni
 * gives `iptables-restore --noflush` (its "restore" format: `* nat`, `-N`
 * chain lines, `-A`/`-I` rules, `COMMIT`), so they go in verbatim; the check
 * afterwards is that the netns holds exactly as many rules as the golden has.
 * Then the derived IPv6 set through ip6tables-restore.
 */
export async function applyGolden(pod: Pod, file: string): Promise<Applied[]> {
  const text = readFileSync(join(GOLDEN_DIR, file), 'utf8');
  const out: Applied[] = [];
  for (const [family, restore, save, input] of [[4, 'iptables-restore', 'iptables-save', text], [6, 'ip6tables-restore', 'ip6tables-save', v6Counterpart(text)]] as const) {
    await inNetns(pod, restore, ['--noflush'], input);
    const saved = await inNetns(pod, save, ['-t', 'nat']);
    out.push({ pod: pod.name, file, family, golden: natRules(input), inNetns: saved.split('\n').filter((l) => l.startsWith('-A ')).length, hooked: parseNatSave(saved).hooked });
  }
  return out;
}

/** The number of rule lines of the golden's nat table. */
function natRules(text: string): number {
  let table = '';
  let n = 0;
  for (const l of text.split('\n')) {
    if (l.startsWith('* ')) table = l.slice(2).trim();
    else if (table === 'nat' && /^-[AI] /.test(l)) n++;
  }
  return n;
}
