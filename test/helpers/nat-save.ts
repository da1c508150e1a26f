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
