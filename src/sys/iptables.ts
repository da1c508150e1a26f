// Are Istio's iptables rules (istio-cni / istio-init: chains ISTIO_OUTPUT and
// ISTIO_INBOUND in the nat table) in a pod's netns? Read-only: it lists the
// nat table with `iptables-save -t nat` (and ip6tables-save) run inside the
// netns through `nsenter --net=<path>`; it never writes a rule.
//
// Both iptables backends are looked at, since istio-cni picks the one the
// node uses (it compares iptables-legacy-save and iptables-nft-save): the nft
// one is only listed (no side effect), the legacy one only when the netns
// already has a legacy nat table (/proc/net/ip_tables_names), because asking
// the legacy backend for a table that does not exist makes the kernel create
// it in that netns.
import { existsSync } from 'node:fs';
import { CommandError, run } from './exec.js';
import { errorMessage } from '../describe-error.js';

export type IstioRulesState = 'present' | 'absent' | 'unknown';

export interface IstioRulesProbe {
  state: IstioRulesState;
  /** Istio chains hooked into nat OUTPUT / PREROUTING (ISTIO_OUTPUT, ISTIO_INBOUND), per family and backend. */
  hooked: string[];
  /** One line for people: what was found where, or why it is unknown. */
  detail: string;
}

export const ISTIO_NAT_CHAINS = { output: 'ISTIO_OUTPUT', inbound: 'ISTIO_INBOUND' } as const;

export interface NatTableView {
  /** Chains declared in the dump (`:NAME POLICY [p:b]`). */
  chains: string[];
  /** Istio chains that nat OUTPUT / PREROUTING jump to. */
  hooked: string[];
  /** Number of rules (`-A` lines) in Istio's chains (ISTIO_*). */
  istioRules: number;
}

/** Parse `iptables-save -t nat` output (any backend; counters allowed). */
export function parseNatSave(text: string): NatTableView {
  const chains: string[] = [];
  const hooked = new Set<string>();
  let istioRules = 0;
  let inNat = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim().replace(/^\[\d+:\d+\]\s+/, '');
    if (line.startsWith('*')) {
      inNat = line.slice(1).trim() === 'nat';
      continue;
    }
    if (!inNat) continue;
    const decl = /^:(\S+)\s/.exec(line);
    if (decl?.[1]) {
      chains.push(decl[1]);
      continue;
    }
    const rule = /^-A\s+(\S+)\s(.*)$/.exec(line);
    if (!rule) continue;
    const [, chain = '', rest = ''] = rule;
    if (chain.startsWith('ISTIO_')) istioRules++;
    const jump = /(?:^|\s)-j\s+(\S+)/.exec(rest)?.[1];
    if (chain === 'OUTPUT' && jump === ISTIO_NAT_CHAINS.output) hooked.add(jump);
    if (chain === 'PREROUTING' && jump === ISTIO_NAT_CHAINS.inbound) hooked.add(jump);
  }
  return { chains, hooked: [...hooked].sort(), istioRules };
}

interface Backend {
  /** What the detail line calls it. */
  label: string;
  save: string;
  /** /proc/net file that must list 'nat' before this backend is asked (legacy only). */
  legacyTables?: string;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/** The listers to try: nft and legacy where installed, else the plain `iptables-save`. */
function backends(): Backend[] {
  const out: Backend[] = [];
  for (const [fam, v] of [['ip', 'v4'], ['ip6', 'v6']] as const) {
    const nft = onPath(`${fam}tables-nft-save`);
    const legacy = onPath(`${fam}tables-legacy-save`);
    if (nft) out.push({ label: `${fam}tables-nft`, save: nft });
    if (legacy) out.push({ label: `${fam}tables-legacy`, save: legacy, legacyTables: `/proc/net/${fam}_tables_names` });
    if (!nft && !legacy) {
      const plain = onPath(`${fam}tables-save`);
      if (plain) out.push({ label: `${fam}tables (${v})`, save: plain });
    }
  }
  return out;
}

export interface ProbeOptions {
  /** Per command (default 3000 ms). */
  timeoutMs?: number;
  /** nsenter binary (default from PATH). */
  nsenter?: string;
}

/**
 * Look at the nat table(s) of the netns at `netnsPath`. 'present' when an
 * Istio chain is hooked into nat OUTPUT or PREROUTING in any family/backend;
 * 'absent' when at least one lister ran and none shows that; 'unknown' when
 * the netns is missing or nothing could be listed.
 */
export async function probeIstioRules(netnsPath: string | undefined, opts: ProbeOptions = {}): Promise<IstioRulesProbe> {
  if (!netnsPath) return { state: 'unknown', hooked: [], detail: 'no netns recorded' };
  if (!existsSync(netnsPath)) return { state: 'unknown', hooked: [], detail: `netns ${netnsPath} is gone` };
  const nsenter = opts.nsenter ?? onPath('nsenter') ?? 'nsenter';
  const timeoutMs = opts.timeoutMs ?? 3000;
  const inNetns = (cmd: string, args: string[]): Promise<string> =>
    run(nsenter, [`--net=${netnsPath}`, '--', cmd, ...args], { timeoutMs }).then((r) => r.stdout);
  const hooked: string[] = [];
  const found: string[] = [];
  const failures: string[] = [];
  let listed = 0;
  const list = backends();
  if (list.length === 0) return { state: 'unknown', hooked: [], detail: 'no iptables-save on this host' };
  for (const b of list) {
    try {
      if (b.legacyTables) {
        // No such file: the legacy iptables module is not loaded there, so it has no nat table.
        const names = await inNetns('cat', [b.legacyTables]).catch((err: unknown) => {
          if (err instanceof CommandError) return '';
          throw err;
        });
        if (!names.split('\n').includes('nat')) {
          listed++;
          continue;
        }
      }
      const view = parseNatSave(await inNetns(b.save, ['-t', 'nat']));
      listed++;
      if (view.hooked.length > 0) {
        for (const h of view.hooked) hooked.push(`${h}@${b.label}`);
        found.push(`${view.hooked.join('+')} hooked (${view.istioRules} rules) in ${b.label} nat`);
      } else if (view.chains.some((c) => c.startsWith('ISTIO_'))) {
        found.push(`ISTIO_* chains without a hook in ${b.label} nat`);
      }
    } catch (err) {
      failures.push(`${b.label}: ${err instanceof CommandError ? err.message.split('\n')[0] : errorMessage(err)}`);
    }
  }
  if (hooked.length > 0) return { state: 'present', hooked, detail: found.join('; ') };
  if (listed === 0) return { state: 'unknown', hooked: [], detail: `could not list the nat table: ${failures.join('; ')}` };
  return { state: 'absent', hooked: [], detail: found.length ? found.join('; ') : 'no Istio chains in the nat table' };
}
