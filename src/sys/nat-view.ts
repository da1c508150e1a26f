// What the probe for Istio's rules learns from one nat table (one family, one
// iptables backend), whichever way it was read: the chains, which Istio chains
// the built-in chains jump to, and how many rules Istio's chains hold.

export const ISTIO_NAT_CHAINS = { output: 'ISTIO_OUTPUT', inbound: 'ISTIO_INBOUND' } as const;

export interface NatTableView {
  /** The table's chains (built-in and user-defined). */
  chains: string[];
  /** Istio chains that nat OUTPUT / PREROUTING jump to (or go to). */
  hooked: string[];
  /** Number of rules in Istio's chains (ISTIO_*), without a user chain's closing RETURN. */
  istioRules: number;
}

/** One rule of the nat table, as far as the probe cares: its chain and the chain it jumps to, if any. */
export interface NatRule {
  chain: string;
  jumpTo: string | undefined;
}

/** The view from a table's chains and rules. */
export function natView(chains: readonly string[], rules: readonly NatRule[]): NatTableView {
  const hooked = new Set<string>();
  let istioRules = 0;
  for (const r of rules) {
    if (r.chain.startsWith('ISTIO_')) istioRules++;
    if (r.chain === 'OUTPUT' && r.jumpTo === ISTIO_NAT_CHAINS.output) hooked.add(r.jumpTo);
    if (r.chain === 'PREROUTING' && r.jumpTo === ISTIO_NAT_CHAINS.inbound) hooked.add(r.jumpTo);
  }
  return { chains: [...new Set(chains)], hooked: [...hooked].sort(), istioRules };
}
