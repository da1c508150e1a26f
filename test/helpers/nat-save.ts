// An `iptables-save -t nat` dump read as text: the oracle the tests hold
// meshlane's in-process reading of the nat tables (src/sys/istio-rules.ts)
// against, and what test/helpers/istio-golden.ts checks a restored golden with.
// The tools run in the tests only; the plugin and the CLI never run them.
import { ISTIO_NAT_CHAINS, type NatTableView } from '../../src/sys/nat-view.js';

/** Parse `iptables-save -t nat` output (any backend; counters allowed). istioRules counts the `-A` lines of ISTIO_* chains. */
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

interface NftJsonChain { family: string; table: string; name: string; type?: string; hook?: string }
interface NftJsonRule { family: string; table: string; chain: string; expr?: Array<Record<string, unknown>> }

/**
 * `nft -j list ruleset` read the way the tests need it: per nat table (a table
 * with a base chain of type nat), the Istio entry chains its output and
 * prerouting base chains jump or go to, and the rules in Istio's chains. The
 * oracle for Istio's native nftables ruleset.
 */
export function parseNftJson(text: string): Array<{ family: string; table: string; hooked: string[]; istioRules: number }> {
  const doc = JSON.parse(text) as { nftables: Array<{ chain?: NftJsonChain; rule?: NftJsonRule }> };
  const chains = doc.nftables.flatMap((o) => (o.chain ? [o.chain] : []));
  const rules = doc.nftables.flatMap((o) => (o.rule ? [o.rule] : []));
  const entry: Record<string, string[]> = { output: ['ISTIO_OUTPUT', 'istio-output'], prerouting: ['ISTIO_INBOUND', 'istio-inbound'] };
  const natTables = [...new Set(chains.filter((c) => c.type === 'nat').map((c) => `${c.family} ${c.table}`))];
  return natTables.map((ft) => {
    const [family = '', table = ''] = ft.split(' ');
    const hookOf = new Map(chains.filter((c) => c.family === family && c.table === table && c.type === 'nat' && c.hook).map((c) => [c.name, c.hook ?? '']));
    const hooked = new Set<string>();
    let istioRules = 0;
    for (const r of rules.filter((x) => x.family === family && x.table === table)) {
      if (/^(ISTIO_|istio-)/.test(r.chain)) istioRules++;
      const hook = hookOf.get(r.chain);
      for (const e of r.expr ?? []) {
        const target = ((e['jump'] ?? e['goto']) as { target?: string } | undefined)?.target;
        if (hook && target && entry[hook]?.includes(target)) hooked.add(target);
      }
    }
    return { family, table, hooked: [...hooked].sort(), istioRules };
  });
}
